//! What the builder records about a member beyond its bytes: the images of an image
//! archive (read by the format crate's one image-archive reader, the same one
//! `push-images` reads the member with on site), the repositories and tags of a
//! registry pack. A member that is not what its kind says is refused here, at build
//! time, not discovered in the field.

use airbin_format::error::{Error, Result};
use airbin_format::image_archive::{self, ImageSubset, ReadOptions};
use airbin_format::registry_pack::{check_pack, DirStorage, TarStorage};
use airbin_format::{ImageRecord, MemberKind, RegistryPackRecord};

use crate::assemble::source::{open_tarball, Source};

#[derive(Default)]
pub(crate) struct Details {
    pub(crate) images: Vec<ImageRecord>,
    pub(crate) registry: Option<RegistryPackRecord>,
    /// For a multi-platform OCI archive: the part of it that is the bundle's platform,
    /// which is what the bundle carries instead of the whole file.
    pub(crate) subset: Option<ImageSubset>,
}

/// `arch` is the bundle's: every image must be for it.
pub(crate) fn inspect(kind: MemberKind, member: &str, source: &Source, arch: &str) -> Result<Details> {
    match kind {
        MemberKind::Image => image_archive(member, source.path(), arch),
        MemberKind::RegistryPack => Ok(Details { registry: Some(registry_pack(member, source)?), ..Details::default() }),
        MemberKind::Tool | MemberKind::ConfigSample | MemberKind::File | MemberKind::Sbom => Ok(Details::default()),
    }
}

/// Reads an image archive (`docker save`: docker-archive, or the OCI layout newer
/// Docker writes) and returns every image with its ID and tags.
fn image_archive(member: &str, path: &std::path::Path, arch: &str) -> Result<Details> {
    let refuse = |why: String| Error::usage(format!("member {member}: {} {why}", path.display()));
    let refuse_tar = |why: String| match why.contains("tar archive") {
        true => refuse(format!("{why}; an image member is what `docker save -o FILE IMAGE...` writes")),
        false => refuse(why),
    };
    let archive = image_archive::read(open_tarball(path)?, &ReadOptions { arch, digest_layers: false }, &refuse_tar)?;
    Ok(Details { images: archive.records(), registry: None, subset: archive.subset })
}

/// A registry pack given one or more levels too deep (`…/docker`, `…/docker/registry`,
/// `…/v2`): the directory to give instead, the one that holds `docker/`.
pub(crate) fn registry_root_above(path: &std::path::Path) -> Option<std::path::PathBuf> {
    if path.join("docker/registry/v2").is_dir() {
        return None;
    }
    path.ancestors().skip(1).take(3).find(|a| a.join("docker/registry/v2").is_dir()).map(std::path::Path::to_path_buf)
}

fn registry_pack(member: &str, source: &Source) -> Result<RegistryPackRecord> {
    let path = source.path();
    let record = match source {
        Source::Dir { root, .. } => {
            if !root.join("docker/registry/v2").is_dir() {
                return Err(Error::usage(format!(
                    "member {member}: {} is not a registry root: it has no docker/registry/v2 directory; give the registry's rootdirectory",
                    root.display()
                )));
            }
            check_pack(&DirStorage::new(root), None)
        }
        _ => check_pack(&TarStorage::read(member, open_tarball(path)?)?, None),
    };
    record.map_err(|why| Error::usage(format!("member {member}: the registry pack {} would not serve: {why}", path.display())))
}
