//! Wires sources to the aggregator and the aggregator to sinks (full wiring lands once the
//! sources and the aggregator exist).
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

pub fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = e.print();
            ExitCode::from(2)
        }
    }
}
