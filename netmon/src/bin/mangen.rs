//! `netmon-mangen DIR [--date YYYY-MM-DD]`: writes netmon.8 and one page per subcommand
//! (netmon-run.8, ...) from netmon's clap definitions. Run by `cargo xtask dist`; not installed.
use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

#[derive(Parser)]
#[command(name = "netmon-mangen", about = "Write netmon's man pages into DIR")]
struct Args {
    /// Directory to write the pages into (created if missing).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Date printed in the pages (YYYY-MM-DD; default: today), e.g. the release's.
    #[arg(long, value_name = "DATE", value_parser = netmon::packaging::parse_date)]
    date: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let date = args.date.unwrap_or_else(netmon::packaging::today);
    let written = std::fs::create_dir_all(&args.dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| netmon::packaging::write_manpages(&args.dir, &date));
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
                args.dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
