//! The removal parts of an uninstall: what the install placed goes, and only that
//! (what another product's record names, what changed since, what was there before
//! stays, and is listed).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airbin_format::error::{Error, Result};
use airbin_format::registry_pack::{blob_path, V2};

use crate::engines::{self, Removed};
use crate::install::state::StateDir;
use crate::steps::placed::{self, Placed};
use crate::ui::Ui;

/// What an uninstall leaves, and why: files changed since the install or there before
/// it, images another product's record names.
pub(crate) fn kept(state: &StateDir, placed: &Placed) -> Vec<String> {
    let others = of_other_products(state);
    let mut kept = Vec::new();
    for image in placed.images.iter().filter(|i| i.placed) {
        if others.iter().any(|o| o.has_image(&image.engine, &image.reference)) {
            kept.push(format!("image {}: another installed product's record names it", image.reference));
        }
    }
    for image in placed.images.iter().filter(|i| !i.placed) {
        kept.push(format!("image {}: it was there before the install", image.reference));
    }
    for file in &placed.files {
        match file_verdict(file) {
            FileVerdict::Changed => kept.push(format!("{}: changed since the install", file.path.display())),
            FileVerdict::WasThere => {
                kept.push(format!("{}: it was there before the install (it holds the bundle's copy now)", file.path.display()))
            }
            _ => {}
        }
    }
    kept
}

#[derive(PartialEq, Eq)]
pub(crate) enum FileVerdict {
    Remove,
    Changed,
    WasThere,
    Gone,
    /// A directory (a tree member's root): its files are listed on their own.
    Tree,
}

pub(crate) fn file_verdict(file: &placed::PlacedFile) -> FileVerdict {
    let Ok(meta) = std::fs::symlink_metadata(&file.path) else { return FileVerdict::Gone };
    if meta.is_dir() {
        return FileVerdict::Tree;
    }
    if file.existed_before {
        return FileVerdict::WasThere;
    }
    match crate::fsx::file_sha256(&file.path) {
        Ok(sha) if !file.sha256.is_empty() && sha == file.sha256 => FileVerdict::Remove,
        _ => FileVerdict::Changed,
    }
}

pub(crate) fn remove_images(placed: &Placed, others: &[Placed], ui: &Ui) -> Result<String> {
    let (mut removed, mut absent, mut kept) = (0, 0, 0);
    for image in placed.images.iter().filter(|i| i.placed) {
        if others.iter().any(|o| o.has_image(&image.engine, &image.reference)) {
            kept += 1;
            continue;
        }
        crate::interrupt::check()?;
        let engine = image.engine.engine();
        match engines::remove_image(&engine, &image.reference)? {
            Removed::Yes => removed += 1,
            Removed::NotThere => absent += 1,
            Removed::InUse(why) => {
                return Err(Error::step(format!(
                "{} refused to remove {} ({why}): remove what uses it (docker ps -a --filter ancestor={}), then run the uninstall again",
                engine.name(),
                image.reference,
                image.reference
            )))
            }
        }
        ui.status(format!("removed {} from {}", image.reference, engine.name()));
    }
    Ok(format!("{removed} image reference(s) removed, {absent} gone already, {kept} kept (another product's)"))
}

pub(crate) fn remove_registry_files(placed: &Placed, others: &[Placed]) -> Result<String> {
    let mut removed = 0;
    let mut kept_blobs = 0;
    for registry in &placed.registries {
        let root = &registry.root;
        let ours = |rel: &str| !others.iter().any(|o| o.has_registry_file(root, rel));
        let (blobs, links): (Vec<&String>, Vec<&String>) = registry.files.iter().filter(|f| ours(f)).partition(|f| f.contains("/blobs/"));
        for rel in links {
            removed += remove_file_in(root, rel);
        }
        let referenced = referenced_blobs(root);
        for rel in blobs {
            let hex =
                Path::new(rel.as_str()).parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if referenced.contains(&hex) {
                kept_blobs += 1;
                continue;
            }
            removed += remove_file_in(root, rel);
        }
        let mut dirs: Vec<&String> = registry.dirs.iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for dir in dirs {
            let _ = std::fs::remove_dir(root.join(dir));
        }
        // Blob directories the pack's files lived in, emptied.
        for rel in registry.files.iter() {
            let mut dir = Path::new(rel.as_str()).parent();
            while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && registry.dirs.iter().any(|x| Path::new(x) == *d)) {
                let _ = std::fs::remove_dir(root.join(d));
                dir = d.parent();
            }
        }
        if registry.created_root {
            let _ = std::fs::remove_dir(root);
        }
    }
    Ok(format!("{removed} file(s) removed, {kept_blobs} blob(s) kept (still referenced)"))
}

/// Removes `rel` below `root` when it is a regular file (never through a link); 1 if it went.
fn remove_file_in(root: &Path, rel: &str) -> usize {
    let path = root.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() => usize::from(std::fs::remove_file(&path).is_ok()),
        _ => 0,
    }
}

/// Every blob (hex) something left in the root references: each link, and what each
/// manifest a revision link names lists (its config, layers and sub-manifests).
fn referenced_blobs(root: &Path) -> BTreeSet<String> {
    let mut referenced = BTreeSet::new();
    let repositories = root.join(V2).join("repositories");
    let mut manifests = Vec::new();
    for (path, is_dir) in crate::fsx::walk(&repositories) {
        if is_dir || path.file_name().is_none_or(|n| n != "link") {
            continue;
        }
        let Ok(text) = crate::fsx::read_small_nofollow(&path, 4096) else { continue };
        let Some(hex) = String::from_utf8_lossy(&text).strip_prefix("sha256:").map(str::to_string) else { continue };
        if path.to_string_lossy().contains("/_manifests/revisions/") {
            manifests.push(hex.clone());
        }
        referenced.insert(hex);
    }
    for hex in manifests {
        let Ok(raw) = crate::fsx::read_small_nofollow(&root.join(V2).join(blob_path(&hex)), 4 << 20) else { continue };
        let value: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
        let digests = value.pointer("/config/digest").into_iter().chain(
            ["layers", "manifests"]
                .iter()
                .flat_map(|k| value.get(*k).and_then(|v| v.as_array()).into_iter().flatten().filter_map(|d| d.get("digest"))),
        );
        for digest in digests.filter_map(|d| d.as_str()) {
            if let Some(hex) = digest.strip_prefix("sha256:") {
                referenced.insert(hex.to_string());
            }
        }
    }
    referenced
}

pub(crate) fn remove_files(placed: &Placed, others: &[Placed]) -> Result<String> {
    let mut removed = 0;
    let mut kept = 0;
    for file in &placed.files {
        if others.iter().any(|o| o.has_file(&file.path)) {
            kept += 1;
            continue;
        }
        match file_verdict(file) {
            FileVerdict::Remove => removed += usize::from(std::fs::remove_file(&file.path).is_ok()),
            FileVerdict::Changed | FileVerdict::WasThere => kept += 1,
            FileVerdict::Gone | FileVerdict::Tree => {}
        }
    }
    let mut dirs: Vec<&PathBuf> = placed.dirs.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let mut dirs_removed = 0;
    for dir in dirs {
        dirs_removed += usize::from(std::fs::remove_dir(dir).is_ok());
    }
    Ok(format!("{removed} file(s) and {dirs_removed} directory(ies) removed, {kept} file(s) kept (changed, or there before)"))
}

pub(crate) fn remove_record(state: &StateDir) -> Result<String> {
    crate::install::record::remove(state);
    crate::install::remembered::forget_all(state);
    placed::remove(&state.placed());
    crate::install::verified::forget(state);
    Ok("the install record, the remembered answers and what was placed are forgotten".into())
}

/// What the other products installed on this host placed: what an uninstall must
/// leave (an image another product's record names stays). The state directories
/// beside this one.
pub(crate) fn of_other_products(state: &StateDir) -> Vec<Placed> {
    let Some(parent) = state.root.parent() else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(parent) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.path() != state.root && e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| placed::read(&StateDir { root: e.path() }.placed()))
        .filter(|p| !p.is_empty())
        .collect()
}
