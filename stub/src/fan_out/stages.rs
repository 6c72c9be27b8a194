//! Steps 1 to 3 of the fan-out: reach every node, copy the bundle and the config,
//! each node's own preflight. Nothing is installed anywhere unless every node is ready.

use std::io::Read;
use std::path::Path;

use airbin_format::error::{Error, IoContext, Result};
use airbin_format::{Bundle, TRAILER_LEN};

use super::remote::{link_here, run_child, send, unreachable};
use super::targets::{node_args, quote, Target};
use super::{each, FanOut};
use crate::install::config::ProductConfig;
use crate::ui::Ui;

/// Step 1: every other node answers over SSH and has room for the bundle. Returns, for
/// each node, whether an identical copy of the bundle is there already.
pub(crate) fn reach(bundle: &Bundle, targets: &[Target], fan: &FanOut, ui: &Ui) -> Result<Vec<bool>> {
    let len = bundle.trailer.total_len;
    let tail = local_tail(&bundle.path)?;
    let results = each(targets, fan.parallel, |target| -> std::result::Result<bool, String> {
        if target.local {
            return Ok(true);
        }
        let dir = Path::new(&target.bin).parent().map_or("/".into(), |d| d.display().to_string());
        // The nearest existing directory's free space, then the size and trailer of a copy
        // already there: the trailer holds the digest of every byte.
        let script = format!(
            "d={}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done; df -Pk \"$d\" | tail -n 1; \
             if [ -f {bin} ]; then wc -c < {bin}; tail -c {TRAILER_LEN} {bin} | od -An -v -tx1; fi",
            quote(&dir),
            bin = quote(&target.bin)
        );
        let finished = run_child(target.shell(fan, &script), &target.label(), false, None).map_err(|e| e.message)?;
        if finished.code == 255 {
            return Err(unreachable(target, &finished));
        }
        if finished.code != 0 {
            return Err(format!("{} answered, but its shell failed ({})", target.node.ssh_target(), finished.last_lines.join("; ")));
        }
        let mut lines = finished.stdout.lines();
        let free_kib: u64 = lines.next().and_then(|l| l.split_whitespace().nth(3)).and_then(|f| f.parse().ok()).unwrap_or(u64::MAX);
        let size: Option<u64> = lines.next().and_then(|l| l.trim().parse().ok());
        let hex: String = lines.flat_map(|l| l.split_whitespace()).collect::<Vec<_>>().join("");
        let has_copy = size == Some(len) && hex == tail;
        if !has_copy && free_kib.saturating_mul(1024) < len {
            return Err(format!(
                "{}: only {} free for the bundle in {dir}, which needs {}; free space there, or give --remote-dir DIR",
                target.node.ssh_target(),
                indicatif::HumanBytes(free_kib * 1024),
                indicatif::HumanBytes(len)
            ));
        }
        Ok(has_copy)
    });
    let problems: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    if !problems.is_empty() {
        return Err(Error::host(format!(
            "{} of {} nodes cannot be reached or have no room; nothing was copied or installed anywhere:\n  {}",
            problems.len(),
            targets.len(),
            problems.join("\n  ")
        )));
    }
    let copies: Vec<bool> = results.into_iter().map(|r| r.unwrap_or(false)).collect();
    let reached = targets.iter().filter(|t| !t.local).count();
    ui.status(format!("reached {reached} other node(s) over SSH"));
    Ok(copies)
}

/// The last bytes of the bundle (its trailer) as `od -An -tx1` prints them, without spaces.
fn local_tail(path: &Path) -> Result<String> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ctx("opening", path)?;
    file.seek(SeekFrom::End(-(TRAILER_LEN as i64))).ctx("reading", path)?;
    let mut tail = vec![0u8; TRAILER_LEN as usize];
    file.read_exact(&mut tail).ctx("reading", path)?;
    Ok(tail.iter().map(|b| format!("{b:02x}")).collect())
}

/// Steps 2 and 3, node by node at once: the bundle (unless an identical copy is there)
/// and the config onto each other node, each through a temporary name; then each node's
/// own preflight for its role. Every problem of every node in one report; no node
/// installs unless every node is ready.
pub(crate) fn copy_and_check(
    bundle: &Bundle,
    config: &ProductConfig,
    targets: &[Target],
    has_copy: &[bool],
    fan: &FanOut,
    ui: &Ui,
) -> Result<()> {
    for target in targets.iter().filter(|t| t.local) {
        link_here(target)?;
    }
    for (target, _) in targets.iter().zip(has_copy).filter(|(t, has)| **has && !t.local) {
        ui.status(format!("[{}] an identical copy of the bundle is there already: not sent again", target.label()));
    }
    let sending = targets.iter().zip(has_copy).filter(|(t, has)| !**has && !t.local).count() as u64;
    let progress = ui.progress("copy", sending * bundle.trailer.total_len);
    let indexed: Vec<(usize, &Target)> = targets.iter().enumerate().collect();
    let results = each(&indexed, fan.parallel, |(i, target)| -> Option<String> {
        if !target.local {
            let keys = fan.keys.iter().zip(&target.keys).try_for_each(|(local, remote)| {
                let text =
                    crate::fsx::read_small_nofollow(local, 64 << 10).map_err(|e| format!("cannot read {} ({e})", local.display()))?;
                send(target, fan, text.as_slice(), remote)
            });
            let copied = keys.and_then(|()| send(target, fan, config.text.as_bytes(), &target.config)).and_then(|()| {
                if has_copy[*i] {
                    return Ok(());
                }
                ui.status(format!("[{}] copying the bundle to {}", target.label(), target.bin));
                let file = std::fs::File::open(&bundle.path).map_err(|e| format!("cannot read {} ({e})", bundle.path.display()))?;
                send(target, fan, crate::ui::ProgressReader::new(file, &progress), &target.bin)
            });
            if let Err(why) = copied {
                return Some(format!("[{}] {why}", target.label()));
            }
        }
        preflight(target, fan)
    });
    progress.finish();
    let problems: Vec<String> = results.into_iter().flatten().collect();
    if problems.is_empty() {
        ui.status(format!("preflight passed on all {} node(s)", targets.len()));
        return Ok(());
    }
    Err(Error::host(format!(
        "preflight failed on {} of {} nodes; nothing was installed anywhere; fix these, then run again:\n  {}",
        problems.len(),
        targets.len(),
        problems.join("\n  ")
    )))
}

/// A node's own preflight for its role: None when it is ready, else its problems.
fn preflight(target: &Target, fan: &FanOut) -> Option<String> {
    let finished = run_child(target.command(fan, &node_args("preflight", target, fan, &["--json"])), &target.label(), false, None);
    match finished {
        Err(e) => Some(format!("[{}] {}", target.label(), e.message)),
        Ok(f) if f.code == 255 && !target.local => Some(format!("[{}] {}", target.label(), unreachable(target, &f))),
        Ok(f) if f.code != 0 => {
            let doc = super::docs::read(&f.stdout);
            let why = super::docs::error_of(doc.as_ref().map(|d| &d.0)).unwrap_or_else(|| f.last_lines.join("; "));
            Some(format!("[{}] {}", target.label(), why.replace('\n', "\n    ")))
        }
        Ok(_) => None,
    }
}
