//! What the builder records about a member beyond its bytes: the images of an image
//! archive, the repositories and tags of a registry pack.

use airbin_stub::error::Result;
use airbin_stub::format::MemberKind;
use airbin_stub::images::ImageRecord;
use airbin_stub::registry::RegistryPackRecord;

use crate::source::Source;

#[derive(Default)]
pub struct Details {
    pub images: Vec<ImageRecord>,
    pub registry: Option<RegistryPackRecord>,
}

pub fn inspect(kind: MemberKind, _member: &str, _source: &Source) -> Result<Details> {
    match kind {
        _ => Ok(Details::default()),
    }
}
