//! An OCI image layout directory (`oci:DIR`, as `skopeo copy … oci:DIR:TAG` writes it):
//! `index.json` names each image by its `org.opencontainers.image.ref.name`, and every
//! manifest and blob is a file under `blobs/sha256/`.

use std::io::Write;
use std::path::{Path, PathBuf};

use airbin_format::error::{Error, Result};

use super::super::manifest::media_type_of;
use super::super::reference::Reference;
use super::{Fetched, ImageSource};

pub(crate) struct Layout {
    dir: PathBuf,
    /// (ref name, manifest digest) of every image of the index.
    names: Vec<(String, String)>,
}

impl Layout {
    pub(crate) fn open(dir: &Path) -> Result<Layout> {
        let refuse = |why: String| Error::usage(format!("from: oci:{}: {why}", dir.display()));
        let text = std::fs::read_to_string(dir.join("index.json"))
            .map_err(|e| refuse(format!("has no readable index.json ({e}); give an OCI layout (skopeo copy … oci:DIR:TAG)")))?;
        let index: serde_json::Value = serde_json::from_str(&text).map_err(|e| refuse(format!("its index.json is not JSON ({e})")))?;
        let names = index["manifests"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|m| {
                        let name = m["annotations"]["org.opencontainers.image.ref.name"].as_str()?;
                        Some((name.to_string(), m["digest"].as_str()?.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Layout { dir: dir.to_path_buf(), names })
    }

    fn blob_path(&self, digest: &str) -> std::result::Result<PathBuf, String> {
        let hex = digest.strip_prefix("sha256:").filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let hex = hex.ok_or_else(|| format!("'{digest}' is not a sha256 digest"))?;
        Ok(self.dir.join("blobs/sha256").join(hex))
    }
}

impl ImageSource for Layout {
    fn name(&self) -> String {
        format!("oci:{}", self.dir.display())
    }

    fn manifest(&self, reference: &Reference, at: &str) -> std::result::Result<Fetched, String> {
        let digest = match at.starts_with("sha256:") {
            true => at.to_string(),
            // skopeo names an image by its tag alone, or by the whole reference.
            false => self
                .names
                .iter()
                .find(|(name, _)| name == at || *name == reference.written || *name == format!("{}:{at}", reference.repository))
                .map(|(_, digest)| digest.clone())
                .ok_or_else(|| format!("the layout's index.json names no image '{at}'"))?,
        };
        let bytes = std::fs::read(self.blob_path(&digest)?).map_err(|e| format!("the layout lacks the manifest {digest} ({e})"))?;
        Ok(Fetched { media_type: media_type_of(&bytes, ""), bytes })
    }

    fn blob(&self, _: &Reference, digest: &str, out: &mut dyn Write) -> std::result::Result<(), String> {
        let mut file = std::fs::File::open(self.blob_path(digest)?).map_err(|e| format!("the layout lacks the blob {digest} ({e})"))?;
        std::io::copy(&mut file, out).map_err(|e| format!("reading the blob {digest} ({e})"))?;
        Ok(())
    }
}
