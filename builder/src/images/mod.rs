//! Image inputs without scripts: an `image` or `registry-pack` member may list its
//! images (`images:`, or `images_file:`) and say where they come from (`from:` a
//! registry, `docker-daemon`, or `oci:DIR`) instead of giving a `path:`. `airbin build`
//! resolves every reference (pinned by `bundle.lock` once resolved), fetches every blob
//! into the cache, a few at a time, and writes the member's input itself: a registry's
//! storage tree, or a docker-archive. Every image that cannot be had is named in one
//! report, and nothing is built.

mod cache;
mod command;
mod fetch;
mod lock;
pub(crate) mod manifest;
pub(crate) mod reference;
mod source;
mod write;

pub(crate) use command::fetch;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use airbin_format::console::Ui;
use airbin_format::error::{Error, Result};
use airbin_format::MemberKind;

use crate::assemble::spec::{LoadedSpec, MemberSpec};
use cache::Cache;
use fetch::Want;
use lock::{Lock, Locked};
use manifest::{Descriptor, Parsed};
use reference::Reference;
use source::ImageSource;

/// A manifest (or index) as the source served it: its bytes are its digest.
pub(crate) struct Stored {
    pub(crate) digest: String,
    pub(crate) bytes: Vec<u8>,
}

/// One platform's image manifest, and what it names.
pub(crate) struct ImageManifest {
    pub(crate) digest: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) config: Descriptor,
    pub(crate) layers: Vec<Descriptor>,
}

/// A reference resolved: what its tag points at in the bundle (`top`: the platform's
/// manifest, or the index with `platforms: all`) and every image manifest under it.
pub(crate) struct Resolved {
    pub(crate) reference: Reference,
    pub(crate) top: Stored,
    pub(crate) manifests: Vec<ImageManifest>,
    pub(crate) platform: String,
}

/// Whether any member of the spec is made from an image list.
pub(crate) fn any(loaded: &LoadedSpec) -> bool {
    loaded.spec.members.iter().any(MemberSpec::is_listed)
}

/// What `prepare` made: the members' inputs, in a work directory that lives as long as
/// this does, and the lock to write once the bundle is.
pub(crate) struct Prepared {
    _work: tempfile::TempDir,
    lock: Option<(PathBuf, Lock)>,
}

impl Prepared {
    /// Writes `bundle.lock` if it changed: called once the bundle is in place, so that a
    /// failed build leaves the lock as it was.
    pub(crate) fn write_lock(&self, ui: &Ui) -> Result<()> {
        if let Some((spec_dir, lock)) = &self.lock {
            lock::write(spec_dir, lock)?;
            ui.status(format!("wrote {}: the digests these images resolved to", lock::path(spec_dir).display()));
        }
        Ok(())
    }
}

/// Makes the input of every member given as an image list and sets those members'
/// inputs to what it wrote; every image that cannot be had fails the build, together.
pub(crate) fn prepare(loaded: &mut LoadedSpec, update_lock: bool, ui: &Ui) -> Result<Option<Prepared>> {
    if !any(loaded) {
        return Ok(None);
    }
    let spec_dir = loaded.file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let cache = Cache::open()?;
    let work = tempfile::Builder::new().prefix("work-").tempdir_in(cache.root()).map_err(|e| Error::io(e, "creating", cache.root()))?;
    let old = lock::read(&spec_dir)?;
    let mut new = Lock { lock: 1, members: Default::default() };
    let mut failures = Vec::new();
    let mut made = Vec::new();
    for (i, member) in loaded.spec.members.iter().enumerate().filter(|(_, m)| m.is_listed()) {
        let pins = Pins { lock: &old, member: &member.name, from: member.from.as_deref().unwrap_or_default(), ignore: update_lock };
        let options = Options { arch: &loaded.spec.arch, all: member.all_platforms(), member, cache: &cache };
        let resolved = fetch_member(&spec_dir, &pins, &options, &mut failures, ui)?;
        new.members.insert(member.name.clone(), resolved.iter().map(|r| lock_entry(r, pins.from)).collect());
        made.push((i, resolved));
    }
    if !failures.is_empty() {
        return Err(report(&failures, ui));
    }
    for (i, resolved) in made {
        let member = &loaded.spec.members[i];
        let out = work.path().join(&member.name);
        write_member(member, &resolved, &cache, &out, work.path(), ui)?;
        loaded.inputs[i] = out;
    }
    let lock = (new != old).then_some((spec_dir, new));
    Ok(Some(Prepared { _work: work, lock }))
}

/// The member's input at `out`: a registry's storage tree, or a docker-archive (its
/// layers unpacked under `work` on the way).
fn write_member(member: &MemberSpec, resolved: &[Resolved], cache: &Cache, out: &Path, work: &Path, ui: &Ui) -> Result<()> {
    match member.kind {
        MemberKind::RegistryPack => write::registry_tree(resolved, cache, out)?,
        _ => write::docker_archive(resolved, cache, out, work)?,
    }
    ui.status(format!("{}: {} image(s) from {}", member.name, resolved.len(), member.from.as_deref().unwrap_or("")));
    Ok(())
}

/// What the lock pins for one member's references (nothing with `--update-lock`).
struct Pins<'a> {
    lock: &'a Lock,
    member: &'a str,
    from: &'a str,
    ignore: bool,
}

impl Pins<'_> {
    fn of(&self, reference: &Reference) -> Option<Locked> {
        self.lock.find(self.member, &reference.written, self.from).filter(|_| !self.ignore).cloned()
    }
}

/// One member's images resolved and their blobs in the cache; what failed is added to
/// `failures`.
fn fetch_member(spec_dir: &Path, pins: &Pins, options: &Options, failures: &mut Vec<Failure>, ui: &Ui) -> Result<Vec<Resolved>> {
    let member = options.member;
    let source = source::open(member, spec_dir, options.cache)?;
    let references = list(member, spec_dir)?;
    let failed = |reference: &Reference, reason: String| Failure {
        member: member.name.clone(),
        reference: reference.written.clone(),
        source: source.name(),
        reason,
    };
    let mut resolved = Vec::new();
    for reference in &references {
        match resolve_pinned(source.as_ref(), reference, pins.of(reference), options) {
            Ok(image) => resolved.push(image),
            Err(why) => failures.push(failed(reference, why)),
        }
    }
    let wants: Vec<Want> = wanted(source.as_ref(), &resolved);
    let blobs: Vec<Vec<String>> = resolved.iter().map(blobs_of).collect();
    for (digest, why) in fetch::fetch_all(&wants, &blobs, options.cache, ui) {
        for image in resolved.iter().filter(|r| r.manifests.iter().any(|m| names(m, &digest))) {
            failures.push(failed(&image.reference, format!("{digest}: {why}")));
        }
    }
    Ok(resolved)
}

/// The references a member lists: `images`, then `images_file`'s.
fn list(member: &MemberSpec, spec_dir: &Path) -> Result<Vec<Reference>> {
    let file = member.images_file.as_ref().map(|f| spec_dir.join(f));
    reference::read_list(&member.images, file.as_deref()).map_err(|why| Error::usage(format!("member {}: {why}", member.name)))
}

struct Options<'a> {
    arch: &'a str,
    all: bool,
    member: &'a MemberSpec,
    cache: &'a Cache,
}

/// A reference resolved at what the lock pins (the manifest; for the engine, the
/// image's ID), or at its tag.
fn resolve_pinned(
    source: &dyn ImageSource,
    reference: &Reference,
    pin: Option<Locked>,
    options: &Options,
) -> std::result::Result<Resolved, String> {
    let at = match (pin, source.name() == "docker-daemon") {
        (Some(p), true) => p.id.unwrap_or(p.digest),
        (Some(p), false) => p.digest,
        (None, _) => reference.tag.clone(),
    };
    resolve(source, reference, &at, options)
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The manifest `at` names, checked against its digest when `at` is one, and the
/// platform's image manifest under an index (every one, with `platforms: all`).
fn resolve(source: &dyn ImageSource, reference: &Reference, at: &str, options: &Options) -> std::result::Result<Resolved, String> {
    let fetched = manifest_at(source, reference, at, options.cache)?;
    let digest = digest_of(&fetched.bytes);
    if at.starts_with("sha256:") && source.name() != "docker-daemon" && digest != at {
        return Err(format!("the source served {digest} for {at}"));
    }
    let top = Stored { digest, bytes: fetched.bytes };
    match manifest::parse(&top.bytes, &fetched.media_type)? {
        Parsed::Image { config, layers } => {
            let image = ImageManifest { digest: top.digest.clone(), bytes: top.bytes.clone(), config, layers };
            Ok(Resolved { reference: reference.clone(), top, manifests: vec![image], platform: format!("linux/{}", options.arch) })
        }
        Parsed::Index { manifests } if options.all && options.member.kind == MemberKind::RegistryPack => {
            let images =
                manifests.iter().map(|m| child(source, reference, &m.digest, options.cache)).collect::<std::result::Result<_, _>>()?;
            Ok(Resolved { reference: reference.clone(), top, manifests: images, platform: "all".into() })
        }
        Parsed::Index { manifests } => {
            let chosen = manifest::pick(&manifests, options.arch).ok_or_else(|| {
                let offered: Vec<String> = manifests.iter().filter_map(|m| m.platform.as_ref()).map(|p| p.describe()).collect();
                format!("it has no linux/{} image (it has {})", options.arch, offered.join(", "))
            })?;
            let image = child(source, reference, &chosen.digest, options.cache)?;
            let top = Stored { digest: image.digest.clone(), bytes: image.bytes.clone() };
            Ok(Resolved { reference: reference.clone(), top, manifests: vec![image], platform: format!("linux/{}", options.arch) })
        }
    }
}

fn child(source: &dyn ImageSource, reference: &Reference, digest: &str, cache: &Cache) -> std::result::Result<ImageManifest, String> {
    let fetched = manifest_at(source, reference, digest, cache)?;
    let got = digest_of(&fetched.bytes);
    if got != digest {
        return Err(format!("the source served {got} for {digest}"));
    }
    match manifest::parse(&fetched.bytes, &fetched.media_type)? {
        Parsed::Image { config, layers } => Ok(ImageManifest { digest: got, bytes: fetched.bytes, config, layers }),
        Parsed::Index { .. } => Err(format!("{digest} is an index inside an index")),
    }
}

/// The manifest `at` names: from the cache when `at` is a digest it holds (a locked
/// rebuild with a warm cache asks the source nothing), else from the source, and kept.
/// The engine's manifests are made up from its image, so they are not kept.
fn manifest_at(source: &dyn ImageSource, reference: &Reference, at: &str, cache: &Cache) -> std::result::Result<source::Fetched, String> {
    let daemon = source.name() == "docker-daemon";
    if at.starts_with("sha256:") && !daemon {
        if let Some(bytes) = cache.read_present(at) {
            return Ok(source::Fetched { media_type: manifest::media_type_of(&bytes, ""), bytes });
        }
    }
    let fetched = source.manifest(reference, at)?;
    if !daemon {
        let digest = digest_of(&fetched.bytes);
        let _ = cache.store(&digest, &mut |out| out.write_all(&fetched.bytes).map_err(|e| e.to_string()));
    }
    Ok(fetched)
}

fn names(manifest: &ImageManifest, digest: &str) -> bool {
    manifest.config.digest == digest || manifest.layers.iter().any(|l| l.digest == digest)
}

fn blobs_of(image: &Resolved) -> Vec<String> {
    image.manifests.iter().flat_map(|m| std::iter::once(&m.config).chain(&m.layers)).map(|b| b.digest.clone()).collect()
}

/// Every config and layer the images need (foreign layers are not the source's).
fn wanted<'a>(source: &'a dyn ImageSource, resolved: &'a [Resolved]) -> Vec<Want<'a>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut wants = Vec::new();
    for image in resolved {
        for manifest in &image.manifests {
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers).filter(|b| b.urls.is_empty()) {
                if seen.insert(blob.digest.clone()) {
                    wants.push(Want { source, reference: &image.reference, digest: blob.digest.clone(), size: blob.size });
                }
            }
        }
    }
    wants
}

fn lock_entry(resolved: &Resolved, from: &str) -> Locked {
    let size = resolved.manifests.iter().flat_map(|m| std::iter::once(&m.config).chain(&m.layers)).map(|b| b.size).sum();
    let id = (resolved.manifests.len() == 1).then(|| resolved.manifests[0].config.digest.clone());
    Locked {
        reference: resolved.reference.written.clone(),
        from: from.to_string(),
        digest: resolved.top.digest.clone(),
        id,
        platform: resolved.platform.clone(),
        size,
    }
}

/// One image that could not be had, as the report and `--json` list it.
#[derive(serde::Serialize)]
struct Failure {
    member: String,
    reference: String,
    source: String,
    reason: String,
}

/// Every image that could not be had, in one error: reference, source, reason; with
/// `--json`, the build's document lists them under `image_failures`.
fn report(failures: &[Failure], ui: &Ui) -> Error {
    let mut message = format!(
        "{} image(s) could not be had; nothing was built: fix each (the reference, the source's address or credentials), then build again",
        failures.len()
    );
    for f in failures {
        message.push_str(&format!("\n  - {} (member {}) from {}: {}", f.reference, f.member, f.source, f.reason));
    }
    let error = Error::host(message);
    if ui.json {
        let body = serde_json::json!({ "image_failures": failures });
        airbin_format::console::print_json(&airbin_format::console::Envelope::ended("build", Some(&error), body));
    }
    error
}
