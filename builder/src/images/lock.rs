//! `bundle.lock`, beside the spec: what every image list resolved to (a manifest digest,
//! an image ID, the platform, the bytes), written by the first build and used by every
//! later one, so that a tag moved at the source does not change the bundle. `airbin build
//! --update-lock` resolves the tags again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use airbin_format::error::{Error, Result};

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Lock {
    pub(crate) lock: u32,
    /// By member name.
    #[serde(default)]
    pub(crate) members: BTreeMap<String, Vec<Locked>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Locked {
    /// As the image list writes it.
    pub(crate) reference: String,
    /// The member's `from`.
    pub(crate) from: String,
    /// The manifest (or, with `platforms: all`, the index) the reference resolved to.
    pub(crate) digest: String,
    /// The image's ID (its config's digest); absent for every platform at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    /// `linux/amd64`, or `all`.
    pub(crate) platform: String,
    /// The bytes of its config and layers.
    pub(crate) size: u64,
}

pub(crate) fn path(spec_dir: &Path) -> PathBuf {
    spec_dir.join("bundle.lock")
}

pub(crate) fn read(spec_dir: &Path) -> Result<Lock> {
    let file = path(spec_dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => serde_yaml::from_str(&text).map_err(|e| {
            Error::usage(format!(
                "{} is not a lock airbin wrote ({e}); remove it, or build with --update-lock to write it again",
                file.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock { lock: 1, members: BTreeMap::new() }),
        Err(e) => Err(Error::io(e, "reading", &file)),
    }
}

pub(crate) fn write(spec_dir: &Path, lock: &Lock) -> Result<()> {
    let text = format!(
        "# Written by airbin build: what the image lists resolved to. Builds use these digests;\n# `airbin build --update-lock` resolves the tags again.\n{}",
        serde_yaml::to_string(lock).expect("a lock serializes")
    );
    airbin_format::files::write_atomic(&path(spec_dir), text.as_bytes(), 0o644)
}

impl Lock {
    pub(crate) fn find(&self, member: &str, reference: &str, from: &str) -> Option<&Locked> {
        self.members.get(member)?.iter().find(|l| l.reference == reference && l.from == from)
    }
}
