use std::process::ExitCode;

fn main() -> ExitCode {
    netmon::app::main()
}
