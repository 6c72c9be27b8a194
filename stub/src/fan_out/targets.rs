//! The nodes of the config's node list, and how this run reaches each: its own
//! process for this host, `ssh` (over one shared connection a node) for the others.

use std::process::Command;
use std::time::Duration;

use airbin_format::error::{Error, IoContext, Result};
use airbin_format::Bundle;

use super::{each, FanOut};
use crate::install::config::ProductConfig;
use crate::install::roles::{self, Node, NodeList, ThisHost};
pub(crate) use crate::shell::quote;

/// One SSH connection a node, opened once and shared by every command the fan-out runs
/// there (OpenSSH's ControlMaster): each SSH handshake costs about a third of a second,
/// and a fan-out runs five commands a node. Closed when dropped; a master left by a
/// killed run ends by itself after a minute unused.
pub(crate) struct Connections {
    dir: std::path::PathBuf,
    targets: Vec<Target>,
    options: Vec<String>,
}

impl Connections {
    /// Opens a shared connection to every other node (quietly: a node that cannot be
    /// reached is reported by the first command run there) and sets `fan` to use them.
    pub(crate) fn open(targets: &[Target], fan: &mut FanOut) -> Result<Connections> {
        let dir = std::env::temp_dir().join(crate::fsx::temp_name(".ssh", ".airbin-partial-"));
        std::fs::create_dir(&dir).ctx("creating", &dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).ctx("creating", &dir)?;
        fan.control_dir = Some(dir.clone());
        let remote: Vec<Target> = targets.iter().filter(|t| !t.local).cloned().collect();
        let shared = Connections { dir, targets: remote, options: fan.ssh_options.clone() };
        each(&shared.targets, fan.parallel, |target| {
            let mut command = target.ssh(fan);
            command.args(["-o", "ControlMaster=yes", "-o", "ControlPersist=60", "--", target.node.ssh_target(), "true"]);
            // Out of this terminal's process group: Ctrl-C must not cut the connections
            // the stop of every node's run goes through.
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let _ = crate::child::output(&mut command, Duration::from_secs(30));
        });
        Ok(shared)
    }
}

impl Drop for Connections {
    fn drop(&mut self) {
        let fan = FanOut { ssh_options: self.options.clone(), control_dir: Some(self.dir.clone()), ..FanOut::default() };
        for target in &self.targets {
            let mut command = target.ssh(&fan);
            command.args(["-O", "exit", "--", target.node.ssh_target()]);
            let _ = crate::child::output(&mut command, Duration::from_secs(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One node and how this run reaches it.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) node: Node,
    /// This host: its part runs here, without SSH.
    pub(crate) local: bool,
    /// The bundle and the config on that node.
    pub(crate) bin: String,
    pub(crate) config: String,
    /// Where every other node's fan-out looks for the bundle on this node (the remote
    /// directory): for this host, a link to `bin`.
    pub(crate) known_as: String,
    /// The pinned keys on that node (copied there beside the bundle).
    pub(crate) keys: Vec<String>,
}

impl Target {
    pub(crate) fn label(&self) -> String {
        self.node.label()
    }

    /// The command that runs `sh BIN ARGS` on the node.
    pub(super) fn command(&self, fan: &FanOut, args: &[String]) -> Command {
        self.tagged(fan, args, None)
    }

    /// The same, with the fan-out's tag in the run's environment (`AIRBIN_FAN_OUT`).
    pub(super) fn tagged(&self, fan: &FanOut, args: &[String], tag: Option<&str>) -> Command {
        if self.local {
            let mut command = Command::new("sh");
            command.arg(&self.bin).args(args);
            if let Some(tag) = tag {
                command.env("AIRBIN_FAN_OUT", tag);
            }
            command
        } else {
            let prefix = tag.map(|t| format!("AIRBIN_FAN_OUT={} ", quote(t))).unwrap_or_default();
            self.shell(fan, &format!("{prefix}{}", self.script(args)))
        }
    }

    /// `sh BIN ARGS` as a line for the node's shell, every word quoted.
    pub(super) fn script(&self, args: &[String]) -> String {
        let words = ["sh", self.bin.as_str()].into_iter().chain(args.iter().map(String::as_str));
        words.map(quote).collect::<Vec<_>>().join(" ")
    }

    /// `ssh NODE SCRIPT`: the script runs in the node's login shell.
    pub(super) fn shell(&self, fan: &FanOut, script: &str) -> Command {
        let mut command = self.ssh(fan);
        command.args(["--", self.node.ssh_target(), script]);
        command
    }

    /// `ssh` with the fan-out's options, before the destination.
    pub(super) fn ssh(&self, fan: &FanOut) -> Command {
        let mut command = Command::new("ssh");
        command.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15", "-o", "LogLevel=ERROR"]);
        if let Some(dir) = &fan.control_dir {
            command.arg("-o").arg(format!("ControlPath={}/%C", dir.display()));
        }
        for option in &fan.ssh_options {
            command.args(["-o", option]);
        }
        command
    }
}

/// `--all-nodes` on a bundle whose spec names no node list.
pub(crate) fn no_node_list() -> Error {
    Error::usage("--all-nodes: this bundle names no node list (its spec sets no config.management_nodes_key); run it on each node instead")
}

/// Every node the config lists, with where its bundle and config are.
pub(crate) fn targets(bundle: &Bundle, config: &ProductConfig, fan: &FanOut) -> Result<Vec<Target>> {
    let list: NodeList = roles::node_list(&bundle.index.config, Some(config))?.ok_or_else(no_node_list)?;
    let me = ThisHost::detect().find(&list)?.map(|(node, _)| node.clone());
    let meta = &bundle.index.bundle;
    let dir = fan.remote_dir.clone().unwrap_or_else(|| format!("/var/tmp/airbin/{}", meta.name));
    let file = bundle.path.file_name().map_or_else(|| format!("{}.bin", meta.file_stem()), |f| f.to_string_lossy().into_owned());
    Ok(list
        .nodes
        .into_iter()
        .map(|node| {
            let local = me.as_ref() == Some(&node);
            let known_as = format!("{dir}/{file}");
            let (bin, config) = if local {
                (crate::fsx::absolute(&bundle.path).display().to_string(), crate::fsx::absolute(&config.path).display().to_string())
            } else {
                (known_as.clone(), format!("{dir}/config"))
            };
            let keys = fan
                .keys
                .iter()
                .enumerate()
                .map(|(i, key)| if local { crate::fsx::absolute(key).display().to_string() } else { format!("{dir}/keys/{i}.pub") })
                .collect();
            Target { node, local, bin, config, known_as, keys }
        })
        .collect())
}

/// The arguments every node's own command is given: its role, its config, and the flags
/// passed on.
pub(super) fn node_args(command: &str, target: &Target, fan: &FanOut, extra: &[&str]) -> Vec<String> {
    let mut args = vec![command.to_string(), "--role".into(), target.node.role.to_string(), "--config".into(), target.config.clone()];
    for key in &target.keys {
        args.extend(["--trusted-key".to_string(), key.clone()]);
    }
    args.extend(fan.pass.iter().cloned());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}
