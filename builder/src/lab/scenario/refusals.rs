//! What must be refused before anything lands: an altered copy of the bundle, and a
//! disk too small for it. "Nothing lands": no install record, and the watched
//! directories and the engine's images as they were.

use std::time::Duration;

use super::basic::differences;
use super::{code, last_line, Outcome, Scene, Step};

/// A copy with one byte changed in the middle of its payload: refused (exit 3).
pub(crate) fn tampered(s: &mut Scene) -> Step {
    let lab = s.lab;
    let altered = lab.tampered().map_err(|e| e.message)?;
    let before = s.snapshot(0)?;
    s.stage_file(0, &altered, &lab.bundle.file)?;
    let ran = s.bundle_run(0, &lab.bundle.file, "install --yes", "install (altered copy)")?;
    if ran.code != Some(3) {
        return Err(format!("the altered copy was not refused as damaged (exit 3): exit {}, {}", code(&ran), last_line(&ran)));
    }
    nothing_landed(s, &before)?;
    Ok(Outcome::passed(format!("refused (exit 3): {}", last_line(&ran))))
}

/// The state directory on a file system of a few KiB: preflight refuses (exit 4).
pub(crate) fn small_disk(s: &mut Scene) -> Step {
    let lab = s.lab;
    s.stage(0, &lab.bundle)?;
    let before = s.snapshot(0)?;
    let mount = "mkdir -p /var/lib/airbin && mount -t tmpfs -o size=16k airbin-lab-small /var/lib/airbin";
    let mounted = s.machine(0).run(mount, Duration::from_secs(30)).map_err(|e| e.message)?;
    if !mounted.ok() {
        return Err(format!("mounting a 16 KiB file system at /var/lib/airbin failed: {}", mounted.tail()));
    }
    let ran = s.bundle_run(0, &lab.bundle.file, "install --yes", "install (small disk)");
    let unmount = s.machine(0).run("umount /var/lib/airbin", Duration::from_secs(30));
    let ran = ran?;
    if ran.code != Some(4) {
        return Err(format!("a disk too small was not refused for space (exit 4): exit {}, {}", code(&ran), last_line(&ran)));
    }
    if !unmount.is_ok_and(|u| u.ok()) {
        return Err("the small file system could not be unmounted again".into());
    }
    nothing_landed(s, &before)?;
    Ok(Outcome::passed(format!("refused (exit 4): {}", last_line(&ran))))
}

fn nothing_landed(s: &Scene, before: &str) -> std::result::Result<(), String> {
    let record = format!("{}/installed.json", s.lab.bundle.state_dir());
    let absent = s.machine(0).run(&format!("[ ! -e {record} ]"), Duration::from_secs(30)).map_err(|e| e.message)?;
    if !absent.ok() {
        return Err(format!("{record} was written by a refused install"));
    }
    let after = s.snapshot(0)?;
    let landed = differences(before, &after);
    match landed.is_empty() {
        true => Ok(()),
        false => Err(format!("a refused install changed the machine: {}", landed.join("; "))),
    }
}
