//! Where a member's content comes from: one file, a directory (packed as a tar stream
//! on the fly), or a tarball given for a tree member (a registry pack), possibly
//! compressed. Trees are scanned with the stub's own safety checks, so a bundle that
//! the stub would refuse to unpack is not built.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use airbin_format::error::{Error, IoContext, Result};
use airbin_format::registry_pack::unsafe_pack_entry;
use airbin_format::tarsafe;
use airbin_format::{Layout, MemberKind};

use crate::assemble::compress::{self, compressed_as, Compressed};
use airbin_format::image_archive::ImageSubset;

const BLOCK: u64 = 4096;

fn blocks(size: u64) -> u64 {
    size.div_ceil(BLOCK).max(1) * BLOCK
}

pub(crate) enum Source {
    File(PathBuf),
    /// A directory, packed with normalized headers: owner 0:0, no user or group
    /// names, every mtime the build time (`SOURCE_DATE_EPOCH`, or 0), entries sorted.
    Dir {
        root: PathBuf,
        mtime: u64,
        /// A delta registry pack's blobs left out (hex digests): the base carried them.
        omit: std::collections::BTreeSet<String>,
    },
    /// A tarball whose content is unpacked as a tree.
    Tarball(PathBuf),
    /// One platform of a multi-platform OCI archive (see `inspect::ImageSubset`).
    ImageSubset(PathBuf, ImageSubset),
}

/// What a scan of the input found.
pub(crate) struct Scan {
    /// Disk the member takes once extracted (whole blocks per entry).
    pub(crate) unpacked_bytes: u64,
    /// Bytes of content to read, for progress.
    pub(crate) content_bytes: u64,
    /// The first bytes of the content (of the largest file for a tree), for `auto`.
    pub(crate) sample: Vec<u8>,
}

impl Source {
    pub(crate) fn for_member(kind: MemberKind, input: &Path, mtime: u64) -> Source {
        if input.is_dir() {
            Source::Dir { root: input.to_path_buf(), mtime, omit: Default::default() }
        } else if kind == MemberKind::RegistryPack {
            Source::Tarball(input.to_path_buf())
        } else {
            Source::File(input.to_path_buf())
        }
    }

    pub(crate) fn layout(&self) -> Layout {
        match self {
            Source::File(_) | Source::ImageSubset(..) => Layout::File,
            Source::Dir { .. } | Source::Tarball(_) => Layout::Tree,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Source::File(p) | Source::Dir { root: p, .. } | Source::Tarball(p) | Source::ImageSubset(p, _) => p,
        }
    }

    /// Walks the input once: sizes, the auto sample, and the unpack-safety checks (and
    /// for a registry pack, the registry's layout).
    pub(crate) fn scan(&self, member: &str, kind: MemberKind) -> Result<Scan> {
        match self {
            Source::File(path) | Source::ImageSubset(path, _) => {
                let size = fs::metadata(path).ctx("reading", path)?.len();
                Ok(Scan { unpacked_bytes: blocks(size), content_bytes: size, sample: compress::sample_file(path).ctx("reading", path)? })
            }
            Source::Dir { root, .. } => scan_dir(member, root, kind == MemberKind::RegistryPack),
            Source::Tarball(path) => scan_tarball(member, path, kind == MemberKind::RegistryPack),
        }
    }

    /// Writes the member's content (the file, or a tar stream of the tree) to `out`.
    pub(crate) fn write_content(&self, out: &mut dyn Write) -> Result<()> {
        match self {
            Source::File(path) => {
                let mut file = File::open(path).ctx("opening", path)?;
                io::copy(&mut file, out).ctx("reading", path)?;
            }
            Source::Tarball(path) => {
                io::copy(&mut open_tarball(path)?, out).ctx("reading", path)?;
            }
            Source::ImageSubset(path, subset) => write_subset(path, subset, out)?,
            Source::Dir { root, mtime, omit } => {
                let mut tar = tar::Builder::new(out);
                tar.follow_symlinks(false);
                for entry in walk(root) {
                    let entry = entry.map_err(|e| walk_error(root, e))?;
                    let relative = entry.path().strip_prefix(root).expect("walkdir stays under its root");
                    if relative.as_os_str().is_empty() || omitted_blob(relative, omit) {
                        continue;
                    }
                    append_normalized(&mut tar, entry.path(), relative, *mtime)?;
                }
                tar.finish().ctx("packing", root)?;
            }
        }
        Ok(())
    }
}

/// Whether `relative` is (or is in) `docker/registry/v2/blobs/sha256/<xx>/<hex>` of a
/// blob the delta leaves out.
fn omitted_blob(relative: &Path, omit: &std::collections::BTreeSet<String>) -> bool {
    if omit.is_empty() {
        return false;
    }
    let Ok(rest) = relative.strip_prefix("docker/registry/v2/blobs/sha256") else { return false };
    rest.iter().nth(1).is_some_and(|hex| omit.contains(&*hex.to_string_lossy()))
}

/// The archive's entries that `subset` keeps, in their order, with its `index.json`.
fn write_subset(path: &Path, subset: &ImageSubset, out: &mut dyn Write) -> Result<()> {
    let mut archive = tar::Archive::new(tarsafe::BoundedHeaders::new(open_tarball(path)?));
    let mut tar = tar::Builder::new(out);
    for entry in archive.entries().ctx("reading", path)? {
        let mut entry = entry.ctx("reading", path)?;
        let name = entry.path().ctx("reading", path)?.to_string_lossy().trim_start_matches("./").to_string();
        let mut header = entry.header().clone();
        if name == "index.json" {
            header.set_size(subset.index_json.len() as u64);
            tar.append_data(&mut header, &name, subset.index_json.as_slice()).ctx("writing", path)?;
        } else if subset.keep.contains(&name) || (name.starts_with("blobs") && entry.header().entry_type().is_dir()) {
            tar.append_data(&mut header, &name, &mut entry).ctx("reading", path)?;
        }
    }
    tar.finish().ctx("writing", path)?;
    Ok(())
}

/// One entry with what reproduces: type, mode bits, size, link target, the given mtime;
/// nothing of the build host (owner, user and group names, times).
fn append_normalized(tar: &mut tar::Builder<&mut dyn Write>, path: &Path, relative: &Path, mtime: u64) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(path).ctx("reading", path)?;
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.permissions().mode() & 0o7777);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    let kind = meta.file_type();
    if kind.is_symlink() {
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        let target = fs::read_link(path).ctx("reading the link", path)?;
        tar.append_link(&mut header, relative, target).ctx("packing", path)
    } else if kind.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        tar.append_data(&mut header, relative, io::empty()).ctx("packing", path)
    } else {
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.len());
        let file = File::open(path).ctx("opening", path)?;
        tar.append_data(&mut header, relative, file.take(meta.len())).ctx("packing", path)
    }
}

fn walk(root: &Path) -> walkdir::IntoIter {
    walkdir::WalkDir::new(root).follow_links(false).sort_by_file_name().into_iter()
}

fn walk_error(root: &Path, e: walkdir::Error) -> Error {
    let path = e.path().unwrap_or(root).to_path_buf();
    match e.into_io_error() {
        Some(io) => Error::io(io, "reading", &path),
        None => Error::usage(format!("{}: a symlink loop", path.display())),
    }
}

fn scan_dir(member: &str, root: &Path, registry_pack: bool) -> Result<Scan> {
    let mut scan = Scan { unpacked_bytes: 0, content_bytes: 1024, sample: Vec::new() };
    let mut largest: Option<(u64, PathBuf)> = None;
    for entry in walk(root) {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        let relative = entry.path().strip_prefix(root).expect("walkdir stays under its root");
        let kind = entry.file_type();
        let meta = entry.metadata().map_err(|e| walk_error(root, e))?;
        if kind.is_symlink() {
            let target = fs::read_link(entry.path()).ctx("reading the link", entry.path())?;
            if let Some(why) = tarsafe::escaping_symlink(relative, &target) {
                return Err(Error::usage(format!(
                    "member {member}: {} {why} ('{}'); the stub would refuse to unpack it: make it relative and inside the directory",
                    entry.path().display(),
                    target.display()
                )));
            }
        } else if !kind.is_file() && !kind.is_dir() {
            return Err(Error::usage(format!(
                "member {member}: {} is neither a file, a directory nor a symlink; remove it from the input",
                entry.path().display()
            )));
        }
        if registry_pack {
            let entry_type = match (kind.is_dir(), kind.is_file()) {
                (true, _) => tar::EntryType::Directory,
                (_, true) => tar::EntryType::Regular,
                _ => tar::EntryType::Symlink,
            };
            if let Some(why) = unsafe_pack_entry(&relative.to_string_lossy(), entry_type) {
                return Err(Error::usage(format!("member {member}: {why}; remove it from {}", root.display())));
            }
        }
        scan.unpacked_bytes += blocks(meta.len());
        scan.content_bytes += 512 + meta.len().div_ceil(512) * 512;
        if kind.is_file() && largest.as_ref().is_none_or(|(size, _)| meta.len() > *size) {
            largest = Some((meta.len(), entry.path().to_path_buf()));
        }
    }
    if let Some((_, path)) = largest {
        scan.sample = compress::sample_file(&path).ctx("reading", &path)?;
    }
    Ok(scan)
}

/// A tarball, through the decompressor its magic number asks for.
pub(crate) fn open_tarball(path: &Path) -> Result<Box<dyn Read>> {
    let mut file = BufReader::with_capacity(256 << 10, File::open(path).ctx("opening", path)?);
    let head = file.fill_buf().ctx("reading", path)?;
    // bzip2 is not decoded here: such a tarball is refused as unreadable by the caller.
    Ok(match compressed_as(head) {
        Some(Compressed::Gzip) => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        Some(Compressed::Xz) => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(file)),
        Some(Compressed::Zstd) => Box::new(zstd::stream::read::Decoder::with_buffer(file).ctx("reading", path)?),
        Some(Compressed::Bzip2) | None => Box::new(file),
    })
}

fn scan_tarball(member: &str, path: &Path, registry_pack: bool) -> Result<Scan> {
    let not_a_tar = |e: io::Error| Error::usage(format!("member {member}: {} is not a readable tar archive ({e})", path.display()));
    let mut counted = Counting { inner: open_tarball(path)?, count: 0 };
    let mut archive = tar::Archive::new(tarsafe::BoundedHeaders::new(&mut counted));
    let mut unpacked_bytes = 0;
    let mut entries = 0;
    for entry in archive.entries().map_err(not_a_tar)? {
        let entry = entry.map_err(not_a_tar)?;
        tarsafe::check_entry(member, &entry).map_err(|e| Error::usage(format!("{}: {}", path.display(), e.message)))?;
        if registry_pack {
            let rel = entry.path().map_err(not_a_tar)?.to_string_lossy().into_owned();
            if let Some(why) = unsafe_pack_entry(&rel, entry.header().entry_type()) {
                return Err(Error::usage(format!("member {member}: {}: {why}", path.display())));
            }
        }
        unpacked_bytes += blocks(entry.size());
        entries += 1;
    }
    if entries == 0 {
        return Err(Error::usage(format!("member {member}: {} is an empty or unreadable tar archive", path.display())));
    }
    io::copy(&mut counted, &mut io::sink()).map_err(not_a_tar)?;
    // What goes into the bundle is the (decompressed) tar stream: sample that.
    let mut sample = Vec::new();
    open_tarball(path)?.take(4 << 20).read_to_end(&mut sample).ctx("reading", path)?;
    Ok(Scan { unpacked_bytes, content_bytes: counted.count, sample })
}

struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}
