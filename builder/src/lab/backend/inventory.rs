//! The `ssh` backend: the site's own machines, listed in an inventory with the commands
//! that reset one to its clean snapshot and cut its power (run on this host, `{name}`
//! and `{address}` filled in). The lab touches no machine the inventory does not list,
//! and resets each before a scenario takes it.
//!
//! ```yaml
//! identity: keys/lab_ed25519          # the key the machines take (made for the lab)
//! user: root                          # default root
//! machines:
//!   - {name: qa-vm1, address: 192.0.2.11}
//!   - {name: qa-vm2, address: 192.0.2.12, ssh_port: 22}
//! reset: virsh snapshot-revert {name} clean --running
//! power_cut: virsh reset {name}       # optional: without it, no power-cut scenario
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use airbin_format::error::{Error, IoContext, Result};

use super::{Backend, Machines};
use crate::lab::machine::{shell_quote, Endpoint, Machine};

/// How long a machine may take to answer after a reset or a power cut.
const BOOT_LIMIT: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    identity: PathBuf,
    #[serde(default = "root")]
    user: String,
    machines: Vec<Listed>,
    reset: String,
    #[serde(default)]
    power_cut: Option<String>,
}

fn root() -> String {
    "root".into()
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Listed {
    name: String,
    address: String,
    #[serde(default)]
    ssh_host: Option<String>,
    #[serde(default = "port")]
    ssh_port: u16,
}

fn port() -> u16 {
    22
}

pub(crate) struct Inventory {
    file: File,
    known_hosts: PathBuf,
    /// Which machines a running scenario holds.
    taken: Mutex<Vec<bool>>,
}

impl Inventory {
    pub(crate) fn open(path: &Path, work: &Path) -> Result<Inventory> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::usage(format!("--inventory {}: {e}", path.display())))?;
        let mut file: File = serde_yaml::from_str(&text).map_err(|e| Error::usage(format!("--inventory {}: {e}", path.display())))?;
        if file.machines.is_empty() {
            return Err(Error::usage(format!("--inventory {}: list the machines the lab may use under machines:", path.display())));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        file.identity = base.join(&file.identity);
        if !file.identity.is_file() {
            return Err(Error::usage(format!(
                "--inventory {}: identity {} is missing: give the key the machines take",
                path.display(),
                file.identity.display()
            )));
        }
        let taken = Mutex::new(vec![false; file.machines.len()]);
        let dir = work.join("ssh");
        std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
        Ok(Inventory { file, known_hosts: dir.join("known_hosts"), taken })
    }

    /// Runs one of the inventory's commands for `machine`, on this host.
    fn template(&self, what: &str, template: &str, machine: &Listed) -> Result<()> {
        let command = template.replace("{name}", &shell_quote(&machine.name)).replace("{address}", &shell_quote(&machine.address));
        let out = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .output()
            .map_err(|e| Error::host(format!("cannot run sh for the inventory's {what} ({e})")))?;
        if !out.status.success() {
            return Err(Error::host(format!(
                "the inventory's {what} for {} failed ({command}): {}",
                machine.name,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    fn machine(&self, listed: &Listed, name: String) -> Machine {
        let ssh = Endpoint {
            host: listed.ssh_host.clone().unwrap_or_else(|| listed.address.clone()),
            port: listed.ssh_port,
            user: self.file.user.clone(),
            identity: self.file.identity.clone(),
            known_hosts: self.known_hosts.clone(),
        };
        Machine { name, address: listed.address.clone(), ssh }
    }
}

impl Backend for Inventory {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = self.file.machines.iter().map(|m| m.name.as_str()).collect();
        format!("the inventory's machines ({}), reset with `{}`", names.join(", "), self.file.reset)
    }

    fn no_power_cut(&self) -> Option<String> {
        self.file.power_cut.is_none().then(|| "the inventory gives no power_cut command".to_string())
    }

    fn provision(&self, _slot: usize, count: usize, _dir: &Path) -> Result<Box<dyn Machines + '_>> {
        let picked: Vec<usize> = {
            let mut taken = self.taken.lock().expect("no panic holding it");
            let free: Vec<usize> = (0..taken.len()).filter(|i| !taken[*i]).take(count).collect();
            if free.len() < count {
                return Err(Error::usage(format!(
                    "the inventory lists {} machine(s) and a scenario needs {count} free: list more, or run fewer --jobs",
                    taken.len()
                )));
            }
            free.iter().for_each(|i| taken[*i] = true);
            free
        };
        let mut held = Held { inventory: self, picked: picked.clone(), machines: Vec::new() };
        for (k, i) in picked.iter().enumerate() {
            let listed = &self.file.machines[*i];
            self.template("reset", &self.file.reset, listed)?;
            let machine = self.machine(listed, format!("node{}", k + 1));
            machine.wait_for_ssh(BOOT_LIMIT)?;
            held.machines.push(machine);
        }
        Ok(Box::new(held))
    }
}

/// Machines a scenario holds; given back to the inventory when dropped.
struct Held<'a> {
    inventory: &'a Inventory,
    picked: Vec<usize>,
    machines: Vec<Machine>,
}

impl Machines for Held<'_> {
    fn machines(&self) -> &[Machine] {
        &self.machines
    }

    fn power_cut(&mut self, i: usize) -> Result<()> {
        let template = self.inventory.file.power_cut.as_deref().ok_or_else(|| Error::usage("the inventory gives no power_cut command"))?;
        self.inventory.template("power_cut", template, &self.inventory.file.machines[self.picked[i]])
    }

    fn boot(&mut self, i: usize) -> Result<()> {
        // The power cut's command restarts the machine: wait for it to answer.
        std::thread::sleep(Duration::from_secs(2));
        self.machines[i].wait_for_ssh(BOOT_LIMIT)
    }

    fn keep(&self, _: usize, _: &Path) -> Vec<String> {
        Vec::new()
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut taken = self.inventory.taken.lock().unwrap_or_else(|e| e.into_inner());
        for i in &self.picked {
            taken[*i] = false;
        }
    }
}
