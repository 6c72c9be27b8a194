//! `airbin-run`: the trusted runner, this runtime built under that name (`entry`).

use std::process::ExitCode;

fn main() -> ExitCode {
    airbin_stub::entry::main(airbin_stub::entry::Program::TrustedRunner)
}
