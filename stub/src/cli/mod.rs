//! The `.bin`'s command line, as a field engineer types it: `sh x.bin [COMMAND]`, with
//! makeself's flags accepted from habit (`--info`, `--list`, `--check`, `--noexec`,
//! `--target DIR`, `--keep`, `--quiet`).
//!
//! Each command takes its own flags (a flag a command would do nothing with is a usage
//! error); only `--json` and `--quiet`, which every command honours, go anywhere. With
//! no command, install's flags stand at the top: `sh x.bin --config c --yes`.

use std::path::PathBuf;

mod args;

use clap::{ArgMatches, Parser, Subcommand};

pub(crate) use args::*;

#[derive(Parser, Debug)]
#[command(
    name = "airbin-bundle",
    about = "An airbin offline installer bundle: verifies itself, then installs, checks or extracts its payload.",
    after_help = "With no command, `install` runs. Exit codes: 0 ok, 1 internal error (and drift found by `status --verify`), 2 usage, \
                  3 damaged or unsafe bundle, 4 not enough disk space, 5 permission denied, 6 an install step failed, 7 host not ready, \
                  130 interrupted.",
    disable_version_flag = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// With no command: install's options.
    #[command(flatten)]
    pub(crate) install: InstallArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,

    /// A split bundle's parts (x.bin.part2, ...) are in DIR (a second stick), besides
    /// beside x.bin; repeatable.
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) parts: Vec<PathBuf>,

    /// Same as `info` (makeself habit).
    #[arg(long = "info", hide = true)]
    pub(crate) info_flag: bool,
    /// Same as `list` (makeself habit).
    #[arg(long = "list", hide = true)]
    pub(crate) list_flag: bool,
    /// Same as `check` (makeself habit).
    #[arg(long = "check", hide = true)]
    pub(crate) check_flag: bool,

    /// The bundle file; the launcher passes it.
    #[arg(long, hide = true)]
    pub(crate) bundle: Option<PathBuf>,
    /// The launcher's temporary directory holding this runtime's copy.
    #[arg(long, hide = true)]
    pub(crate) launcher_tmp: Option<PathBuf>,
}

#[derive(Subcommand, Debug, Clone)]
pub(crate) enum Command {
    /// Verify, stage the members and run the install steps (the default).
    Install(InstallArgs),
    /// Show what the bundle is: name, version, build facts, members.
    Info(ShowArgs),
    /// List the members: name, kind, size.
    List(ShowArgs),
    /// Print the receipt of this product's last install, upgrade, hotfix or uninstall on
    /// this host (an in-toto statement; signed where it was run with --receipt-key).
    Receipt(ReceiptShowArgs),
    /// Write what this site holds (installed products, registry blobs, the engine's
    /// images and layers) as JSON, for `airbin build --base-inventory`: the delta this
    /// site needs.
    Inventory(InventoryArgs),
    /// Print the bundle's SBOM: CycloneDX 1.6 JSON, or --format spdx (SPDX 2.3) where
    /// the bundle carries it; read through the index's digests.
    Sbom(SbomArgs),
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
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Install(_) => "install",
            Command::Info(_) => "info",
            Command::List(_) => "list",
            Command::Sbom(_) => "sbom",
            Command::Receipt(_) => "receipt",
            Command::Inventory(_) => "inventory",
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
pub(crate) const COMMANDS: [&str; 14] = [
    "install",
    "info",
    "list",
    "sbom",
    "receipt",
    "inventory",
    "check",
    "extract",
    "plan",
    "preflight",
    "status",
    "support",
    "uninstall",
    "runtime",
];

/// The command a raw command line asks for (before, or without, parsing it whole).
pub(crate) fn command_named_in(args: &[std::ffi::OsString]) -> &'static str {
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
    pub(crate) fn resolved_command(&self, matches: &ArgMatches) -> Result<Command, String> {
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
    let hidden = ["bundle", "launcher_tmp", "info_flag", "list_flag", "check_flag", "quiet", "json", "parts"];
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

/// A command line clap refused, as one usage line that says what to do.
pub(crate) fn usage_error(e: &clap::Error) -> airbin_format::error::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let bin = crate::shell::bundle();
    let command = crate::ui::command();
    if e.kind() == ErrorKind::UnknownArgument {
        if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
            return airbin_format::error::Error::usage(format!("{arg} is not an option of `{command}`; see {bin} {command} --help"));
        }
    }
    let first = e.to_string();
    let line = first.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ").to_string();
    airbin_format::error::Error::usage(format!("{line}; see {bin} --help"))
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
