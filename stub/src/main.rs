//! The `.bin`'s runtime. The launcher copies the stub out of the bundle and runs it with
//! `--bundle "$0"`; the stub (loader/) unpacks this static binary and runs it with the
//! same arguments; `main` dispatches one command and maps every error to
//! its documented exit code in one place.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use airbin_stub::cli::{Cli, Command};
use airbin_stub::commands::{self, Context};
use airbin_stub::error::{Error, Result};
use airbin_stub::interrupt;
use airbin_stub::progress::Ui;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // The launcher's check that this copy can run here at all (noexec, truncated copy).
    if args.get(1).is_some_and(|a| a == "--launcher-probe") {
        return ExitCode::SUCCESS;
    }
    // Run from a memfd by the loader, the process would be called after the fd ("3").
    let _ = nix::sys::prctl::set_name(c"airbin-stub");
    if let Some(dir) = launcher_tmp(&args) {
        commands::remove_launcher_copy(&dir);
    }
    interrupt::install_handler();

    let json = args.iter().any(|a| a == "--json");
    match try_main(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(mut e) => {
            e.message = airbin_stub::runlog::mask(&e.message);
            // Every error names the run's log, when there is one.
            if let Some(log) = airbin_stub::runlog::path() {
                let first_end = e.message.find('\n').unwrap_or(e.message.len());
                e.message.insert_str(first_end, &format!("; log: {}", log.display()));
                airbin_stub::runlog::line(&format!("error: {}", e.message));
                airbin_stub::runlog::sync();
            }
            if json && !commands::json_printed() {
                commands::print_json(&commands::envelope("", Some(&e), serde_json::json!({})));
            }
            airbin_stub::progress::err_line(&format!("airbin: error: {}", e.message));
            ExitCode::from(e.class.code() as u8)
        }
    }
}

/// `--launcher-tmp DIR` as the launcher passes it, read before anything can fail.
fn launcher_tmp(args: &[OsString]) -> Option<PathBuf> {
    let at = args.iter().position(|a| a == "--launcher-tmp")?;
    args.get(at + 1).map(PathBuf::from)
}

fn try_main(args: Vec<OsString>) -> Result<()> {
    let bundle_arg = args.iter().position(|a| a == "--bundle").and_then(|i| args.get(i + 1)).cloned();
    let shown_name = match &bundle_arg {
        Some(path) => format!("sh {}", path.to_string_lossy()),
        None => "airbin-stub".to_string(),
    };
    let matches = match Cli::command().bin_name(shown_name).try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) if !e.use_stderr() => {
            // --help: clap prints it on stdout.
            let _ = e.print();
            return Ok(());
        }
        Err(e) => {
            let first = e.to_string();
            let line = first.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ").to_string();
            return Err(Error::usage(format!("{line}; see --help")));
        }
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Error::usage(e.to_string()))?;
    let bundle_path =
        cli.bundle.clone().ok_or_else(|| Error::usage("this is the airbin runtime; it runs from inside a bundle: sh BUNDLE.bin --help"))?;
    let command = cli.resolved_command().map_err(|m| Error::usage(format!("{m}; see --help")))?;
    let ctx = Context { bundle_path, ui: Ui::detect(cli.global.quiet, cli.global.json), global: cli.global };
    match command {
        Command::Install => commands::install(&ctx),
        Command::Info => commands::info(&ctx),
        Command::List => commands::list(&ctx),
        Command::Check => commands::check(&ctx),
        Command::Extract { members } => commands::extract(&ctx, &members),
        Command::Plan => commands::plan(&ctx),
        Command::Preflight => commands::preflight(&ctx),
        Command::Status { follow } => commands::status(&ctx, follow),
        Command::Support { output } => commands::support(&ctx, output.as_deref()),
    }
}
