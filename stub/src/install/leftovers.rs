//! What a step's processes left running when its run was killed outright (kill -9, the
//! OOM killer) or when an attempt failed: a `cadm install` that started a helper in
//! the background. Every process of an attempt carries that attempt's token in its
//! environment (`AIRBIN_STEP_TOKEN`, recorded in the journal); before the step runs
//! again, every process still carrying it is stopped (SIGTERM, then SIGKILL after a
//! grace period), and the run says so. The direct child also dies with the runtime
//! (PR_SET_PDEATHSIG); its children are what this finds.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::journal::History;
use super::state::StateDir;
use crate::fsx;
use crate::steps::Needs;
use crate::ui::Ui;

/// How long leftovers have to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// The processes whose environment holds `AIRBIN_STEP_TOKEN=<token>` (those this user
/// may read: all of them, as root).
pub(crate) fn carrying(token: &str) -> Vec<i32> {
    if token.is_empty() {
        return Vec::new();
    }
    let needle = format!("AIRBIN_STEP_TOKEN={token}");
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
        })
        .collect()
}

/// Stops every process carrying `token`: SIGTERM, a grace period, SIGKILL; returns the
/// PIDs found (empty when none was left). Bounded: at most twice the grace period.
pub(crate) fn stop(token: &str) -> Vec<i32> {
    let found = carrying(token);
    if found.is_empty() {
        return found;
    }
    for pid in &found {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && found.iter().any(|pid| alive(*pid, token)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in found.iter().filter(|pid| alive(**pid, token)) {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && found.iter().any(|pid| alive(*pid, token)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    found
}

/// Stops what an earlier attempt left running (its token), and says so.
pub(crate) fn stop_and_say(ui: &Ui, step: &str, token: &str) {
    let stopped = stop(token);
    if !stopped.is_empty() {
        let pids: Vec<String> = stopped.iter().map(|p| p.to_string()).collect();
        ui.status(format!(
            "step '{step}': {} process(es) an earlier attempt started were still running (pid {}): stopped before the step runs again",
            stopped.len(),
            pids.join(", ")
        ));
    }
}

/// Every place a run writes, cleared of what killed runs left: temporaries, the
/// staging directory (it holds the config), processes a killed or failed step started.
pub(crate) fn sweep(history: &History, state: &StateDir, staging: &Path, needs: &[Needs], ui: &Ui) -> (usize, u64) {
    for (step, unfinished) in &history.unfinished {
        stop_and_say(ui, step, &unfinished.token);
    }
    let mut places: Vec<PathBuf> = vec![staging.to_path_buf(), state.root.clone()];
    places.extend(needs.iter().flat_map(|n| n.writes.iter().cloned()));
    places.extend(history.places.iter().cloned());
    places.dedup();
    let mut total = (0, 0);
    for place in &places {
        let (n, bytes) = fsx::sweep(place);
        total = (total.0 + n, total.1 + bytes);
    }
    // The state directory's own staging belongs to no run now (we hold the lock).
    let own = state.staging();
    if own.exists() {
        let bytes = fsx::tree_bytes(&own);
        fsx::remove_any(&own);
        total = (total.0 + 1, total.1 + bytes);
    }
    // (Runs before 0.6 kept staging with a mark of the bundle it was staged for.)
    let _ = fs::remove_file(state.root.join("staged-for"));
    if total.0 > 0 {
        ui.status(format!("swept {} leftover(s) of an interrupted run, {} freed", total.0, indicatif::HumanBytes(total.1)));
    }
    total
}

/// Still the same process (it carries the token), and not yet a zombie.
fn alive(pid: i32, token: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X') && carrying_one(pid, token)
}

fn carrying_one(pid: i32, token: &str) -> bool {
    let needle = format!("AIRBIN_STEP_TOKEN={token}");
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grandchild_carrying_the_token_is_found_and_stopped() {
        let token = format!("test-{}", std::process::id());
        let mut child =
            std::process::Command::new("sh").args(["-c", "sleep 30 & sleep 30; wait"]).env("AIRBIN_STEP_TOKEN", &token).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while carrying(&token).len() < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(carrying(&token).len(), 3, "sh and its two sleeps");
        let stopped = stop(&token);
        assert_eq!(stopped.len(), 3);
        let _ = child.wait();
        assert!(carrying(&token).is_empty());
        assert!(carrying("").is_empty());
    }
}
