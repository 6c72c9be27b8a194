//! Restoring a pack into a registry root: unpacked beside it, then renamed into place
//! in the order a running registry can serve from, as one transaction: until the caller
//! commits (after the check that every tag serves), it can be rolled back, and is when
//! dropped.
//!
//! The root may hold what other users put there. So every directory below the root is
//! opened with `O_NOFOLLOW` from its parent's descriptor, and every file is looked at
//! without following: a symlink where a directory belongs stops the restore (naming it),
//! one where a file belongs is replaced by the file (and said so). Nothing is written,
//! read or deleted through a link found in the root.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat, renameat, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use sha2::{Digest, Sha256};

use super::Ownership;
use crate::fsx::{self, RemoveOnDrop};
use crate::interrupt;
use crate::ui::Ui;
use airbin_format::digest::to_hex;
use airbin_format::error::{Error, IoContext, Result};
use airbin_format::registry_pack::{unsafe_pack_entry, TarStorage, V2};
use airbin_format::{tarsafe, Bundle, Member};

/// The order in which restored files go live, so that a running registry never sees a
/// link to content that is not there yet: blobs, then layer links, then revisions, then tags.
fn go_live_rank(rel: &str) -> u8 {
    if rel.contains("/_manifests/tags/") {
        3
    } else if rel.contains("/_manifests/revisions/") {
        2
    } else if rel.contains("/_layers/") {
        1
    } else {
        0
    }
}

/// What a restore did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Restored {
    /// Files renamed into the root.
    pub(crate) placed: usize,
    /// Of those, blobs that were there already with content that did not match their
    /// digest (a damaged earlier copy), replaced from the pack.
    pub(crate) repaired: usize,
    /// Of those, files that replaced a symlink found where the file belongs.
    pub(crate) replaced_symlinks: usize,
}

/// One file put in place, and what it replaced (kept aside in the staging directory
/// until the commit).
struct Placed {
    parent: PathBuf,
    name: OsString,
    aside: Option<PathBuf>,
}

/// A restore that has placed its files: `commit` keeps them; dropping it puts the root
/// back as it was (the files placed removed, those they replaced back, the directories
/// it created removed).
pub(crate) struct Placement {
    root: PathBuf,
    root_fd: OwnedFd,
    staging: RemoveOnDrop,
    placed: Vec<Placed>,
    created_dirs: Vec<PathBuf>,
    pub(crate) restored: Restored,
    /// The SHA-256 of every blob file this restore placed or kept, by name: hashed as the
    /// pack was unpacked, or when it was compared with the blob already there.
    pub(crate) blob_digests: HashMap<String, String>,
    /// The whole tree went in with one rename (`place_whole_tree`), and goes back with one.
    placed_tree: bool,
    committed: bool,
    /// Dropped after the roll-back (fields drop after `Drop::drop`).
    created_root: Option<RemoveOnDrop>,
}

impl Placement {
    pub(crate) fn commit(mut self) {
        self.committed = true;
        if let Some(created) = self.created_root.take() {
            created.disarm();
        }
    }

    fn roll_back(&mut self) {
        let staging = self.staging.path().to_path_buf();
        let Ok(staging_fd) = open(&staging, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) else { return };
        if self.placed_tree {
            // Back into the staging directory, which goes when dropped.
            let _ = renameat(self.root_fd.as_fd(), TOP, staging_fd.as_fd(), TOP);
            return;
        }
        let mut walker = DirWalker::new(&self.root, &self.root_fd);
        for placed in self.placed.iter().rev() {
            let Ok(parent) = walker.open(&placed.parent, None, &mut Vec::new()) else { continue };
            let _ = unlinkat(parent.as_fd(), placed.name.as_os_str(), UnlinkatFlags::NoRemoveDir);
            if let Some(aside) = &placed.aside {
                let _ = renameat(staging_fd.as_fd(), aside.as_path(), parent.as_fd(), placed.name.as_os_str());
            }
        }
        for dir in self.created_dirs.iter().rev() {
            let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else { continue };
            if let Ok(parent) = walker.open(parent, None, &mut Vec::new()) {
                let _ = unlinkat(parent.as_fd(), name, UnlinkatFlags::RemoveDir);
            }
        }
    }
}

impl Drop for Placement {
    fn drop(&mut self) {
        if !self.committed {
            self.roll_back();
        }
    }
}

fn refuse_in_root(path: &Path, why: &str) -> Error {
    Error::integrity(format!(
        "{} {why}; airbin never follows or removes links in a registry root: remove it (or fix the root) and run the install again",
        path.display()
    ))
}

/// Opens directories below the root one component at a time, never through a symlink,
/// keeping the descriptors of the last path walked (files arrive sorted, so most share it).
struct DirWalker<'a> {
    root: &'a Path,
    root_fd: &'a OwnedFd,
    stack: Vec<(OsString, OwnedFd)>,
}

impl<'a> DirWalker<'a> {
    fn new(root: &'a Path, root_fd: &'a OwnedFd) -> DirWalker<'a> {
        DirWalker { root, root_fd, stack: Vec::new() }
    }

    /// The directory `rel` below the root; missing ones are created (owned as the
    /// restore says) when `create` is given, and recorded in `created`.
    fn open(&mut self, rel: &Path, create: Option<&Ownership>, created: &mut Vec<PathBuf>) -> Result<&OwnedFd> {
        let parts: Vec<&OsStr> = rel.iter().collect();
        let common = self.stack.iter().zip(&parts).take_while(|((have, _), want)| have.as_os_str() == **want).count();
        self.stack.truncate(common);
        for (depth, part) in parts.iter().enumerate().skip(common) {
            let here: PathBuf = parts[..=depth].iter().collect();
            let parent = self.stack.last().map_or(self.root_fd, |(_, fd)| fd);
            let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
            let fd = match openat(parent.as_fd(), *part, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create.is_some() => {
                    mkdirat(parent.as_fd(), *part, Mode::from_bits_truncate(0o755))
                        .map_err(|e| nix_error(e, "creating", &self.root.join(&here)))?;
                    created.push(here.clone());
                    let fd =
                        openat(parent.as_fd(), *part, flags, Mode::empty()).map_err(|e| nix_error(e, "opening", &self.root.join(&here)))?;
                    apply_dir_ownership(&fd, create.expect("checked"), &self.root.join(&here))?;
                    fd
                }
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    // With O_DIRECTORY, Linux answers ENOTDIR for a symlink too: look.
                    let is_link = fstatat(parent.as_fd(), *part, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFLNK);
                    let why = match is_link {
                        true => "is a symlink where the registry keeps a directory",
                        false => "is a file where the registry keeps a directory",
                    };
                    return Err(refuse_in_root(&self.root.join(&here), why));
                }
                Err(e) => return Err(nix_error(e, "opening", &self.root.join(&here))),
            };
            self.stack.push((part.to_os_string(), fd));
        }
        Ok(self.stack.last().map_or(self.root_fd, |(_, fd)| fd))
    }
}

fn nix_error(e: Errno, what: &str, path: &Path) -> Error {
    Error::io(io::Error::from(e), what, path)
}

/// What a restore is about to place where nothing is yet (paths below the root): told
/// before the first file goes in, so that a run killed half-way leaves them recorded.
pub(crate) struct Intent {
    pub(crate) files: Vec<String>,
    pub(crate) dirs: Vec<String>,
    pub(crate) created_root: bool,
    /// Every file of the pack, new or not.
    pub(crate) all: Vec<String>,
}

/// Restores a registry-pack member into `root`: unpacked beside it first (same file
/// system; only the registry's own files and directories are accepted), then each file
/// renamed into place in go-live order. Blobs already there are kept when their
/// content matches their digest (they are content-addressed) and replaced when it does
/// not; links are replaced by the pack's when they differ. `intent` hears what will be
/// new in the root before anything goes in.
pub(crate) fn restore(
    bundle: &Bundle,
    member: &Member,
    root: &Path,
    ownership: &Ownership,
    ui: &Ui,
    intent: &dyn Fn(Intent) -> Result<()>,
) -> Result<Placement> {
    if let Some(why) = fsx::unsafe_place(root) {
        return Err(Error::permission(format!(
            "refusing to restore into {}: {why}, so another user could steer what is placed there; fix the registry root",
            root.display()
        )));
    }
    fsx::check_space(root, member.unpacked_bytes)?;
    // A root this restore creates goes again if it is rolled back.
    let created_root = fsx::create_dir_guarded(root)?;
    let root_fd = open(root, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| nix_error(e, "opening the registry root", root))?;
    let staging_path = root.join(fsx::temp_name("", ".airbin-restore-"));
    let progress = ui.progress("unpack", member.size);
    // Not hashed a second time: nothing is placed before the whole-file verdict.
    let content = crate::ui::ProgressReader::new(bundle.content_reader_held_back(member)?, &progress);
    let rule = |path: &str, kind: tar::EntryType| unsafe_pack_entry(path, kind);
    let how = tarsafe::Unpack { special_bits: false, entry_rule: Some(&rule) };
    let staging = RemoveOnDrop::new(staging_path.clone());
    // Decoding on its own thread, unpacking here, and the blobs hashed on a third as they
    // go by, for the check after the restore: it need not read them back.
    let (unpacked, hashed) = crate::readahead::read_ahead_shared(
        content,
        |side| TarStorage::blob_digests(&member.name, side).ok(),
        |content| tarsafe::unpack_tree(&member.name, content, &staging_path, &how),
    );
    unpacked?;
    progress.finish();
    // The bundle may still be being verified (an install overlaps the two): nothing of it
    // goes into the root before the verdict.
    bundle.await_verified()?;

    let mut files = Vec::new();
    collect_files(&staging_path, Path::new(""), &mut files)?;
    files.sort_by_key(|rel| (go_live_rank(&rel.to_string_lossy()), rel.clone()));
    intent(what_is_new(root, &files, created_root.is_some()))?;
    fs::create_dir(staging_path.join(".aside")).ctx("creating", &staging_path)?;

    let mut placement = Placement {
        root: root.to_path_buf(),
        root_fd,
        staging,
        placed: Vec::new(),
        created_dirs: Vec::new(),
        restored: Restored::default(),
        blob_digests: HashMap::new(),
        placed_tree: false,
        committed: false,
        created_root,
    };
    let hashed = hashed.unwrap_or_default();
    if !place_whole_tree(&mut placement, &staging_path, &files, &hashed, ownership)? {
        place_all(&mut placement, &staging_path, &files, &hashed, ownership)?;
    }
    Ok(placement)
}

/// Of the files to place, those the root lacks, and the directories they need made.
fn what_is_new(root: &Path, files: &[PathBuf], created_root: bool) -> Intent {
    let absent = |rel: &Path| fs::symlink_metadata(root.join(rel)).is_err();
    let mut dirs = std::collections::BTreeSet::new();
    let mut new = Vec::new();
    for rel in files.iter().filter(|rel| absent(rel)) {
        new.push(rel.to_string_lossy().into_owned());
        let mut dir = rel.parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if !absent(d) {
                break;
            }
            dirs.insert(d.to_string_lossy().into_owned());
            dir = d.parent();
        }
    }
    let all = files.iter().map(|rel| rel.to_string_lossy().into_owned()).collect();
    Intent { files: new, dirs: dirs.into_iter().collect(), created_root, all }
}

/// The top of the registry's tree, below the root.
const TOP: &str = "docker";

/// A root with no registry tree yet (a first install) takes the staged tree in one
/// rename: nothing there to keep, compare or move aside, and a running registry sees
/// all of it at once. `false`: the root has a tree, and the files go one by one.
fn place_whole_tree(
    placement: &mut Placement,
    staging: &Path,
    files: &[PathBuf],
    hashed: &HashMap<String, String>,
    ownership: &Ownership,
) -> Result<bool> {
    match fstatat(placement.root_fd.as_fd(), TOP, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => {}
        Ok(_) => return Ok(false),
        Err(e) => return Err(nix_error(e, "looking at", &placement.root.join(TOP))),
    }
    own_tree(&staging.join(TOP), ownership)?;
    let staging_fd = open(staging, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| nix_error(e, "opening", staging))?;
    match fsx::rename_no_replace(staging_fd.as_fd(), OsStr::new(TOP), placement.root_fd.as_fd(), OsStr::new(TOP)) {
        Ok(()) => {}
        // Made meanwhile, or a file system without the flag: one by one, then.
        Err(Errno::EEXIST | Errno::EINVAL | Errno::ENOSYS) => return Ok(false),
        Err(e) => return Err(nix_error(e, "placing", &placement.root.join(TOP))),
    }
    placement.placed_tree = true;
    placement.restored.placed = files.len();
    for rel in files {
        if let Some(digest) = blob_name_of(rel).and_then(|name| hashed.get_key_value(&name)) {
            placement.blob_digests.insert(digest.0.clone(), digest.1.clone());
        }
    }
    Ok(true)
}

/// The blob a staged file is the data of (`.../blobs/sha256/XX/HEX/data`), if it is one.
fn blob_name_of(rel: &Path) -> Option<String> {
    let blob = rel.to_string_lossy().starts_with(&format!("{V2}blobs/"));
    blob.then(|| rel.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned())).flatten()
}

/// Owner and mode of every file and directory of a staged tree, as `place_all` gives
/// them: directories 0755 (not the pack's modes), unless the restore says otherwise.
fn own_tree(dir: &Path, ownership: &Ownership) -> Result<()> {
    let fd = open(dir, OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| nix_error(e, "opening", dir))?;
    nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(0o755)).map_err(|e| nix_error(e, "setting the mode of", dir))?;
    apply_dir_ownership(&fd, ownership, dir)?;
    for entry in fs::read_dir(dir).ctx("reading", dir)? {
        let entry = entry.ctx("reading", dir)?;
        match entry.file_type().ctx("reading", &entry.path())?.is_dir() {
            true => own_tree(&entry.path(), ownership)?,
            false => apply_ownership(&entry.path(), ownership)?,
        }
    }
    Ok(())
}

fn place_all(
    placement: &mut Placement,
    staging: &Path,
    files: &[PathBuf],
    hashed: &HashMap<String, String>,
    ownership: &Ownership,
) -> Result<()> {
    let root = placement.root.clone();
    let root_fd = placement.root_fd.try_clone().ctx("opening", &root)?;
    let mut walker = DirWalker::new(&root, &root_fd);
    let staging_fd = open(staging, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| nix_error(e, "opening", staging))?;
    for (n, rel) in files.iter().enumerate() {
        interrupt::check()?;
        let from = staging.join(rel);
        let to = root.join(rel);
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let name = rel.file_name().expect("a file has a name").to_os_string();
        let parent = walker.open(&parent_rel, Some(ownership), &mut placement.created_dirs)?;
        let blob = blob_name_of(rel);
        let mut replaced_symlink = false;
        let existing = match fstatat(parent.as_fd(), name.as_os_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Some(SFlag::from_bits_truncate(stat.st_mode & nix::libc::S_IFMT)),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(nix_error(e, "looking at", &to)),
        };
        match existing {
            None => {}
            Some(SFlag::S_IFLNK) => replaced_symlink = true,
            Some(SFlag::S_IFREG) => {
                let same = match &blob {
                    Some(named) => file_sha256_at(parent, &name, &to)? == *named,
                    None => fs::read(&from).ctx("reading", &from)? == read_at(parent, &name, &to)?,
                };
                if same {
                    if let Some(named) = &blob {
                        placement.blob_digests.insert(named.clone(), named.clone());
                    }
                    continue;
                }
                if blob.is_some() {
                    placement.restored.repaired += 1;
                }
            }
            Some(_) => return Err(refuse_in_root(&to, "is a directory or a special file where the registry keeps a file")),
        }
        apply_ownership(&from, ownership)?;
        let aside = existing.map(|_| PathBuf::from(format!(".aside/{n}")));
        if let Some(aside) = &aside {
            renameat(parent.as_fd(), name.as_os_str(), staging_fd.as_fd(), aside.as_path())
                .map_err(|e| nix_error(e, "moving aside", &to))?;
        }
        if let Err(e) = renameat(staging_fd.as_fd(), rel.as_path(), parent.as_fd(), name.as_os_str()) {
            // Put back what was moved aside before reporting.
            if let Some(aside) = &aside {
                let _ = renameat(staging_fd.as_fd(), aside.as_path(), parent.as_fd(), name.as_os_str());
            }
            return Err(nix_error(e, "placing", &to));
        }
        if let Some((named, digest)) = blob.and_then(|named| hashed.get(&named).map(|digest| (named, digest))) {
            placement.blob_digests.insert(named, digest.clone());
        }
        placement.placed.push(Placed { parent: parent_rel, name, aside });
        placement.restored.placed += 1;
        if replaced_symlink {
            placement.restored.replaced_symlinks += 1;
        }
    }
    Ok(())
}

/// Opens a file below `parent` for reading, never through a symlink.
fn open_file_at(parent: &OwnedFd, name: &OsStr, shown: &Path) -> Result<fs::File> {
    let fd = openat(parent.as_fd(), name, OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| nix_error(e, "reading", shown))?;
    Ok(fs::File::from(fd))
}

fn file_sha256_at(parent: &OwnedFd, name: &OsStr, shown: &Path) -> Result<String> {
    let mut file = open_file_at(parent, name, shown)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).ctx("reading", shown)?;
    Ok(to_hex(&hasher.finalize()))
}

/// A link file's content (at most 4 KiB: a link is 71 bytes).
fn read_at(parent: &OwnedFd, name: &OsStr, shown: &Path) -> Result<Vec<u8>> {
    let mut content = Vec::new();
    open_file_at(parent, name, shown)?.take(4096).read_to_end(&mut content).ctx("reading", shown)?;
    Ok(content)
}

fn collect_files(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).ctx("reading", dir)? {
        let entry = entry.ctx("reading", dir)?;
        let child = rel.join(entry.file_name());
        let kind = entry.file_type().ctx("reading", &entry.path())?;
        if kind.is_dir() {
            collect_files(&entry.path(), &child, out)?;
        } else if kind.is_file() {
            out.push(child);
        } else {
            return Err(Error::integrity(format!("the registry pack holds {}, which is not a file: refusing it", child.display())));
        }
    }
    Ok(())
}

/// Owner and mode of a staged file (in the staging directory this run created).
fn apply_ownership(path: &Path, ownership: &Ownership) -> Result<()> {
    if ownership.uid.is_some() || ownership.gid.is_some() {
        std::os::unix::fs::lchown(path, ownership.uid, ownership.gid).ctx("changing the owner of", path)?;
    }
    if let Some(mode) = ownership.file_mode {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o777)).ctx("setting the mode of", path)?;
    }
    Ok(())
}

/// Owner and mode of a directory the restore created, through its descriptor.
fn apply_dir_ownership(fd: &OwnedFd, ownership: &Ownership, shown: &Path) -> Result<()> {
    let dir = fs::File::from(fd.try_clone().ctx("opening", shown)?);
    if ownership.uid.is_some() || ownership.gid.is_some() {
        std::os::unix::fs::fchown(&dir, ownership.uid, ownership.gid).ctx("changing the owner of", shown)?;
    }
    if let Some(mode) = ownership.file_mode {
        use std::os::unix::fs::PermissionsExt;
        // Directories get an x bit wherever the file mode has an r bit.
        let mode = (mode | ((mode & 0o444) >> 2)) & 0o777;
        dir.set_permissions(fs::Permissions::from_mode(mode)).ctx("setting the mode of", shown)?;
    }
    Ok(())
}
