//! `airbin`: builds offline installer bundles and inspects finished ones. `main`
//! dispatches one command and maps errors to exit codes in one place.

mod assemble;
mod compress;
mod delta;
mod inspect;
mod repo;
mod signing;
mod source;
mod spec;
mod stubs;

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
        /// Sign with this minisign secret key (from `airbin keygen`); its password comes
        /// from AIRBIN_KEY_PASSWORD or the terminal. Writes a detached .minisig too.
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
        /// Record this host's name in the bundle (left out by default, for builds that
        /// reproduce byte for byte). The build time comes from SOURCE_DATE_EPOCH.
        #[arg(long)]
        record_host: bool,
        /// Build for this architecture instead of the spec's `arch`: amd64 (x86_64) or
        /// arm64 (aarch64).
        #[arg(long, value_name = "ARCH")]
        arch: Option<String>,
        /// Build a delta: registry packs leave out the blobs this earlier bundle of the
        /// product carries (the site must have it installed).
        #[arg(long, value_name = "PREVIOUS.bin")]
        base: Option<PathBuf>,
    },
    /// Show what a finished bundle is and carries.
    Inspect {
        bundle: PathBuf,
        /// Print the bundle's install parameters as JSON Schema (draft 2020-12), for a
        /// portal to render its form from.
        #[arg(long)]
        schema: bool,
    },
    /// What changed from OLD.bin to NEW.bin: members, images and tags, registry
    /// repositories and blobs, parameters, steps.
    Diff { old: PathBuf, new: PathBuf },
    /// A bundle repository: <name>/<arch>/<version>/ directories and an index.json.
    Repo {
        #[command(subcommand)]
        command: RepoCmd,
    },
    /// Verify a finished bundle: its length, the SHA-256 of every byte, and with --key
    /// its signature.
    Verify {
        bundle: PathBuf,
        /// Require a signature by this minisign public key; repeatable.
        #[arg(long, value_name = "PUBKEY")]
        key: Vec<PathBuf>,
    },
    /// Make a signing key pair in minisign's format: OUT.key (secret, 0600) and OUT.pub.
    Keygen {
        /// Where to write the pair, without extension.
        #[arg(long, short = 'o', default_value = "airbin")]
        out: PathBuf,
        /// Leave the secret key unencrypted (for build machines that keep it safe some other way).
        #[arg(long)]
        no_password: bool,
        /// Replace an existing pair.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum RepoCmd {
    /// Place each bundle (with its .sha256, and .minisig if there is one) at
    /// <name>/<arch>/<version>/ and update index.json.
    Add {
        repo: PathBuf,
        #[arg(required = true)]
        bundles: Vec<PathBuf>,
        /// Replace a different file already at that name, arch and version.
        #[arg(long)]
        replace: bool,
    },
    /// Check every file against index.json: missing, extra or altered.
    Verify { repo: PathBuf },
}

fn long_version() -> String {
    let stubs: Vec<String> = stubs::STUBS
        .iter()
        .map(|stub| {
            format!("{} stub for {}, {} bytes: the runtime's {} packed", stub.arch, stub.target, stub.bytes.len(), stub.runtime_len)
        })
        .collect();
    format!(
        "{} (stub {}; bundle format {})\n{}",
        assemble::VERSION,
        airbin_stub::VERSION,
        airbin_stub::format::FORMAT_VERSION,
        stubs.join("\n")
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
        Cmd::Build { spec, outdir, sign, record_host, arch, base } => {
            build(&spec, &outdir, &assemble::BuildOptions { sign, record_host, arch, base }, &ui)
        }
        Cmd::Inspect { bundle, schema: false } => commands::info(&Context { bundle_path: bundle, global, ui }),
        Cmd::Inspect { bundle, schema: true } => schema(&bundle),
        Cmd::Diff { old, new } => diff(&old, &new, &ui),
        Cmd::Repo { command: RepoCmd::Add { repo, bundles, replace } } => repo::add(&repo, &bundles, replace, &ui),
        Cmd::Repo { command: RepoCmd::Verify { repo } } => repo::verify(&repo, &ui),
        Cmd::Verify { bundle, key } => commands::check(&Context { bundle_path: bundle, global: Global { trusted_key: key, ..global }, ui }),
        Cmd::Keygen { out, no_password, force } => keygen(&out, no_password, force, &ui),
    }
}

/// `airbin inspect --schema`: the parameters as JSON Schema, from the index alone.
fn schema(path: &std::path::Path) -> Result<()> {
    let bundle = airbin_stub::format::Bundle::open(path)?;
    let meta = &bundle.index.bundle;
    commands::print_json(&airbin_stub::format::params::json_schema(&meta.name, &meta.version, &bundle.index.parameters));
    Ok(())
}

/// `airbin diff`: from the two indexes (each checked on open); the bytes are not read.
fn diff(old: &std::path::Path, new: &std::path::Path, ui: &Ui) -> Result<()> {
    let (a, b) = (airbin_stub::format::Bundle::open(old)?, airbin_stub::format::Bundle::open(new)?);
    let diff = airbin_stub::format::diff::diff(&a.index, &b.index);
    if ui.json {
        commands::print_json(&diff.to_json());
    } else if !ui.quiet {
        println!("{} -> {}", diff.from, diff.to);
        for line in diff.lines() {
            println!("{line}");
        }
    }
    Ok(())
}

/// `airbin keygen`: prints where the pair went and the key ID a site pins.
fn keygen(out: &std::path::Path, no_password: bool, force: bool, ui: &Ui) -> Result<()> {
    let files = signing::keygen(out, no_password, force)?;
    if ui.json {
        commands::print_json(&serde_json::json!({"secret_key": files.secret, "public_key": files.public, "key_id": files.id.to_string()}));
    } else if !ui.quiet {
        println!("secret key: {} (keep it secret)", files.secret.display());
        println!("public key: {} (copy it to /etc/airbin/trusted-keys/ on the sites that install your bundles)", files.public.display());
        println!("key ID:     {}", files.id);
    }
    Ok(())
}

/// `airbin build`: the entry point for release engineers; prints the bundle's path
/// and digest.
fn build(spec: &std::path::Path, outdir: &std::path::Path, options: &assemble::BuildOptions, ui: &Ui) -> Result<()> {
    let built = assemble::build(spec, outdir, options, ui)?;
    if ui.json {
        commands::print_json(&serde_json::json!({
            "bundle": built.bin, "sha256_file": built.sha256_file, "sha256": built.sha256, "bytes": built.total_len, "members": built.members,
            "minisig": built.minisig, "key_id": built.key_id,
        }));
    } else if !ui.quiet {
        println!("{}", built.bin.display());
    }
    Ok(())
}
