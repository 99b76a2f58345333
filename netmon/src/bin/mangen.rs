//! `netmon-mangen DIR [--date YYYY-MM-DD]`: writes netmon.8 and one page per subcommand
//! (netmon-run.8, ...) from netmon's clap definitions. Run by `cargo xtask dist`; not installed.
//! `netmon-mangen --flags-md FILE` writes docs/flags.md from the same definitions instead
//! (`cargo xtask docs`).
use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

#[derive(Parser)]
#[command(name = "netmon-mangen", about = "Write netmon's man pages into DIR")]
struct Args {
    /// Directory to write the pages into (created if missing).
    #[arg(value_name = "DIR", required_unless_present = "flags_md")]
    dir: Option<PathBuf>,
    /// Date printed in the pages (YYYY-MM-DD; default: today), e.g. the release's.
    #[arg(long, value_name = "DATE", value_parser = netmon::packaging::parse_date)]
    date: Option<String>,
    /// Write the Markdown flag reference (docs/flags.md) to FILE instead of man pages.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dir", "date"])]
    flags_md: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(file) = args.flags_md {
        return match std::fs::write(&file, netmon::packaging::flags_markdown()) {
            Ok(()) => {
                println!("{}", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("netmon-mangen: error: writing {}: {e}", file.display());
                ExitCode::FAILURE
            }
        };
    }
    let dir = args.dir.expect("clap requires DIR without --flags-md");
    let date = args.date.unwrap_or_else(netmon::packaging::today);
    let written = std::fs::create_dir_all(&dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| netmon::packaging::write_manpages(&dir, &date));
    match written {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "netmon-mangen: error: writing man pages to {}: {e:#}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
