//! What an installed netmon carries besides its own code: the long version line, shell
//! completions and man pages, all generated from the clap definitions in `cli` so they cannot
//! drift from the flags the binary really accepts. Man pages come from a separate binary
//! (`netmon-mangen`, used by `cargo xtask dist`): as a hidden subcommand they would still be
//! offered by every completion script, which clap_complete generates for hidden commands too.
use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

/// `netmon --version`: the crate version, the git revision it was built from and a short
/// SHA-256 of the embedded eBPF object (both set by build.rs).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("NETMON_GIT_REV"),
    ", ebpf ",
    env!("NETMON_BPF_ID"),
    ")"
);

/// Man page section: netmon needs root or capabilities, so it is an administration command.
const SECTION: &str = "8";

pub fn completions(args: &CompletionsArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "netmon", out);
    Ok(ExitCode::SUCCESS)
}

/// netmon.8 and one page per visible subcommand (netmon-run.8, ...), into `dir`, dated `date`
/// (YYYY-MM-DD).
pub fn write_manpages(dir: &Path, date: &str) -> Result<Vec<PathBuf>> {
    // The `help` pseudo-subcommand would get a page of its own; `netmon help X` is `netmon X
    // --help`, which every page already documents.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building fills in what the pages print: bin names ("netmon run") for the synopsis,
    // display names ("netmon-run") for titles and file names, and propagated global flags.
    cmd.build();
    let mut written = Vec::new();
    write_page(&cmd, dir, date, &mut written)?;
    Ok(written)
}

fn write_page(
    cmd: &clap::Command,
    dir: &Path,
    date: &str,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    // The plain version, not LONG_VERSION: a page documents the flags of a release, and
    // should not change with every commit or eBPF rebuild.
    let page_cmd = cmd.clone().long_version(None::<&str>);
    let man = clap_mangen::Man::new(page_cmd)
        .title(name.to_uppercase())
        .section(SECTION)
        // Without a date, roff drops the empty argument and the footer fields shift.
        .date(date)
        .source(format!("netmon {}", env!("CARGO_PKG_VERSION")))
        .manual("System Administration");
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(sub, dir, date, written)?;
    }
    Ok(())
}

/// docs/flags.md: every visible subcommand with its flags, values and defaults, from the same
/// clap definitions as `--help` and the man pages (written by `cargo xtask docs`; the `docs`
/// test of this crate fails when the committed file differs).
pub fn flags_markdown() -> String {
    let cmd = Cli::command();
    let mut out = String::from(
        "# Flags\n\n\
         <!-- Generated from netmon's clap definitions by `cargo xtask docs`; do not edit. -->\n\n\
         Every subcommand of `netmon` with its flags, as `netmon SUBCOMMAND --help` and\n\
         `man netmon-SUBCOMMAND` show them: all three come from the same definitions, and\n\
         `cargo test -p netmon --test docs` fails when this page is out of date. Every subcommand\n\
         also takes the global flags and `-h`/`--help`; `netmon --version` prints the version,\n\
         git revision and a hash of the embedded eBPF object. Exit codes are at the\n\
         [end](#exit-codes).\n\n",
    );
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    out.push_str("| subcommand | what |\n|---|---|\n");
    for sub in &subs {
        let name = format!("netmon {}", sub.get_name());
        out.push_str(&format!(
            "| [`{name}`](#{}) | {} |\n",
            name.replace(' ', "-"),
            cell(&about(sub))
        ));
    }
    out.push_str("\n## Global flags\n\n");
    args_table(&cmd, true, &mut out);
    for sub in subs {
        command_section(sub, "netmon", &mut out);
    }
    out.push_str(EXIT_CODES);
    out
}

/// The exit codes of `crate::error::Exit`, for the end of docs/flags.md.
const EXIT_CODES: &str = "\n## Exit codes\n\n\
| code | meaning |\n\
|---|---|\n\
| 0 | normal end (`--once`, `--duration`, Ctrl-C / SIGTERM; final totals printed) |\n\
| 1 | runtime failure (privileges, kernel, I/O), one line on stderr |\n\
| 2 | bad flag or value (`--pid abc`, `--pid 0`), or a bad config file (its file, line and key) |\n\
| 3 | the `--pid` does not exist |\n\
| 4 | every watched process exited (its final totals are printed first) |\n";

fn about(cmd: &clap::Command) -> String {
    cmd.get_long_about()
        .or(cmd.get_about())
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// One line for a table cell: no line breaks, no column separators.
fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn command_section(cmd: &clap::Command, parent: &str, out: &mut String) {
    let path = format!("{parent} {}", cmd.get_name());
    out.push_str(&format!("\n## {path}\n\n"));
    let about = about(cmd);
    if !about.is_empty() {
        out.push_str(&about);
        out.push_str("\n\n");
    }
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    let mut synopsis = path.clone();
    if cmd
        .get_arguments()
        .any(|a| !a.is_positional() && !a.is_hide_set())
    {
        synopsis.push_str(" [OPTIONS]");
    }
    for a in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let name = value_name(a);
        synopsis.push_str(&if a.is_required_set() {
            format!(" {name}")
        } else {
            format!(" [{name}]")
        });
    }
    if !subs.is_empty() {
        let names: Vec<&str> = subs.iter().map(|s| s.get_name()).collect();
        synopsis.push_str(&format!(" <{}>", names.join("|")));
    }
    out.push_str(&format!("```\n{synopsis}\n```\n\n"));
    if cmd
        .get_arguments()
        .any(|a| !a.is_hide_set() && !a.is_global_set())
    {
        args_table(cmd, false, out);
    }
    for sub in subs {
        command_section(sub, &path, out);
    }
}

fn value_name(a: &clap::Arg) -> String {
    a.get_value_names()
        .and_then(|v| v.first())
        .map(|s| s.to_string())
        .unwrap_or_else(|| a.get_id().as_str().to_uppercase())
}

/// A table of `cmd`'s visible arguments: its global ones (`global`) or its own.
fn args_table(cmd: &clap::Command, global: bool, out: &mut String) {
    out.push_str("| flag | default | what |\n|---|---|---|\n");
    for a in cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.is_global_set() == global)
    {
        let takes_value = a.get_action().takes_values();
        let mut names = Vec::new();
        if let Some(s) = a.get_short() {
            names.push(format!("`-{s}`"));
        }
        if let Some(l) = a.get_long() {
            names.push(if takes_value {
                format!("`--{l} {}`", value_name(a))
            } else {
                format!("`--{l}`")
            });
        }
        if a.is_positional() {
            names.push(format!("`{}`", value_name(a)));
        }
        let default: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = if takes_value && !default.is_empty() {
            format!("`{}`", default.join(","))
        } else {
            String::new()
        };
        let mut what = a
            .get_long_help()
            .or(a.get_help())
            .map(|s| s.to_string())
            .unwrap_or_default();
        let values: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| match v.get_help() {
                Some(h) => format!(
                    "`{}` ({})",
                    v.get_name(),
                    h.to_string().trim_end_matches('.')
                ),
                None => format!("`{}`", v.get_name()),
            })
            .collect();
        if takes_value && !values.is_empty() {
            if !what.is_empty() && !what.ends_with('.') {
                what.push('.');
            }
            what.push_str(&format!(" Values: {}.", values.join(", ")));
        }
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            names.join(", "),
            default,
            cell(&what)
        ));
    }
}

/// `--date`: YYYY-MM-DD, the form man pages use.
pub fn parse_date(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shape {
        return Err("expected YYYY-MM-DD".into());
    }
    Ok(s.to_string())
}

/// Today's UTC date as YYYY-MM-DD, for pages generated without `--date`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_date(secs / 86_400)
}

/// Days since 1970-01-01 to a proleptic Gregorian date, counting in 400-year eras (146,097
/// days each) whose years start on 1 March, so the leap day falls at the end of a year.
fn civil_date(days: u64) -> String {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_visible_subcommand() {
        let dir = std::env::temp_dir().join(format!("netmon-man-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pages = write_manpages(&dir, "2026-12-07").unwrap();
        let top = std::fs::read_to_string(&pages[0]).unwrap();
        assert!(
            top.contains(".TH NETMON 8 2026-12-07 \"netmon "),
            "{}",
            top.lines()
                .find(|l| l.starts_with(".TH"))
                .unwrap_or_default()
        );
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(names[0], "netmon.8");
        for want in ["netmon-run.8", "netmon-serve.8", "netmon-completions.8"] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        // clap's help pseudo-command gets no page.
        assert!(!names.iter().any(|n| n == "netmon-help.8"), "{names:?}");
    }

    /// The flags the packaged service starts with (/etc/default/netmon) are ones `netmon
    /// serve` accepts.
    #[test]
    fn packaged_default_flags_parse() {
        let file = include_str!("../../contrib/systemd/netmon.default");
        let args = file
            .lines()
            .find_map(|l| l.strip_prefix("NETMON_ARGS="))
            .expect("an uncommented NETMON_ARGS= line");
        let args = args.trim().trim_matches('"');
        let argv = ["netmon", "serve"]
            .into_iter()
            .chain(args.split_whitespace());
        let cli = <Cli as clap::Parser>::try_parse_from(argv).unwrap();
        assert!(matches!(cli.command, crate::cli::Command::Serve(_)));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(59), "1970-03-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(11_017), "2000-03-01");
        assert_eq!(civil_date(20_794), "2026-12-07");
        assert_eq!(civil_date(20_818), "2026-12-31");
        assert_eq!(civil_date(20_819), "2027-01-01");
    }

    #[test]
    fn completions_name_the_subcommands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            completions(&CompletionsArgs { shell }, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("serve") && text.contains("doctor"), "{shell}");
        }
    }
}
