//! The `.bin`'s runtime. The launcher copies the stub out of the bundle and runs it with
//! `--bundle "$0"`; the stub (loader/) unpacks this static binary and runs it with the
//! same arguments; `main` dispatches one command and maps every error to
//! its documented exit code in one place.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use airbin_stub::cli::{self, Cli, Command};
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
    // The command's name, for the one JSON document a failure prints too (the line
    // may not parse: it is found in the raw words first).
    commands::set_command(cli::command_named_in(&args));
    match try_main(args) {
        Ok(code) => {
            // Every command prints its document; one with nothing more to say, the bare one.
            if json && !commands::json_printed() {
                commands::print_json(&commands::envelope(commands::command(), None, serde_json::json!({})));
            }
            code
        }
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
                commands::print_json(&commands::envelope(commands::command(), Some(&e), serde_json::json!({})));
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

fn try_main(args: Vec<OsString>) -> Result<ExitCode> {
    let bundle_arg = args.iter().position(|a| a == "--bundle").and_then(|i| args.get(i + 1)).cloned();
    if let Some(path) = &bundle_arg {
        airbin_stub::shell::set_bundle(std::path::Path::new(path));
    }
    let json = args.iter().any(|a| a == "--json");
    let matches = match Cli::command().bin_name(airbin_stub::shell::bundle()).try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) if !e.use_stderr() => {
            // --help: the text on stdout, or inside the one document with --json.
            if json {
                let help = e.render().to_string();
                commands::print_json(&commands::envelope(commands::command(), None, serde_json::json!({"help": help})));
            } else {
                let _ = e.print();
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(commands::usage_error(&e)),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Error::usage(e.to_string()))?;
    let bundle_path =
        cli.bundle.clone().ok_or_else(|| Error::usage("this is the airbin runtime; it runs from inside a bundle: sh BUNDLE.bin --help"))?;
    let command = cli.resolved_command(&matches).map_err(|m| Error::usage(format!("{m}; see {} --help", airbin_stub::shell::bundle())))?;
    commands::set_command(command.name());
    let ctx = Context { bundle_path, ui: Ui::detect(cli.output.quiet, cli.output.json) };
    match command {
        Command::Install(args) => commands::install(&ctx, &args),
        Command::Info => commands::info(&ctx),
        Command::List => commands::list(&ctx),
        Command::Check(args) => commands::check(&ctx, &args.trust),
        Command::Extract(args) => commands::extract(&ctx, &args),
        Command::Plan(args) => commands::plan(&ctx, &args),
        Command::Preflight(args) => commands::preflight(&ctx, &args),
        Command::Status(args) => commands::status(&ctx, &args),
        Command::Support(args) => commands::support(&ctx, &args),
        Command::Uninstall(args) => commands::uninstall(&ctx, &args),
    }?;
    Ok(ExitCode::SUCCESS)
}
