//! Unpacking a member's tar stream without ever writing outside the target.
//!
//! tar-rs already re-roots absolute paths and refuses to write through a symlink that
//! leaves the target, but it skips `..` entries silently and leaves an escaping symlink
//! itself in place. Here every such entry is refused with its path named, and the whole
//! member is refused with it: a bundle that carries one is not to be trusted. The same
//! checks run in the builder, so such a bundle is not built in the first place.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

use crate::error::{Error, IoContext, Result};
use crate::interrupt;

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
        entry.display()
    ))
}

/// Checks one entry's path, type and link; `Err` names what is wrong with it.
pub fn check_entry<R: Read>(member: &str, entry: &tar::Entry<'_, R>) -> Result<()> {
    let path = entry.path().map_err(|e| Error::integrity(format!("member {member}: unreadable tar entry path: {e}")))?;
    if let Some(why) = unsafe_entry_path(&path) {
        return Err(refuse(member, &path, why));
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
            return Err(refuse(member, &path, &format!("{why} ('{}')", target.display())));
        }
    }
    Ok(())
}

/// Unpacks the tar stream `content` into `dest` (which must not exist yet), refusing
/// every unsafe entry. Reads `content` to its very end, so that a digest check at the
/// end of the stream always runs.
pub fn unpack_tree<R: Read>(member: &str, content: R, dest: &Path) -> Result<()> {
    fs::create_dir(dest).ctx("creating", dest)?;
    let mut archive = tar::Archive::new(content);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let mut symlinks: Vec<PathBuf> = Vec::new();
    for entry in archive.entries().ctx("reading the tar stream of member", Path::new(member))? {
        interrupt::check()?;
        let mut entry = entry.ctx("reading the tar stream of member", Path::new(member))?;
        check_entry(member, &entry)?;
        let path = entry.path().expect("checked above").into_owned();
        if entry.header().entry_type() == EntryType::Symlink {
            symlinks.push(path.clone());
        }
        let unpacked = entry.unpack_in(dest).ctx("unpacking", &dest.join(&path))?;
        if !unpacked {
            return Err(refuse(member, &path, "would land outside the target"));
        }
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).ctx("reading the end of member", Path::new(member))?;
    check_symlinks_resolve_inside(member, dest, &symlinks)
}

/// A link that looked harmless alone can escape through another link (`a/d -> ..`,
/// then `x -> a/d/..`): once everything is unpacked, every link that resolves must
/// resolve inside `dest`.
fn check_symlinks_resolve_inside(member: &str, dest: &Path, symlinks: &[PathBuf]) -> Result<()> {
    let root = fs::canonicalize(dest).ctx("resolving", dest)?;
    for link in symlinks {
        if let Ok(resolved) = fs::canonicalize(dest.join(link)) {
            if !resolved.starts_with(&root) {
                return Err(refuse(member, link, "is a symlink that resolves outside the member"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        assert_eq!(unsafe_entry_path(Path::new("a/b")), None);
        assert_eq!(unsafe_entry_path(Path::new("./a")), None);
        assert!(unsafe_entry_path(Path::new("/etc/passwd")).is_some());
        assert!(unsafe_entry_path(Path::new("a/../../x")).is_some());
        assert!(unsafe_entry_path(Path::new("a/..")).is_some());
    }

    #[test]
    fn symlink_targets() {
        assert_eq!(escaping_symlink(Path::new("a/b/link"), Path::new("../c")), None);
        assert_eq!(escaping_symlink(Path::new("a/link"), Path::new("../c")), None);
        assert!(escaping_symlink(Path::new("link"), Path::new("../c")).is_some());
        assert!(escaping_symlink(Path::new("a/link"), Path::new("../../c")).is_some());
        assert!(escaping_symlink(Path::new("a/link"), Path::new("/etc")).is_some());
        assert!(escaping_symlink(Path::new("a/link"), Path::new("x/../../../c")).is_some());
    }

    fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        builder.into_inner().unwrap()
    }

    fn header(kind: EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        header
    }

    /// Writes a raw path into the header, bypassing tar-rs's own checks, as an attacker would.
    fn raw_path(header: &mut tar::Header, path: &str) {
        let name = &mut header.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
    }

    fn unpack(tar: Vec<u8>) -> (tempfile::TempDir, Result<()>) {
        let dir = tempfile::tempdir().unwrap();
        let result = unpack_tree("pack", &tar[..], &dir.path().join("out"));
        (dir, result)
    }

    #[test]
    fn a_plain_tree_unpacks_with_its_modes() {
        let tar = tar_with(|b| {
            let mut h = header(EntryType::Regular, 3);
            h.set_mode(0o755);
            b.append_data(&mut h, "dir/tool", &b"abc"[..]).unwrap();
            let mut l = header(EntryType::Symlink, 0);
            b.append_link(&mut l, "dir/alias", "tool").unwrap();
        });
        let (dir, result) = unpack(tar);
        result.unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("out/dir/tool")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(fs::read(dir.path().join("out/dir/alias")).unwrap(), b"abc");
    }

    #[test]
    fn dot_dot_is_refused_by_name() {
        let tar = tar_with(|b| {
            let mut h = header(EntryType::Regular, 1);
            raw_path(&mut h, "../evil");
            b.append(&h, &b"x"[..]).unwrap();
        });
        let (dir, result) = unpack(tar);
        let err = result.unwrap_err();
        assert_eq!(err.class, crate::error::ExitClass::Integrity);
        assert!(err.message.contains("'../evil'"), "{}", err.message);
        assert!(!dir.path().join("evil").exists());
    }

    #[test]
    fn absolute_paths_are_refused() {
        let tar = tar_with(|b| {
            let mut h = header(EntryType::Regular, 1);
            raw_path(&mut h, "/tmp/evil");
            b.append(&h, &b"x"[..]).unwrap();
        });
        let err = unpack(tar).1.unwrap_err();
        assert!(err.message.contains("'/tmp/evil' is an absolute path"), "{}", err.message);
    }

    #[test]
    fn escaping_symlinks_are_refused_and_not_created() {
        let tar = tar_with(|b| {
            let mut l = header(EntryType::Symlink, 0);
            b.append_link(&mut l, "up", "../..").unwrap();
        });
        let (dir, result) = unpack(tar);
        assert!(result.unwrap_err().message.contains("'up'"));
        assert!(fs::symlink_metadata(dir.path().join("out/up")).is_err());
    }

    #[test]
    fn symlink_chains_that_escape_are_refused() {
        let tar = tar_with(|b| {
            b.append_dir("a", ".").ok();
            let mut l = header(EntryType::Symlink, 0);
            b.append_link(&mut l, "a/d", "..").unwrap();
            let mut l = header(EntryType::Symlink, 0);
            b.append_link(&mut l, "x", "a/d/..").unwrap();
        });
        let err = unpack(tar).1.unwrap_err();
        assert!(err.message.contains("'x' is a symlink that resolves outside"), "{}", err.message);
    }

    #[test]
    fn hardlinks_to_outside_are_refused() {
        let tar = tar_with(|b| {
            let mut l = header(EntryType::Link, 0);
            b.append_link(&mut l, "passwd", "/etc/passwd").unwrap();
        });
        let err = unpack(tar).1.unwrap_err();
        assert!(err.message.contains("hard link to outside"), "{}", err.message);
    }

    #[test]
    fn device_files_are_refused() {
        let tar = tar_with(|b| {
            let mut h = header(EntryType::Char, 0);
            b.append_data(&mut h, "dev/null", io::empty()).unwrap();
        });
        assert!(unpack(tar).1.unwrap_err().message.contains("device file"));
    }
}
