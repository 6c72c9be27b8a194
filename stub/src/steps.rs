//! Install steps, as the spec declares them and the index carries them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
