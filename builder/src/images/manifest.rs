//! The manifests a registry serves, as far as copying an image needs them: an image
//! manifest (Docker schema 2 or OCI) names a config and layers; an index (a manifest
//! list) names one manifest a platform.

use serde::Deserialize;

pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Every manifest type airbin copies, for a registry's `Accept` header.
pub(crate) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub(crate) digest: String,
    #[serde(default)]
    pub(crate) size: u64,
    #[serde(default)]
    pub(crate) platform: Option<Platform>,
    /// A foreign layer's own URLs: such a layer is not the registry's to serve.
    #[serde(default)]
    pub(crate) urls: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Platform {
    #[serde(default)]
    pub(crate) os: String,
    #[serde(default)]
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) variant: String,
}

impl Platform {
    pub(crate) fn describe(&self) -> String {
        match self.variant.is_empty() {
            true => format!("{}/{}", self.os, self.architecture),
            false => format!("{}/{}/{}", self.os, self.architecture, self.variant),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

pub(crate) enum Parsed {
    Image { config: Descriptor, layers: Vec<Descriptor> },
    Index { manifests: Vec<Descriptor> },
}

/// What `bytes` (served as `media_type`) is.
pub(crate) fn parse(bytes: &[u8], media_type: &str) -> Result<Parsed, String> {
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not JSON ({e})"))?;
    if raw.schema_version == Some(1) {
        return Err(
            "it is a schema 1 manifest, which no current registry serves: push the image again with a current docker or skopeo".into()
        );
    }
    let kind = if raw.media_type.is_empty() { media_type } else { raw.media_type.as_str() };
    if kind == OCI_INDEX || kind == DOCKER_LIST || (raw.config.is_none() && !raw.manifests.is_empty()) {
        return Ok(Parsed::Index { manifests: raw.manifests });
    }
    let config = raw.config.ok_or("the manifest names no config")?;
    Ok(Parsed::Image { config, layers: raw.layers })
}

/// The media type of a manifest's bytes: as it says, else as it was served.
pub(crate) fn media_type_of(bytes: &[u8], served: &str) -> String {
    serde_json::from_slice::<Raw>(bytes).ok().map(|r| r.media_type).filter(|m| !m.is_empty()).unwrap_or_else(|| {
        match served.split(';').next().map(str::trim) {
            Some(t) if !t.is_empty() && t != "application/json" => t.to_string(),
            _ => OCI_MANIFEST.to_string(),
        }
    })
}

/// The index's manifest for linux/`arch` (attestations, `unknown/unknown`, never match).
pub(crate) fn pick<'a>(manifests: &'a [Descriptor], arch: &str) -> Option<&'a Descriptor> {
    manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| p.os == "linux" && airbin_format::arch::canonical(&p.architecture) == Some(arch)))
}
