//! `status --verify`: does the host still hold what the install record and what the
//! install placed say? Images under their tags with the recorded IDs, registry blobs
//! present with the content their digests name (and every tag serving), files extract
//! steps wrote unchanged, the hotfix level. One report; each drift named with the step
//! that repairs it.

use std::path::Path;

use serde::Serialize;

use super::record::Installed;
use super::state::StateDir;
use crate::engines;
use crate::steps::placed::{self, Placed};
use airbin_format::registry_pack::{blob_path, DirStorage, V2};
use airbin_format::Bundle;

/// One thing that no longer matches.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Drift {
    /// `image`, `registry`, `file`, `hotfix`.
    pub(crate) kind: &'static str,
    /// What drifted: a reference, a path, a blob.
    pub(crate) what: String,
    /// How it differs.
    pub(crate) found: String,
    /// The step that puts it back, if a step does.
    pub(crate) step: Option<String>,
    /// What to run to repair it.
    pub(crate) repair: String,
}

/// What was checked, and what drifted.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) images: usize,
    pub(crate) blobs: usize,
    pub(crate) files: usize,
    pub(crate) drift: Vec<Drift>,
}

/// Checks the host against the record of the product `bundle` names. `engine` stands in
/// for the engine each image was loaded into, when given (`--engine`).
pub(crate) fn check(bundle: &Bundle, state: &StateDir, installed: &Installed, engine: Option<&engines::Engine>) -> Report {
    let placed = placed::read(&state.placed());
    let mut report = Report::default();
    let repair = |step: &str| format!("{} install --from {}", crate::shell::bundle(), crate::shell::quote(step));
    check_images(&placed, engine, &mut report, &repair);
    check_registries(bundle, &placed, &mut report, &repair);
    check_files(&placed, &mut report, &repair);
    check_hotfix_level(bundle, installed, &mut report);
    report
}

fn check_images(placed: &Placed, engine: Option<&engines::Engine>, report: &mut Report, repair: &dyn Fn(&str) -> String) {
    for image in &placed.images {
        report.images += 1;
        let engine = engine.cloned().unwrap_or_else(|| image.engine.engine());
        let found = match engines::image_id(&engine, &image.reference) {
            Ok(Some(id)) if strip(&id) == strip(&image.id) => continue,
            Ok(Some(id)) => format!("it names {id}, not {}", image.id),
            Ok(None) => format!("not in {}", engine.name()),
            Err(e) => format!("{} could not be asked ({})", engine.name(), e.message),
        };
        report.drift.push(Drift {
            kind: "image",
            what: image.reference.clone(),
            found,
            step: Some(image.step.clone()),
            repair: repair(&image.step),
        });
    }
}

fn strip(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

fn check_registries(bundle: &Bundle, placed: &Placed, report: &mut Report, repair: &dyn Fn(&str) -> String) {
    for registry in &placed.registries {
        let v2 = registry.root.join(V2);
        for hex in &registry.blobs {
            report.blobs += 1;
            let path = v2.join(blob_path(hex));
            let found = match crate::fsx::file_sha256(&path) {
                Ok(sha) if sha == *hex => continue,
                Ok(sha) => format!("its content has the SHA-256 {sha}"),
                Err(_) => "missing".to_string(),
            };
            report.drift.push(Drift {
                kind: "registry",
                what: format!("blob sha256:{hex} in {}", registry.root.display()),
                found,
                step: Some(registry.step.clone()),
                repair: repair(&registry.step),
            });
        }
        // Every tag the pack carries still serves from the root (links included).
        let record = bundle.index.member(&registry.member).and_then(|m| m.registry.as_ref());
        if let Some(record) = record {
            if let Err(why) = airbin_format::registry_pack::check_pack(&DirStorage::new(&registry.root), Some(record)) {
                if !report.drift.iter().any(|d| d.kind == "registry" && why.contains(d.what.trim_start_matches("blob "))) {
                    report.drift.push(Drift {
                        kind: "registry",
                        what: format!("registry pack {} in {}", registry.member, registry.root.display()),
                        found: why,
                        step: Some(registry.step.clone()),
                        repair: repair(&registry.step),
                    });
                }
            }
        }
    }
}

fn check_files(placed: &Placed, report: &mut Report, repair: &dyn Fn(&str) -> String) {
    for file in placed.files.iter().filter(|f| !f.sha256.is_empty() && !Path::new(&f.path).is_dir()) {
        report.files += 1;
        let found = match crate::fsx::file_sha256(&file.path) {
            Ok(sha) if sha == file.sha256 => continue,
            Ok(_) => "changed since the install".to_string(),
            Err(_) => "missing".to_string(),
        };
        report.drift.push(Drift {
            kind: "file",
            what: file.path.display().to_string(),
            found,
            step: Some(file.step.clone()),
            repair: repair(&file.step),
        });
    }
}

/// A hotfix of the installed version that this host lacks, or an installed version
/// that is not this bundle's.
fn check_hotfix_level(bundle: &Bundle, installed: &Installed, report: &mut Report) {
    let meta = &bundle.index.bundle;
    let sha = bundle.sha256();
    let applied = installed.hotfixes.iter().any(|h| h.sha256 == sha || h.version == meta.version);
    let found = match &meta.hotfix_of {
        Some(base) if *base == installed.version && !applied => {
            format!("{} is installed; hotfix {} is not applied", installed.describe(), meta.version)
        }
        Some(base) if *base != installed.version => format!("{} is installed; this bundle is a hotfix of {base}", installed.describe()),
        None if meta.version != installed.version => format!("{} is installed; this bundle is {}", installed.describe(), meta.version),
        _ => return,
    };
    report.drift.push(Drift {
        kind: "hotfix",
        what: meta.name.clone(),
        found,
        step: None,
        repair: format!("{} install", crate::shell::bundle()),
    });
}
