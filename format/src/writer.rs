//! Writing a bundle: launcher, stub, members, index, trailer, in that order, in one pass
//! over the output, plus one read-back to hash the finished bytes (the launcher learns
//! the total length only at the end).

use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use super::digest::{to_hex, HashingWriter};
use super::launcher::{self, posix_cksum, LauncherFields, BLOCK, LAUNCHER_LEN};
use super::params::Parameter;
use super::signature::SIGNATURE_BLOCK;
use super::step::{ConfigRules, Requires, Step};
use super::trailer::{Trailer, TRAILER_LEN};
use super::{BuildFacts, BundleMeta, Index, Member, Region, FORMAT_VERSION};

pub struct BundleWriter<W: Write> {
    out: BufWriter<W>,
    pos: u64,
    launcher: LauncherFields,
    stub: Region,
    members: Vec<Member>,
}

/// The install half of the index: steps and what they need of the config and the host.
#[derive(Clone, Debug, Default)]
pub struct InstallRules {
    pub steps: Vec<Step>,
    pub config: ConfigRules,
    pub requires: Requires,
    pub parameters: Vec<Parameter>,
}

/// Where a member's stored bytes went, and their digest.
pub struct StoredFacts {
    pub offset: u64,
    pub stored_size: u64,
    pub stored_sha256: String,
}

/// Makes the embedded signature: given the SHA-256 of every byte before the signature
/// block, returns minisign's signature text (see `format::signature`).
pub type Sign<'a> = &'a dyn Fn(&[u8; 32]) -> io::Result<String>;

/// What `finish` reports about the written bundle.
pub struct Finished {
    pub total_len: u64,
    /// SHA-256 of the whole file, trailer included: what goes into the `.sha256` file.
    pub file_sha256: String,
}

impl<W: Read + Write + Seek> BundleWriter<W> {
    /// Starts a bundle: writes the launcher (its total length still zero) and the stub.
    pub fn new(out: W, stub: &[u8], meta: &BundleMeta, builder_version: &str) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 20, out);
        let mut padded_stub = stub.to_vec();
        padded_stub.resize(stub.len().div_ceil(BLOCK as usize) * BLOCK as usize, 0);
        let launcher = LauncherFields {
            format_version: FORMAT_VERSION,
            builder_version: builder_version.to_string(),
            name: meta.name.clone(),
            version: meta.version.clone(),
            arch: meta.arch.clone(),
            stub_blocks: padded_stub.len() as u64 / BLOCK,
            stub_cksum: posix_cksum(&padded_stub),
            total_len: 0,
        };
        out.write_all(&launcher::render(&launcher))?;
        out.write_all(&padded_stub)?;
        Ok(BundleWriter {
            out,
            pos: LAUNCHER_LEN + padded_stub.len() as u64,
            launcher,
            stub: Region { offset: LAUNCHER_LEN, length: stub.len() as u64 },
            members: Vec::new(),
        })
    }

    /// Writes one member's stored bytes through `write_stored`, which gets a sink that
    /// counts and hashes them.
    pub fn write_stored<F>(&mut self, write_stored: F) -> io::Result<StoredFacts>
    where
        F: FnOnce(&mut dyn Write) -> io::Result<()>,
    {
        let mut sink = HashingWriter::new(&mut self.out);
        write_stored(&mut sink)?;
        let (_, stored_size, stored_sha256) = sink.finish();
        let facts = StoredFacts { offset: self.pos, stored_size, stored_sha256 };
        self.pos += stored_size;
        Ok(facts)
    }

    /// Records a member whose bytes `write_stored` wrote.
    pub fn add_member(&mut self, member: Member) {
        self.members.push(member);
    }

    /// Writes the index, the signature block when `sign` is given, and the trailer,
    /// fills in the launcher's total length, and hands back the output.
    pub fn finish(
        mut self,
        bundle: BundleMeta,
        build: BuildFacts,
        install: InstallRules,
        sign: Option<Sign<'_>>,
    ) -> io::Result<(W, Finished)> {
        let index = Index {
            format_version: FORMAT_VERSION,
            bundle,
            build: build.clone(),
            stub: self.stub,
            members: std::mem::take(&mut self.members),
            steps: install.steps,
            config: install.config,
            requires: install.requires,
            parameters: install.parameters,
        };
        let raw_index = serde_json::to_vec(&index)?;
        let index_offset = self.pos;
        self.out.write_all(&raw_index)?;
        let index_end = index_offset + raw_index.len() as u64;
        let signature_len = if sign.is_some() { SIGNATURE_BLOCK } else { 0 };
        let total_len = index_end + signature_len + TRAILER_LEN;

        self.launcher.total_len = total_len;
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&launcher::render(&self.launcher))?;
        self.out.flush()?;

        let file = self.out.get_mut();
        file.seek(SeekFrom::Start(0))?;
        let mut hasher = Sha256::new();
        let copied = io::copy(&mut file.take(index_end), &mut HashWrite(&mut hasher))?;
        if copied != index_end {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the output shrank while being hashed"));
        }
        let file_sha256: [u8; 32] = hasher.clone().finalize().into();
        if let Some(sign) = sign {
            let text = sign(&file_sha256)?;
            let mut block = text.into_bytes();
            if block.len() >= SIGNATURE_BLOCK as usize {
                return Err(io::Error::other("the signature does not fit its block"));
            }
            block.resize(SIGNATURE_BLOCK as usize, 0);
            self.out.seek(SeekFrom::Start(index_end))?;
            self.out.write_all(&block)?;
            hasher.update(&block);
        }
        let trailer = Trailer {
            file_sha256,
            index_sha256: Sha256::digest(&raw_index).into(),
            index_offset,
            index_len: raw_index.len() as u64,
            total_len,
            stub_offset: self.stub.offset,
            stub_len: self.stub.length,
            signature_len: signature_len as u32,
            builder_version: build.builder_version,
            format_version: FORMAT_VERSION,
        };
        let raw_trailer = trailer.encode();
        self.out.seek(SeekFrom::Start(index_end + signature_len))?;
        self.out.write_all(&raw_trailer)?;
        self.out.flush()?;
        hasher.update(raw_trailer);
        let out = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok((out, Finished { total_len, file_sha256: to_hex(&hasher.finalize()) }))
    }
}

struct HashWrite<'a>(&'a mut Sha256);

impl Write for HashWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
