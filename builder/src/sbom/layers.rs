//! Reading image layers for what an SBOM needs of them: the package databases, the
//! os-release file, and the whiteouts that remove them in a later layer. Everything
//! else in a layer is skipped as it streams by, so a layer costs one read.
//!
//! A layer is a tar stream, plain, gzip'd or zstd'd. The same scanner reads the layers
//! inside an image archive and the blobs of a registry pack: one pass over the outer
//! stream, each entry tried as a layer, the small JSON files (configs, manifests) kept.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};

use airbin_format::error::{Error, Result};

/// A package database or os-release is never larger (a Debian with 5000 packages has a
/// status file of about 10 MiB).
const MAX_TRACKED: u64 = 64 << 20;
/// A JSON file of an archive or pack (a config, a manifest) is never larger.
const MAX_JSON: u64 = 4 << 20;

pub(crate) const DPKG_STATUS: &str = "var/lib/dpkg/status";
/// Distroless images: one status paragraph a file.
pub(crate) const DPKG_STATUS_D: &str = "var/lib/dpkg/status.d/";
pub(crate) const APK_INSTALLED: &str = "lib/apk/db/installed";
pub(crate) const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
/// RPM databases: found and named as not read (no maintained crate reads them).
pub(crate) const RPM_DATABASES: [&str; 4] =
    ["var/lib/rpm/rpmdb.sqlite", "var/lib/rpm/Packages", "var/lib/rpm/Packages.db", "usr/lib/sysimage/rpm/rpmdb.sqlite"];

/// What one layer does to the files an SBOM reads.
#[derive(Clone, Debug, Default)]
pub(crate) struct LayerScan {
    /// Files written, with their content (RPM databases: empty, only their presence).
    pub(crate) put: Vec<(String, Vec<u8>)>,
    /// Whiteouts: paths this layer removes from the layers below (with all under them).
    pub(crate) removed: Vec<String>,
    /// Opaque directories: everything of the layers below under them is gone.
    pub(crate) opaque: Vec<String>,
}

fn is_tracked(path: &str) -> bool {
    path == DPKG_STATUS
        || path == APK_INSTALLED
        || OS_RELEASE.contains(&path)
        || RPM_DATABASES.contains(&path)
        || (path.starts_with(DPKG_STATUS_D) && !path[DPKG_STATUS_D.len()..].contains('/'))
}

/// Whether removing `path` (and all under it) can remove a tracked file.
fn touches_tracked(path: &str) -> bool {
    let tracked = [DPKG_STATUS, APK_INSTALLED, DPKG_STATUS_D].into_iter().chain(OS_RELEASE).chain(RPM_DATABASES);
    tracked.into_iter().any(|t| t == path || t.starts_with(&format!("{path}/")) || path.starts_with(DPKG_STATUS_D))
}

/// What an outer stream (an image archive, a registry pack) held: each entry that is a
/// layer, scanned, and each small JSON file, by path.
#[derive(Default)]
pub(crate) struct Scanned {
    pub(crate) layers: HashMap<String, LayerScan>,
    pub(crate) json: HashMap<String, Vec<u8>>,
}

/// One pass over `outer`: every regular entry `wanted` accepts is read as a layer (an
/// entry that is no tar stream is left out), every small JSON-looking one kept.
pub(crate) fn scan_outer(outer: impl Read, wanted: &dyn Fn(&str) -> bool, refuse: &dyn Fn(String) -> Error) -> Result<Scanned> {
    let mut scanned = Scanned::default();
    let mut archive = tar::Archive::new(airbin_format::tarsafe::BoundedHeaders::new(outer));
    let unreadable = |e: io::Error| refuse(format!("is not a readable tar archive ({e})"));
    for entry in archive.entries().map_err(unreadable)? {
        airbin_format::error::check_cancel()?;
        let entry = entry.map_err(unreadable)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(unreadable)?.to_string_lossy().trim_start_matches("./").to_string();
        if !wanted(&path) {
            continue;
        }
        let size = entry.size();
        let mut entry = BufReader::with_capacity(1 << 20, entry);
        let head = entry.fill_buf().map_err(unreadable)?;
        if size <= MAX_JSON && matches!(head.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'[')) {
            let mut content = Vec::new();
            entry.read_to_end(&mut content).map_err(unreadable)?;
            scanned.json.insert(path, content);
            continue;
        }
        if let Some(layer) = scan_layer(&mut entry).map_err(unreadable)? {
            scanned.layers.insert(path, layer);
        }
        // What the layer's tar stream left unread (its end padding, or all of a blob
        // that is no layer) is skipped by the outer archive.
    }
    Ok(scanned)
}

/// Reads one layer; `None` when the stream is not a tar stream (a blob that is a config
/// in another format, a file that is no layer).
pub(crate) fn scan_layer(stream: &mut dyn BufRead) -> io::Result<Option<LayerScan>> {
    let head = stream.fill_buf()?;
    let decoded: Box<dyn Read + '_> = match head {
        [0x1f, 0x8b, ..] => Box::new(flate2::bufread::MultiGzDecoder::new(stream)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(zstd::stream::read::Decoder::with_buffer(stream)?),
        _ if head.len() >= 262 && &head[257..262] == b"ustar" => Box::new(stream),
        // An empty layer (`docker save` writes them for metadata-only steps).
        _ if head.len() >= 512 && head[..512].iter().all(|b| *b == 0) => return Ok(Some(LayerScan::default())),
        _ => return Ok(None),
    };
    let mut layer = LayerScan::default();
    let mut archive = tar::Archive::new(airbin_format::tarsafe::BoundedHeaders::new(decoded));
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(_) => return Ok(None),
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            // A compressed blob that is no tar stream: not a layer.
            Err(_) if layer.put.is_empty() && layer.removed.is_empty() => return Ok(None),
            Err(e) => return Err(e),
        };
        let path = entry.path()?.to_string_lossy().trim_start_matches("./").trim_end_matches('/').to_string();
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if name == ".wh..wh..opq" {
            if touches_tracked(dir) {
                layer.opaque.push(dir.to_string());
            }
        } else if let Some(gone) = name.strip_prefix(".wh.") {
            let gone = if dir.is_empty() { gone.to_string() } else { format!("{dir}/{gone}") };
            if touches_tracked(&gone) {
                layer.removed.push(gone);
            }
        } else if entry.header().entry_type().is_file() && is_tracked(&path) {
            let mut content = Vec::new();
            if !RPM_DATABASES.contains(&path.as_str()) {
                (&mut entry).take(MAX_TRACKED).read_to_end(&mut content)?;
            }
            layer.put.push((path, content));
        }
    }
    Ok(Some(layer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_layer_gives_its_databases_and_whiteouts() {
        let bytes = layer(&[
            ("./var/lib/dpkg/status", b"Package: a\n"),
            ("usr/bin/tool", b"binary"),
            ("lib/apk/db/.wh.installed", b""),
            ("var/lib/dpkg/.wh..wh..opq", b""),
            ("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3"),
            ("var/lib/dpkg/status.d/base", b"Package: base\n"),
            ("usr/share/.wh.doc", b""),
        ]);
        let scan = scan_layer(&mut &bytes[..]).unwrap().unwrap();
        let put: Vec<&str> = scan.put.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(put, [DPKG_STATUS, "var/lib/rpm/rpmdb.sqlite", "var/lib/dpkg/status.d/base"]);
        assert_eq!(scan.put[0].1, b"Package: a\n");
        assert_eq!(scan.removed, [APK_INSTALLED]);
        assert_eq!(scan.opaque, ["var/lib/dpkg"]);
    }

    #[test]
    fn gzip_layers_are_read_and_other_blobs_left_out() {
        let bytes = layer(&[("lib/apk/db/installed", b"P:musl\nV:1.2\n")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &bytes).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(scan_layer(&mut &gz[..]).unwrap().unwrap().put.len(), 1);
        assert!(scan_layer(&mut &b"#!/bin/sh\necho not a layer\n"[..]).unwrap().is_none());
    }
}
