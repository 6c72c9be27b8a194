//! Registry image packs: a docker registry's storage tree (`docker/registry/v2/...`),
//! checked at build time and restored into a registry root at install time.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryPackRecord {
    pub repositories: Vec<RepositoryRecord>,
    /// How many blobs the pack holds.
    pub blobs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RepositoryRecord {
    pub name: String,
    pub tags: Vec<TagRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TagRecord {
    pub tag: String,
    /// `sha256:<hex>` of the manifest the tag points at.
    pub manifest: String,
}
