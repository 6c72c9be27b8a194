//! Delta bundles (`airbin build --base previous.bin`): a registry-pack member leaves
//! out every blob the base bundle already carries (layers and configs; manifests stay,
//! they are small and the pack's check reads them), and records which. At install the
//! restore checks that the registry root holds them (the base's install put them
//! there) before it places anything.

use std::collections::BTreeSet;
use std::path::Path;

use airbin_stub::error::{Error, Result};
use airbin_stub::format::registry_pack::TarStorage;
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
pub fn omit(root: &Path, base: &BTreeSet<String>) -> BTreeSet<String> {
    let v2 = root.join("docker/registry/v2");
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
    };
    let mut manifests = BTreeSet::new();
    for repo in walkdir::WalkDir::new(v2.join("repositories")).into_iter().flatten() {
        if repo.file_name() == "_manifests" {
            manifests.extend(names(&repo.path().join("revisions/sha256")));
        }
    }
    let blobs_dir = v2.join("blobs/sha256");
    let mut omit = BTreeSet::new();
    for prefix in names(&blobs_dir) {
        for hex in names(&blobs_dir.join(&prefix)) {
            if base.contains(&hex) && !manifests.contains(&hex) {
                omit.insert(hex);
            }
        }
    }
    omit
}
