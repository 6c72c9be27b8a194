//! `airbin`: builds offline installer bundles and inspects finished ones. `main`
//! dispatches one command, each to a function whose doc line says what the release
//! engineer gets, and maps errors to exit codes in one place.
//!
//! The builder uses the format crate (`airbin_format`) and nothing else of the runtime:
//! the runtime is only the bytes `build/stubs.rs` embeds.

mod assemble;
mod cli;
mod diff;
mod images;
mod init;
mod inspect;
mod inventory;
mod keygen;
mod lab;
mod lint;
mod receipt;
mod repo;
mod runtime;
mod sbom;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use airbin_format::console::{self, err_line, print_json, Envelope, Ui};
use airbin_format::error::{Error, Result};
use cli::{Cli, Cmd, LabArgs, LabCmd, RepoArgs, RepoCmd};

fn main() -> ExitCode {
    stop_on_signals();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = args.iter().any(|a| a == "--json");
    let mut command = cli::name_in(&args);
    let parsed = Cli::command().try_get_matches_from(&args).and_then(|m| Cli::from_arg_matches(&m));
    let result = match parsed {
        Ok(cli) => {
            command = cli::name_of(&cli.command);
            try_main(cli)
        }
        // --help and --version: the text, or inside the one document with --json.
        Err(e) if !e.use_stderr() => {
            match json {
                true => print_json(&Envelope::ok(command, serde_json::json!({"help": e.render().to_string()}))),
                false => drop(e.print()),
            }
            Ok(())
        }
        Err(e) => {
            let first = e.to_string();
            let line = first.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ").to_string();
            Err(Error::usage(format!("{line}; see airbin --help")))
        }
    };
    match result {
        Ok(()) => {
            // Every command prints its document; one with nothing more to say, the bare one.
            if json && !console::json_printed() {
                print_json(&Envelope::ok(command, console::Empty {}));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json && !console::json_printed() {
                print_json(&Envelope::failed(command, &e));
            }
            err_line(&format!("airbin: error: {}", e.message));
            ExitCode::from(e.class.code() as u8)
        }
    }
}

fn try_main(cli: Cli) -> Result<()> {
    let ui = Ui::detect(cli.quiet, cli.json);
    match cli.command {
        Cmd::Build(args) => assemble::run(&args, &ui),
        Cmd::Lint(args) => lint::run(&args.spec, args.arch.as_deref(), &ui),
        Cmd::Schema(args) => lint::schema(args.out.as_deref(), &ui),
        Cmd::Init(args) => init::run(&args, &ui),
        Cmd::Fetch(args) => images::fetch(&args, &ui),
        Cmd::Inspect(args) if args.schema => inspect::schema(&args.bundle, &ui),
        Cmd::Inspect(args) => inspect::inspect(&args.bundle, &ui),
        Cmd::Sbom(args) => sbom::run(&args.bundle, &args.format, &ui),
        Cmd::Inventory(args) => inventory::run(&args, &ui),
        Cmd::Receipt(cli::ReceiptArgs { command: cli::ReceiptCmd::Verify(args) }) => {
            receipt::verify(&args.receipt, &args.key, args.bundle.as_deref(), &ui)
        }
        Cmd::Diff(args) => diff::diff(&args.old, &args.new, &ui),
        Cmd::Verify(args) => verify::verify(&args.bundle, &args.key, &ui),
        Cmd::Repo(RepoArgs { command: RepoCmd::Add(args) }) => {
            repo::add(&args.repo, &args.bundles, args.replace, args.key.as_deref(), args.staging, &ui)
        }
        Cmd::Repo(RepoArgs { command: RepoCmd::Verify(args) }) => repo::verify(&args.repo, &ui),
        Cmd::Repo(RepoArgs { command: RepoCmd::Promote(args) }) => repo::promote(&args.which.repo, &named(&args.which), &args.key, &ui),
        Cmd::Repo(RepoArgs { command: RepoCmd::Yank(args) }) => {
            repo::yank(&args.which.repo, &named(&args.which), args.reason.as_deref(), args.undo, &ui)
        }
        Cmd::Keygen(args) => keygen::run(&args, &ui),
        Cmd::Runtime(args) => runtime::run(&args, &ui),
        Cmd::Lab(LabArgs { command: LabCmd::Run(args) }) => lab::run(&args, &ui),
        Cmd::Lab(LabArgs { command: LabCmd::Image(args) }) => lab::image::build(&args, &ui),
    }
}

fn named(which: &cli::RepoVersionArgs) -> repo::Named<'_> {
    repo::Named { name: &which.name, version: &which.version, arch: which.arch.as_deref() }
}

/// Ctrl-C and SIGTERM raise the format crate's flag: the build's loops stop between
/// buffers and their guards remove the half-written bundle.
fn stop_on_signals() {
    extern "C" fn on_signal(_: nix::libc::c_int) {
        airbin_format::cancel::raise();
    }
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}
