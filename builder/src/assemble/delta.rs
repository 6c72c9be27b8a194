//! Delta bundles (`airbin build --base previous.bin`): a registry-pack member leaves
//! out every blob the base bundle already carries (layers and configs; manifests stay,
//! they are small and the pack's check reads them), and records which. At install the
//! restore checks that the registry root holds them (the base's install put them
//! there) before it places anything.

use std::collections::BTreeSet;
use std::path::Path;

use airbin_format::console::Ui;
use airbin_format::error::{Error, Result};
use airbin_format::inventory::Inventory;
use airbin_format::registry_pack::{DirStorage, Storage, TarStorage};
use airbin_format::signature::TrustedKey;
use airbin_format::{Bundle, BundleMeta, DeltaBase, InventoryBase, MemberKind};

/// How the base is known to be the release engineer's own: a key it is signed with,
/// or the SHA-256 of its file (as its `.sha256` says).
pub(crate) struct BaseTrust {
    pub(crate) keys: Vec<TrustedKey>,
    pub(crate) sha256: Option<String>,
}

/// The base of a delta: what the delta's index records of it, and the blobs it carries.
pub(crate) struct Base {
    pub(crate) recorded: Recorded,
    /// Hex digests of the blobs its registry packs carry.
    pub(crate) blobs: BTreeSet<String>,
}

/// What a delta is built against: an earlier bundle, or a site's inventory.
pub(crate) enum Recorded {
    Bundle(DeltaBase),
    Site(InventoryBase),
}

/// A delta for a site (`--base-inventory`): the blobs its registries hold. With a key,
/// the inventory's `.minisig` must hold under it; without one, a wrong inventory can
/// only make a delta the site's preflight refuses, naming the blobs it lacks.
pub(crate) fn inventory_blobs(path: &Path, key: Option<&Path>, ui: &Ui) -> Result<Base> {
    let (inventory, text) = Inventory::read(path)?;
    if let Some(key) = key {
        let mut sig = path.as_os_str().to_owned();
        sig.push(".minisig");
        let signature = std::fs::read(&sig).map_err(|e| {
            Error::integrity(format!(
                "{} cannot be read ({e}): --base-key asks for a signed inventory; sign it on the site: inventory -o site.json --sign KEY",
                Path::new(&sig).display()
            ))
        })?;
        airbin_format::signing::verify_detached(std::io::Cursor::new(&text), &signature, key, &path.display().to_string())?;
    }
    let blobs = inventory.blobs();
    ui.status(format!(
        "delta for {} (inventory taken {}): its registries hold {} blob(s)",
        inventory.host,
        inventory.taken_at,
        blobs.len()
    ));
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&text));
    Ok(Base { recorded: Recorded::Site(InventoryBase { host: inventory.host, taken_at: inventory.taken_at, sha256 }), blobs })
}

/// The blobs (hex digests) the base bundle's registry packs really carry (read and
/// hashed, never taken from its index): what a host with the base installed holds. The
/// base must verify first: a hostile one would have the delta leave out what no host has.
pub(crate) fn base_blobs(base: &Path, meta: &BundleMeta, trust: &BaseTrust, ui: &Ui) -> Result<Base> {
    if trust.keys.is_empty() && trust.sha256.is_none() {
        return Err(Error::usage(format!(
            "--base {}: a delta leaves out what the base carries, so the base must be checked first: give --base-key PUB (its signer's public key; --sign KEY's own is taken too) or --base-sha256 HEX (the SHA-256 its .sha256 file names)",
            base.display()
        )));
    }
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
    ui.status(format!("checking the base bundle {} {}, then reading its blobs", b.name, b.version));
    if let Some(want) = &trust.sha256 {
        let (got, _) = crate::repo::file_sha256(base)?;
        if !got.eq_ignore_ascii_case(want.trim()) {
            return Err(Error::integrity(format!(
                "--base {}: its SHA-256 is {got}, not the {} given with --base-sha256; get the base from the release it belongs to",
                base.display(),
                want.trim()
            )));
        }
        bundle.verify(&[], &|_| {})?;
    }
    if !trust.keys.is_empty() {
        bundle.verify(&trust.keys, &|_| {}).map_err(|e| Error::new(e.class, format!("--base: {}", e.message)))?;
    }
    // What the base carries, hashed: a blob its index says it left out (a delta on a
    // delta) is not taken on its word.
    let mut blobs = BTreeSet::new();
    for member in bundle.index.members.iter().filter(|m| m.kind == MemberKind::RegistryPack) {
        let digests = TarStorage::blob_digests(&member.name, bundle.content_reader(member)?)?;
        blobs.extend(digests.into_iter().filter(|(name, digest)| name == digest).map(|(name, _)| name));
    }
    let (sha256, _) = crate::repo::file_sha256(base)?;
    Ok(Base { recorded: Recorded::Bundle(DeltaBase { version: b.version.clone(), sha256 }), blobs })
}

/// Of the blobs in the registry root `root`, those `base` carries, less the manifests.
pub(crate) fn omit(root: &Path, base: &BTreeSet<String>) -> Result<BTreeSet<String>> {
    let storage = DirStorage::new(root);
    let manifests: BTreeSet<String> = storage
        .link_paths()?
        .iter()
        .filter_map(|link| link.split_once("/_manifests/revisions/sha256/").and_then(|(_, rest)| rest.split('/').next()))
        .map(str::to_string)
        .collect();
    Ok(storage.all_blobs()?.into_iter().filter(|hex| base.contains(hex) && !manifests.contains(hex)).collect())
}
