//! A bundle repository, laid out as ZStack's release CDN is: `<name>/<arch>/<version>/`
//! holding each bundle with its `.sha256` (and `.minisig`), and an `index.json` the
//! market syncs from (docs/REPOSITORY.md). `add` places bundles and rewrites the index
//! whole (a temporary, then renamed); `verify` checks every file against it; `states`
//! moves a version through staging, released and yanked.

mod states;
pub(crate) use states::{promote, yank, Named};

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::digest::HashingWriter;
use airbin_format::error::{Error, IoContext, Result};
use airbin_format::files;
use airbin_format::{rules, Bundle};

pub(crate) const INDEX: &str = "index.json";
/// 2: versions have a `state`, entries a `latest`. Format 1 (every version released)
/// is read still.
const FORMAT: u32 = 2;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepoIndex {
    pub(crate) format: u32,
    /// Sorted by name.
    pub(crate) bundles: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
    /// Newest first, then by arch.
    pub(crate) versions: Vec<Version>,
    /// By arch: the newest released full bundle (no delta, no hotfix, nothing staged or
    /// yanked), what a site that asks for "the latest" takes.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) latest: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Version {
    pub(crate) version: String,
    pub(crate) arch: String,
    /// Relative to the repository: `<name>/<arch>/<version>/<file>`.
    pub(crate) path: String,
    pub(crate) size: u64,
    /// Of the whole file, as its `.sha256` says.
    pub(crate) sha256: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) built_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hotfix_of: Option<String>,
    /// The detached minisign signature beside it, when the bundle is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) signature: Option<String>,
    /// A delta: the bundle it needs installed first (version and SHA-256). A site that
    /// has nothing of the product takes the entry without it, the full bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) delta_of: Option<airbin_format::DeltaBase>,
    /// Where it is in its release: absent (format 1) is released.
    #[serde(default, skip_serializing_if = "states::State::is_released")]
    pub(crate) state: states::State,
    /// Why it was yanked, and when it last changed state.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) state_at: String,
}

fn read_index(repo: &Path) -> Result<RepoIndex> {
    let path = repo.join(INDEX);
    match fs::read(&path) {
        Ok(bytes) => {
            let index: RepoIndex = serde_json::from_slice(&bytes).map_err(|e| {
                Error::integrity(format!(
                    "{} is not a bundle repository index ({e}); restore it from a backup, or start a new repository",
                    path.display()
                ))
            })?;
            if index.format > FORMAT {
                return Err(Error::usage(format!(
                    "{} is of repository format {}, newer than this airbin's {FORMAT}: use a newer airbin",
                    path.display(),
                    index.format
                )));
            }
            Ok(index)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RepoIndex { format: FORMAT, bundles: Vec::new() }),
        Err(e) => Err(Error::io(e, "reading", &path)),
    }
}

pub(crate) fn file_sha256(path: &Path) -> Result<(String, u64)> {
    let mut file = fs::File::open(path).ctx("opening", path)?;
    let mut hashing = HashingWriter::new(std::io::sink());
    std::io::copy(&mut file, &mut hashing).ctx("reading", path)?;
    let (_, size, sha256) = hashing.finish();
    Ok((sha256, size))
}

/// Copies `from` to `to` whole or not at all.
fn place(from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().expect("a path in the repository");
    let temp = dir.join(files::temp_name(".place", ".airbin-partial-"));
    let guard = files::RemoveOnDrop::new(temp.clone());
    fs::copy(from, &temp).ctx("copying into", dir)?;
    fs::File::open(&temp).and_then(|f| f.sync_all()).ctx("writing", &temp)?;
    fs::rename(guard.disarm(), to).ctx("writing", to)?;
    Ok(())
}

/// The largest detached signature taken: minisign's are about 300 bytes.
const MAX_SIGNATURE: u64 = 4096;

/// The bundle's detached signature beside it, if there is one: a small regular file
/// (never read through a link, never waited on as a FIFO), a minisign signature by the
/// key that signed the bundle inside, and with `key` checked against the whole file.
fn detached_signature(source: &Path, bundle: &Bundle, path: &Path, key: Option<&Path>) -> Result<Option<Vec<u8>>> {
    let Ok(meta) = fs::symlink_metadata(source) else { return Ok(None) };
    let refuse = |why: String| Error::integrity(format!("{} {why}; remove it, or put the bundle's own signature there", source.display()));
    if !meta.is_file() {
        return Err(refuse("is not a regular file (a link, a FIFO, a directory)".into()));
    }
    let text = files::read_small_nofollow(source, MAX_SIGNATURE + 1).map_err(|e| refuse(format!("cannot be read ({e})")))?;
    if text.len() as u64 > MAX_SIGNATURE {
        return Err(refuse("is larger than a minisign signature".into()));
    }
    let signature = airbin_format::signature::Embedded::parse(&text).map_err(|why| refuse(why.replace("its signature block", "it")))?;
    match bundle.signer_key() {
        Some(id) if id == signature.key_id => {}
        Some(id) => return Err(refuse(format!("is signed by key {}, and the bundle inside by key {id}", signature.key_id))),
        None => return Err(refuse(format!("is signed by key {}, and the bundle is not signed", signature.key_id))),
    }
    if let Some(key) = key {
        let file = fs::File::open(path).ctx("reading", path)?;
        airbin_format::signing::verify_detached(std::io::BufReader::new(file), &text, key, &path.display().to_string()).map_err(
            |e| match e.class {
                airbin_format::error::ExitClass::Integrity => {
                    refuse(format!("does not match the bundle {} under the key {}", path.display(), key.display()))
                }
                _ => e,
            },
        )?;
    }
    Ok(Some(text))
}

/// `airbin repo add`.
pub(crate) fn add(repo: &Path, bundles: &[PathBuf], replace: bool, key: Option<&Path>, staging: bool, ui: &Ui) -> Result<()> {
    fs::create_dir_all(repo).ctx("creating", repo)?;
    let mut index = read_index(repo)?;
    let mut changed = false;
    for path in bundles {
        changed |= add_one(repo, &mut index, path, Placing { replace, key, staging }, ui)?;
    }
    if changed {
        write_index(repo, &mut index)?;
    }
    Ok(())
}

/// Rewrites `index.json` whole (a temporary, then renamed), sorted, with every entry's
/// `latest` worked out again.
fn write_index(repo: &Path, index: &mut RepoIndex) -> Result<()> {
    index.bundles.sort_by(|a, b| a.name.cmp(&b.name));
    index.format = FORMAT;
    for entry in &mut index.bundles {
        entry.latest = states::latest(&entry.versions);
    }
    let text = serde_json::to_vec_pretty(&*index).expect("an index serializes");
    files::write_atomic(&repo.join(INDEX), &text, 0o644)
}

/// The repository's version of a delta's base, if it is a delta.
fn base_of(v: &Version) -> Option<String> {
    v.delta_of.as_ref().map(|b| b.version.clone())
}

/// How the index lists a bundle placed at `rel`.
fn listing(bundle: &Bundle, rel: &str, (size, sha256): (u64, &str), signed: bool, staging: bool) -> Version {
    let meta = &bundle.index.bundle;
    Version {
        version: meta.version.clone(),
        arch: meta.arch.clone(),
        path: rel.to_string(),
        size,
        sha256: sha256.to_string(),
        built_at: bundle.index.build.built_at.clone(),
        hotfix_of: meta.hotfix_of.clone(),
        signature: signed.then(|| format!("{rel}.minisig")),
        delta_of: bundle.index.build.delta_of.clone(),
        state: if staging { states::State::Staging } else { states::State::Released },
        reason: String::new(),
        state_at: if staging { airbin_format::console::timestamp() } else { String::new() },
    }
}

/// How `add` places a bundle.
#[derive(Clone, Copy)]
struct Placing<'a> {
    replace: bool,
    key: Option<&'a Path>,
    /// Listed as staging: not released until `repo promote`.
    staging: bool,
}

/// Places one bundle and lists it in `index`; false when the very file is there already.
fn add_one(repo: &Path, index: &mut RepoIndex, path: &Path, how: Placing, ui: &Ui) -> Result<bool> {
    let Placing { replace, key, staging } = how;
    let bundle = Bundle::open(path)?;
    bundle.verify(&[], &|_| {})?;
    let meta = &bundle.index.bundle;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if rules::unsafe_name(&file_name.replace(".bin", "")).is_some() || !file_name.ends_with(".bin") {
        return Err(Error::usage(format!(
            "{}: a repository takes files named NAME-VERSION-ARCH.bin (a delta: NAME-VERSION-ARCH.delta-from-BASE.bin)",
            path.display()
        )));
    }
    let (sha256, size) = file_sha256(path)?;
    let rel_dir = format!("{}/{}/{}", meta.name, meta.arch, meta.version);
    let rel = format!("{rel_dir}/{file_name}");
    let detached = detached_signature(&path.with_file_name(format!("{file_name}.minisig")), &bundle, path, key)?;
    let version = listing(&bundle, &rel, (size, &sha256), detached.is_some(), staging);
    let entry = match index.bundles.iter_mut().position(|e| e.name == meta.name) {
        Some(at) => &mut index.bundles[at],
        None => {
            index.bundles.push(Entry {
                name: meta.name.clone(),
                description: meta.description.clone(),
                versions: Vec::new(),
                latest: Default::default(),
            });
            index.bundles.last_mut().expect("just pushed")
        }
    };
    // A full bundle and its deltas (one a base) sit side by side.
    let existing = entry.versions.iter().position(|v| v.version == meta.version && v.arch == meta.arch && base_of(v) == base_of(&version));
    if let Some(at) = existing {
        let sums_ok =
            fs::read_to_string(repo.join(format!("{rel}.sha256"))).is_ok_and(|t| t.split_whitespace().next() == Some(sha256.as_str()));
        if states::same_file(&entry.versions[at], &version) && sums_ok && file_sha256(&repo.join(&rel)).is_ok_and(|(s, _)| s == sha256) {
            ui.status(format!("{rel}: in the repository already, the same file"));
            return Ok(false);
        }
        if !replace {
            let what = match &version.delta_of {
                Some(base) => format!("{} {} {} (delta from {})", meta.name, meta.version, meta.arch, base.version),
                None => format!("{} {} {}", meta.name, meta.version, meta.arch),
            };
            let theirs = &entry.versions[at].sha256;
            return Err(Error::usage(format!(
                "{}: the repository has another file for {what} (SHA-256 {}); give --replace to put this one in its place",
                path.display(),
                &theirs[..12.min(theirs.len())]
            )));
        }
        entry.versions.remove(at);
    }
    let dir = repo.join(&rel_dir);
    fs::create_dir_all(&dir).ctx("creating", &dir)?;
    place(path, &repo.join(&rel))?;
    files::write_atomic(&repo.join(format!("{rel}.sha256")), format!("{sha256}  {file_name}\n").as_bytes(), 0o644)?;
    if let Some(text) = &detached {
        files::write_atomic(&repo.join(format!("{rel}.minisig")), text, 0o644)?;
    }
    if !meta.description.is_empty() {
        entry.description = meta.description.clone();
    }
    entry.versions.push(version);
    // Newest first; of one version and arch, the full bundle first.
    entry.versions.sort_by(|a, b| {
        rules::compare_versions(&b.version, &a.version).then_with(|| a.arch.cmp(&b.arch)).then_with(|| base_of(a).cmp(&base_of(b)))
    });
    ui.status(format!("added {rel} ({}, SHA-256 {})", indicatif::HumanBytes(size), &sha256[..12]));
    Ok(true)
}

/// What `verify` found wrong.
#[derive(Debug, Default, Serialize)]
struct Findings {
    missing: Vec<String>,
    altered: Vec<String>,
    extra: Vec<String>,
}

/// `airbin repo verify`: every file the index names, with its size and SHA-256, its
/// `.sha256` and signature; and no file the index does not name.
pub(crate) fn verify(repo: &Path, ui: &Ui) -> Result<()> {
    if !repo.join(INDEX).exists() {
        return Err(Error::usage(format!("{} has no {INDEX}: it is not a bundle repository (airbin repo add makes one)", repo.display())));
    }
    let index = read_index(repo)?;
    let mut found = Findings::default();
    let mut known: BTreeSet<String> = BTreeSet::from([INDEX.to_string()]);
    for entry in &index.bundles {
        for version in &entry.versions {
            check_listed(repo, entry, version, &mut found, &mut known);
        }
        states::check(entry, index.format, &mut found.altered);
    }
    for item in walkdir::WalkDir::new(repo).min_depth(1).into_iter().filter_map(|e| e.ok()) {
        if item.file_type().is_dir() {
            continue;
        }
        let rel = item.path().strip_prefix(repo).expect("under the repository").to_string_lossy().into_owned();
        if !known.contains(&rel) {
            found.extra.push(rel);
        }
    }
    let checked = index.bundles.iter().map(|e| e.versions.len()).sum();
    let counts = states::Counts::of(&index);
    report(repo, checked, counts, found, ui)
}

/// One version the index lists: its file, its `.sha256` and its signature as the index says.
fn check_listed(repo: &Path, entry: &Entry, v: &Version, found: &mut Findings, known: &mut BTreeSet<String>) {
    let safe = !v.path.split('/').any(|part| part.is_empty() || part == ".." || part == ".");
    if !safe {
        found.altered.push(format!("{}: the index names a path outside the repository", v.path));
        return;
    }
    let expected_dir = format!("{}/{}/{}/", entry.name, v.arch, v.version);
    if !v.path.starts_with(&expected_dir) {
        found.altered.push(format!("{}: not under {expected_dir}", v.path));
    }
    known.insert(v.path.clone());
    known.insert(format!("{}.sha256", v.path));
    match file_sha256(&repo.join(&v.path)) {
        Err(_) => found.missing.push(v.path.clone()),
        Ok((sha, size)) if sha != v.sha256 || size != v.size => found.altered.push(format!(
            "{}: SHA-256 {} and {size} bytes; the index says {} and {} bytes",
            v.path,
            &sha[..12],
            &v.sha256[..12.min(v.sha256.len())],
            v.size
        )),
        Ok(_) => {}
    }
    match fs::read_to_string(repo.join(format!("{}.sha256", v.path))) {
        Err(_) => found.missing.push(format!("{}.sha256", v.path)),
        Ok(text) if text.split_whitespace().next() != Some(v.sha256.as_str()) => {
            found.altered.push(format!("{}.sha256: does not say the index's SHA-256", v.path))
        }
        Ok(_) => {}
    }
    if let Some(sig) = &v.signature {
        known.insert(sig.clone());
        if !repo.join(sig).exists() {
            found.missing.push(sig.clone());
        }
    }
}

#[derive(Serialize)]
struct VerifiedRepo<'a> {
    repository: &'a Path,
    files_checked: usize,
    states: states::Counts,
    ok: bool,
    findings: &'a Findings,
}

fn report(repo: &Path, checked: usize, counts: states::Counts, found: Findings, ui: &Ui) -> Result<()> {
    let bad = found.missing.len() + found.altered.len() + found.extra.len();
    let error = (bad > 0).then(|| {
        Error::integrity(format!(
            "{}: {} missing, {} altered, {} extra; restore those files from the release (or airbin repo add --replace), and remove the extra ones",
            repo.display(),
            found.missing.len(),
            found.altered.len(),
            found.extra.len()
        ))
    });
    if ui.json {
        let body = VerifiedRepo { repository: repo, files_checked: checked, states: counts, ok: bad == 0, findings: &found };
        print_json(&Envelope::ended("repo verify", error.as_ref(), body));
    } else if !ui.quiet {
        for (what, list) in [("missing", &found.missing), ("altered", &found.altered), ("extra", &found.extra)] {
            for item in list {
                out_line(&format!("{what}: {item}"));
            }
        }
        if bad == 0 {
            out_line(&format!(
                "{}: {checked} bundle(s) ({} released, {} staging, {} yanked), every file as the index says",
                repo.display(),
                counts.released,
                counts.staging,
                counts.yanked
            ));
        }
    }
    error.map_or(Ok(()), Err)
}
