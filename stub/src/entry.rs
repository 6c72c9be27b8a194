//! The runtime's entry, for both of its programs: the `.bin`'s (the launcher runs it
//! with `--bundle "$0"`), and `airbin-run`, the trusted runner a site installs once and
//! then runs bundles with as data (`airbin-run x.bin [COMMAND]`): it never executes a
//! bundle's launcher or stub, and verifies every byte and the signature against the
//! pinned keys before anything else. `main` dispatches one command and maps every error
//! to its documented exit code in one place.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use airbin_format::error::{Error, Result};

use crate::cli::{self, Cli};
use crate::commands::{self, Context};
use crate::ui::{self, print_json, Empty, Envelope, Ui};

/// Which program this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// The runtime inside a bundle, started by its launcher.
    Bundled,
    /// `airbin-run`: the site's own copy, given the bundle as data.
    TrustedRunner,
}

impl Program {
    /// `airbin-run` by the name it was started as (an installed copy of this runtime).
    pub fn from_name(argv0: Option<&OsString>) -> Program {
        let name = argv0.map(|a| PathBuf::from(a).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        match name {
            Some(name) if name.starts_with("airbin-run") => Program::TrustedRunner,
            _ => Program::Bundled,
        }
    }
}

pub fn main(program: Program) -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    // The launcher's check that this copy can run here at all (noexec, truncated copy).
    if args.get(1).is_some_and(|a| a == "--launcher-probe") {
        return ExitCode::SUCCESS;
    }
    // Run from a memfd by the loader, the process would be called after the fd ("3").
    let _ = nix::sys::prctl::set_name(c"airbin-stub");
    if let Some(dir) = launcher_tmp(&args) {
        commands::remove_launcher_copy(&dir);
    }
    crate::interrupt::install_handler();
    // Everything that leaves the process is masked, and every status line logged.
    airbin_format::console::set_transcript(&crate::ui::runlog::RunLog);
    let json = args.iter().any(|a| a == "--json");
    // The command's name, for the one JSON document a failure prints too (the line
    // may not parse: it is found in the raw words first).
    ui::set_command(cli::command_named_in(&args));
    if program == Program::TrustedRunner {
        commands::set_trusted_runner();
        if args.len() <= 2 && args.iter().any(|a| a == "--help" || a == "-h") {
            crate::ui::out_line("airbin-run: runs an airbin bundle as data, after checking every byte and its signature against the keys this host pins (/etc/airbin/trusted-keys/*.pub, --trusted-key FILE); it never runs the bundle's own launcher or runtime.");
            crate::ui::out_line(
                "usage: airbin-run BUNDLE.bin [COMMAND] [OPTIONS]   (the commands of sh BUNDLE.bin: airbin-run BUNDLE.bin --help)",
            );
            return ExitCode::SUCCESS;
        }
        args = match as_bundle_args(args) {
            Ok(args) => args,
            Err(e) => return fail(e, json),
        };
    }
    match try_main(args) {
        Ok(code) => {
            // Every command prints its document; one with nothing more to say, the bare one.
            if json && !ui::json_printed() {
                print_json(&Envelope::ok(ui::command(), Empty {}));
            }
            code
        }
        Err(e) => fail(e, json),
    }
}

/// The error, masked, named with the run's log, as one line (and the one document).
fn fail(mut e: Error, json: bool) -> ExitCode {
    e.message = crate::ui::runlog::mask(&e.message);
    // Every error names the run's log, when there is one.
    if let Some(log) = crate::ui::runlog::path() {
        let first_end = e.message.find('\n').unwrap_or(e.message.len());
        e.message.insert_str(first_end, &format!("; log: {}", log.display()));
        crate::ui::runlog::line(&format!("error: {}", e.message));
        crate::ui::runlog::sync();
    }
    if json && !ui::json_printed() {
        print_json(&Envelope::failed(ui::command(), &e));
    }
    crate::ui::err_line(&format!("airbin: error: {}", e.message));
    ExitCode::from(e.class.code() as u8)
}

/// `airbin-run BUNDLE [COMMAND] [OPTIONS]` as the runtime reads it: `--bundle BUNDLE ...`.
fn as_bundle_args(args: Vec<OsString>) -> Result<Vec<OsString>> {
    let usage =
        "airbin-run runs a bundle as data, after checking it against the keys this host pins: airbin-run BUNDLE.bin [COMMAND] [OPTIONS]";
    let Some(at) = args.iter().skip(1).position(|a| !a.to_string_lossy().starts_with('-')).map(|i| i + 1) else {
        return Err(Error::usage(format!("{usage}; give the bundle to run (airbin-run BUNDLE.bin --help lists the commands)")));
    };
    let mut rest = args;
    let bundle = rest.remove(at);
    let mut out = vec![rest.remove(0), OsString::from("--bundle"), bundle];
    out.extend(rest);
    Ok(out)
}

/// `--launcher-tmp DIR` as the launcher passes it, read before anything can fail.
fn launcher_tmp(args: &[OsString]) -> Option<PathBuf> {
    let at = args.iter().position(|a| a == "--launcher-tmp")?;
    args.get(at + 1).map(PathBuf::from)
}

fn try_main(args: Vec<OsString>) -> Result<ExitCode> {
    let bundle_arg = args.iter().position(|a| a == "--bundle").and_then(|i| args.get(i + 1)).cloned();
    if let Some(path) = &bundle_arg {
        crate::shell::set_bundle(std::path::Path::new(path), commands::is_trusted_runner());
    }
    let json = args.iter().any(|a| a == "--json");
    let matches = match Cli::command().bin_name(crate::shell::bundle()).try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) if !e.use_stderr() => {
            // --help: the text on stdout, or inside the one document with --json.
            if json {
                let help = e.render().to_string();
                print_json(&Envelope::ok(ui::command(), serde_json::json!({"help": help})));
            } else {
                let _ = e.print();
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(cli::usage_error(&e)),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Error::usage(e.to_string()))?;
    let bundle_path =
        cli.bundle.clone().ok_or_else(|| Error::usage("this is the airbin runtime; it runs from inside a bundle: sh BUNDLE.bin --help"))?;
    let command = cli.resolved_command(&matches).map_err(|m| Error::usage(format!("{m}; see {} --help", crate::shell::bundle())))?;
    ui::set_command(command.name());
    let ctx = Context { bundle_path, parts: cli.parts.clone(), ui: Ui::detect(cli.output.quiet, cli.output.json) };
    commands::run(&ctx, command)?;
    Ok(ExitCode::SUCCESS)
}
