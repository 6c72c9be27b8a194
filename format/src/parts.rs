//! A bundle's bytes, from one file or from the parts of a split bundle (`airbin build
//! --split-size`: `x.bin` holds the launcher, the runtime and the first bytes of the
//! payload; `x.bin.part2`, `x.bin.part3`, … the rest, each with its `.sha256`). The
//! reader reads them by position as one file.
//!
//! Parts are found beside the first one, or in the directories given (`--parts DIR`: a
//! second USB stick). Opening checks that every part is there with the size it must
//! have, so a missing or short part is named before anything else happens; reading
//! every byte checks each part against its `.sha256` as it passes, so a damaged one is
//! named, not only the bundle. Here too: the whole length the launcher gives, against
//! what the file holds (truncated, extended, altered, no bundle at all).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::digest::to_hex;
use crate::error::{Error, IoContext, Result};
use crate::launcher::{self, LAUNCHER_LEN};
use crate::trailer::{Trailer, TRAILER_LEN};

pub(crate) fn damaged(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::integrity(format!("{} is damaged: {what}; copy the bundle again and compare it with its .sha256 file", path.display()))
}

/// The bundle's length as its launcher gives it, which must be the file's: a truncated
/// copy, bytes added after its end, an altered launcher or no bundle at all are told
/// apart, each with what to do.
/// `len` is the file's, `head` its first block.
fn total_len(file: &File, path: &Path, len: u64, head: &[u8]) -> Result<u64> {
    let launcher = launcher::parse(head);
    let trailer_at_end = read_tail(file, len).ctx("reading", path)?;
    match (&launcher, &trailer_at_end) {
        (Some(l), _) if l.total_len == len => Ok(len),
        (Some(_), Some(t)) if t.total_len == len => Err(damaged(path, "its launcher header gives a wrong length")),
        (Some(l), _) if len < l.total_len => Err(Error::integrity(format!(
            "{} is truncated: it has {len} bytes of {}; copy the bundle again (an interrupted download?) and compare it with its .sha256 file (a bundle that came in parts needs its .part2, .part3, ... files beside it, or --parts DIR)",
            path.display(),
            l.total_len
        ))),
        (Some(l), _) => Err(Error::integrity(format!(
            "{} has {} unexpected bytes after its end (the bundle is {} bytes); copy the bundle again and compare it with its .sha256 file",
            path.display(),
            len - l.total_len,
            l.total_len
        ))),
        (None, Some(_)) => Err(damaged(path, "its launcher header is altered")),
        (None, None) if head.starts_with(b"#!/bin/sh\n") && String::from_utf8_lossy(head).contains("airbin offline installer bundle") => {
            Err(damaged(path, "its launcher header is altered and its trailer is missing"))
        }
        (None, None) => Err(Error::integrity(format!("{} is not an airbin bundle; give the path of a .bin made by airbin", path.display()))),
    }
}

/// The bundle's bytes and their length: the file, or the file and its parts when the
/// launcher gives more bytes than the file holds and a second part is there.
pub(crate) fn open_file(path: &Path, dirs: &[PathBuf]) -> Result<(BundleFile, u64)> {
    let file = File::open(path).ctx("opening the bundle", path)?;
    let len = file.metadata().ctx("reading the size of", path)?.len();
    let mut head = vec![0u8; LAUNCHER_LEN.min(len) as usize];
    file.read_exact_at(&mut head, 0).ctx("reading", path)?;
    if let Some(launcher) = launcher::parse(&head).filter(|l| l.total_len > len) {
        if BundleFile::has_parts(path, dirs) {
            return Ok((BundleFile::open_parts(file, path, len, launcher.total_len, dirs)?, launcher.total_len));
        }
    }
    let total = total_len(&file, path, len, &head)?;
    Ok((BundleFile::single(file, path, len), total))
}

fn read_tail(file: &File, len: u64) -> io::Result<Option<Trailer>> {
    if len < TRAILER_LEN {
        return Ok(None);
    }
    let mut raw = [0u8; TRAILER_LEN as usize];
    file.read_exact_at(&mut raw, len - TRAILER_LEN)?;
    Ok(Trailer::decode(&raw))
}

/// One file of the bundle and where its bytes go.
pub(crate) struct Part {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) start: u64,
    pub(crate) len: u64,
    /// What its `.sha256` says, when it has one.
    pub(crate) sha256: Option<String>,
}

pub(crate) struct BundleFile {
    pub(crate) parts: Vec<Part>,
}

/// The name of part `k` (2 and on) of the bundle file `first`.
pub fn part_name(first: &str, k: usize) -> String {
    format!("{first}.part{k}")
}

/// A `.sha256` file is one line: 64 hex digits, two spaces, a file name.
const MAX_SIDECAR: u64 = 4096;

/// The digest a `NAME.sha256` file beside `path` gives (sha256sum's format).
fn sidecar_sha256(path: &Path) -> Option<String> {
    let mut sidecar = path.as_os_str().to_owned();
    sidecar.push(".sha256");
    let mut text = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(File::open(&sidecar).ok()?, MAX_SIDECAR), &mut text).ok()?;
    let hex = String::from_utf8_lossy(&text).split_whitespace().next()?.to_ascii_lowercase();
    crate::rules::is_sha256_hex(&hex).then_some(hex)
}

impl BundleFile {
    /// `len`: the file's length, read once on open.
    pub(crate) fn single(file: File, path: &Path, len: u64) -> BundleFile {
        BundleFile { parts: vec![Part { file, path: path.to_path_buf(), start: 0, len, sha256: None }] }
    }

    pub(crate) fn is_split(&self) -> bool {
        self.parts.len() > 1
    }

    pub(crate) fn len(&self) -> u64 {
        self.parts.last().map_or(0, |p| p.start + p.len)
    }

    /// Whether `first` (`total` bytes by its launcher, more than it holds) has a second
    /// part beside it or in `dirs`.
    pub(crate) fn has_parts(first: &Path, dirs: &[PathBuf]) -> bool {
        find_part(first, 2, dirs).is_some()
    }

    /// `first` and its parts, which must add up to `total` bytes, each but the last as
    /// long as the first.
    pub(crate) fn open_parts(first: File, path: &Path, first_len: u64, total: u64, dirs: &[PathBuf]) -> Result<BundleFile> {
        let mut bundle = BundleFile::single(first, path, first_len);
        bundle.parts[0].sha256 = sidecar_sha256(path);
        let size = bundle.parts[0].len;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut k = 2;
        while bundle.len() < total {
            let Some(found) = find_part(path, k, dirs) else {
                let looked: Vec<String> = searched(path, dirs).iter().map(|d| d.display().to_string()).collect();
                return Err(Error::integrity(format!(
                    "{} is split into parts and its part {} is missing (looked in {}); copy it beside {name} or give the directory that holds it: --parts DIR",
                    path.display(),
                    part_name(&name, k),
                    looked.join(", ")
                )));
            };
            let file = File::open(&found).ctx("opening the bundle's part", &found)?;
            let len = file.metadata().ctx("reading the size of", &found)?.len();
            let want = size.min(total - bundle.len());
            if len != want {
                let what = if len < want { "is truncated" } else { "is longer than it should be" };
                return Err(Error::integrity(format!(
                    "{} {what}: it has {len} bytes of {want}; copy it again and compare it with its .sha256 file",
                    found.display()
                )));
            }
            let sha256 = sidecar_sha256(&found);
            bundle.parts.push(Part { file, path: found, start: bundle.len(), len, sha256 });
            k += 1;
        }
        Ok(bundle)
    }

    /// The part that holds byte `pos`.
    fn part_at(&self, pos: u64) -> Option<&Part> {
        self.parts.iter().find(|p| pos >= p.start && pos < p.start + p.len)
    }

    pub(crate) fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let Some(part) = self.part_at(pos) else { return Ok(0) };
        let want = (part.start + part.len - pos).min(buf.len() as u64) as usize;
        part.file.read_at(&mut buf[..want], pos - part.start)
    }

    pub(crate) fn read_exact_at(&self, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, pos)? {
                0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the bundle ended early")),
                n => {
                    buf = &mut buf[n..];
                    pos += n as u64;
                }
            }
        }
        Ok(())
    }
}

/// Where parts are looked for: beside the first, then each `--parts` directory.
fn searched(first: &Path, dirs: &[PathBuf]) -> Vec<PathBuf> {
    let beside = first.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    std::iter::once(beside).chain(dirs.iter().cloned()).collect()
}

fn find_part(first: &Path, k: usize, dirs: &[PathBuf]) -> Option<PathBuf> {
    let name = part_name(&first.file_name()?.to_string_lossy(), k);
    searched(first, dirs).into_iter().map(|dir| dir.join(&name)).find(|p| p.is_file())
}

/// Hashes each part as a whole-bundle pass reads it, and at each part's end compares
/// with its `.sha256`: a damaged part is named as soon as it has been read.
pub(crate) struct PartCheck<'a> {
    bundle: &'a BundleFile,
    index: usize,
    hasher: Sha256,
    /// Where the pass has read to.
    pos: u64,
}

impl<'a> PartCheck<'a> {
    pub(crate) fn new(bundle: &'a BundleFile) -> PartCheck<'a> {
        PartCheck { bundle, index: 0, hasher: Sha256::new(), pos: 0 }
    }

    /// The next `bytes` of the pass, which reads from 0 on.
    pub(crate) fn update(&mut self, mut bytes: &[u8]) -> Result<()> {
        if !self.bundle.is_split() {
            return Ok(());
        }
        while !bytes.is_empty() {
            let pos = self.pos;
            let Some(part) = self.bundle.parts.get(self.index) else { return Ok(()) };
            let take = ((part.start + part.len - pos) as usize).min(bytes.len());
            self.hasher.update(&bytes[..take]);
            bytes = &bytes[take..];
            self.pos += take as u64;
            if self.pos == part.start + part.len {
                self.finish_part()?;
            }
        }
        Ok(())
    }

    fn finish_part(&mut self) -> Result<()> {
        let part = &self.bundle.parts[self.index];
        let digest = to_hex(&std::mem::take(&mut self.hasher).finalize());
        self.index += 1;
        match &part.sha256 {
            Some(want) if *want != digest => Err(Error::integrity(format!(
                "{} is damaged: its SHA-256 is {digest}, its .sha256 says {want}; copy this part again",
                part.path.display()
            ))),
            _ => Ok(()),
        }
    }

    /// The whole pass ended short of a part's end (the trailer and signature are not
    /// hashed): the last part is checked with them read too.
    pub(crate) fn finish(mut self) -> Result<()> {
        if !self.bundle.is_split() || self.index >= self.bundle.parts.len() {
            return Ok(());
        }
        let part = &self.bundle.parts[self.index];
        let end = part.start + part.len;
        let mut pos = self.pos;
        let mut buf = vec![0u8; 64 << 10];
        while pos < end {
            let n = self.bundle.read_at(&mut buf[..((end - pos) as usize).min(64 << 10)], pos).ctx("reading", &part.path)?;
            if n == 0 {
                break;
            }
            self.hasher.update(&buf[..n]);
            pos += n as u64;
        }
        self.finish_part()
    }
}
