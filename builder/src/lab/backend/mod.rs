//! Where a scenario's machines come from, and what can be done to them besides SSH:
//! thrown away after the scenario, cut off at once (a power cut), booted again.
//!
//! - `netns`: network namespaces on this host (`hack/qa-nodes.sh`, carried inside
//!   airbin): fast, root only, one kernel, no power cut.
//! - `qemu`: VMs booted from a base image with an overlay each (`airbin lab image`).
//! - `ssh`: the site's own machines from an inventory, with its commands to reset them
//!   and to cut their power.

mod inventory;
pub(crate) mod netns;
pub(crate) mod qemu;

use std::path::Path;

/// What the lab keeps on this host between runs (cluster claims, the KVM probe's verdict):
/// under /run, which a boot empties, away from /tmp and /var/tmp.
pub(crate) const RUN_DIR: &str = "/run/airbin-lab";

use airbin_format::error::{Error, Result};

use super::machine::Machine;
use crate::cli::LabRunArgs;

pub(crate) trait Backend: Sync {
    fn name(&self) -> &'static str;
    /// One line on what the machines are (shown and reported).
    fn describe(&self) -> String;
    /// Why this backend cannot cut a machine's power, if it cannot.
    fn no_power_cut(&self) -> Option<String>;
    /// `count` fresh machines for one scenario; `slot` is unique among the scenarios
    /// running at once. `dir` holds the scenario's files.
    fn provision(&self, slot: usize, count: usize, dir: &Path) -> Result<Box<dyn Machines + '_>>;
}

/// A scenario's machines; dropping it throws them away.
pub(crate) trait Machines: Send {
    fn machines(&self) -> &[Machine];
    /// Machine `i` off at once: no shutdown, no flush.
    fn power_cut(&mut self, i: usize) -> Result<()>;
    /// Machine `i` on again after a power cut, until its sshd answers.
    fn boot(&mut self, i: usize) -> Result<()>;
    /// Keeps what only the backend has of machine `i` (a serial console) in `dir`;
    /// the files kept, by name.
    fn keep(&self, i: usize, dir: &Path) -> Vec<String>;
}

/// The backend `--backend` names, checked to be usable here.
pub(crate) fn open(args: &LabRunArgs, work: &Path) -> Result<Box<dyn Backend>> {
    match args.backend.as_str() {
        "netns" => Ok(Box::new(netns::Netns::open(work)?)),
        "qemu" => {
            let image = args
                .image
                .as_deref()
                .ok_or_else(|| Error::usage("--backend qemu boots a base image: give --image DIR (airbin lab image -o DIR makes one)"))?;
            Ok(Box::new(qemu::Qemu::open(image, work)?))
        }
        "ssh" => {
            let file = args.inventory.as_deref().ok_or_else(|| {
                Error::usage("--backend ssh runs on the site's machines: give --inventory FILE (machines, reset, power_cut)")
            })?;
            Ok(Box::new(inventory::Inventory::open(file, work)?))
        }
        other => Err(Error::usage(format!("--backend {other}: give netns, qemu or ssh"))),
    }
}
