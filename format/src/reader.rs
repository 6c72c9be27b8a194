//! Opening a bundle: where it is cheap, find out at once whether the file is whole
//! (length first, then the trailer and the index digest); `verify` then hashes every
//! byte. Members are read by position (`pread`), so several threads can decode
//! members of one open bundle at the same time.
//!
//! `verify` may run on its own thread while an install streams members: its verdict
//! is shared (`await_verified`), and nothing may commit bytes before it passes.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use sha2::{Digest, Sha256};

use super::digest::to_hex;
use super::launcher::LAUNCHER_LEN;
use super::signature::{self, Embedded, Signer, TrustedKey, SIGNATURE_BLOCK};
use super::trailer::{Trailer, TRAILER_LEN};
use super::validate;
use super::{Codec, Index, Member, FORMAT_VERSION, OLDEST_FORMAT};
use crate::error::{Error, IoContext, Result};
use crate::parts::{damaged, open_file, BundleFile, PartCheck};

const READ_BUF: usize = 1 << 20;

pub struct Bundle {
    pub path: PathBuf,
    file: BundleFile,
    pub trailer: Trailer,
    pub index: Index,
    /// The embedded signature of a signed bundle (format 3).
    pub signature: Option<Embedded>,
    /// What `verify` found, for whoever waits on it.
    verdict: Verdict,
}

/// The outcome of `verify`, shared between the thread that verifies and the steps
/// that wait for it.
#[derive(Default)]
struct Verdict {
    state: Mutex<VerdictState>,
    settled: Condvar,
}

#[derive(Clone, Default)]
enum VerdictState {
    #[default]
    NotStarted,
    Running,
    Passed,
    /// Every byte passed in an earlier run, and the file has not changed since
    /// (`recall_verified`): each member's content is hashed as it is read.
    Recalled,
    Failed(Error),
}

/// What tells one file from another, and a file from itself after a write: the inode,
/// the size and both times. `ctime` cannot be set back by any user-space call, so a
/// file with the same identity has not been written since.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Verdict {
    fn set(&self, state: VerdictState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        self.settled.notify_all();
    }

    fn get(&self) -> VerdictState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The trailer at `total`'s end (and its raw bytes): a format this runtime reads, and
/// offsets that fit together.
fn read_trailer(file: &BundleFile, path: &Path, total: u64) -> Result<(Trailer, [u8; TRAILER_LEN as usize])> {
    if total < LAUNCHER_LEN + TRAILER_LEN {
        return Err(damaged(path, "it is too short to hold a bundle"));
    }
    let mut raw = [0u8; TRAILER_LEN as usize];
    file.read_exact_at(&mut raw, total - TRAILER_LEN).ctx("reading", path)?;
    let tail = Trailer::decode_tail(raw[112..160].try_into().unwrap()).ok_or_else(|| damaged(path, "its trailer is altered"))?;
    if !(OLDEST_FORMAT..=FORMAT_VERSION).contains(&tail.format_version) {
        return Err(Error::integrity(format!(
            "{} is a format {} bundle made by airbin {}; this airbin reads formats {OLDEST_FORMAT} to {FORMAT_VERSION}: use airbin {} or newer to read it",
            path.display(),
            tail.format_version,
            tail.builder_version,
            tail.builder_version
        )));
    }
    let trailer = Trailer::decode(&raw).ok_or_else(|| damaged(path, "its trailer is altered"))?;
    let stub_end = trailer.stub_offset.saturating_add(trailer.stub_len);
    let signature_len = trailer.signature_len as u64;
    let signature_ok = match trailer.format_version {
        3.. => signature_len == 0 || signature_len == SIGNATURE_BLOCK,
        _ => signature_len == 0,
    };
    let layout_ok = trailer.total_len == total
        && signature_ok
        && trailer.stub_offset == LAUNCHER_LEN
        && stub_end <= trailer.index_offset
        && trailer.index_offset.checked_add(trailer.index_len).and_then(|end| end.checked_add(signature_len)) == Some(total - TRAILER_LEN)
        && trailer.index_len <= 64 << 20;
    if !layout_ok {
        return Err(damaged(path, "its trailer gives impossible offsets"));
    }
    Ok((trailer, raw))
}

/// The index the trailer points at: its digest, its JSON, its agreement with the
/// trailer, and every value held to the builder's rules.
fn read_index(file: &BundleFile, path: &Path, trailer: &Trailer, raw_trailer: &[u8; TRAILER_LEN as usize]) -> Result<Index> {
    let mut raw_index = vec![0u8; trailer.index_len as usize];
    file.read_exact_at(&mut raw_index, trailer.index_offset).ctx("reading", path)?;
    if Sha256::digest(&raw_index).as_slice() != trailer.index_sha256 {
        return Err(damaged(path, format_args!("its index (at byte {}) fails its digest", trailer.index_offset)));
    }
    let index: Index = serde_json::from_slice(&raw_index).map_err(|e| {
        Error::integrity(format!(
            "{}: the index is unreadable ({e}); it was made by airbin {}: read it with that version",
            path.display(),
            trailer.builder_version
        ))
    })?;
    // The trailer lies outside the digest it carries: every field of it must agree
    // with the index (which its own digest vouches for), and its unused bytes must
    // be as written.
    let consistent = trailer.encode() == *raw_trailer
        && index.format_version == trailer.format_version
        && index.stub.offset == trailer.stub_offset
        && index.stub.length == trailer.stub_len
        && index.build.builder_version == trailer.builder_version;
    if !consistent {
        return Err(damaged(path, "its trailer disagrees with its index"));
    }
    // Digests prove nothing against someone who rewrote the file: every value the
    // runtime will use is held to the builder's own rules before any of it is used.
    validate::check_index(&index).map_err(|invalid| {
        Error::integrity(format!(
            "{}: the index breaks airbin's rules at {invalid}; refusing to use this bundle: it was not made by airbin as it is, get a fresh copy from its maker",
            path.display()
        ))
    })?;
    Ok(index)
}

impl Bundle {
    /// Opens a bundle and checks everything that is cheap to check: the total length,
    /// the trailer, the format version and the index's own digest.
    pub fn open(path: &Path) -> Result<Bundle> {
        Bundle::open_parts(path, &[])
    }

    /// Opens a bundle that may be split into parts (`airbin build --split-size`): its
    /// parts beside it or in `dirs`, each of the size it must have, are read as one.
    pub fn open_parts(path: &Path, dirs: &[PathBuf]) -> Result<Bundle> {
        let (file, total) = open_file(path, dirs)?;
        let (trailer, raw) = read_trailer(&file, path, total)?;
        let index = read_index(&file, path, &trailer, &raw)?;
        let signature = match trailer.signature_len as u64 {
            0 => None,
            len => {
                let mut block = vec![0u8; len as usize];
                let at = trailer.index_offset + trailer.index_len;
                file.read_exact_at(&mut block, at).ctx("reading", path)?;
                Some(Embedded::parse(&block).map_err(|why| damaged(path, why))?)
            }
        };
        let stub_end = trailer.stub_offset.saturating_add(trailer.stub_len);
        for member in &index.members {
            let end = member.offset.checked_add(member.stored_size);
            if member.offset < stub_end || end.is_none_or(|end| end > trailer.index_offset) {
                return Err(damaged(path, format_args!("member {} lies outside the payload", member.name)));
            }
        }
        Ok(Bundle { path: path.to_path_buf(), file, trailer, index, signature, verdict: Verdict::default() })
    }

    /// The SHA-256 of every byte before the trailer, in hex: the bundle's identity in
    /// the journal.
    pub fn sha256(&self) -> String {
        to_hex(&self.trailer.file_sha256)
    }

    /// Where the digested bytes end: the index's end (the signature block and the
    /// trailer follow).
    pub fn digested_len(&self) -> u64 {
        self.trailer.index_offset + self.trailer.index_len
    }

    /// Hashes every byte before the signature block (or the trailer) and compares with
    /// the trailer's digest; `on_read` hears how many bytes each read hashed (for
    /// progress). Then checks the signature against `keys` (see `signature::check`).
    /// Its verdict is kept for `await_verified`.
    pub fn verify(&self, keys: &[TrustedKey], on_read: &dyn Fn(u64)) -> Result<Signer> {
        self.verdict.set(VerdictState::Running);
        let result = self.check_every_byte(keys, on_read);
        self.verdict.set(match &result {
            Ok(_) => VerdictState::Passed,
            Err(e) => VerdictState::Failed(e.clone()),
        });
        result
    }

    /// Takes the verdict of an earlier run's `verify` of this very file, whose
    /// `identity()` then was `identity()` now: checks the signature against `keys` (they
    /// may have changed since) and leaves each member to be hashed against the index as
    /// it is read, instead of hashing every byte again.
    pub fn recall_verified(&self, keys: &[TrustedKey]) -> Result<Signer> {
        let result = signature::check(&self.path, self.signature.as_ref(), &self.trailer.file_sha256, keys);
        self.verdict.set(match &result {
            Ok(_) => VerdictState::Recalled,
            Err(e) => VerdictState::Failed(e.clone()),
        });
        result
    }

    /// The open file's identity (from its descriptor: the file being read, whatever
    /// the path names now).
    /// For a split bundle: the first part's inode, the whole length, and the latest
    /// times of any part (a part written since moves them).
    pub fn identity(&self) -> Result<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let ns = |secs: i64, nanos: i64| secs.saturating_mul(1_000_000_000).saturating_add(nanos);
        let mut identity: Option<FileIdentity> = None;
        for part in &self.file.parts {
            let meta = part.file.metadata().ctx("reading the metadata of", &part.path)?;
            let (mtime_ns, ctime_ns) = (ns(meta.mtime(), meta.mtime_nsec()), ns(meta.ctime(), meta.ctime_nsec()));
            identity = Some(match identity {
                None => FileIdentity { dev: meta.dev(), ino: meta.ino(), size: self.file.len(), mtime_ns, ctime_ns },
                Some(id) => FileIdentity { mtime_ns: id.mtime_ns.max(mtime_ns), ctime_ns: id.ctime_ns.max(ctime_ns), ..id },
            });
        }
        identity.ok_or_else(|| Error::internal("a bundle without a file"))
    }

    /// The files the bundle is read from: itself, or its parts in order.
    pub fn files(&self) -> Vec<&Path> {
        self.file.parts.iter().map(|p| p.path.as_path()).collect()
    }

    /// Who signed the bundle, checked against `keys` (the digest it signs is the
    /// trailer's: call once every byte has passed, or to say who signed it).
    pub fn signer(&self, keys: &[TrustedKey]) -> Result<Signer> {
        signature::check(&self.path, self.signature.as_ref(), &self.trailer.file_sha256, keys)
    }

    /// Whether every byte was hashed in this run and passed.
    pub fn verified_whole(&self) -> bool {
        matches!(self.verdict.get(), VerdictState::Passed)
    }

    /// Starts `verify` on a thread of `scope`, without progress: what must not act on
    /// unverified bytes waits for its verdict (`await_verified`).
    pub fn verify_in_background<'scope, 'env>(
        &'env self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        keys: &'env [TrustedKey],
    ) -> std::thread::ScopedJoinHandle<'scope, Result<Signer>> {
        // Verified in full already (keys pinned: before anything else): no second pass.
        if self.verified_whole() {
            return scope.spawn(move || self.signer(keys));
        }
        // Running before the thread starts: a step that asks first must wait, not fail.
        self.verdict.set(VerdictState::Running);
        scope.spawn(move || self.verify(keys, &|_| {}))
    }

    /// Waits for `verify` (running on another thread) to settle: `Ok` once every byte
    /// and the signature passed, the error it found otherwise.
    pub fn await_verified(&self) -> Result<()> {
        let mut state = self.verdict.state.lock().unwrap_or_else(|e| e.into_inner());
        while matches!(*state, VerdictState::Running) {
            state = self.verdict.settled.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        match &*state {
            VerdictState::Passed | VerdictState::Recalled => Ok(()),
            VerdictState::Failed(error) => Err(error.clone()),
            _ => Err(Error::internal("a step wanted the bundle verified, and nothing verifies it")),
        }
    }

    /// The error `verify` found, if it has finished and failed; never waits.
    pub fn verification_failed(&self) -> Option<Error> {
        match self.verdict.get() {
            VerdictState::Failed(error) => Some(error),
            _ => None,
        }
    }

    fn check_every_byte(&self, keys: &[TrustedKey], on_read: &dyn Fn(u64)) -> Result<Signer> {
        let end = self.digested_len();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; READ_BUF];
        let mut pos = 0u64;
        let mut parts = PartCheck::new(&self.file);
        while pos < end {
            crate::error::check_cancel()?;
            let want = (end - pos).min(READ_BUF as u64) as usize;
            let n = self.file.read_at(&mut buf[..want], pos).ctx("reading", &self.path)?;
            if n == 0 {
                return Err(damaged(&self.path, "it shrank while being checked"));
            }
            hasher.update(&buf[..n]);
            parts.update(&buf[..n])?;
            pos += n as u64;
            on_read(n as u64);
        }
        parts.finish()?;
        let digest = hasher.finalize();
        if digest.as_slice() != self.trailer.file_sha256 {
            return Err(damaged(
                &self.path,
                format_args!(
                    "the SHA-256 of its {end} bytes is {}, not the {} it was built with",
                    to_hex(&digest),
                    to_hex(&self.trailer.file_sha256)
                ),
            ));
        }
        signature::check(&self.path, self.signature.as_ref(), &self.trailer.file_sha256, keys)
    }

    /// Who signed the bundle, without checking it: for `info`.
    pub fn signer_key(&self) -> Option<signature::KeyId> {
        self.signature.as_ref().map(|s| s.key_id)
    }

    pub fn member(&self, name: &str) -> Result<&Member> {
        self.index.member(name).ok_or_else(|| {
            let names: Vec<&str> = self.index.members.iter().map(|m| m.name.as_str()).collect();
            Error::usage(format!("this bundle has no member '{name}'; its members are: {}", names.join(", ")))
        })
    }

    /// The member's stored bytes, exactly as they lie in the bundle.
    pub fn stored_reader(&self, member: &Member) -> RegionReader<'_> {
        RegionReader { file: &self.file, pos: member.offset, end: member.offset + member.stored_size }
    }

    /// The member's content, decompressed. At its end the content's size is compared
    /// with the index, and so is its SHA-256 unless the whole file was verified in this
    /// run (the content is then a function of verified bytes, and hashing it again would
    /// only compete for the CPU with whatever it streams into). A mismatch is an error,
    /// never a short read.
    pub fn content_reader(&self, member: &Member) -> Result<ContentReader<'_>> {
        let verified = matches!(self.verdict.get(), VerdictState::Passed);
        self.decoded(member, verified)
    }

    /// `content_reader` for a caller that holds back the end of what it streams until the
    /// verdict (`engines::load`): while `verify` runs, the whole-file digest will vouch for
    /// these bytes too, so the content is not hashed a second time (measured: an image
    /// load at 1.23x `docker load -i` with the second hash, 1.13x without).
    pub fn content_reader_held_back(&self, member: &Member) -> Result<ContentReader<'_>> {
        let vouched = matches!(self.verdict.get(), VerdictState::Passed | VerdictState::Running);
        self.decoded(member, vouched)
    }

    fn decoded(&self, member: &Member, vouched_for: bool) -> Result<ContentReader<'_>> {
        let stored = BufReader::with_capacity(256 << 10, self.stored_reader(member));
        let decoded: Box<dyn Read + Send + '_> = match member.codec {
            Codec::None => Box::new(stored),
            Codec::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(stored).ctx("starting to decompress", &self.path)?),
            Codec::Xz => Box::new(liblzma::bufread::XzDecoder::new_stream(stored, xz_decoder()?)),
        };
        Ok(ContentReader {
            inner: decoded,
            count: 0,
            expected_size: member.size,
            check: (!vouched_for).then(|| (Sha256::new(), member.sha256.clone())),
            member: member.name.clone(),
            done: false,
        })
    }
}

/// xz's threaded decoder: uses the cores on the multi-block streams the builder writes,
/// within a memory cap that keeps the stub's footprint flat.
fn xz_decoder() -> Result<liblzma::stream::Stream> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4) as u32;
    liblzma::stream::MtStreamBuilder::new()
        .threads(threads)
        .memlimit_threading(48 << 20)
        .memlimit_stop(512 << 20)
        .decoder()
        .map_err(|e| Error::internal(format!("starting the xz decoder: {e}")))
}

/// Reads one region of the bundle by position.
pub struct RegionReader<'a> {
    file: &'a BundleFile,
    pos: u64,
    end: u64,
}

impl Read for RegionReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::error::check_cancel()?;
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the bundle ended inside a member"));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

pub struct ContentReader<'a> {
    inner: Box<dyn Read + Send + 'a>,
    count: u64,
    expected_size: u64,
    /// The hasher and the digest it must reach; `None` when the bundle was verified whole.
    check: Option<(Sha256, String)>,
    member: String,
    done: bool,
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(|e| match e.get_ref().map(|i| i.is::<Error>()) {
            Some(true) => e,
            _ => Error::integrity(format!(
                "member {} does not decompress ({e}); the bundle is damaged: copy it again and compare it with its .sha256 file",
                self.member
            ))
            .into(),
        })?;
        self.count += n as u64;
        if let Some((hasher, _)) = &mut self.check {
            hasher.update(&buf[..n]);
        }
        if self.count > self.expected_size {
            return Err(self.mismatch("it is longer than the index says"));
        }
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            if self.count != self.expected_size {
                return Err(self.mismatch("it is shorter than the index says"));
            }
            if let Some((hasher, expected)) = self.check.take() {
                if to_hex(&hasher.finalize()) != expected {
                    return Err(self.mismatch("its SHA-256 differs from the index"));
                }
            }
        }
        Ok(n)
    }
}

impl ContentReader<'_> {
    fn mismatch(&self, what: &str) -> io::Error {
        Error::integrity(format!("member {} is damaged: {what}; copy the bundle again and compare it with its .sha256 file", self.member))
            .into()
    }
}
