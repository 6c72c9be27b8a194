//! The online check: the registry serving a restored root answers for every tag's
//! manifest and every blob it names, as a `docker pull` will need.

use std::io;
use std::path::Path;
use std::time::Duration;

use crate::http;
use crate::interrupt;
use airbin_format::error::{Error, Result};
use airbin_format::registry_pack::{hex_of, DirStorage, ManifestJson, Storage};
use airbin_format::RegistryPackRecord;
use std::collections::HashSet;

const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// Asks the registry at `address` for every tag's manifest and every blob it names (by
/// HEAD): what a `docker pull` will need. A catalog listing alone proves nothing.
pub(crate) fn verify_online(address: &str, record: &RegistryPackRecord, root: &Path) -> Result<usize> {
    let storage = DirStorage::new(root);
    let timeout = Duration::from_secs(30);
    let unreachable = |e: io::Error| {
        Error::step(format!(
            "the registry at {address} does not answer ({e}); start it (it serves {}) and run the install again",
            root.display()
        ))
    };
    let mut fetched = 0;
    for repo in &record.repositories {
        for tag in &repo.tags {
            interrupt::check()?;
            let path = format!("/v2/{}/manifests/{}", http::encode_path(&repo.name), http::encode(&tag.tag));
            let response = http::tcp_request(address, "GET", &path, &[("Accept", MANIFEST_TYPES)], timeout).map_err(unreachable)?;
            if response.status != 200 {
                return Err(Error::step(format!(
                    "the registry at {address} answers {} for {}:{}; check that it serves {} and run the install again",
                    response.status,
                    repo.name,
                    tag.tag,
                    root.display()
                )));
            }
            let digest = response.header("Docker-Content-Digest").unwrap_or("").to_string();
            if digest != tag.manifest {
                return Err(Error::step(format!(
                    "the registry at {address} serves {}:{} as {digest}, not the {} the bundle restored; is another registry root behind {address}?",
                    repo.name, tag.tag, tag.manifest
                )));
            }
            fetched += 1;
            // Each manifest once: an index listing itself (or a cycle) cannot loop.
            let mut seen = HashSet::new();
            seen.insert(tag.manifest.clone());
            let mut pending = vec![(tag.manifest.clone(), response.body)];
            while let Some((_, body)) = pending.pop() {
                interrupt::check()?;
                let manifest: ManifestJson = serde_json::from_slice(&body).map_err(|e| {
                    Error::step(format!("the registry at {address} served a manifest of {} that is not JSON ({e})", repo.name))
                })?;
                for child in &manifest.manifests {
                    let Some(hex) = hex_of(&child.digest) else {
                        return Err(Error::step(format!("a manifest of {} lists a bad digest; the pack is damaged", repo.name)));
                    };
                    if !seen.insert(child.digest.clone()) {
                        continue;
                    }
                    let content = storage.blob_content(hex)?.unwrap_or_default();
                    pending.push((child.digest.clone(), content));
                    head_ok(address, &format!("/v2/{}/manifests/sha256:{hex}", http::encode_path(&repo.name)), timeout)?;
                    fetched += 1;
                }
                for descriptor in manifest.config.iter().chain(&manifest.layers).filter(|d| d.urls.is_empty()) {
                    let Some(hex) = hex_of(&descriptor.digest) else {
                        return Err(Error::step(format!("a manifest of {} names a bad digest; the pack is damaged", repo.name)));
                    };
                    if !seen.insert(descriptor.digest.clone()) {
                        continue;
                    }
                    head_ok(address, &format!("/v2/{}/blobs/sha256:{hex}", http::encode_path(&repo.name)), timeout)?;
                    fetched += 1;
                }
            }
        }
    }
    Ok(fetched)
}

fn head_ok(address: &str, path: &str, timeout: Duration) -> Result<()> {
    let response = http::tcp_request(address, "HEAD", path, &[("Accept", MANIFEST_TYPES)], timeout).map_err(|e| {
        Error::step(format!("the registry at {address} stopped answering ({e}) at {path}; check it and run the install again"))
    })?;
    if response.status != 200 {
        return Err(Error::step(format!(
            "the registry at {address} answers {} for {path}: the restored pack does not serve; check the registry's root directory",
            response.status
        )));
    }
    Ok(())
}
