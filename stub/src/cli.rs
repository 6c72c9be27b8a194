//! The `.bin`'s command line, as a field engineer types it: `sh x.bin [COMMAND]`, with
//! makeself's flags accepted from habit (`--info`, `--list`, `--check`, `--noexec`,
//! `--target DIR`, `--keep`, `--quiet`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::format::Role;

#[derive(Parser, Debug)]
#[command(
    name = "airbin-bundle",
    about = "An airbin offline installer bundle: verifies itself, then installs, checks or extracts its payload.",
    after_help = "With no command, `install` runs. Exit codes: 0 ok, 1 internal error, 2 usage, 3 damaged or unsafe bundle, \
                  4 not enough disk space, 5 permission denied, 6 an install step failed, 7 host not ready, 130 interrupted.",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub global: Global,

    /// Same as `info` (makeself habit).
    #[arg(long = "info", global = true, hide = true)]
    pub info_flag: bool,
    /// Same as `list` (makeself habit).
    #[arg(long = "list", global = true, hide = true)]
    pub list_flag: bool,
    /// Same as `check` (makeself habit).
    #[arg(long = "check", global = true, hide = true)]
    pub check_flag: bool,

    /// The bundle file; the launcher passes it.
    #[arg(long, hide = true, global = true)]
    pub bundle: Option<PathBuf>,
    /// The launcher's temporary directory holding this runtime's copy.
    #[arg(long, hide = true, global = true)]
    pub launcher_tmp: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Where to extract (`extract`) or stage (`install`) the members; kept afterwards.
    #[arg(long, global = true, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Only errors on stderr.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Answer yes to every question (non-interactive runs).
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// install: stage the members but run no install step (implies --keep).
    #[arg(long, global = true)]
    pub noexec: bool,
    /// install: keep the staging directory after a successful install.
    #[arg(long, global = true)]
    pub keep: bool,
    /// install: the container engine to load images into: auto, docker, docker-api,
    /// podman or containerd.
    #[arg(long, global = true, value_name = "ENGINE")]
    pub engine: Option<String>,
    /// install: the containerd namespace images go into.
    #[arg(long, global = true, value_name = "NS", default_value = "k8s.io")]
    pub containerd_namespace: String,
    /// install: the product's config file (default: `config` beside the bundle).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// install: take the bundle's config sample as it is, on purpose.
    #[arg(long, global = true)]
    pub use_sample: bool,
    /// install: print the plan and change nothing (same as `plan`).
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// install: redo every step, done or not; also installs over another bundle's unfinished run.
    #[arg(long, global = true)]
    pub force: bool,
    /// install: redo from this step on (by name), although done.
    #[arg(long, global = true, value_name = "STEP")]
    pub from: Option<String>,
    /// install: skip a preflight check (root, arch, space, engine, registry, commands, ports, delta); repeatable.
    #[arg(long, global = true, value_name = "NAME")]
    pub skip_preflight: Vec<String>,
    /// check, extract, install: trust only bundles signed by this minisign public key
    /// (besides the keys in /etc/airbin/trusted-keys/); repeatable.
    #[arg(long, global = true, value_name = "FILE")]
    pub trusted_key: Vec<PathBuf>,
    /// install: restore registry packs into this registry root instead of the spec's.
    #[arg(long, global = true, value_name = "DIR")]
    pub registry_root: Option<PathBuf>,
    /// install: check restored packs online at this registry (host:port) instead of the spec's.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub registry_address: Option<String>,
    /// install, plan, preflight: this node's role: single, primary, secondary or worker
    /// (default: found by this host's address in the config's node list).
    #[arg(long, global = true, value_name = "ROLE", value_parser = parse_role)]
    pub role: Option<Role>,
    /// install, status, support: every node the config lists, over SSH, from this one.
    #[arg(long, global = true)]
    pub all_nodes: bool,
    /// --all-nodes: at most N nodes at a time (default: all at once).
    #[arg(long, global = true, value_name = "N", default_value_t = 0)]
    pub parallel: usize,
    /// --all-nodes: an extra `ssh -o` option (such as Port=2222); repeatable.
    #[arg(long, global = true, value_name = "OPTION")]
    pub ssh_option: Vec<String>,
    /// install, plan: a parameter's value (by its name or config key), over the config's; repeatable.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// install: upgrade to an older version than the one installed, on purpose.
    #[arg(long, global = true)]
    pub allow_downgrade: bool,
    /// --all-nodes: where the bundle and config go on the other nodes (default /var/tmp/airbin/NAME).
    #[arg(long, global = true, value_name = "DIR")]
    pub remote_dir: Option<String>,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("'{text}' is not a role: single, primary, secondary or worker"))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Verify, stage the members and run the install steps (the default).
    Install,
    /// Show what the bundle is: name, version, build facts, members.
    Info,
    /// List the members: name, kind, size.
    List,
    /// Verify the bundle: its length, then the SHA-256 of every byte.
    Check,
    /// Verify, then extract members (all, or those named) into --target DIR
    /// (default: ./<name>-<version>).
    Extract {
        /// Members to extract; all when none is named.
        members: Vec<String>,
    },
    /// Show what install would do on this host: each step, the values it takes from the
    /// config, and which steps are done already. Changes nothing.
    Plan,
    /// Check that this host is ready for its part of the install (root, space, engine,
    /// registry, commands, ports): every problem at once. Changes nothing.
    Preflight,
    /// Show the last run: its steps, times, results and log.
    Status {
        /// Follow a running install until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Write one small .tar.gz for the vendor: logs, journal, index, the config with
    /// secrets masked, and host facts.
    Support {
        /// The file to write (default: ./airbin-support-<name>-<time>.tar.gz).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

impl Cli {
    /// The command to run, makeself-style flags included.
    pub fn resolved_command(&self) -> Result<Command, String> {
        let flags = [(self.info_flag, "--info"), (self.list_flag, "--list"), (self.check_flag, "--check")];
        let set: Vec<&str> = flags.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect();
        if set.len() > 1 || (set.len() == 1 && self.command.is_some()) {
            return Err(format!("give one command, not {}", set.join(" and ")));
        }
        Ok(match (set.first(), &self.command) {
            (Some(&"--info"), _) => Command::Info,
            (Some(&"--list"), _) => Command::List,
            (Some(_), _) => Command::Check,
            (None, Some(Command::Extract { members })) => Command::Extract { members: members.clone() },
            (None, Some(Command::Info)) => Command::Info,
            (None, Some(Command::List)) => Command::List,
            (None, Some(Command::Check)) => Command::Check,
            (None, Some(Command::Plan)) => Command::Plan,
            (None, Some(Command::Preflight)) => Command::Preflight,
            (None, Some(Command::Status { follow })) => Command::Status { follow: *follow },
            (None, Some(Command::Support { output })) => Command::Support { output: output.clone() },
            (None, Some(Command::Install) | None) => Command::Install,
        })
    }
}
