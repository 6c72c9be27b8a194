//! What a member made from an image list becomes: a registry's storage tree (exactly
//! what the registry needs to serve every tag: blobs, `_layers` links, revisions, the
//! tags' `current` links, as the format crate's pack check knows them), or a
//! docker-archive as `docker save` writes it (a config, one uncompressed layer tarball a
//! layer, `manifest.json`), which every engine loads.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use airbin_format::error::{Error, IoContext, Result};

use super::cache::Cache;
use super::Resolved;

const V2: &str = "docker/registry/v2";

fn hex(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

/// The storage tree of every image into `dir` (which must not exist).
pub(crate) fn registry_tree(images: &[Resolved], cache: &Cache, dir: &Path) -> Result<()> {
    let mut blobs: BTreeSet<String> = BTreeSet::new();
    let mut links: BTreeSet<(String, String)> = BTreeSet::new();
    for image in images {
        let repo = format!("{V2}/repositories/{}", image.reference.repository);
        for manifest in &image.manifests {
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers).filter(|b| b.urls.is_empty()) {
                blobs.insert(blob.digest.clone());
                links.insert((format!("{repo}/_layers/sha256/{}/link", hex(&blob.digest)), blob.digest.clone()));
            }
            links.insert((format!("{repo}/_manifests/revisions/sha256/{}/link", hex(&manifest.digest)), manifest.digest.clone()));
        }
        links.insert((format!("{repo}/_manifests/revisions/sha256/{}/link", hex(&image.top.digest)), image.top.digest.clone()));
        if let Some(tag) = image.reference.bundle_tag().map(|_| &image.reference.tag) {
            let at = format!("{repo}/_manifests/tags/{tag}");
            links.insert((format!("{at}/current/link"), image.top.digest.clone()));
            links.insert((format!("{at}/index/sha256/{}/link", hex(&image.top.digest)), image.top.digest.clone()));
        }
    }
    let write = |rel: &str, fill: &mut dyn FnMut(&mut fs::File) -> Result<()>| -> Result<()> {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().expect("under the tree")).ctx("creating", &path)?;
        let mut file = fs::File::create(&path).ctx("writing", &path)?;
        fill(&mut file)
    };
    // Manifests (and indexes) are blobs too: written from the bytes as served.
    let manifests: Vec<(&String, &Vec<u8>)> = images
        .iter()
        .flat_map(|i| std::iter::once((&i.top.digest, &i.top.bytes)).chain(i.manifests.iter().map(|m| (&m.digest, &m.bytes))))
        .collect();
    for (digest, bytes) in &manifests {
        let rel = format!("{V2}/blobs/sha256/{}/{}/data", &hex(digest)[..2], hex(digest));
        write(&rel, &mut |f| f.write_all(bytes).ctx("writing", &dir.join(&rel)))?;
    }
    for digest in &blobs {
        let rel = format!("{V2}/blobs/sha256/{}/{}/data", &hex(digest)[..2], hex(digest));
        write(&rel, &mut |f| cache.copy_to(digest, f).map(drop).map_err(Error::integrity))?;
    }
    for (rel, digest) in &links {
        write(rel, &mut |f| f.write_all(digest.as_bytes()).ctx("writing", &dir.join(rel)))?;
    }
    Ok(())
}

/// The images as one docker-archive at `file`: configs, uncompressed layers checked
/// against their configs' diff IDs, `manifest.json` last. Entries are stamped at the
/// epoch: the same images give the same bytes.
pub(crate) fn docker_archive(images: &[Resolved], cache: &Cache, file: &Path, work: &Path) -> Result<()> {
    let out = fs::File::create(file).ctx("writing", file)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
    let mut entries = Vec::new();
    let mut written: BTreeSet<String> = BTreeSet::new();
    for image in images {
        let manifest = image.manifests.first().expect("a resolved image has its manifest");
        let config = cache.read(&manifest.config.digest).map_err(Error::integrity)?;
        let diff_ids = diff_ids(&config).map_err(|why| Error::integrity(format!("{}: {why}", image.reference.written)))?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::integrity(format!(
                "{}: its config names {} layers, its manifest {}",
                image.reference.written,
                diff_ids.len(),
                manifest.layers.len()
            )));
        }
        let config_name = format!("{}.json", hex(&manifest.config.digest));
        if written.insert(config_name.clone()) {
            append(&mut tar, &config_name, &mut config.as_slice(), config.len() as u64, file)?;
        }
        let mut layers = Vec::new();
        for (layer, diff_id) in manifest.layers.iter().zip(&diff_ids) {
            let name = format!("{}/layer.tar", hex(diff_id));
            if written.insert(name.clone()) {
                let plain = work.join(format!("layer-{}", hex(diff_id)));
                decompress(cache, layer, diff_id, &plain)?;
                let size = fs::metadata(&plain).ctx("reading", &plain)?.len();
                append(&mut tar, &name, &mut fs::File::open(&plain).ctx("reading", &plain)?, size, file)?;
                let _ = fs::remove_file(&plain);
            }
            layers.push(name);
        }
        let tags: Vec<String> = image.reference.bundle_tag().into_iter().collect();
        entries.push(serde_json::json!({"Config": config_name, "RepoTags": tags, "Layers": layers}));
    }
    let manifest = serde_json::to_vec(&entries).expect("json");
    append(&mut tar, "manifest.json", &mut manifest.as_slice(), manifest.len() as u64, file)?;
    finish_tar(tar, file)
}

/// The tarball's end written, its buffer flushed and the file synced.
pub(super) fn finish_tar(tar: tar::Builder<std::io::BufWriter<fs::File>>, file: &Path) -> Result<()> {
    tar.into_inner()
        .ctx("writing", file)?
        .into_inner()
        .map_err(|e| Error::io(e.into_error(), "writing", file))?
        .sync_all()
        .ctx("writing", file)
}

fn append(tar: &mut tar::Builder<impl Write>, name: &str, data: &mut dyn Read, size: u64, file: &Path) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data).ctx("writing", file)
}

fn diff_ids(config: &[u8]) -> std::result::Result<Vec<String>, String> {
    let value: serde_json::Value = serde_json::from_slice(config).map_err(|e| format!("its config is not JSON ({e})"))?;
    let ids = value["rootfs"]["diff_ids"].as_array().ok_or("its config has no rootfs.diff_ids")?;
    ids.iter().map(|d| d.as_str().map(str::to_string).ok_or_else(|| "a diff ID is not text".to_string())).collect()
}

/// The layer as a plain tarball at `to`, whose digest must be `diff_id`.
fn decompress(cache: &Cache, layer: &super::manifest::Descriptor, diff_id: &str, to: &Path) -> Result<()> {
    let file = cache.open_blob(&layer.digest).map_err(Error::integrity)?;
    let mut head = [0u8; 4];
    let mut peek = std::io::BufReader::new(file);
    let n = {
        use std::io::BufRead;
        let buf = peek.fill_buf().ctx("reading", to)?;
        let n = buf.len().min(4);
        head[..n].copy_from_slice(&buf[..n]);
        n
    };
    let mut reader: Box<dyn Read> = match &head[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(peek)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(zstd::Decoder::new(peek).ctx("reading", to)?),
        _ => Box::new(peek),
    };
    let mut out = fs::File::create(to).ctx("writing", to)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let got = reader.read(&mut buf).map_err(|e| Error::integrity(format!("the layer {} does not decompress ({e})", layer.digest)))?;
        if got == 0 {
            break;
        }
        hasher.update(&buf[..got]);
        out.write_all(&buf[..got]).ctx("writing", to)?;
    }
    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
    if got != diff_id {
        return Err(Error::integrity(format!("the layer {} unpacks to {got}, and its config says {diff_id}", layer.digest)));
    }
    Ok(())
}
