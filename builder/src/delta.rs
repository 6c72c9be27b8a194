//! Delta bundles (`airbin build --base previous.bin`): a registry-pack member leaves
//! out every blob the base bundle already carries (layers and configs; manifests stay,
//! they are small and the pack's check reads them), and records which. At install the
//! restore checks that the registry root holds them (the base's install put them
//! there) before it places anything.

use std::collections::BTreeSet;
use std::path::Path;

use airbin_stub::error::{Error, Result};
use airbin_stub::format::registry_pack::{DirStorage, Storage, TarStorage};
use airbin_stub::format::{Bundle, BundleMeta, MemberKind};
use airbin_stub::progress::Ui;

/// The blobs (hex digests) the base bundle's registry packs carry or themselves leave
/// out (a delta on a delta): what a host with the base installed holds.
pub fn base_blobs(base: &Path, meta: &BundleMeta, ui: &Ui) -> Result<BTreeSet<String>> {
    let bundle = Bundle::open(base)?;
    let b = &bundle.index.bundle;
    if b.name != meta.name || b.arch != meta.arch {
        return Err(Error::usage(format!(
            "--base {}: it is {} {} for {}, and this build is {} for {}; give an earlier build of the same product and arch",
            base.display(),
            b.name,
            b.version,
            b.arch,
            meta.name,
            meta.arch
        )));
    }
    ui.status(format!("reading the blobs of the base bundle {} {}", b.name, b.version));
    bundle.verify(&[], &|_| {})?;
    let mut blobs = BTreeSet::new();
    for member in bundle.index.members.iter().filter(|m| m.kind == MemberKind::RegistryPack) {
        let digests = TarStorage::blob_digests(&member.name, bundle.content_reader(member)?)?;
        blobs.extend(digests.into_iter().filter(|(name, digest)| name == digest).map(|(name, _)| name));
        let omitted = member.registry.iter().flat_map(|r| &r.omitted);
        blobs.extend(omitted.filter_map(|d| d.strip_prefix("sha256:")).map(str::to_string));
    }
    Ok(blobs)
}

/// Of the blobs in the registry root `root`, those `base` carries, less the manifests.
pub fn omit(root: &Path, base: &BTreeSet<String>) -> Result<BTreeSet<String>> {
    let storage = DirStorage::new(root);
    let manifests: BTreeSet<String> = storage
        .link_paths()?
        .iter()
        .filter_map(|link| link.split_once("/_manifests/revisions/sha256/").and_then(|(_, rest)| rest.split('/').next()))
        .map(str::to_string)
        .collect();
    Ok(storage.all_blobs()?.into_iter().filter(|hex| base.contains(hex) && !manifests.contains(hex)).collect())
}
