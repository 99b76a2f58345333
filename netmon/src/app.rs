//! Wires sources to the aggregator and the aggregator to sinks.
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

pub fn main() -> ExitCode {
    let _cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(2);
        }
    };
    ExitCode::SUCCESS
}
