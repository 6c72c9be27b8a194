//! Unpacking a member's tar stream without ever writing outside the target.
//!
//! tar-rs already re-roots absolute paths and refuses to write through a symlink that
//! leaves the target, but it skips `..` entries silently and leaves an escaping symlink
//! itself in place. Here every such entry is refused with its path named, and the whole
//! member is refused with it: a bundle that carries one is not to be trusted. The same
//! checks run in the builder, so such a bundle is not built in the first place.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use super::rules;
use crate::error::{Error, IoContext, Result};

/// Why an entry path is unsafe, if it is.
pub fn unsafe_entry_path(path: &Path) -> Option<&'static str> {
    if path.as_os_str().is_empty() {
        return Some("has an empty path");
    }
    for component in path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => return Some("is an absolute path"),
            Component::ParentDir => return Some("climbs out with '..'"),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    None
}

/// Why a symlink at `link` (relative to the archive root) pointing at `target` escapes,
/// if it does: absolute targets, and relative ones that climb above the root.
pub fn escaping_symlink(link: &Path, target: &Path) -> Option<&'static str> {
    if target.has_root() {
        return Some("is a symlink to an absolute path");
    }
    let mut depth: i64 = link.components().filter(|c| matches!(c, Component::Normal(_))).count() as i64 - 1;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Some("is a symlink that points outside the member");
        }
    }
    None
}

/// Why an entry of this type may not be unpacked, if it may not.
fn unsupported_type(kind: EntryType) -> Option<&'static str> {
    match kind {
        EntryType::Regular | EntryType::Continuous | EntryType::Directory | EntryType::Symlink | EntryType::Link => None,
        EntryType::Char | EntryType::Block => Some("is a device file"),
        EntryType::Fifo => Some("is a FIFO"),
        _ => Some("has a tar entry type airbin does not unpack"),
    }
}

fn refuse(member: &str, entry: &Path, why: &str) -> Error {
    Error::integrity(format!(
        "member {member}: tar entry '{}' {why}; refusing to unpack this bundle: ask its maker for a fixed one",
        rules::printable(&entry.to_string_lossy(), 200)
    ))
}

/// GNU long names and links and PAX headers are read into memory whole by tar-rs: a
/// larger one than this is refused before it is read.
pub const MAX_EXTENSION: u64 = 64 << 10;

/// Passes a tar stream through, reading each 512-byte header as it goes by: an extension
/// header (GNU `L`/`K`, PAX `x`/`g`) larger than `MAX_EXTENSION` stops the stream at its
/// header, before its data is read.
pub struct BoundedHeaders<R> {
    inner: R,
    header: [u8; 512],
    filled: usize,
    /// Data bytes (rounded up to whole blocks) before the next header.
    skip: u64,
}

impl<R> BoundedHeaders<R> {
    pub fn new(inner: R) -> BoundedHeaders<R> {
        BoundedHeaders { inner, header: [0; 512], filled: 0, skip: 0 }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for BoundedHeaders<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut i = 0;
        while i < n {
            if self.skip > 0 {
                let k = self.skip.min((n - i) as u64);
                self.skip -= k;
                i += k as usize;
                continue;
            }
            let k = (512 - self.filled).min(n - i);
            self.header[self.filled..self.filled + k].copy_from_slice(&buf[i..i + k]);
            self.filled += k;
            i += k;
            if self.filled < 512 {
                continue;
            }
            self.filled = 0;
            if self.header.iter().all(|&b| b == 0) {
                continue;
            }
            let header = tar::Header::from_byte_slice(&self.header);
            let Ok(size) = header.entry_size() else { continue };
            let extension = matches!(self.header[156], b'L' | b'K' | b'x' | b'g');
            if extension && size > MAX_EXTENSION {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a tar extension header (long name or PAX) of {size} bytes, above the {MAX_EXTENSION}-byte bound"),
                ));
            }
            self.skip = size.div_ceil(512) * 512;
        }
        Ok(n)
    }
}

/// Checks one entry's path, type and link; `Err` names what is wrong with it.
pub fn check_entry<R: Read>(member: &str, entry: &tar::Entry<'_, R>) -> Result<()> {
    let path = entry.path().map_err(|e| Error::integrity(format!("member {member}: unreadable tar entry path: {e}")))?;
    if let Some(why) = unsafe_entry_path(&path) {
        return Err(refuse(member, &path, why));
    }
    if path.as_os_str().len() > 4096 {
        return Err(refuse(member, &path, "has a path longer than 4096 bytes"));
    }
    let kind = entry.header().entry_type();
    if let Some(why) = unsupported_type(kind) {
        return Err(refuse(member, &path, why));
    }
    if kind == EntryType::Symlink || kind == EntryType::Link {
        let target = entry
            .link_name()
            .map_err(|e| refuse(member, &path, &format!("has an unreadable link target ({e})")))?
            .ok_or_else(|| refuse(member, &path, "is a link without a target"))?;
        let why = if kind == EntryType::Symlink {
            escaping_symlink(&path, &target)
        } else {
            unsafe_entry_path(&target).map(|_| "is a hard link to outside the member")
        };
        if let Some(why) = why {
            return Err(refuse(member, &path, &format!("{why} ('{}')", rules::printable(&target.to_string_lossy(), 200))));
        }
    }
    Ok(())
}

/// A rule an entry must pass: `Some(why)` refuses the entry at this path of this type.
pub type EntryRule<'a> = &'a dyn Fn(&str, EntryType) -> Option<String>;

/// How a tree is unpacked.
#[derive(Default)]
pub struct Unpack<'a> {
    /// Keep setuid, setgid and sticky bits (the spec marked the member so).
    pub special_bits: bool,
    /// A further rule every entry must pass (`Some(why)` refuses it): the registry
    /// layout for registry packs.
    pub entry_rule: Option<EntryRule<'a>>,
}

/// Unpacks the tar stream `content` into `dest` (which must not exist yet), refusing
/// every unsafe entry. Reads `content` to its very end, so that a digest check at the
/// end of the stream always runs.
pub fn unpack_tree<R: Read>(member: &str, content: R, dest: &Path, how: &Unpack<'_>) -> Result<()> {
    fs::create_dir(dest).ctx("creating", dest)?;
    let mut archive = tar::Archive::new(BoundedHeaders::new(content));
    // Without special bits, tar-rs keeps rwx only (mode & 0o777).
    archive.set_preserve_permissions(how.special_bits);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let unreadable = |e: io::Error| match Error::wrapped_in(&e) {
        Some(ours) => ours,
        None => Error::integrity(format!("member {member}: the tar stream is unreadable ({e}); refusing to unpack this bundle")),
    };
    let mut directories = Vec::new();
    for entry in archive.entries().map_err(unreadable)? {
        crate::error::check_cancel()?;
        let mut entry = entry.map_err(unreadable)?;
        check_entry(member, &entry)?;
        let path = entry.path().expect("checked above").into_owned();
        if let Some(rule) = how.entry_rule {
            if let Some(why) = rule(&path.to_string_lossy(), entry.header().entry_type()) {
                return Err(Error::integrity(format!(
                    "member {member}: {why}; refusing to unpack this bundle: ask its maker for a fixed one"
                )));
            }
        }
        if entry.header().entry_type() == EntryType::Directory {
            directories.push(make_directory(member, dest, &path, entry.header(), how.special_bits)?);
            continue;
        }
        if entry.header().entry_type() == EntryType::Link {
            let target = entry.link_name().ok().flatten().expect("checked above").into_owned();
            check_hard_link(member, dest, &path, &target)?;
        }
        let unpacked = entry.unpack_in(dest).map_err(|e| unreadable_entry(member, dest, &path, e))?;
        if !unpacked {
            return Err(refuse(member, &path, "would land outside the target"));
        }
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(unreadable)?;
    check_links_resolve_inside(member, dest)?;
    apply_directory_modes(directories)
}

/// A directory of the tree: where it is, and the mode and time it gets once everything
/// under it is unpacked.
struct Directory {
    path: PathBuf,
    mode: u32,
    mtime: u64,
}

/// Creates a directory entry's directory, open to its owner for now: a 0555 directory
/// must not keep its own children out (tar-rs's `Archive::unpack` defers directories
/// for the same reason). Followed through the tree's links, never out of it.
fn make_directory(member: &str, dest: &Path, path: &Path, header: &tar::Header, special_bits: bool) -> Result<Directory> {
    let inside = resolve_inside(dest, Path::new(""), path).map_err(|why| refuse(member, path, why))?;
    let full = dest.join(&inside);
    match fs::symlink_metadata(&full) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(refuse(member, path, "is a directory where the member already put something else")),
        Err(_) => fs::create_dir_all(&full).ctx("creating", &full)?,
    }
    let mode = header.mode().unwrap_or(0o755);
    let mode = if special_bits { mode & 0o7777 } else { mode & 0o777 };
    Ok(Directory { path: full, mode, mtime: header.mtime().unwrap_or(0) })
}

/// The directories' modes and times, deepest first: a parent made read-only last.
fn apply_directory_modes(mut directories: Vec<Directory>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    directories.sort_by(|a, b| b.path.components().count().cmp(&a.path.components().count()).then_with(|| b.path.cmp(&a.path)));
    for dir in directories {
        if let Ok(handle) = fs::File::open(&dir.path) {
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(dir.mtime);
            let _ = handle.set_times(fs::FileTimes::new().set_modified(when).set_accessed(when));
        }
        fs::set_permissions(&dir.path, fs::Permissions::from_mode(dir.mode)).ctx("setting the mode of", &dir.path)?;
    }
    Ok(())
}

fn unreadable_entry(member: &str, dest: &Path, path: &Path, e: io::Error) -> Error {
    match Error::wrapped_in(&e) {
        Some(ours) => ours,
        None => Error::io(e, &format!("unpacking member {member} at"), &dest.join(path)),
    }
}

/// A hard link must name a regular file already unpacked inside the member, reached
/// without leaving it: never a symlink (the link would then be a second name for
/// wherever the symlink points), never through one that leads out.
fn check_hard_link(member: &str, dest: &Path, link: &Path, target: &Path) -> Result<()> {
    let resolved_parent = match target.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => resolve_inside(dest, Path::new(""), parent).map_err(|why| refuse(member, link, why))?,
        None => PathBuf::new(),
    };
    let name = target.file_name().ok_or_else(|| refuse(member, link, "is a hard link without a target name"))?;
    let meta = fs::symlink_metadata(dest.join(&resolved_parent).join(name))
        .map_err(|_| refuse(member, link, "is a hard link to an entry the member does not hold (yet)"))?;
    if meta.file_type().is_symlink() {
        return Err(refuse(member, link, "is a hard link to a symlink"));
    }
    if !meta.is_file() {
        return Err(refuse(member, link, "is a hard link to something that is not a regular file"));
    }
    Ok(())
}

/// Follows `path` (relative, from directory `from` of the tree at `root`) component by
/// component, through every symlink already in the tree, without leaving `root`: the
/// place it names, relative to `root`. Components that do not exist yet are taken as
/// they read. `Err` when it would leave the tree, or loops.
pub fn resolve_inside(root: &Path, from: &Path, path: &Path) -> std::result::Result<PathBuf, &'static str> {
    if path.has_root() {
        return Err("leads to an absolute path");
    }
    let mut stack: Vec<OsString> = from
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    // Components still to walk, the next one last: a symlink's target goes in front
    // of the rest.
    let mut todo: Vec<OsString> = path.components().rev().map(|c| c.as_os_str().to_os_string()).collect();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        if part == "." || part.is_empty() {
            continue;
        }
        if part == ".." {
            if stack.pop().is_none() {
                return Err("leads outside the member");
            }
            continue;
        }
        stack.push(part);
        let here: PathBuf = stack.iter().collect();
        let Ok(meta) = fs::symlink_metadata(root.join(&here)) else { continue };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err("is a loop of symlinks");
            }
            let target = fs::read_link(root.join(&here)).map_err(|_| "has an unreadable symlink on its way")?;
            if target.has_root() {
                return Err("leads to an absolute path through a symlink");
            }
            stack.pop();
            for c in target.components().rev() {
                todo.push(c.as_os_str().to_os_string());
            }
        }
    }
    Ok(stack.iter().collect())
}

/// Once everything is unpacked, every symlink in the tree (those a hard link made
/// too) must lead inside it, followed through the other links as the kernel would; a
/// dangling one is followed as far as it exists and then read as text.
fn check_links_resolve_inside(member: &str, dest: &Path) -> Result<()> {
    let mut dirs = vec![PathBuf::new()];
    while let Some(dir) = dirs.pop() {
        let full = dest.join(&dir);
        for entry in fs::read_dir(&full).ctx("reading", &full)? {
            let entry = entry.ctx("reading", &full)?;
            let rel = dir.join(entry.file_name());
            let kind = entry.file_type().ctx("reading", &entry.path())?;
            if kind.is_dir() {
                dirs.push(rel);
            } else if kind.is_symlink() {
                let target = fs::read_link(entry.path()).ctx("reading", &entry.path())?;
                if target.has_root() {
                    return Err(refuse(member, &rel, "is a symlink to an absolute path"));
                }
                resolve_inside(dest, &dir, &target).map_err(|why| refuse(member, &rel, &format!("is a symlink that {why}")))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
