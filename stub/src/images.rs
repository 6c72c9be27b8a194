//! Container images: what an image member holds (recorded at build time) and loading it
//! into the engine on the host.

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
