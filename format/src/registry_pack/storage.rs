//! Where a registry storage tree lies: a directory (a registry's root, a pack given as
//! one) or a tar stream (a pack member, read once).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{blob_path, unsafe_pack_entry, Storage, SMALL_BLOB, V2};
use crate::digest::to_hex;
use crate::error::{Error, IoContext, Result};
use crate::tarsafe;

/// A registry root on disk; blobs are hashed only when asked for.
pub struct DirStorage {
    pub v2: PathBuf,
    /// Digests of blob files already known, by name: a restore hashed what it wrote while
    /// it wrote it, and need not read it back.
    known_digests: HashMap<String, String>,
}

impl DirStorage {
    pub fn new(root: &Path) -> DirStorage {
        DirStorage::with_known_digests(root, HashMap::new())
    }

    pub fn with_known_digests(root: &Path, known_digests: HashMap<String, String>) -> DirStorage {
        DirStorage { v2: root.join(V2), known_digests }
    }
}

fn collect_links(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(e, "reading", dir)),
    };
    for entry in entries {
        let entry = entry.ctx("reading", dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child_rel = format!("{rel}/{name}");
        let kind = entry.file_type().ctx("reading", &entry.path())?;
        if kind.is_dir() {
            // Upload sessions are not needed to serve.
            if name != "_uploads" {
                collect_links(&entry.path(), &child_rel, out)?;
            }
        } else if name == "link" {
            out.push(child_rel);
        }
    }
    Ok(())
}

impl Storage for DirStorage {
    fn link_paths(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        collect_links(&self.v2.join("repositories"), "repositories", &mut out)?;
        out.sort();
        Ok(out)
    }
    fn read_link(&self, path: &str) -> Result<Option<Vec<u8>>> {
        read_optional(&self.v2.join(path))
    }
    fn blob_digest(&self, hex: &str) -> Result<Option<String>> {
        let path = self.v2.join(blob_path(hex));
        if let Some(known) = self.known_digests.get(hex) {
            return Ok(path.is_file().then(|| known.clone()));
        }
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(e, "reading", &path)),
        };
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher).ctx("reading", &path)?;
        Ok(Some(to_hex(&hasher.finalize())))
    }
    fn blob_content(&self, hex: &str) -> Result<Option<Vec<u8>>> {
        read_optional(&self.v2.join(blob_path(hex)))
    }
    fn all_blobs(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let sha = self.v2.join("blobs/sha256");
        let Ok(prefixes) = fs::read_dir(&sha) else { return Ok(out) };
        for prefix in prefixes.flatten() {
            for blob in fs::read_dir(prefix.path()).ctx("reading", &prefix.path())?.flatten() {
                if blob.path().join("data").is_file() {
                    out.push(blob.file_name().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(e, "reading", path)),
    }
}

/// A pack read from a tar stream in one pass: links and small blobs kept, every blob hashed.
#[derive(Default)]
pub struct TarStorage {
    links: BTreeMap<String, Vec<u8>>,
    blobs: HashMap<String, (String, Option<Vec<u8>>)>,
}

impl TarStorage {
    /// Reads a pack's tar stream; `member` names it in errors. Every entry passes the
    /// unpack-safety checks.
    pub fn read<R: Read>(member: &str, reader: R) -> Result<TarStorage> {
        TarStorage::read_keeping(member, reader, SMALL_BLOB)
    }

    /// The SHA-256 of every blob in a pack's tar stream, by the blob's name; no content
    /// is kept, so memory stays flat however many blobs the pack has.
    pub fn blob_digests<R: Read>(member: &str, reader: R) -> Result<HashMap<String, String>> {
        let storage = TarStorage::read_keeping(member, tarsafe::BoundedHeaders::new(reader), 0)?;
        Ok(storage.blobs.into_iter().map(|(hex, (digest, _))| (hex, digest)).collect())
    }

    /// Blobs up to `keep` bytes are kept in memory (`keep` 0: none).
    fn read_keeping<R: Read>(member: &str, reader: R, keep: u64) -> Result<TarStorage> {
        let mut storage = TarStorage::default();
        let mut archive = tar::Archive::new(reader);
        let unreadable = |e: io::Error| Error::usage(format!("member {member}: the registry pack is not a readable tar archive ({e})"));
        for entry in archive.entries().map_err(unreadable)? {
            crate::error::check_cancel()?;
            let mut entry = entry.map_err(unreadable)?;
            tarsafe::check_entry(member, &entry)?;
            let path = entry.path().map_err(unreadable)?.to_string_lossy().trim_start_matches("./").to_string();
            if let Some(why) = unsafe_pack_entry(&path, entry.header().entry_type()) {
                return Err(Error::usage(format!("member {member}: {why}")));
            }
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let Some(rel) = path.strip_prefix(V2) else { continue };
            if rel.starts_with("repositories/") && rel.ends_with("/link") {
                let mut content = Vec::new();
                entry.by_ref().take(4096).read_to_end(&mut content).map_err(unreadable)?;
                storage.links.insert(rel.to_string(), content);
            } else if let Some(hex) =
                rel.strip_prefix("blobs/sha256/").and_then(|r| r.strip_suffix("/data")).and_then(|r| r.split('/').nth(1))
            {
                let small = keep > 0 && entry.size() <= keep;
                let mut hasher = Sha256::new();
                let mut kept = Vec::new();
                if small {
                    entry.read_to_end(&mut kept).map_err(unreadable)?;
                    hasher.update(&kept);
                } else {
                    io::copy(&mut entry, &mut hasher).map_err(unreadable)?;
                }
                storage.blobs.insert(hex.to_string(), (to_hex(&hasher.finalize()), small.then_some(kept)));
            }
        }
        Ok(storage)
    }
}

impl Storage for TarStorage {
    fn link_paths(&self) -> Result<Vec<String>> {
        Ok(self.links.keys().cloned().collect())
    }
    fn read_link(&self, path: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.links.get(path).cloned())
    }
    fn blob_digest(&self, hex: &str) -> Result<Option<String>> {
        Ok(self.blobs.get(hex).map(|(digest, _)| digest.clone()))
    }
    fn blob_content(&self, hex: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.blobs.get(hex).and_then(|(_, content)| content.clone()))
    }
    fn all_blobs(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self.blobs.keys().cloned().collect();
        out.sort();
        Ok(out)
    }
}
