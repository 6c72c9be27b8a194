//! An image member as `push-images` sends it: read once by the format crate's one
//! image-archive reader (the builder inspected the member with the same reader), each
//! image's config in memory and each layer's digest and size; the layers' bytes stay in
//! the member's stream for the second pass.

use std::collections::HashMap;
use std::io::Read;

use airbin_format::error::{Error, Result};
use airbin_format::image_archive::{self, ReadOptions};

pub(crate) const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";

pub(crate) struct Archive {
    pub(crate) images: Vec<ArchiveImage>,
    /// Archive path → (digest, size) of every layer file.
    pub(crate) layers: HashMap<String, (String, u64)>,
}

pub(crate) struct ArchiveImage {
    pub(crate) id: String,
    pub(crate) config: Vec<u8>,
    pub(crate) layers: Vec<Blob>,
}

pub(crate) struct Blob {
    pub(crate) digest: String,
    pub(crate) size: u64,
    pub(crate) media_type: &'static str,
    /// Where the bytes are in the archive; None for the config (held in memory).
    pub(crate) path: Option<String>,
}

impl ArchiveImage {
    fn config_blob(&self) -> Blob {
        Blob { digest: self.id.clone(), size: self.config.len() as u64, media_type: CONFIG_TYPE, path: None }
    }

    /// Every blob of the image, the config first.
    pub(crate) fn blobs(&self) -> impl Iterator<Item = Blob> + '_ {
        std::iter::once(self.config_blob()).chain(self.layers.iter().map(|b| Blob {
            digest: b.digest.clone(),
            size: b.size,
            media_type: b.media_type,
            path: b.path.clone(),
        }))
    }

    /// The OCI image manifest naming the config and the layers as the archive has them.
    pub(crate) fn manifest(&self) -> Vec<u8> {
        let descriptor = |b: &Blob| serde_json::json!({"mediaType": b.media_type, "digest": b.digest, "size": b.size});
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": descriptor(&self.config_blob()),
            "layers": self.layers.iter().map(descriptor).collect::<Vec<_>>(),
        });
        serde_json::to_vec(&manifest).expect("a manifest serializes")
    }
}

/// The first pass over the member: its images, every layer digested.
pub(crate) fn read(reader: impl Read, member: &str, arch: &str) -> Result<Archive> {
    let refuse = |why: String| Error::integrity(format!("member {member}'s image archive {why}; get the bundle again"));
    let read = image_archive::read(reader, &ReadOptions { arch, digest_layers: true }, &refuse)?;
    let mut layers = HashMap::new();
    let mut images = Vec::new();
    for image in read.images {
        let mut blobs = Vec::new();
        for layer in image.layers {
            let digest = layer.digest.expect("digested on request");
            layers.insert(layer.path.clone(), (digest.clone(), layer.size));
            let media_type = layer.media_type.expect("typed on request");
            blobs.push(Blob { digest, size: layer.size, media_type, path: Some(layer.path) });
        }
        images.push(ArchiveImage { id: image.id, config: image.config, layers: blobs });
    }
    Ok(Archive { images, layers })
}

/// A tar entry's path as the archive's manifests name it.
pub(crate) fn entry_path<R: Read>(entry: &tar::Entry<R>) -> String {
    let path = entry.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    path.trim_start_matches("./").to_string()
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, name, *data).unwrap();
        }
        tar.into_inner().unwrap()
    }

    fn hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn an_archive_gives_each_image_its_manifest_of_config_and_layers() {
        let layer = tar_of(&[("a", b"layer bytes")]);
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"diff_ids":[]}}"#;
        let (c, l) = (hex(config), hex(&layer));
        let archive = tar_of(&[
            (&format!("blobs/sha256/{l}"), &layer),
            (&format!("blobs/sha256/{c}"), config),
            ("manifest.json", format!(r#"[{{"Config":"blobs/sha256/{c}","RepoTags":["a:1"],"Layers":["blobs/sha256/{l}"]}}]"#).as_bytes()),
        ]);
        let read = read(&archive[..], "m", "amd64").unwrap();
        let image = &read.images[0];
        assert_eq!(image.id, format!("sha256:{c}"));
        assert_eq!(read.layers[&format!("blobs/sha256/{l}")], (format!("sha256:{l}"), layer.len() as u64));
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest()).unwrap();
        assert_eq!(manifest["config"]["digest"], format!("sha256:{c}"));
        assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        let err = super::read(&tar_of(&[("x", b"1")])[..], "m", "amd64").err().unwrap();
        assert!(err.message.starts_with("member m's image archive is not an image archive"), "{}", err.message);
    }
}
