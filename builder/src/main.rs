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

use airbin_stub::cli::TrustArgs;
use airbin_stub::commands::{self, envelope, print_json, Context};
use airbin_stub::error::{Error, Result};
use airbin_stub::progress::{out_line, Ui};

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
        /// product carries (the site must have it installed). The base is checked first:
        /// with --base-key, --sign's own key, or --base-sha256.
        #[arg(long, value_name = "PREVIOUS.bin")]
        base: Option<PathBuf>,
        /// The public key the base bundle is signed with.
        #[arg(long, value_name = "PUBKEY", requires = "base")]
        base_key: Option<PathBuf>,
        /// The SHA-256 of the base bundle's file, as its .sha256 names it (for an
        /// unsigned base).
        #[arg(long, value_name = "HEX", requires = "base")]
        base_sha256: Option<String>,
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
    /// Write the trusted runner, `airbin-run`: the runtime every bundle carries, taken
    /// from this airbin (a channel a site trusts), to run bundles as data after checking
    /// them against the keys it pins.
    Runtime {
        /// Where to write it.
        #[arg(long, short = 'o', default_value = "airbin-run")]
        out: PathBuf,
        /// For which hosts: amd64 (x86_64) or arm64 (aarch64).
        #[arg(long, default_value = "amd64")]
        arch: String,
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
        /// Check each bundle's detached .minisig against this public key too.
        #[arg(long, value_name = "PUBKEY")]
        key: Option<PathBuf>,
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

/// The command's name in the one JSON document every run prints with --json.
fn name_of(command: &Cmd) -> &'static str {
    match command {
        Cmd::Build { .. } => "build",
        Cmd::Inspect { .. } => "inspect",
        Cmd::Diff { .. } => "diff",
        Cmd::Repo { command: RepoCmd::Add { .. } } => "repo add",
        Cmd::Repo { command: RepoCmd::Verify { .. } } => "repo verify",
        Cmd::Verify { .. } => "verify",
        Cmd::Keygen { .. } => "keygen",
        Cmd::Runtime { .. } => "runtime",
    }
}

/// The command a raw command line asks for, for the document of one that did not parse.
fn name_in(args: &[std::ffi::OsString]) -> &'static str {
    let words: Vec<String> = args.iter().skip(1).map(|a| a.to_string_lossy().into_owned()).filter(|a| !a.starts_with('-')).collect();
    match (words.first().map(String::as_str), words.get(1).map(String::as_str)) {
        (Some("repo"), Some("add")) => "repo add",
        (Some("repo"), Some("verify")) => "repo verify",
        (Some("build"), _) => "build",
        (Some("inspect"), _) => "inspect",
        (Some("diff"), _) => "diff",
        (Some("verify"), _) => "verify",
        (Some("keygen"), _) => "keygen",
        (Some("runtime"), _) => "runtime",
        (Some("repo"), _) => "repo",
        _ => "airbin",
    }
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    airbin_stub::interrupt::install_handler();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json = args.iter().any(|a| a == "--json");
    commands::set_command(name_in(&args));
    let parsed = Cli::command().try_get_matches_from(&args).and_then(|m| Cli::from_arg_matches(&m));
    let result = match parsed {
        Ok(cli) => {
            commands::set_command(name_of(&cli.command));
            try_main(cli)
        }
        // --help and --version: the text, or inside the one document with --json.
        Err(e) if !e.use_stderr() => {
            match json {
                true => print_json(&envelope(commands::command(), None, serde_json::json!({"help": e.render().to_string()}))),
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
            if json && !commands::json_printed() {
                print_json(&envelope(commands::command(), None, serde_json::json!({})));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json && !commands::json_printed() {
                print_json(&envelope(commands::command(), Some(&e), serde_json::json!({})));
            }
            airbin_stub::progress::err_line(&format!("airbin: error: {}", e.message));
            ExitCode::from(e.class.code() as u8)
        }
    }
}

fn try_main(cli: Cli) -> Result<()> {
    let ui = Ui::detect(cli.quiet, cli.json);
    match cli.command {
        Cmd::Build { spec, outdir, sign, record_host, arch, base, base_key, base_sha256 } => {
            build(&spec, &outdir, &assemble::BuildOptions { sign, record_host, arch, base, base_key, base_sha256 }, &ui)
        }
        Cmd::Inspect { bundle, schema: false } => commands::info(&Context { bundle_path: bundle, ui }, &TrustArgs::default()),
        Cmd::Inspect { bundle, schema: true } => schema(&bundle, &ui),
        Cmd::Diff { old, new } => diff(&old, &new, &ui),
        Cmd::Repo { command: RepoCmd::Add { repo, bundles, replace, key } } => repo::add(&repo, &bundles, replace, key.as_deref(), &ui),
        Cmd::Repo { command: RepoCmd::Verify { repo } } => repo::verify(&repo, &ui),
        Cmd::Verify { bundle, key } => commands::check(&Context { bundle_path: bundle, ui }, &TrustArgs { trusted_key: key }),
        Cmd::Keygen { out, no_password, force } => keygen(&out, no_password, force, &ui),
        Cmd::Runtime { out, arch } => runtime(&out, &arch, &ui),
    }
}

/// `airbin runtime`: the trusted runner for a site, from the builder it trusts.
fn runtime(out: &std::path::Path, arch: &str, ui: &Ui) -> Result<()> {
    let canonical = airbin_stub::format::arch::canonical(arch)
        .ok_or_else(|| Error::usage(format!("--arch {arch}: give amd64 (x86_64) or arm64 (aarch64)")))?;
    let runtime = stubs::for_arch(canonical).runtime().map_err(|e| Error::internal(format!("unpacking the runtime: {e}")))?;
    airbin_stub::fsx::write_atomic(out, &runtime, 0o755)?;
    let sha = airbin_stub::format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(&runtime));
    if ui.json {
        print_json(&envelope(
            "runtime",
            None,
            serde_json::json!({"written": out, "arch": canonical, "sha256": sha, "bytes": runtime.len()}),
        ));
    } else if !ui.quiet {
        out_line(&format!("{} (airbin-run {} for {canonical}, SHA-256 {sha})", out.display(), assemble::VERSION));
    }
    Ok(())
}

/// `airbin inspect --schema`: the parameters as JSON Schema, from the index alone
/// (the schema itself is the document: what a portal reads).
fn schema(path: &std::path::Path, ui: &Ui) -> Result<()> {
    let bundle = airbin_stub::format::Bundle::open(path)?;
    let meta = &bundle.index.bundle;
    let schema = airbin_stub::format::params::json_schema(&meta.name, &meta.version, &bundle.index.parameters);
    match ui.json {
        true => print_json(&envelope("inspect", None, serde_json::json!({"schema": schema}))),
        false => print_json(&schema),
    }
    Ok(())
}

/// `airbin diff`: from the two indexes (each checked on open); the bytes are not read.
fn diff(old: &std::path::Path, new: &std::path::Path, ui: &Ui) -> Result<()> {
    let (a, b) = (airbin_stub::format::Bundle::open(old)?, airbin_stub::format::Bundle::open(new)?);
    let diff = airbin_stub::format::diff::diff(&a.index, &b.index);
    if ui.json {
        print_json(&envelope("diff", None, serde_json::json!({"diff": diff.to_json()})));
    } else if !ui.quiet {
        out_line(&format!("{} -> {}", diff.from, diff.to));
        for line in diff.lines() {
            out_line(&line);
        }
    }
    Ok(())
}

/// `airbin keygen`: prints where the pair went and the key ID a site pins.
fn keygen(out: &std::path::Path, no_password: bool, force: bool, ui: &Ui) -> Result<()> {
    let files = signing::keygen(out, no_password, force)?;
    if ui.json {
        print_json(&envelope(
            "keygen",
            None,
            serde_json::json!({"secret_key": files.secret, "public_key": files.public, "key_id": files.id.to_string()}),
        ));
    } else if !ui.quiet {
        out_line(&format!("secret key: {} (keep it secret)", files.secret.display()));
        out_line(&format!(
            "public key: {} (copy it to /etc/airbin/trusted-keys/ on the sites that install your bundles)",
            files.public.display()
        ));
        out_line(&format!("key ID:     {}", files.id));
    }
    Ok(())
}

/// `airbin build`: the entry point for release engineers; prints the bundle's path
/// and digest.
fn build(spec: &std::path::Path, outdir: &std::path::Path, options: &assemble::BuildOptions, ui: &Ui) -> Result<()> {
    let built = assemble::build(spec, outdir, options, ui)?;
    if ui.json {
        print_json(&envelope(
            "build",
            None,
            serde_json::json!({
                "bundle": built.bin, "sha256_file": built.sha256_file, "sha256": built.sha256, "bytes": built.total_len, "members": built.members,
                "minisig": built.minisig, "key_id": built.key_id,
            }),
        ));
    } else if !ui.quiet {
        out_line(&built.bin.display().to_string());
    }
    Ok(())
}
