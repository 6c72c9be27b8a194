//! The docker-archive layout: `manifest.json` names each image's config and layers.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{bad_json, check_config_arch, image_name, ArchiveImage, Pass, ReadOptions};
use crate::error::{Error, Result};

/// One entry of a docker-archive `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

pub(super) fn images(pass: &Pass, options: &ReadOptions, refuse: &dyn Fn(String) -> Error) -> Result<Vec<ArchiveImage>> {
    let saved: Vec<SavedImage> = serde_json::from_slice(&pass.json["manifest.json"]).map_err(|e| bad_json("manifest.json", e, refuse))?;
    if saved.is_empty() {
        return Err(refuse("holds no image (manifest.json is empty)".into()));
    }
    let mut images = Vec::new();
    for image in saved {
        let config = pass
            .json
            .get(image.config.trim_start_matches("./"))
            .ok_or_else(|| refuse(format!("lacks the config {} that manifest.json names", image.config)))?;
        let id = format!("sha256:{}", hex::encode(Sha256::digest(config)));
        let tags = image.repo_tags.unwrap_or_default();
        check_config_arch(config, &image_name(&tags, &id), options.arch, refuse)?;
        let layers = image
            .layers
            .iter()
            .map(|layer| pass.layer(layer, &|| refuse(format!("lacks the layer {layer} that manifest.json names"))))
            .collect::<Result<Vec<_>>>()?;
        images.push(ArchiveImage { id, tags, config: config.clone(), layers });
    }
    Ok(images)
}
