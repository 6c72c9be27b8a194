//! The bundle under test and the earlier releases it must upgrade from: read through the
//! format crate (each checked on open), the earlier ones found in a directory of `.bin`
//! files or an `airbin repo` repository (`<name>/<arch>/<version>/`), same product and
//! arch, older versions only, oldest first.

use std::path::{Path, PathBuf};

use airbin_format::error::{Error, Result};
use airbin_format::Bundle;

#[derive(Clone, Debug)]
pub(crate) struct UnderTest {
    pub(crate) path: PathBuf,
    /// Its file name, as it is copied to the machines.
    pub(crate) file: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) arch: String,
    /// It has node roles (a management-node list in its config): a pair applies.
    pub(crate) roles: bool,
    /// It needs a config (required keys, node lists, required parameters).
    pub(crate) needs_config: bool,
}

impl UnderTest {
    pub(crate) fn open(path: &Path) -> Result<UnderTest> {
        if !path.is_file() {
            return Err(Error::usage(format!("{}: no such bundle; give the path of the .bin to test", path.display())));
        }
        let bundle = Bundle::open(path)?;
        let index = &bundle.index;
        let needs_config = !index.config.is_empty() || index.parameters.iter().any(|p| p.required && p.default.is_none());
        Ok(UnderTest {
            path: airbin_format::files::absolute(path),
            file: path.file_name().map_or_else(|| "bundle.bin".into(), |n| n.to_string_lossy().into_owned()),
            name: index.bundle.name.clone(),
            version: index.bundle.version.clone(),
            arch: index.bundle.arch.clone(),
            roles: index.config.management_nodes_key.is_some(),
            needs_config,
        })
    }

    /// Where the runtime keeps this product's state on a machine (as root).
    pub(crate) fn state_dir(&self) -> String {
        format!("/var/lib/airbin/{}", self.name)
    }
}

/// The earlier releases of `new` under `dir`, oldest first.
pub(crate) fn previous(dir: &Path, new: &UnderTest) -> Result<Vec<UnderTest>> {
    if !dir.is_dir() {
        return Err(Error::usage(format!(
            "--previous {}: not a directory (give a directory of .bin files or a bundle repository)",
            dir.display()
        )));
    }
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(false).into_iter().filter_map(std::result::Result::ok) {
        let path = entry.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // Deltas install only over their base: an upgrade starts from a full bundle.
        if !entry.file_type().is_file() || !name.ends_with(".bin") || name.contains(".delta-from-") {
            continue;
        }
        let Ok(bundle) = UnderTest::open(path) else { continue };
        let older = airbin_format::rules::compare_versions(&bundle.version, &new.version) == std::cmp::Ordering::Less;
        if bundle.name == new.name && bundle.arch == new.arch && older && !found.iter().any(|b: &UnderTest| b.version == bundle.version) {
            found.push(bundle);
        }
    }
    found.sort_by(|a, b| airbin_format::rules::compare_versions(&a.version, &b.version));
    Ok(found)
}
