//! Install steps, as the spec declares them and the index carries them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::format::Bundle;
use crate::images::{self, Engine};
use crate::progress::Ui;
use crate::registry::{self, Ownership};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// Load the images of an `image` member into the container engine, streamed.
    LoadImages {
        member: String,
        /// `auto` (the default), `docker`, `podman` or `containerd`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine: Option<String>,
    },
    /// Restore a `registry-pack` member into a registry's storage root.
    RestoreRegistry {
        member: String,
        /// The registry's `storage.filesystem.rootdirectory`.
        root: String,
        /// `user[:group]` to own what is restored, for a registry running as its own user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        /// Octal mode bits for restored files (directories get the matching x bits).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
        /// `host:port` of the registry serving that root: checked online after the restore.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    /// A command of the product, such as its admin tool. Carried by the format; run by
    /// the step runner.
    Command {
        name: String,
        run: Vec<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<u64>,
    },
}

impl Step {
    /// A short description for plans and logs.
    pub fn describe(&self) -> String {
        match self {
            Step::LoadImages { member, .. } => format!("load images of {member}"),
            Step::RestoreRegistry { member, root, .. } => format!("restore registry pack {member} into {root}"),
            Step::Command { name, .. } => format!("run {name}"),
        }
    }
}

/// What a step did, for the summary and `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub step: String,
    /// `done` or `skipped`.
    pub status: &'static str,
    pub detail: String,
}

/// Runs the built-in steps; `engine` was detected in preflight when any step loads images.
pub fn run_builtin(step: &Step, bundle: &Bundle, engine: Option<&Engine>, options: &Global, ui: &Ui) -> Result<StepReport> {
    let describe = step.describe();
    match step {
        Step::LoadImages { member, .. } => {
            let member = bundle.member(member)?;
            let engine = engine.expect("preflight detects the engine for load-images steps");
            ui.status(format!("loading the images of {} into {}", member.name, engine.name()));
            let refs = images::load(engine, bundle, member, ui)?;
            Ok(StepReport { step: describe, status: "done", detail: format!("{} in {}, IDs checked", refs.join(", "), engine.name()) })
        }
        Step::RestoreRegistry { member, root, owner, mode, address } => {
            let member = bundle.member(member)?;
            let record = member
                .registry
                .as_ref()
                .ok_or_else(|| Error::integrity(format!("member {} carries no registry pack record", member.name)))?;
            let root = options.registry_root.clone().unwrap_or_else(|| PathBuf::from(root));
            let (uid, gid) = match owner {
                Some(owner) => registry::parse_owner(owner)?,
                None => (None, None),
            };
            let file_mode = mode
                .as_deref()
                .map(|m| u32::from_str_radix(m, 8).map_err(|_| Error::integrity(format!("bad mode {m} in the bundle's steps"))))
                .transpose()?;
            let describe = format!("restore registry pack {} into {}", member.name, root.display());
            let placed = registry::restore(bundle, member, &root, &Ownership { uid, gid, file_mode }, ui)?;
            registry::check_pack(&registry::DirStorage::new(&root), Some(record)).map_err(|why| {
                Error::step(format!("registry pack {} does not serve from {} after the restore: {why}", member.name, root.display()))
            })?;
            let tags: usize = record.repositories.iter().map(|r| r.tags.len()).sum();
            let mut detail = format!("{placed} files placed in {}, {tags} tags checked offline", root.display());
            if let Some(address) = options.registry_address.as_deref().or(address.as_deref()) {
                let fetched = registry::verify_online(address, record, &root)?;
                detail.push_str(&format!(", {fetched} manifests and blobs fetched from {address}"));
            }
            Ok(StepReport { step: describe, status: "done", detail })
        }
        Step::Command { .. } => Ok(StepReport {
            step: describe,
            status: "skipped",
            detail: "product commands are not run by this airbin runtime; run it by hand from the staging directory".into(),
        }),
    }
}

/// The member a built-in step consumes straight from the bundle (not staged).
pub fn consumed_member(step: &Step) -> Option<&str> {
    match step {
        Step::LoadImages { member, .. } | Step::RestoreRegistry { member, .. } => Some(member),
        Step::Command { .. } => None,
    }
}
