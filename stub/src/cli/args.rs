//! Each command's own arguments, and the groups of them several commands share.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use airbin_format::Role;

/// What every command honours.
#[derive(Args, Debug, Clone, Copy, Default)]
pub(crate) struct OutputArgs {
    /// Only errors on stderr.
    #[arg(long, short = 'q', global = true)]
    pub(crate) quiet: bool,
    /// Machine-readable output on stdout: one JSON document, failures included.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// The keys this host pins.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct TrustArgs {
    /// Trust only bundles signed by this minisign public key (besides the keys in
    /// /etc/airbin/trusted-keys/); repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) trusted_key: Vec<PathBuf>,
}

/// Where the install's values come from.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct AnswersArgs {
    /// The product's config file (default: `config` beside the bundle; else the answers
    /// remembered from the last run).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Take the bundle's config sample as it is, on purpose.
    #[arg(long)]
    pub(crate) use_sample: bool,
    /// A parameter's value (by its name or config key), or a config key the bundle uses,
    /// over the config's; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) set: Vec<String>,
    /// `KEY=VALUE` lines read from FILE (`-`: stdin), each as a --set: values (secrets)
    /// kept off the command line, where every user of the host can read them.
    #[arg(long = "set-from", value_name = "FILE")]
    pub(crate) set_from: Option<PathBuf>,
    /// The registry root for the restore steps (the same as --set on the config key they
    /// read it from, so every step that uses the key sees it).
    #[arg(long, value_name = "DIR")]
    pub(crate) registry_root: Option<PathBuf>,
    /// The registry address (host:port) for the restore steps, likewise.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) registry_address: Option<String>,
    /// Forget the secret values remembered from earlier runs (they are asked for again).
    #[arg(long)]
    pub(crate) forget_secrets: bool,
    /// Answer yes to every question; ask for nothing (non-interactive runs).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

/// What `inventory` takes stock of, and where it writes.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct InventoryArgs {
    /// Write the inventory to FILE (default: print it).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// A registry root to list the blobs of; repeatable (default: each installed
    /// product's registry_root, and /var/lib/docker-registry where it exists).
    #[arg(long, value_name = "DIR")]
    pub(crate) registry_root: Vec<PathBuf>,
    /// Leave the engine's images out.
    #[arg(long)]
    pub(crate) no_engine: bool,
    /// Sign it with this minisign secret key (FILE.minisig beside -o FILE).
    #[arg(long, value_name = "KEY")]
    pub(crate) sign: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

/// The receipt a finished run leaves.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ReceiptArgs {
    /// Sign the run's receipt (an in-toto statement in the state directory's .receipts/)
    /// with this minisign secret key; its password from AIRBIN_KEY_PASSWORD.
    #[arg(long, value_name = "KEY")]
    pub(crate) receipt_key: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ReceiptShowArgs {
    /// Every receipt of this product on this host, newest last, instead of the latest.
    #[arg(long)]
    pub(crate) all: bool,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

/// Which node this is.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct RoleArgs {
    /// This node's role: single, primary, secondary or worker (default: found by this
    /// host's address in the config's node list).
    #[arg(long, value_name = "ROLE", value_parser = parse_role)]
    pub(crate) role: Option<Role>,
}

/// The container engine.
#[derive(Args, Debug, Clone)]
pub(crate) struct EngineArgs {
    /// auto, docker, docker-api, podman or containerd.
    #[arg(long, value_name = "ENGINE")]
    pub(crate) engine: Option<String>,
    /// The containerd namespace images go into.
    #[arg(long, value_name = "NS", default_value = "k8s.io")]
    pub(crate) containerd_namespace: String,
}

impl Default for EngineArgs {
    fn default() -> EngineArgs {
        EngineArgs { engine: None, containerd_namespace: "k8s.io".into() }
    }
}

/// What to do again, or over what.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct RedoArgs {
    /// Redo every step, done or not; also installs over another bundle's unfinished
    /// run, reinstalls the installed version, and drops hotfixes or rolls back on purpose.
    #[arg(long)]
    pub(crate) force: bool,
    /// Redo from this step on (by name), although done.
    #[arg(long, value_name = "STEP")]
    pub(crate) from: Option<String>,
    /// Install an older version than the one installed, on purpose.
    #[arg(long)]
    pub(crate) allow_downgrade: bool,
}

/// Every node the config lists, over SSH.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct FanOutArgs {
    /// Every node the config lists, over SSH, from this one.
    #[arg(long)]
    pub(crate) all_nodes: bool,
    /// With --all-nodes: at most N nodes at a time (default: all at once).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) parallel: usize,
    /// With --all-nodes: an extra `ssh -o` option (such as Port=2222); repeatable.
    #[arg(long, value_name = "OPTION")]
    pub(crate) ssh_option: Vec<String>,
    /// With --all-nodes: where the bundle and config go on the other nodes (default
    /// /var/tmp/airbin/NAME).
    #[arg(long, value_name = "DIR")]
    pub(crate) remote_dir: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct InstallArgs {
    /// Stage the members here instead of the state directory (kept afterwards).
    #[arg(long, value_name = "DIR")]
    pub(crate) target: Option<PathBuf>,
    /// Keep the staging directory after the run.
    #[arg(long)]
    pub(crate) keep: bool,
    /// Stage the members but run no install step (implies --keep).
    #[arg(long)]
    pub(crate) noexec: bool,
    /// Print the plan and change nothing (same as `plan`).
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Skip a preflight check (root, arch, space, writable, engine, registry, commands, ports, delta); repeatable.
    #[arg(long, value_name = "NAME")]
    pub(crate) skip_preflight: Vec<String>,
    #[command(flatten)]
    pub(crate) answers: AnswersArgs,
    #[command(flatten)]
    pub(crate) role: RoleArgs,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    #[command(flatten)]
    pub(crate) redo: RedoArgs,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
    #[command(flatten)]
    pub(crate) receipt: ReceiptArgs,
    #[command(flatten)]
    pub(crate) fan_out: FanOutArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct PlanArgs {
    /// Where install would stage (shown in the plan).
    #[arg(long, value_name = "DIR")]
    pub(crate) target: Option<PathBuf>,
    /// The plan of `uninstall` instead of install's.
    #[arg(long)]
    pub(crate) uninstall: bool,
    #[command(flatten)]
    pub(crate) answers: AnswersArgs,
    #[command(flatten)]
    pub(crate) role: RoleArgs,
    /// The engine install would load images into (shown in the plan).
    #[arg(long, value_name = "ENGINE")]
    pub(crate) engine: Option<String>,
    #[command(flatten)]
    pub(crate) redo: RedoArgs,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct PreflightArgs {
    /// Where install would stage.
    #[arg(long, value_name = "DIR")]
    pub(crate) target: Option<PathBuf>,
    /// Skip a check (root, arch, space, writable, engine, registry, commands, ports, delta); repeatable.
    #[arg(long, value_name = "NAME")]
    pub(crate) skip_preflight: Vec<String>,
    #[command(flatten)]
    pub(crate) answers: AnswersArgs,
    #[command(flatten)]
    pub(crate) role: RoleArgs,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    #[command(flatten)]
    pub(crate) redo: RedoArgs,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct UninstallArgs {
    /// Print what uninstall would do and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Uninstall with this bundle although another version is installed, or start the
    /// uninstall over.
    #[arg(long)]
    pub(crate) force: bool,
    /// Skip a preflight check; repeatable.
    #[arg(long, value_name = "NAME")]
    pub(crate) skip_preflight: Vec<String>,
    #[command(flatten)]
    pub(crate) answers: AnswersArgs,
    #[command(flatten)]
    pub(crate) role: RoleArgs,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
    #[command(flatten)]
    pub(crate) receipt: ReceiptArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ExtractArgs {
    /// Members to extract; all when none is named (the SBOM only when named: `sbom` prints it).
    pub(crate) members: Vec<String>,
    /// Where to write them (default: ./NAME-VERSION).
    #[arg(long, value_name = "DIR")]
    pub(crate) target: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct StatusArgs {
    /// Follow a running install until it ends.
    #[arg(long)]
    pub(crate) follow: bool,
    /// Check the host against what the install record says: images, registry blobs,
    /// files written by extract steps, the hotfix level. Exit 1 on drift.
    #[arg(long)]
    pub(crate) verify: bool,
    /// With --verify: the engine to look in (default: the one the images were loaded into).
    #[arg(long, value_name = "ENGINE")]
    pub(crate) engine: Option<String>,
    /// With --all-nodes: the config that lists the nodes.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) fan_out: FanOutArgs,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct SupportArgs {
    /// The file to write (default: ./airbin-support-NAME-TIME.tar.gz).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// The config to include (masked); with --all-nodes, the one that lists the nodes.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) fan_out: FanOutArgs,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

/// `info` and `list`: with keys pinned, the bundle is verified first.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct SbomArgs {
    /// cyclonedx (every bundle's) or spdx (where it was built with --sbom spdx).
    #[arg(long, value_name = "FORMAT", default_value = "cyclonedx")]
    pub(crate) format: String,
    #[command(flatten)]
    pub(crate) trust: TrustArgs,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct RuntimeArgs {
    #[command(subcommand)]
    pub(crate) command: RuntimeCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub(crate) enum RuntimeCommand {
    /// Install this bundle's runtime as `airbin-run`, the trusted runner: verified first
    /// (against the pinned keys, or trusted on first use where none is pinned).
    Install {
        /// The directory it goes into.
        #[arg(long, value_name = "DIR", default_value = "/usr/local/bin")]
        to: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("'{text}' is not a role: single, primary, secondary or worker"))
}
