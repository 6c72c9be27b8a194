//! Install steps, as the spec declares them and the index carries them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cli::Global;
use crate::config::ProductConfig;
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
        /// The registry's `storage.filesystem.rootdirectory`...
        #[serde(default, skip_serializing_if = "Option::is_none")]
        root: Option<String>,
        /// ...or the key of the product's config that names it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        root_from_config: Option<String>,
        /// `user[:group]` to own what is restored, for a registry running as its own user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        /// Octal mode bits for restored files (directories get the matching x bits).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
        /// `host:port` of the registry serving that root: checked online after the restore...
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        /// ...or the key of the product's config that names it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address_from_config: Option<String>,
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
            Step::RestoreRegistry { member, root: Some(root), .. } => format!("restore registry pack {member} into {root}"),
            Step::RestoreRegistry { member, root_from_config, .. } => {
                format!("restore registry pack {member} into the config's {}", root_from_config.as_deref().unwrap_or("registry root"))
            }
            Step::Command { name, .. } => format!("run {name}"),
        }
    }
}

/// Octal mode bits as a spec writes them ("0644"); the builder checks them with this
/// too, so a bundle never carries a mode the stub would refuse.
pub fn parse_mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777)
}

/// What a step did, for the summary and `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub step: String,
    /// `done` or `skipped`.
    pub status: &'static str,
    pub detail: String,
}

/// Whether a step takes values from the product's config that the command line does
/// not override.
pub fn needs_config(step: &Step, options: &Global) -> bool {
    match step {
        Step::RestoreRegistry { root_from_config, address_from_config, .. } => {
            (root_from_config.is_some() && options.registry_root.is_none())
                || (address_from_config.is_some() && options.registry_address.is_none())
        }
        _ => false,
    }
}

/// Where a restore-registry step restores to and checks online: the command line's
/// overrides, else the spec's values, else the product config's.
pub fn registry_target(step: &Step, options: &Global, config: Option<&ProductConfig>) -> Result<(PathBuf, Option<String>)> {
    let Step::RestoreRegistry { root, root_from_config, address, address_from_config, .. } = step else {
        unreachable!("only restore-registry steps have a registry target")
    };
    let from_config = |key: &str| -> Result<String> {
        config.expect("preflight loads the config for steps that need it").text(key, "the restore-registry step")
    };
    let root = match (&options.registry_root, root, root_from_config) {
        (Some(overridden), _, _) => overridden.clone(),
        (None, Some(root), _) => PathBuf::from(root),
        (None, None, Some(key)) => PathBuf::from(from_config(key)?),
        (None, None, None) => return Err(Error::integrity("a restore-registry step names no registry root")),
    };
    let address = match (&options.registry_address, address, address_from_config) {
        (Some(overridden), _, _) => Some(overridden.clone()),
        (None, Some(address), _) => Some(address.clone()),
        (None, None, Some(key)) => Some(from_config(key)?),
        (None, None, None) => None,
    };
    Ok((root, address))
}

/// Runs the built-in steps; `engine` was detected in preflight when any step loads
/// images, and `config` loaded when any step takes values from it.
pub fn run_builtin(
    step: &Step,
    bundle: &Bundle,
    engine: Option<&Engine>,
    config: Option<&ProductConfig>,
    options: &Global,
    ui: &Ui,
) -> Result<StepReport> {
    let describe = step.describe();
    match step {
        Step::LoadImages { member, .. } => {
            let member = bundle.member(member)?;
            let engine = engine.expect("preflight detects the engine for load-images steps");
            ui.status(format!("loading the images of {} into {}", member.name, engine.name()));
            let refs = images::load(engine, bundle, member, ui)?;
            Ok(StepReport { step: describe, status: "done", detail: format!("{} in {}, IDs checked", refs.join(", "), engine.name()) })
        }
        Step::RestoreRegistry { member, owner, mode, .. } => {
            let (root, address) = registry_target(step, options, config)?;
            let member = bundle.member(member)?;
            let record = member
                .registry
                .as_ref()
                .ok_or_else(|| Error::integrity(format!("member {} carries no registry pack record", member.name)))?;
            let (uid, gid) = match owner {
                Some(owner) => registry::parse_owner(owner)?,
                None => (None, None),
            };
            let file_mode = mode
                .as_deref()
                .map(|m| parse_mode(m).ok_or_else(|| Error::integrity(format!("bad mode {m} in the bundle's steps"))))
                .transpose()?;
            let describe = format!("restore registry pack {} into {}", member.name, root.display());
            let placed = registry::restore(bundle, member, &root, &Ownership { uid, gid, file_mode }, ui)?;
            registry::check_pack(&registry::DirStorage::new(&root), Some(record)).map_err(|why| {
                Error::step(format!("registry pack {} does not serve from {} after the restore: {why}", member.name, root.display()))
            })?;
            let tags: usize = record.repositories.iter().map(|r| r.tags.len()).sum();
            let mut detail = format!("{placed} files placed in {}, {tags} tags checked offline", root.display());
            if let Some(address) = address {
                let fetched = registry::verify_online(&address, record, &root)?;
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
