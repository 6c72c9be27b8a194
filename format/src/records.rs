//! What the index records of image and registry-pack members: read at build time from
//! the inputs, checked at install time against what the engine and the registry hold.

use serde::{Deserialize, Serialize};

/// One image of a `docker save` archive: its ID (the config digest) and its tags.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    /// `sha256:<hex>` of the image config: what `docker image inspect` calls the Id.
    pub id: String,
    /// `repo:tag` references; empty for an untagged image.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl ImageRecord {
    /// How the engine knows this image: its tags, or its ID when it has none.
    pub fn references(&self) -> Vec<&str> {
        match self.tags.is_empty() {
            true => vec![self.id.as_str()],
            false => self.tags.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryPackRecord {
    pub repositories: Vec<RepositoryRecord>,
    /// How many blobs the pack holds.
    pub blobs: u64,
    /// A delta pack (`airbin build --base`): the blobs (`sha256:<hex>`) it leaves out
    /// because the base bundle carried them; the registry root must hold them already.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<String>,
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
