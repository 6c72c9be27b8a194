//! `airbin`: builds offline installer bundles and inspects finished ones. `main`
//! dispatches one command and maps errors to exit codes in one place.

mod assemble;
mod compress;
mod inspect;
mod source;
mod spec;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use airbin_stub::cli::Global;
use airbin_stub::commands::{self, Context};
use airbin_stub::error::Result;
use airbin_stub::progress::Ui;

#[derive(Parser)]
#[command(name = "airbin", about = "Builds self-extracting offline installer bundles (.bin) and inspects finished ones.", version = long_version())]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Only errors on stderr.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a bundle from DIR/bundle.yaml or FILE.yaml into OUTDIR.
    Build {
        /// A bundle directory holding bundle.yaml, or a spec file.
        spec: PathBuf,
        /// Where to write <name>-<version>-<arch>.bin and its .sha256.
        #[arg(short = 'o', long = "out", default_value = "dist")]
        outdir: PathBuf,
    },
    /// Show what a finished bundle is and carries.
    Inspect { bundle: PathBuf },
    /// Verify a finished bundle: its length, then the SHA-256 of every byte.
    Verify { bundle: PathBuf },
}

fn long_version() -> String {
    format!(
        "{} (stub {} for {}, {} bytes; bundle format {})",
        assemble::VERSION,
        airbin_stub::VERSION,
        assemble::STUB_TARGET,
        assemble::STUB.len(),
        airbin_stub::format::FORMAT_VERSION
    )
}

fn main() -> ExitCode {
    airbin_stub::interrupt::install_handler();
    let cli = Cli::parse();
    match try_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("airbin: error: {}", e.message);
            ExitCode::from(e.class.code() as u8)
        }
    }
}

fn try_main(cli: Cli) -> Result<()> {
    let ui = Ui::detect(cli.quiet, cli.json);
    let global = Global { quiet: cli.quiet, json: cli.json, ..Global::default() };
    match cli.command {
        Cmd::Build { spec, outdir } => build(&spec, &outdir, &ui),
        Cmd::Inspect { bundle } => commands::info(&Context { bundle_path: bundle, global, ui }),
        Cmd::Verify { bundle } => commands::check(&Context { bundle_path: bundle, global, ui }),
    }
}

/// `airbin build`: the entry point for release engineers; prints the bundle's path
/// and digest.
fn build(spec: &std::path::Path, outdir: &std::path::Path, ui: &Ui) -> Result<()> {
    let built = assemble::build(spec, outdir, ui)?;
    if ui.json {
        commands::print_json(&serde_json::json!({
            "bundle": built.bin, "sha256_file": built.sha256_file, "sha256": built.sha256, "bytes": built.total_len, "members": built.members,
        }));
    } else if !ui.quiet {
        println!("{}", built.bin.display());
    }
    Ok(())
}
