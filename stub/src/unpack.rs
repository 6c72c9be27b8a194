//! Extracting members to disk: free space first, then every member under a temporary
//! name, decoded in parallel on the host's cores, and renamed into place only once all
//! of them are complete. A failure or Ctrl-C removes every temporary, and the target
//! directory too if this run created it: nothing half-done is left behind.

use std::fs::{self, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub(crate) use crate::fsx::RemoveOnDrop;
use crate::fsx::{self, create_dir_guarded};
use crate::readahead::read_ahead;
use crate::ui::{Progress, ProgressReader, Ui};
use airbin_format::error::{IoContext, Result};
use airbin_format::tarsafe;
use airbin_format::{Bundle, Layout, Member};

/// Stops reading when a sibling worker failed.
struct Abortable<'a, R> {
    inner: R,
    abort: &'a AtomicBool,
}

impl<R: Read> Read for Abortable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.abort.load(Ordering::Relaxed) {
            // Ours, so that it is recognised however a library (tar-rs) wraps it.
            return Err(io::Error::other(airbin_format::error::Error::sibling_failed()));
        }
        self.inner.read(buf)
    }
}

/// The place a member lands in `target`.
pub(crate) fn member_path(target: &Path, member: &Member) -> PathBuf {
    target.join(&member.name)
}

/// Extracts `members` into `target`, creating it if needed. The bundle may still be
/// being verified (on another thread): members are written under temporary names, and
/// renamed into place only once the verdict has passed. Returns the paths written.
pub(crate) fn extract_members(bundle: &Bundle, members: &[&Member], target: &Path, ui: &Ui) -> Result<Vec<PathBuf>> {
    if let Some(why) = fsx::unsafe_place(target) {
        return Err(airbin_format::error::Error::permission(format!(
            "refusing to write into {}: {why}, so another user could steer what is written there; choose a directory of your own",
            target.display()
        )));
    }
    let needed: u64 = members.iter().map(|m| m.unpacked_bytes).sum();
    fsx::check_space(target, needed)?;
    let created = create_dir_guarded(target)?;

    let progress = ui.progress("extract", members.iter().map(|m| m.size).sum());
    let abort = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(members.len()).max(1);
    let results: Vec<Result<Vec<(usize, RemoveOnDrop)>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(member) = members.get(i) else { return Ok(done) };
                        match extract_to_temp(bundle, member, target, &progress, &abort) {
                            Ok(temp) => done.push((i, temp)),
                            Err(e) => {
                                abort.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("extract worker panicked")).collect()
    });

    let mut temps: Vec<(usize, RemoveOnDrop)> = Vec::new();
    let mut first_error = None;
    for result in results {
        match result {
            Ok(done) => temps.extend(done),
            // The workers stopped by a sibling's failure only echo it.
            Err(e) if e.kind == airbin_format::error::Kind::SiblingFailed => {}
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    progress.finish();
    bundle.await_verified()?;

    temps.sort_by_key(|(i, _)| *i);
    let mut written = Vec::new();
    for (i, temp) in temps {
        let final_path = member_path(target, members[i]);
        replace_with(&temp.disarm(), &final_path)?;
        written.push(final_path);
    }
    if let Some(created) = created {
        created.disarm();
    }
    Ok(written)
}

fn extract_to_temp(bundle: &Bundle, member: &Member, target: &Path, progress: &Progress, abort: &AtomicBool) -> Result<RemoveOnDrop> {
    let temp_path = target.join(fsx::temp_name(&format!(".{}", member.name), ".airbin-partial-"));
    // Not hashed a second time: nothing is renamed into place before the whole-file verdict.
    let content = Abortable { inner: ProgressReader::new(bundle.content_reader_held_back(member)?, progress), abort };
    match member.layout {
        // Decoding on its own thread, writing on this one: the two halves overlap.
        Layout::File => {
            let mut out = fsx::create_new_file(&temp_path).ctx("creating", &temp_path)?;
            let temp = RemoveOnDrop::new(temp_path.clone());
            read_ahead(content, |content| io::copy(content, &mut out)).ctx("writing", &temp_path)?;
            out.set_permissions(Permissions::from_mode(file_mode(member))).ctx("setting the mode of", &temp_path)?;
            Ok(temp)
        }
        Layout::Tree => {
            let temp = RemoveOnDrop::new(temp_path.clone());
            let how = tarsafe::Unpack { special_bits: member.special_bits, entry_rule: None };
            read_ahead(content, |content| tarsafe::unpack_tree(&member.name, content, &temp_path, &how))?;
            Ok(temp)
        }
    }
}

/// A file member's mode: setuid, setgid and sticky only when the spec marked it.
pub(crate) fn file_mode(member: &Member) -> u32 {
    match member.special_bits {
        true => member.mode & 0o7777,
        false => member.mode & 0o777,
    }
}

/// Renames `temp` to `path`, replacing what is there (a file or a whole directory).
fn replace_with(temp: &Path, path: &Path) -> Result<()> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        if meta.is_dir() {
            let old = path
                .with_file_name(fsx::temp_name(&format!(".{}", path.file_name().unwrap_or_default().to_string_lossy()), ".airbin-old-"));
            fs::rename(path, &old).ctx("moving aside", path)?;
            let _old = RemoveOnDrop::new(old);
            return fs::rename(temp, path).ctx("renaming into place", path);
        }
    }
    fs::rename(temp, path).ctx("renaming into place", path)
}

/// The members named on the command line, or all the product's when none is named.
pub(crate) fn select_members<'a>(bundle: &'a Bundle, names: &[String]) -> Result<Vec<&'a Member>> {
    // All: the product's members. The SBOM is the bundle's own document (`sbom` prints
    // it), extracted when named.
    if names.is_empty() {
        return Ok(bundle.index.members.iter().filter(|m| m.kind != airbin_format::MemberKind::Sbom).collect());
    }
    names.iter().map(|name| bundle.member(name)).collect()
}
