//! The blob cache: content-addressed (`blobs/sha256/<hex>`), shared by every build of
//! this user, so that a rebuild fetches nothing it has. A blob is written under a
//! temporary name, checked against its digest, then renamed into place; one that does
//! not match its name when read is removed and fetched again.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use airbin_format::digest::HashingWriter;
use airbin_format::error::{IoContext, Result};

#[derive(Clone)]
pub(crate) struct Cache {
    root: PathBuf,
}

impl Cache {
    /// `AIRBIN_CACHE_DIR`, else `$XDG_CACHE_HOME/airbin`, else `~/.cache/airbin`.
    pub(crate) fn open() -> Result<Cache> {
        let root = std::env::var_os("AIRBIN_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| {
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("/var/cache"), |h| PathBuf::from(h).join(".cache"))
            });
            base.join("airbin")
        });
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).ctx("creating the blob cache", &blobs)?;
        Ok(Cache { root })
    }

    pub(crate) fn path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
    }

    /// Whether the cache holds `digest` of `size` bytes (its content is checked when it
    /// is read: hashing every cached blob here would make a warm rebuild read it twice).
    pub(crate) fn has(&self, digest: &str, size: u64) -> bool {
        fs::metadata(self.path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Stores what `fill` writes as the blob `digest`, refusing bytes of another digest.
    pub(crate) fn store(
        &self,
        digest: &str,
        fill: &mut dyn FnMut(&mut dyn Write) -> std::result::Result<(), String>,
    ) -> std::result::Result<u64, String> {
        let path = self.path(digest);
        let temp = path.with_extension(format!("partial-{}-{}", std::process::id(), airbin_format::files::random_hex()));
        let file = fs::File::create(&temp).map_err(|e| format!("cannot write the blob cache at {} ({e})", temp.display()))?;
        let guard = airbin_format::files::RemoveOnDrop::new(temp.clone());
        let mut hashing = HashingWriter::new(io::BufWriter::new(file));
        fill(&mut hashing)?;
        let (inner, len, hex) = hashing.finish();
        inner.into_inner().map_err(|e| e.to_string())?.sync_all().map_err(|e| e.to_string())?;
        let got = format!("sha256:{hex}");
        if got != digest {
            return Err(format!("the bytes received have the digest {got}, not {digest}"));
        }
        fs::rename(guard.disarm(), &path).map_err(|e| format!("cannot write the blob cache at {} ({e})", path.display()))?;
        Ok(len)
    }

    /// The blob's bytes, checked against its digest (a damaged one is removed).
    pub(crate) fn read(&self, digest: &str) -> std::result::Result<Vec<u8>, String> {
        let path = self.path(digest);
        let bytes = fs::read(&path).map_err(|e| format!("the blob cache lost {digest} ({e})"))?;
        if format!("sha256:{}", hex::encode(Sha256::digest(&bytes))) != digest {
            let _ = fs::remove_file(&path);
            return Err(format!("the cached {digest} was damaged; it is removed: build again to fetch it"));
        }
        Ok(bytes)
    }

    /// The blob's bytes when the cache holds it whole (a damaged one is removed).
    pub(crate) fn read_present(&self, digest: &str) -> Option<Vec<u8>> {
        fs::metadata(self.path(digest)).ok()?;
        self.read(digest).ok()
    }

    /// Copies the blob into `out`, checking its digest on the way.
    pub(crate) fn copy_to(&self, digest: &str, out: &mut dyn Write) -> std::result::Result<u64, String> {
        let path = self.path(digest);
        let mut file = fs::File::open(&path).map_err(|e| format!("the blob cache lost {digest} ({e})"))?;
        let mut hashing = HashingWriter::new(out);
        io::copy(&mut file, &mut hashing).map_err(|e| format!("copying {digest} ({e})"))?;
        let (_, len, hex) = hashing.finish();
        if format!("sha256:{hex}") != digest {
            let _ = fs::remove_file(&path);
            return Err(format!("the cached {digest} was damaged; it is removed: build again to fetch it"));
        }
        Ok(len)
    }

    /// An open reader of the blob (checked by whoever hashes what it reads).
    pub(crate) fn open_blob(&self, digest: &str) -> std::result::Result<fs::File, String> {
        fs::File::open(self.path(digest)).map_err(|e| format!("the blob cache lost {digest} ({e})"))
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
}

/// Reads a whole small body, at most `cap` bytes.
pub(crate) fn read_capped(reader: &mut dyn Read, cap: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(cap + 1).read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(io::Error::other(format!("more than {cap} bytes")));
    }
    Ok(out)
}
