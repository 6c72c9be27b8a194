//! The `.bin`'s command line, as a field engineer types it: `sh x.bin [COMMAND]`, with
//! makeself's flags accepted from habit (`--info`, `--list`, `--check`, `--noexec`,
//! `--target DIR`, `--keep`, `--quiet`).
//!
//! Each command takes its own flags (a flag a command would do nothing with is a usage
//! error); only `--json` and `--quiet`, which every command honours, go anywhere. With
//! no command, install's flags stand at the top: `sh x.bin --config c --yes`.

use std::path::PathBuf;

use clap::{ArgMatches, Args, Parser, Subcommand};

use crate::format::Role;

#[derive(Parser, Debug)]
#[command(
    name = "airbin-bundle",
    about = "An airbin offline installer bundle: verifies itself, then installs, checks or extracts its payload.",
    after_help = "With no command, `install` runs. Exit codes: 0 ok, 1 internal error (and drift found by `status --verify`), 2 usage, \
                  3 damaged or unsafe bundle, 4 not enough disk space, 5 permission denied, 6 an install step failed, 7 host not ready, \
                  130 interrupted.",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// With no command: install's options.
    #[command(flatten)]
    pub install: InstallArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Same as `info` (makeself habit).
    #[arg(long = "info", hide = true)]
    pub info_flag: bool,
    /// Same as `list` (makeself habit).
    #[arg(long = "list", hide = true)]
    pub list_flag: bool,
    /// Same as `check` (makeself habit).
    #[arg(long = "check", hide = true)]
    pub check_flag: bool,

    /// The bundle file; the launcher passes it.
    #[arg(long, hide = true)]
    pub bundle: Option<PathBuf>,
    /// The launcher's temporary directory holding this runtime's copy.
    #[arg(long, hide = true)]
    pub launcher_tmp: Option<PathBuf>,
}

/// What every command honours.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Only errors on stderr.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Machine-readable output on stdout: one JSON document, failures included.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The keys this host pins.
#[derive(Args, Debug, Clone, Default)]
pub struct TrustArgs {
    /// Trust only bundles signed by this minisign public key (besides the keys in
    /// /etc/airbin/trusted-keys/); repeatable.
    #[arg(long, value_name = "FILE")]
    pub trusted_key: Vec<PathBuf>,
}

/// Where the install's values come from.
#[derive(Args, Debug, Clone, Default)]
pub struct AnswersArgs {
    /// The product's config file (default: `config` beside the bundle; else the answers
    /// remembered from the last run).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Take the bundle's config sample as it is, on purpose.
    #[arg(long)]
    pub use_sample: bool,
    /// A parameter's value (by its name or config key), or a config key the bundle uses,
    /// over the config's; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// The registry root for the restore steps (the same as --set on the config key they
    /// read it from, so every step that uses the key sees it).
    #[arg(long, value_name = "DIR")]
    pub registry_root: Option<PathBuf>,
    /// The registry address (host:port) for the restore steps, likewise.
    #[arg(long, value_name = "HOST:PORT")]
    pub registry_address: Option<String>,
    /// Forget the secret values remembered from earlier runs (they are asked for again).
    #[arg(long)]
    pub forget_secrets: bool,
    /// Answer yes to every question; ask for nothing (non-interactive runs).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Which node this is.
#[derive(Args, Debug, Clone, Default)]
pub struct RoleArgs {
    /// This node's role: single, primary, secondary or worker (default: found by this
    /// host's address in the config's node list).
    #[arg(long, value_name = "ROLE", value_parser = parse_role)]
    pub role: Option<Role>,
}

/// The container engine.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// auto, docker, docker-api, podman or containerd.
    #[arg(long, value_name = "ENGINE")]
    pub engine: Option<String>,
    /// The containerd namespace images go into.
    #[arg(long, value_name = "NS", default_value = "k8s.io")]
    pub containerd_namespace: String,
}

impl Default for EngineArgs {
    fn default() -> EngineArgs {
        EngineArgs { engine: None, containerd_namespace: "k8s.io".into() }
    }
}

/// What to do again, or over what.
#[derive(Args, Debug, Clone, Default)]
pub struct RedoArgs {
    /// Redo every step, done or not; also installs over another bundle's unfinished
    /// run, reinstalls the installed version, and drops hotfixes or rolls back on purpose.
    #[arg(long)]
    pub force: bool,
    /// Redo from this step on (by name), although done.
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Install an older version than the one installed, on purpose.
    #[arg(long)]
    pub allow_downgrade: bool,
}

/// Every node the config lists, over SSH.
#[derive(Args, Debug, Clone, Default)]
pub struct FanOutArgs {
    /// Every node the config lists, over SSH, from this one.
    #[arg(long)]
    pub all_nodes: bool,
    /// With --all-nodes: at most N nodes at a time (default: all at once).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub parallel: usize,
    /// With --all-nodes: an extra `ssh -o` option (such as Port=2222); repeatable.
    #[arg(long, value_name = "OPTION")]
    pub ssh_option: Vec<String>,
    /// With --all-nodes: where the bundle and config go on the other nodes (default
    /// /var/tmp/airbin/NAME).
    #[arg(long, value_name = "DIR")]
    pub remote_dir: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct InstallArgs {
    /// Stage the members here instead of the state directory (kept afterwards).
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Keep the staging directory after the run.
    #[arg(long)]
    pub keep: bool,
    /// Stage the members but run no install step (implies --keep).
    #[arg(long)]
    pub noexec: bool,
    /// Print the plan and change nothing (same as `plan`).
    #[arg(long)]
    pub dry_run: bool,
    /// Skip a preflight check (root, arch, space, writable, engine, registry, commands, ports, delta); repeatable.
    #[arg(long, value_name = "NAME")]
    pub skip_preflight: Vec<String>,
    #[command(flatten)]
    pub answers: AnswersArgs,
    #[command(flatten)]
    pub role: RoleArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub redo: RedoArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub fan_out: FanOutArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct PlanArgs {
    /// Where install would stage (shown in the plan).
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// The plan of `uninstall` instead of install's.
    #[arg(long)]
    pub uninstall: bool,
    #[command(flatten)]
    pub answers: AnswersArgs,
    #[command(flatten)]
    pub role: RoleArgs,
    /// The engine install would load images into (shown in the plan).
    #[arg(long, value_name = "ENGINE")]
    pub engine: Option<String>,
    #[command(flatten)]
    pub redo: RedoArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct PreflightArgs {
    /// Where install would stage.
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Skip a check (root, arch, space, writable, engine, registry, commands, ports, delta); repeatable.
    #[arg(long, value_name = "NAME")]
    pub skip_preflight: Vec<String>,
    #[command(flatten)]
    pub answers: AnswersArgs,
    #[command(flatten)]
    pub role: RoleArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub redo: RedoArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct UninstallArgs {
    /// Print what uninstall would do and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Uninstall with this bundle although another version is installed, or start the
    /// uninstall over.
    #[arg(long)]
    pub force: bool,
    /// Skip a preflight check; repeatable.
    #[arg(long, value_name = "NAME")]
    pub skip_preflight: Vec<String>,
    #[command(flatten)]
    pub answers: AnswersArgs,
    #[command(flatten)]
    pub role: RoleArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ExtractArgs {
    /// Members to extract; all when none is named.
    pub members: Vec<String>,
    /// Where to write them (default: ./NAME-VERSION).
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct StatusArgs {
    /// Follow a running install until it ends.
    #[arg(long)]
    pub follow: bool,
    /// Check the host against what the install record says: images, registry blobs,
    /// files written by extract steps, the hotfix level. Exit 1 on drift.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: the engine to look in (default: the one the images were loaded into).
    #[arg(long, value_name = "ENGINE")]
    pub engine: Option<String>,
    /// With --all-nodes: the config that lists the nodes.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub fan_out: FanOutArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct SupportArgs {
    /// The file to write (default: ./airbin-support-NAME-TIME.tar.gz).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The config to include (masked); with --all-nodes, the one that lists the nodes.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub fan_out: FanOutArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CheckArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `info` and `list`: with keys pinned, the bundle is verified first.
#[derive(Args, Debug, Clone, Default)]
pub struct ShowArgs {
    #[command(flatten)]
    pub trust: TrustArgs,
}

#[derive(Args, Debug, Clone)]
pub struct RuntimeArgs {
    #[command(subcommand)]
    pub command: RuntimeCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum RuntimeCommand {
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

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Verify, stage the members and run the install steps (the default).
    Install(InstallArgs),
    /// Show what the bundle is: name, version, build facts, members.
    Info(ShowArgs),
    /// List the members: name, kind, size.
    List(ShowArgs),
    /// Verify the bundle: its length, then the SHA-256 of every byte.
    Check(CheckArgs),
    /// Verify, then extract members (all, or those named) into --target DIR
    /// (default: ./<name>-<version>).
    Extract(ExtractArgs),
    /// Show what install would do on this host: each step, the values it takes from the
    /// config, and which steps are done already. Changes nothing.
    Plan(PlanArgs),
    /// Check that this host is ready for its part of the install (root, space, write
    /// permission, engine, registry, commands, ports): every problem at once. Changes nothing.
    Preflight(PreflightArgs),
    /// Show the last run: its steps, times, results and log; --verify checks the host
    /// against the install record.
    Status(StatusArgs),
    /// Write one small .tar.gz for the vendor: logs, journal, index, the config with
    /// secrets masked, and host facts.
    Support(SupportArgs),
    /// Run the bundle's uninstall steps, then remove what the install placed (images,
    /// registry files, extracted files) and its record.
    Uninstall(UninstallArgs),
    /// The trusted runner: `runtime install` puts this bundle's runtime on the host as
    /// `airbin-run`, which runs bundles as data after checking them against the pinned keys.
    Runtime(RuntimeArgs),
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Install(_) => "install",
            Command::Info(_) => "info",
            Command::List(_) => "list",
            Command::Check(_) => "check",
            Command::Extract(_) => "extract",
            Command::Plan(_) => "plan",
            Command::Preflight(_) => "preflight",
            Command::Status(_) => "status",
            Command::Support(_) => "support",
            Command::Uninstall(_) => "uninstall",
            Command::Runtime(_) => "runtime",
        }
    }
}

/// The command names, for the envelope of a command line that did not parse.
pub const COMMANDS: [&str; 11] =
    ["install", "info", "list", "check", "extract", "plan", "preflight", "status", "support", "uninstall", "runtime"];

/// The command a raw command line asks for (before, or without, parsing it whole).
pub fn command_named_in(args: &[std::ffi::OsString]) -> &'static str {
    for arg in args.iter().skip(1) {
        let arg = arg.to_string_lossy();
        if let Some(found) = COMMANDS.iter().find(|c| **c == arg) {
            return found;
        }
        match arg.as_ref() {
            "--info" => return "info",
            "--list" => return "list",
            "--check" => return "check",
            _ => {}
        }
    }
    "install"
}

impl Cli {
    /// The command to run, makeself-style flags included. Install's options given at the
    /// top level go with no command or with `install` only.
    pub fn resolved_command(&self, matches: &ArgMatches) -> Result<Command, String> {
        let flags = [(self.info_flag, "--info"), (self.list_flag, "--list"), (self.check_flag, "--check")];
        let set: Vec<&str> = flags.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect();
        if set.len() > 1 || (set.len() == 1 && self.command.is_some()) {
            return Err(format!("give one command, not {}", set.join(" and ")));
        }
        let top_level = given_at_top(matches);
        let command = match (set.first(), &self.command) {
            (Some(&"--info"), _) => Command::Info(ShowArgs { trust: self.install.trust.clone() }),
            (Some(&"--list"), _) => Command::List(ShowArgs { trust: self.install.trust.clone() }),
            (Some(_), _) => Command::Check(CheckArgs { trust: self.install.trust.clone() }),
            (None, Some(command)) => command.clone(),
            (None, None) => Command::Install(self.install.clone()),
        };
        let top_is_its_own =
            matches!((set.first(), &self.command), (None, None)) || (set.first() == Some(&"--check") && only_trust(&top_level));
        if let (false, Some(flag)) = (top_is_its_own, top_level.first()) {
            return Err(match &command {
                Command::Install(_) => format!("{flag} goes after the command: install {flag} ..."),
                other => format!("{flag} is not an option of `{}`", other.name()),
            });
        }
        Ok(command)
    }
}

/// Install's flags given before any command, as typed (`--set`).
fn given_at_top(matches: &ArgMatches) -> Vec<String> {
    use clap::parser::ValueSource;
    let hidden = ["bundle", "launcher_tmp", "info_flag", "list_flag", "check_flag", "quiet", "json"];
    matches
        .ids()
        // Argument groups (the flattened structs, named after them) are not flags.
        .filter(|id| !hidden.contains(&id.as_str()) && !id.as_str().starts_with(|c: char| c.is_ascii_uppercase()))
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| format!("--{}", id.as_str().replace('_', "-")))
        .collect()
}

fn only_trust(flags: &[String]) -> bool {
    flags.iter().all(|f| f == "--trusted-key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn parse(args: &[&str]) -> Result<Command, String> {
        let argv: Vec<&str> = ["x"].into_iter().chain(args.iter().copied()).collect();
        let matches = Cli::command().try_get_matches_from(argv).map_err(|e| e.to_string())?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        cli.resolved_command(&matches)
    }

    #[test]
    fn each_command_takes_its_own_flags_and_no_others() {
        assert!(matches!(parse(&[]).unwrap(), Command::Install(_)));
        assert!(matches!(parse(&["--noexec", "--target", "/t"]).unwrap(), Command::Install(a) if a.noexec));
        assert!(matches!(parse(&["install", "--set", "a=1", "--json"]).unwrap(), Command::Install(a) if a.answers.set == ["a=1"]));
        assert!(matches!(parse(&["--info"]).unwrap(), Command::Info(_)));
        assert!(matches!(parse(&["info", "--json", "-q"]).unwrap(), Command::Info(_)));
        assert!(matches!(parse(&["--check", "--trusted-key", "k.pub"]).unwrap(), Command::Check(a) if a.trust.trusted_key.len() == 1));
        // Flags a command would do nothing with.
        assert!(parse(&["info", "--engine", "podman"]).is_err());
        assert!(parse(&["info", "--set", "x=1"]).is_err());
        assert!(parse(&["--set", "x=1", "info"]).unwrap_err().contains("not an option of `info`"));
        assert!(parse(&["support", "--target", "/x"]).is_err());
        assert!(parse(&["list", "--yes"]).is_err());
        assert!(parse(&["--set", "a=1", "install"]).unwrap_err().contains("goes after the command"));
        assert!(matches!(parse(&["status", "--verify", "--json"]).unwrap(), Command::Status(a) if a.verify));
        assert!(matches!(parse(&["uninstall", "--dry-run"]).unwrap(), Command::Uninstall(a) if a.dry_run));
    }

    #[test]
    fn the_command_of_a_raw_line_is_found_for_its_envelope() {
        let line = |args: &[&str]| command_named_in(&["x"].iter().chain(args).map(std::ffi::OsString::from).collect::<Vec<_>>());
        assert_eq!(line(&["--json", "status", "--bogus"]), "status");
        assert_eq!(line(&["--bogus"]), "install");
        assert_eq!(line(&["--list"]), "list");
    }
}
