//! The `.bin`'s runtime. The launcher copies the stub out of the bundle and runs it with
//! `--bundle "$0"`; the stub (loader/) unpacks this static binary and runs it with the
//! same arguments. Installed as `airbin-run` (`sh x.bin runtime install`), the same
//! binary is the trusted runner (`entry`).

use std::process::ExitCode;

use airbin_stub::entry::{self, Program};

fn main() -> ExitCode {
    entry::main(Program::from_name(std::env::args_os().next().as_ref()))
}
