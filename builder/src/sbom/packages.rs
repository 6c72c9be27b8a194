//! The operating-system packages of an image: its layers applied in order (files
//! written, whiteouts, opaque directories), the package databases read after each layer
//! that touched them, and each package credited to the layer from which on it has been
//! installed at the version it has in the image.

use std::collections::{BTreeMap, HashMap};

use super::layers::{LayerScan, APK_INSTALLED, DPKG_STATUS, DPKG_STATUS_D, OS_RELEASE, RPM_DATABASES};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Ecosystem {
    Deb,
    Apk,
}

impl Ecosystem {
    pub(crate) fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Package {
    pub(crate) ecosystem: Ecosystem,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) arch: String,
    /// The source package (Debian `Source:`) or origin (Alpine `o:`), when it differs.
    pub(crate) source: Option<String>,
    /// As the database declares it (Alpine `L:`); Debian's status file has none.
    pub(crate) license: Option<String>,
    /// Index of the layer it came from, in the image's order.
    pub(crate) layer: usize,
}

/// `ID` and `VERSION_ID` of the image's os-release.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OsRelease {
    pub(crate) id: String,
    pub(crate) version_id: String,
    pub(crate) pretty_name: String,
}

/// What an image's layers add up to.
#[derive(Debug, Default)]
pub(crate) struct ImagePackages {
    pub(crate) packages: Vec<Package>,
    pub(crate) os: Option<OsRelease>,
    /// Package databases found and not read (RPM), by path.
    pub(crate) not_read: Vec<String>,
}

/// Applies the layers in order and lists the packages of the result.
pub(crate) fn of_image(layers: &[&LayerScan]) -> ImagePackages {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    // (ecosystem, name, arch) → (version, layer it has been at that version since)
    let mut since: HashMap<(Ecosystem, String, String), (String, usize)> = HashMap::new();
    let mut current = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let below: Vec<String> = files.keys().cloned().collect();
        for dir in &layer.opaque {
            below.iter().filter(|p| p.starts_with(&format!("{dir}/"))).for_each(|p| drop(files.remove(p)));
        }
        for gone in &layer.removed {
            below.iter().filter(|p| *p == gone || p.starts_with(&format!("{gone}/"))).for_each(|p| drop(files.remove(p)));
        }
        for (path, content) in &layer.put {
            files.insert(path.clone(), content.clone());
        }
        let touched = !(layer.put.is_empty() && layer.removed.is_empty() && layer.opaque.is_empty());
        if index == 0 || touched {
            current = read_databases(&files);
            let before = std::mem::take(&mut since);
            for package in &mut current {
                let key = (package.ecosystem, package.name.clone(), package.arch.clone());
                let from = match before.get(&key) {
                    Some((version, from)) if *version == package.version => *from,
                    _ => index,
                };
                package.layer = from;
                since.insert(key, (package.version.clone(), from));
            }
        }
    }
    let os = OS_RELEASE.iter().find_map(|path| files.get(*path)).map(|text| os_release(&String::from_utf8_lossy(text)));
    let not_read = RPM_DATABASES.iter().filter(|p| files.contains_key(**p)).map(|p| p.to_string()).collect();
    current.sort_by(|a, b| (a.ecosystem, &a.name, &a.arch).cmp(&(b.ecosystem, &b.name, &b.arch)));
    ImagePackages { packages: current, os, not_read }
}

fn read_databases(files: &BTreeMap<String, Vec<u8>>) -> Vec<Package> {
    let mut out = Vec::new();
    if let Some(status) = files.get(DPKG_STATUS) {
        out.extend(dpkg_status(&String::from_utf8_lossy(status)));
    }
    for (_, status) in files.range(DPKG_STATUS_D.to_string()..).take_while(|(p, _)| p.starts_with(DPKG_STATUS_D)) {
        out.extend(dpkg_status(&String::from_utf8_lossy(status)));
    }
    if let Some(installed) = files.get(APK_INSTALLED) {
        out.extend(apk_installed(&String::from_utf8_lossy(installed)));
    }
    out
}

/// Paragraphs of `Field: value` lines (continuation lines start with a space), as
/// dpkg's status file and Alpine's installed database (`K:value`) both are.
fn paragraphs<'a>(text: &'a str, separator: char) -> impl Iterator<Item = Vec<(&'a str, &'a str)>> + 'a {
    text.split("\n\n").map(move |paragraph| {
        paragraph
            .lines()
            .filter(|line| !line.starts_with([' ', '\t']))
            .filter_map(|line| line.split_once(separator))
            .map(|(key, value)| (key.trim(), value.trim()))
            .collect()
    })
}

fn field<'a>(fields: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).filter(|v| !v.is_empty())
}

/// The packages dpkg holds as installed (`Status: install ok installed`, and the
/// states that still have files on disk: half-configured, unpacked, triggers-*);
/// what was removed with its config files kept (`config-files`) or never installed is
/// not there.
pub(crate) fn dpkg_status(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for fields in paragraphs(text, ':') {
        let (Some(name), Some(version)) = (field(&fields, "Package"), field(&fields, "Version")) else { continue };
        let state = field(&fields, "Status").and_then(|s| s.split_whitespace().nth(2)).unwrap_or("installed");
        if matches!(state, "not-installed" | "config-files") {
            continue;
        }
        // `Source: name (version)` when the source's version differs.
        let source = field(&fields, "Source").map(|s| s.split_whitespace().next().unwrap_or(s).to_string()).filter(|s| s != name);
        out.push(Package {
            ecosystem: Ecosystem::Deb,
            name: name.to_string(),
            version: version.to_string(),
            arch: field(&fields, "Architecture").unwrap_or("").to_string(),
            source,
            license: None,
            layer: 0,
        });
    }
    out
}

/// The packages of Alpine's `lib/apk/db/installed`: `P:` name, `V:` version, `A:` arch,
/// `o:` origin, `L:` license, one paragraph a package.
pub(crate) fn apk_installed(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for fields in paragraphs(text, ':') {
        let (Some(name), Some(version)) = (field(&fields, "P"), field(&fields, "V")) else { continue };
        out.push(Package {
            ecosystem: Ecosystem::Apk,
            name: name.to_string(),
            version: version.to_string(),
            arch: field(&fields, "A").unwrap_or("").to_string(),
            source: field(&fields, "o").filter(|o| *o != name).map(str::to_string),
            license: field(&fields, "L").map(str::to_string),
            layer: 0,
        });
    }
    out
}

pub(crate) fn os_release(text: &str) -> OsRelease {
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
            .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
            .unwrap_or_default()
    };
    OsRelease { id: value("ID"), version_id: value("VERSION_ID"), pretty_name: value("PRETTY_NAME") }
}

#[cfg(test)]
mod tests;
