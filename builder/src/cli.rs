//! The builder's command line: one `Args` struct a subcommand, typed once here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::assemble::stubs;

#[derive(Parser)]
#[command(name = "airbin", about = "Builds self-extracting offline installer bundles (.bin) and inspects finished ones.", version = long_version())]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Cmd,
    /// Only errors on stderr.
    #[arg(long, short = 'q', global = true)]
    pub(crate) quiet: bool,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Build a bundle from DIR/bundle.yaml or FILE.yaml into OUTDIR.
    Build(BuildArgs),
    /// Check a bundle spec and its inputs without building: every error and warning, each
    /// with the file, the line, the field and the fix.
    Lint(LintArgs),
    /// Print the JSON Schema (draft 2020-12) of bundle.yaml, for editors and CI.
    Schema(SchemaArgs),
    /// Write a starting bundle (bundle.yaml with comments, and small inputs) that builds
    /// as it is.
    Init(InitArgs),
    /// Fetch images into a registry pack (a registry's storage tree, or a tarball of it)
    /// or a docker-archive, as a build makes a member from an image list: for an input
    /// made apart from a bundle.
    Fetch(FetchArgs),
    /// Show what a finished bundle is and carries.
    Inspect(InspectArgs),
    /// Print the SBOM a finished bundle carries (CycloneDX, or --format spdx).
    Sbom(SbomArgs),
    /// Install receipts: `receipt verify FILE --key PUB` checks one.
    Receipt(ReceiptArgs),
    /// Write what this host holds (installed products, registry blobs, the engine's
    /// images), as `sh x.bin inventory` does: for `build --base-inventory`.
    Inventory(InventoryArgs),
    /// What changed from OLD.bin to NEW.bin: members, images and tags, registry
    /// repositories and blobs, parameters, steps.
    Diff(DiffArgs),
    /// A bundle repository: <name>/<arch>/<version>/ directories and an index.json.
    Repo(RepoArgs),
    /// Verify a finished bundle: its length, the SHA-256 of every byte, and with --key
    /// its signature.
    Verify(VerifyArgs),
    /// Write the trusted runner, `airbin-run`: the runtime every bundle carries, taken
    /// from this airbin (a channel a site trusts), to run bundles as data after checking
    /// them against the keys it pins.
    Runtime(RuntimeArgs),
    /// Make a signing key pair in minisign's format: OUT.key (secret, 0600) and OUT.pub.
    Keygen(KeygenArgs),
    /// QA: run a bundle's scenarios (install, rerun, kill, power cut, upgrade, ...) on
    /// throwaway machines and report them (JUnit XML, HTML, --json).
    Lab(LabArgs),
}

#[derive(Args)]
pub(crate) struct LabArgs {
    #[command(subcommand)]
    pub(crate) command: LabCmd,
}

#[derive(Subcommand)]
pub(crate) enum LabCmd {
    /// Run the scenarios of NEW.bin, each on fresh machines, and write the report.
    Run(LabRunArgs),
    /// Build a base disk image for the qemu backend from Debian packages (mmdebstrap):
    /// an init, the Docker Engine, docker-registry, sshd, busybox and a kernel.
    Image(LabImageArgs),
}

#[derive(Args)]
pub(crate) struct LabRunArgs {
    /// The bundle under test.
    pub(crate) bundle: PathBuf,
    /// Earlier releases to upgrade from (and to refuse a downgrade to): a directory of
    /// .bin files, or an `airbin repo` repository.
    #[arg(long, value_name = "DIR")]
    pub(crate) previous: Option<PathBuf>,
    /// Where the machines come from: netns (network namespaces on this host, root),
    /// qemu (VMs from --image), ssh (the site's machines in --inventory).
    #[arg(long, value_name = "BACKEND", default_value = "netns")]
    pub(crate) backend: String,
    /// The scenarios, comma-separated (default: every one that applies): install,
    /// install-pair, rerun, kill, power-cut, upgrade, downgrade, tampered, small-disk,
    /// uninstall.
    #[arg(long, value_name = "LIST")]
    pub(crate) scenarios: Option<String>,
    /// Scenarios run at once, each on its own machines.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) jobs: usize,
    /// Where to write the report (report.html, junit.xml, report.json, the machines' logs).
    #[arg(short = 'o', long = "out", value_name = "DIR", default_value = "lab-report")]
    pub(crate) out: PathBuf,
    /// The product's config for the machines, with {primary}, {secondary}, {nodes}
    /// (a YAML list of the scenario's machines) and {nodeN} filled in for each scenario.
    #[arg(long, value_name = "TEMPLATE")]
    pub(crate) config: Option<PathBuf>,
    /// Kill and power-cut points, spread over the journal's records.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub(crate) points: usize,
    /// The qemu backend's base image: the directory `airbin lab image` wrote.
    #[arg(long, value_name = "DIR")]
    pub(crate) image: Option<PathBuf>,
    /// The ssh backend's machines, and how to reset them and cut their power (YAML).
    #[arg(long, value_name = "FILE")]
    pub(crate) inventory: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct LabImageArgs {
    /// Where to write the image (disk.img, vmlinuz, initrd.img, image.json).
    #[arg(short = 'o', long = "out", value_name = "DIR", default_value = "lab-image")]
    pub(crate) out: PathBuf,
    /// The Debian release.
    #[arg(long, default_value = "bookworm")]
    pub(crate) suite: String,
    /// The apt sources to build from (a deb822 .sources file or a mirror URL; default:
    /// this host's).
    #[arg(long, value_name = "SOURCES")]
    pub(crate) mirror: Option<String>,
    /// The disk's size.
    #[arg(long, default_value = "4G")]
    pub(crate) size: String,
}

#[derive(Args)]
pub(crate) struct BuildArgs {
    /// A bundle directory holding bundle.yaml, or a spec file.
    pub(crate) spec: PathBuf,
    /// Where to write <name>-<version>-<arch>.bin and its .sha256.
    #[arg(short = 'o', long = "out", default_value = "dist")]
    pub(crate) outdir: PathBuf,
    /// Sign with this minisign secret key (from `airbin keygen`); its password comes
    /// from AIRBIN_KEY_PASSWORD or the terminal. Writes a detached .minisig too.
    #[arg(long, value_name = "KEY")]
    pub(crate) sign: Option<PathBuf>,
    /// Record this host's name in the bundle (left out by default, for builds that
    /// reproduce byte for byte). The build time comes from SOURCE_DATE_EPOCH.
    #[arg(long)]
    pub(crate) record_host: bool,
    /// Build for this architecture instead of the spec's `arch`: amd64 (x86_64) or
    /// arm64 (aarch64).
    #[arg(long, value_name = "ARCH")]
    pub(crate) arch: Option<String>,
    /// Build a delta: registry packs leave out the blobs this earlier bundle of the
    /// product carries (the site must have it installed). The base is checked first:
    /// with --base-key, --sign's own key, or --base-sha256.
    #[arg(long, value_name = "PREVIOUS.bin")]
    pub(crate) base: Option<PathBuf>,
    /// The public key the base bundle is signed with.
    #[arg(long, value_name = "PUBKEY")]
    pub(crate) base_key: Option<PathBuf>,
    /// The SHA-256 of the base bundle's file, as its .sha256 names it (for an
    /// unsigned base).
    #[arg(long, value_name = "HEX", requires = "base")]
    pub(crate) base_sha256: Option<String>,
    /// Build the delta a site needs from what it holds: registry packs leave out every
    /// blob its inventory (`sh x.bin inventory -o site.json`) lists. With --base-key,
    /// its .minisig must hold under that key.
    #[arg(long, value_name = "site.json", conflicts_with = "base")]
    pub(crate) base_inventory: Option<PathBuf>,
    /// Resolve every image list's tags again and rewrite bundle.lock (without it, a
    /// build uses the digests the lock pins).
    #[arg(long)]
    pub(crate) update_lock: bool,
    /// Carry an SPDX 2.3 SBOM (sbom.spdx.json) besides the CycloneDX 1.6 one
    /// (sbom.cdx.json) every bundle carries: `--sbom spdx`.
    #[arg(long, value_name = "FORMAT", value_parser = ["spdx", "cyclonedx"], conflicts_with = "no_sbom")]
    pub(crate) sbom: Option<String>,
    /// Carry no SBOM at all.
    #[arg(long)]
    pub(crate) no_sbom: bool,
    /// Cut the bundle into X.bin and X.bin.part2, ... of at most SIZE each (4G for
    /// FAT32 sticks, 4400M for a DVD), each with its .sha256; `sh X.bin` finds the parts
    /// beside it (or under --parts DIR).
    #[arg(long, value_name = "SIZE", value_parser = crate::assemble::split::parse_size)]
    pub(crate) split_size: Option<u64>,
}

#[derive(Args)]
pub(crate) struct InventoryArgs {
    /// Write the inventory to FILE (default: print it).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// A registry root to list the blobs of; repeatable (default: each installed
    /// product's registry_root, and /var/lib/docker-registry where it exists).
    #[arg(long, value_name = "DIR")]
    pub(crate) registry_root: Vec<PathBuf>,
    /// Where the products' state directories are (default: $AIRBIN_STATE_DIR, else
    /// /var/lib/airbin).
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// Leave the engine's images out.
    #[arg(long)]
    pub(crate) no_engine: bool,
    /// Sign it with this minisign secret key (FILE.minisig beside -o FILE).
    #[arg(long, value_name = "KEY")]
    pub(crate) sign: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct ReceiptArgs {
    #[command(subcommand)]
    pub(crate) command: ReceiptCmd,
}

#[derive(Subcommand)]
pub(crate) enum ReceiptCmd {
    /// Check a receipt an install, upgrade, hotfix or uninstall left (the .intoto.json
    /// in the state directory's .receipts/): its .minisig under --key, and with
    /// --bundle that it names that bundle.
    Verify(ReceiptVerifyArgs),
}

#[derive(Args)]
pub(crate) struct ReceiptVerifyArgs {
    /// The receipt (NAME/RUN.intoto.json; its .minisig beside it).
    pub(crate) receipt: PathBuf,
    /// The minisign public key the site signs receipts with.
    #[arg(long, value_name = "PUB")]
    pub(crate) key: PathBuf,
    /// The bundle the receipt must name.
    #[arg(long, value_name = "X.bin")]
    pub(crate) bundle: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct SbomArgs {
    /// The bundle.
    pub(crate) bundle: PathBuf,
    /// cyclonedx (CycloneDX 1.6 JSON, every bundle's) or spdx (SPDX 2.3 JSON, with
    /// `airbin build --sbom spdx`).
    #[arg(long, value_name = "FORMAT", default_value = "cyclonedx")]
    pub(crate) format: String,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("output").required(true).args(["registry_pack", "docker_archive"])))]
pub(crate) struct FetchArgs {
    /// Image references (repo:tag, repo@sha256:...).
    pub(crate) images: Vec<String>,
    /// A file of references, one a line (`#` comments).
    #[arg(long, value_name = "FILE")]
    pub(crate) images_file: Option<PathBuf>,
    /// Where they come from: a registry host[:port] (http:// or https:// in front to say
    /// how), docker-daemon, or oci:DIR.
    #[arg(long, value_name = "SOURCE")]
    pub(crate) from: String,
    /// Write a registry pack: a directory (the storage tree), or OUT.tar (its tarball).
    #[arg(long, value_name = "OUT")]
    pub(crate) registry_pack: Option<PathBuf>,
    /// Write a docker-archive, as `docker save` does.
    #[arg(long, value_name = "OUT.tar")]
    pub(crate) docker_archive: Option<PathBuf>,
    /// The platform to take of a multi-platform image: amd64 or arm64.
    #[arg(long, value_name = "ARCH", default_value = "amd64")]
    pub(crate) arch: String,
    /// Keep every platform of a multi-platform image (a registry pack only).
    #[arg(long)]
    pub(crate) all_platforms: bool,
    /// The source registry's CA certificate (PEM).
    #[arg(long, value_name = "PEM")]
    pub(crate) ca: Option<PathBuf>,
    /// Plain HTTP to the source registry.
    #[arg(long)]
    pub(crate) insecure: bool,
}

#[derive(Args)]
pub(crate) struct InspectArgs {
    pub(crate) bundle: PathBuf,
    /// Print the bundle's install parameters as JSON Schema (draft 2020-12), for a
    /// portal to render its form from.
    #[arg(long)]
    pub(crate) schema: bool,
}

#[derive(Args)]
pub(crate) struct DiffArgs {
    pub(crate) old: PathBuf,
    pub(crate) new: PathBuf,
}

#[derive(Args)]
pub(crate) struct RepoArgs {
    #[command(subcommand)]
    pub(crate) command: RepoCmd,
}

#[derive(Args)]
pub(crate) struct LintArgs {
    /// A bundle directory holding bundle.yaml, or a spec file.
    pub(crate) spec: PathBuf,
    /// Check for this architecture instead of the spec's `arch`.
    #[arg(long, value_name = "ARCH")]
    pub(crate) arch: Option<String>,
}

#[derive(Args)]
pub(crate) struct SchemaArgs {
    /// Write it to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct InitArgs {
    /// The directory to write it in (made if missing; must hold no bundle.yaml yet).
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// The smallest bundle: one file and one command step, instead of images, a registry
    /// pack, an admin tool and a config sample.
    #[arg(long)]
    pub(crate) minimal: bool,
    /// The product's name.
    #[arg(long, default_value = "example")]
    pub(crate) name: String,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    pub(crate) bundle: PathBuf,
    /// Require a signature by this minisign public key; repeatable.
    #[arg(long, value_name = "PUBKEY")]
    pub(crate) key: Vec<PathBuf>,
}

#[derive(Args)]
pub(crate) struct RuntimeArgs {
    /// Where to write it.
    #[arg(long, short = 'o', default_value = "airbin-run")]
    pub(crate) out: PathBuf,
    /// For which hosts: amd64 (x86_64) or arm64 (aarch64).
    #[arg(long, default_value = "amd64")]
    pub(crate) arch: String,
}

#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the pair, without extension.
    #[arg(long, short = 'o', default_value = "airbin")]
    pub(crate) out: PathBuf,
    /// Leave the secret key unencrypted (for build machines that keep it safe some other way).
    #[arg(long)]
    pub(crate) no_password: bool,
    /// Replace an existing pair.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Subcommand)]
pub(crate) enum RepoCmd {
    /// Place each bundle (with its .sha256, and .minisig if there is one) at
    /// <name>/<arch>/<version>/ and update index.json.
    Add(RepoAddArgs),
    /// Check every file against index.json: missing, extra or altered; and the states.
    Verify(RepoVerifyArgs),
    /// Release a staging version: its files checked against the index and its signature
    /// against KEY first.
    Promote(RepoPromoteArgs),
    /// Withdraw a version (kept on disk, listed with its reason, never "latest"), or with
    /// --undo release it again.
    Yank(RepoYankArgs),
}

/// NAME VERSION in a repository, of one arch or every one.
#[derive(Args)]
pub(crate) struct RepoVersionArgs {
    pub(crate) repo: PathBuf,
    pub(crate) name: String,
    pub(crate) version: String,
    /// Only this architecture's files (default: every one of that version).
    #[arg(long, value_name = "ARCH")]
    pub(crate) arch: Option<String>,
}

#[derive(Args)]
pub(crate) struct RepoPromoteArgs {
    #[command(flatten)]
    pub(crate) which: RepoVersionArgs,
    /// The release key's public half: the version's detached signature must hold under it.
    #[arg(long, value_name = "PUBKEY", required = true)]
    pub(crate) key: PathBuf,
}

#[derive(Args)]
pub(crate) struct RepoYankArgs {
    #[command(flatten)]
    pub(crate) which: RepoVersionArgs,
    /// Why: listed beside the version for every site that reads the index.
    #[arg(long, value_name = "TEXT", required_unless_present = "undo")]
    pub(crate) reason: Option<String>,
    /// Release a yanked version again.
    #[arg(long)]
    pub(crate) undo: bool,
}

#[derive(Args)]
pub(crate) struct RepoAddArgs {
    pub(crate) repo: PathBuf,
    #[arg(required = true)]
    pub(crate) bundles: Vec<PathBuf>,
    /// Replace a different file already at that name, arch and version.
    #[arg(long)]
    pub(crate) replace: bool,
    /// Check each bundle's detached .minisig against this public key too.
    #[arg(long, value_name = "PUBKEY")]
    pub(crate) key: Option<PathBuf>,
    /// List them as staging: not released (nor "latest") until `airbin repo promote`.
    #[arg(long)]
    pub(crate) staging: bool,
}

#[derive(Args)]
pub(crate) struct RepoVerifyArgs {
    pub(crate) repo: PathBuf,
}

pub(crate) fn long_version() -> String {
    let stubs: Vec<String> = stubs::STUBS
        .iter()
        .map(|stub| {
            format!("{} stub for {}, {} bytes: the runtime's {} packed", stub.arch, stub.target, stub.bytes.len(), stub.runtime_len)
        })
        .collect();
    let version = env!("CARGO_PKG_VERSION");
    format!("{version} (stub {version}; bundle format {})\n{}", airbin_format::FORMAT_VERSION, stubs.join("\n"))
}

/// The command's name in the one JSON document every run prints with --json.
pub(crate) fn name_of(command: &Cmd) -> &'static str {
    match command {
        Cmd::Build(_) => "build",
        Cmd::Fetch(_) => "fetch",
        Cmd::Inspect(_) => "inspect",
        Cmd::Sbom(_) => "sbom",
        Cmd::Receipt(_) => "receipt verify",
        Cmd::Inventory(_) => "inventory",
        Cmd::Lint(_) => "lint",
        Cmd::Schema(_) => "schema",
        Cmd::Init(_) => "init",
        Cmd::Diff(_) => "diff",
        Cmd::Repo(RepoArgs { command: RepoCmd::Add(_) }) => "repo add",
        Cmd::Repo(RepoArgs { command: RepoCmd::Verify(_) }) => "repo verify",
        Cmd::Repo(RepoArgs { command: RepoCmd::Promote(_) }) => "repo promote",
        Cmd::Repo(RepoArgs { command: RepoCmd::Yank(_) }) => "repo yank",
        Cmd::Verify(_) => "verify",
        Cmd::Keygen(_) => "keygen",
        Cmd::Runtime(_) => "runtime",
        Cmd::Lab(LabArgs { command: LabCmd::Run(_) }) => "lab run",
        Cmd::Lab(LabArgs { command: LabCmd::Image(_) }) => "lab image",
    }
}

/// The command a raw command line asks for, for the document of one that did not parse.
pub(crate) fn name_in(args: &[std::ffi::OsString]) -> &'static str {
    let words: Vec<String> = args.iter().skip(1).map(|a| a.to_string_lossy().into_owned()).filter(|a| !a.starts_with('-')).collect();
    match (words.first().map(String::as_str), words.get(1).map(String::as_str)) {
        (Some("repo"), Some("add")) => "repo add",
        (Some("repo"), Some("verify")) => "repo verify",
        (Some("repo"), Some("promote")) => "repo promote",
        (Some("repo"), Some("yank")) => "repo yank",
        (Some("build"), _) => "build",
        (Some("fetch"), _) => "fetch",
        (Some("inspect"), _) => "inspect",
        (Some("sbom"), _) => "sbom",
        (Some("receipt"), _) => "receipt verify",
        (Some("inventory"), _) => "inventory",
        (Some("lint"), _) => "lint",
        (Some("schema"), _) => "schema",
        (Some("init"), _) => "init",
        (Some("diff"), _) => "diff",
        (Some("verify"), _) => "verify",
        (Some("keygen"), _) => "keygen",
        (Some("runtime"), _) => "runtime",
        (Some("repo"), _) => "repo",
        (Some("lab"), Some("run")) => "lab run",
        (Some("lab"), Some("image")) => "lab image",
        (Some("lab"), _) => "lab",
        _ => "airbin",
    }
}
