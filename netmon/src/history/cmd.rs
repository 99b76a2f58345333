//! `netmon flows` and `netmon report`: read the history store and print. The store is opened
//! read-only, so both work while `netmon serve` records and after it stopped.
use std::{io::Write, process::ExitCode};

use anyhow::Result;

use super::render::{self, ReportHeader};
use super::store::{Store, StoreError};
use super::{FlowQuery, ReportQuery, ReportRow, when};
use crate::cli::{FlowsArgs, RangeArgs, ReportArgs};
use crate::error::{AppError, Exit};

/// The range the user asked for, in Unix ms; a bad time or an empty range is a usage error.
fn range(r: &RangeArgs, now_ms: i64) -> Result<(i64, i64)> {
    time_range(&r.since, &r.until, now_ms)
}

/// `--since` and `--until` as Unix ms; a bad time or an empty range is a usage error.
pub fn time_range(since: &str, until: &str, now_ms: i64) -> Result<(i64, i64)> {
    let usage = |m: String| AppError::new(Exit::Usage, m);
    let since = when::parse_time_ms(since, now_ms).map_err(|e| usage(format!("--since: {e}")))?;
    let until = when::parse_time_ms(until, now_ms).map_err(|e| usage(format!("--until: {e}")))?;
    if since >= until {
        return Err(usage(format!(
            "--since ({}) must be before --until ({})",
            when::format_local(since),
            when::format_local(until)
        ))
        .into());
    }
    Ok((since, until))
}

fn open(r: &RangeArgs) -> Result<Store> {
    Store::open_read(&r.db).map_err(|e| match e {
        StoreError::Missing { .. } => AppError::new(Exit::Failure, e.to_string()).into(),
        e => anyhow::Error::from(e),
    })
}

pub fn flows(args: &FlowsArgs) -> Result<ExitCode> {
    let (since_ms, until_ms) = range(&args.range, when::now_ms())?;
    let store = open(&args.range)?;
    let flows = store.flows(&FlowQuery {
        since_ms,
        until_ms,
        pid: args.range.pid,
        comm: args.range.comm.clone(),
        limit: args.limit,
    })?;
    let mut out = std::io::stdout().lock();
    if args.range.json {
        for f in &flows {
            writeln!(out, "{}", render::flow_json(f))?;
        }
    } else {
        out.write_all(render::flows_text(&flows, crate::app::terminal_columns()).as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn report(args: &ReportArgs) -> Result<ExitCode> {
    let (since_ms, until_ms) = range(&args.range, when::now_ms())?;
    let store = open(&args.range)?;
    let report = store.report(&ReportQuery {
        since_ms,
        until_ms,
        by: args.by,
        pid: args.range.pid,
        comm: args.range.comm.clone(),
        every_ms: args.rows.every,
        limit: args.rows.limit,
    })?;
    let header = ReportHeader {
        since_ms: report.raw_gone_until.unwrap_or(since_ms),
        until_ms,
        by: args.by,
        from_rollups: report.from_rollups,
        raw_gone: report.raw_gone_until.is_some(),
        every_ms: args.rows.every,
    };
    print_report(&report.rows, &header, args.range.json, args.rows.csv)
}

/// Prints a report's rows as JSON lines, CSV or a table sized to the terminal (also the fleet
/// report's).
pub fn print_report(
    rows: &[ReportRow],
    header: &ReportHeader,
    json: bool,
    csv: bool,
) -> Result<ExitCode> {
    let text = if json {
        render::report_json(rows, header)
    } else if csv {
        render::report_csv(rows, header)
    } else {
        render::report_table(rows, header, crate::app::terminal_columns())
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.is_empty() && !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
