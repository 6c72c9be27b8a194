//! The local Docker Engine (`docker-daemon`), over its API socket (`DOCKER_HOST`, or
//! /var/run/docker.sock): an image is saved (`GET /images/get`), its config and layers
//! go into the blob cache (the layers gzip'd for a registry pack, as `docker push`
//! sends them; as they are for a docker-archive), and a Docker schema 2 manifest naming
//! them is made here, so that the image is copied like one from a registry. The
//! image's ID (its config's digest) is the engine's.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use airbin_format::error::{Error, Result};

use super::super::cache::Cache;
use super::super::manifest::DOCKER_MANIFEST;
use super::super::reference::{percent_encode, Reference};
use super::{Fetched, ImageSource};

const LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const CONFIG: &str = "application/vnd.docker.container.image.v1+json";

pub(crate) struct Daemon {
    socket: PathBuf,
    cache: Cache,
    /// Layers gzip'd, as a registry holds them.
    gzip: bool,
}

impl Daemon {
    pub(crate) fn new(cache: &Cache, gzip: bool) -> Result<Daemon> {
        let socket = match std::env::var("DOCKER_HOST") {
            Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
            Ok(host) if !host.is_empty() => {
                return Err(Error::usage(format!("from: docker-daemon takes a unix socket; DOCKER_HOST is {host}")))
            }
            _ => PathBuf::from("/var/run/docker.sock"),
        };
        Ok(Daemon { socket, cache: cache.clone(), gzip })
    }

    /// `GET path` on the engine (HTTP/1.0: the answer ends with the connection), its
    /// status and a reader of its body.
    fn get(&self, path: &str) -> std::result::Result<(u16, BufReader<UnixStream>), String> {
        let stream = UnixStream::connect(&self.socket)
            .map_err(|e| format!("no Docker Engine answers at {} ({e}): start it, or set DOCKER_HOST", self.socket.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(600))).map_err(|e| e.to_string())?;
        let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
        write!(writer, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").map_err(|e| format!("writing to the engine ({e})"))?;
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).map_err(|e| format!("reading the engine's answer ({e})"))?;
        let code = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("the engine's answer is not HTTP")?;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|e| format!("reading the engine's answer ({e})"))?;
            if line.trim().is_empty() {
                break;
            }
        }
        Ok((code, reader))
    }
}

impl ImageSource for Daemon {
    fn name(&self) -> String {
        "docker-daemon".into()
    }

    fn manifest(&self, reference: &Reference, at: &str) -> std::result::Result<Fetched, String> {
        let name = match at.starts_with("sha256:") && !reference.is_digest() {
            // A lock pins the image's ID: the engine takes it as a name.
            true => at.to_string(),
            false => reference.written.clone(),
        };
        let (code, mut body) = self.get(&format!("/images/get?names={}", percent_encode(&name)))?;
        if code != 200 {
            let mut text = String::new();
            let _ = body.read_to_string(&mut text);
            return Err(format!("the engine has no image {name} ({code}: {})", text.trim()));
        }
        let (config, mut layers) = self.take_saved(body)?;
        if self.gzip {
            layers = layers.iter().map(|(digest, _)| self.gzipped(digest)).collect::<std::result::Result<_, _>>()?;
        }
        let layer_type = if self.gzip { LAYER_GZIP } else { LAYER };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config.0, "size": config.1},
            "layers": layers.iter().map(|(d, s)| serde_json::json!({"mediaType": layer_type, "digest": d, "size": s})).collect::<Vec<_>>(),
        });
        Ok(Fetched { bytes: serde_json::to_vec(&manifest).expect("json"), media_type: DOCKER_MANIFEST.into() })
    }

    fn blob(&self, _: &Reference, digest: &str, out: &mut dyn Write) -> std::result::Result<(), String> {
        self.cache.copy_to(digest, out).map(drop)
    }
}

impl Daemon {
    /// Every file of a `docker save` stream into the cache (by its digest), then its
    /// manifest.json read: (config digest and size, layers' digests and sizes).
    #[allow(clippy::type_complexity)]
    fn take_saved(&self, body: impl Read) -> std::result::Result<((String, u64), Vec<(String, u64)>), String> {
        let mut files: std::collections::HashMap<String, (String, u64)> = Default::default();
        let mut manifest = None;
        let mut archive = tar::Archive::new(body);
        for entry in archive.entries().map_err(|e| format!("the engine's save is no tar ({e})"))? {
            let mut entry = entry.map_err(|e| format!("the engine's save broke off ({e})"))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(|e| e.to_string())?.to_string_lossy().trim_start_matches("./").to_string();
            if path == "manifest.json" {
                let mut text = Vec::new();
                entry.read_to_end(&mut text).map_err(|e| e.to_string())?;
                manifest = Some(text);
                continue;
            }
            let temp = self.cache.root().join(format!("tmp-{}-{}", std::process::id(), airbin_format::files::random_hex()));
            let digest = hash_into(&mut entry, &temp).inspect_err(|_| drop(std::fs::remove_file(&temp)))?;
            let size = std::fs::metadata(&temp).map(|m| m.len()).unwrap_or(0);
            let dest = self.cache.path(&digest);
            std::fs::rename(&temp, &dest).map_err(|e| format!("the blob cache ({e})"))?;
            files.insert(path, (digest, size));
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&manifest.ok_or("the engine's save has no manifest.json")?).map_err(|e| e.to_string())?;
        let first = &manifest[0];
        let found = |name: &str| files.get(name.trim_start_matches("./")).cloned().ok_or(format!("the engine's save lacks {name}"));
        let config = found(first["Config"].as_str().ok_or("no Config in the save")?)?;
        let layers = first["Layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str())
            .map(found)
            .collect::<std::result::Result<_, _>>()?;
        Ok((config, layers))
    }
}

impl Daemon {
    /// The cached layer `digest` gzip'd into the cache: the gzip'd blob's digest and size.
    fn gzipped(&self, digest: &str) -> std::result::Result<(String, u64), String> {
        let mut plain = self.cache.open_blob(digest)?;
        let temp = self.cache.root().join(format!("tmp-{}-{}", std::process::id(), airbin_format::files::random_hex()));
        let mut gzip = flate2::read::GzEncoder::new(&mut plain, flate2::Compression::default());
        let gzipped = hash_into(&mut gzip, &temp);
        let gzipped = gzipped.inspect_err(|_| drop(std::fs::remove_file(&temp)))?;
        let size = std::fs::metadata(&temp).map(|m| m.len()).unwrap_or(0);
        std::fs::rename(&temp, self.cache.path(&gzipped)).map_err(|e| format!("the blob cache ({e})"))?;
        Ok((gzipped, size))
    }
}

/// Copies `reader` into the file `path`, returning its digest.
fn hash_into(reader: &mut dyn Read, path: &std::path::Path) -> std::result::Result<String, String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::create(path).map_err(|e| format!("the blob cache ({e})"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(|e| format!("the engine's save broke off ({e})"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| format!("the blob cache ({e})"))?;
    }
    file.sync_all().map_err(|e| format!("the blob cache ({e})"))?;
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}
