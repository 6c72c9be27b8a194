//! The journal: one JSON record a line, appended and fsync'd as each step starts and
//! ends, so that a kill -9 or a power cut loses at most the line being written. A torn
//! last line is ignored when read and cut off before the next append.
//!
//! What is done is derived from the records, never stored as state: the steps done for
//! the bundle (by SHA-256) of the latest run, since that bundle's install began.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub(crate) use crate::steps::HandedOver;
use airbin_format::error::{IoContext, Result};

/// How a run ended.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Outcome {
    Ok,
    Failed,
    Interrupted,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub(crate) enum Event {
    RunStarted {
        bundle_sha256: String,
        version: String,
        pid: u32,
        log: PathBuf,
        /// Start this bundle's install from scratch (`--force`, or another bundle).
        #[serde(default)]
        reset: bool,
        /// Steps done earlier that this run does again (`--from`).
        #[serde(default)]
        redo: Vec<String>,
        /// Directories this run may leave temporaries in: what a later run sweeps.
        #[serde(default)]
        places: Vec<PathBuf>,
        /// The node's role in this run (absent in journals of runtimes before roles).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<airbin_format::Role>,
        /// Whether it ran the steps of an install, an upgrade or an uninstall (absent
        /// before format 5).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<airbin_format::Phase>,
        /// The tag of the `--all-nodes` run that started it, if one did: how the
        /// coordinator finds this run again after its SSH connection dropped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fan_out: Option<String>,
    },
    StepStarted {
        step: String,
        attempt: u32,
        /// What every process of this attempt carries in its environment
        /// (`AIRBIN_STEP_TOKEN`): how a later run finds what a killed one left running.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    StepDone {
        step: String,
        attempt: u32,
        seconds: f64,
        detail: String,
        /// What the step did, with its values (`describe`): a step is done only for
        /// the same values.
        #[serde(default)]
        does: String,
    },
    StepFailed {
        step: String,
        attempt: u32,
        seconds: f64,
        error: String,
    },
    /// The step has given its engine the whole stream (`seconds` after it started): the
    /// engine commits it on its own, even should this run be killed now.
    StepHandedOver {
        step: String,
        attempt: u32,
        seconds: f64,
    },
    RunFinished {
        outcome: Outcome,
        exit_code: i32,
        /// Every step of the bundle is done.
        complete: bool,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Record {
    pub(crate) at: String,
    pub(crate) run: String,
    /// The SHA-256 of the bundle the run installs, on every record.
    #[serde(default)]
    pub(crate) bundle: String,
    #[serde(flatten)]
    pub(crate) event: Event,
}

/// Reads every whole record; a torn or unreadable line is passed over.
pub(crate) fn read(path: &Path) -> Vec<Record> {
    let Ok(raw) = crate::fsx::read_small_nofollow(path, u64::MAX) else { return Vec::new() };
    raw.split(|b| *b == b'\n').filter_map(|line| serde_json::from_slice(line).ok()).collect()
}

pub(crate) struct Journal {
    file: fs::File,
    path: PathBuf,
    run: String,
    bundle: String,
    recording: bool,
}

impl Journal {
    /// Opens the journal for appending records of run `run`, first cutting off a line
    /// torn by a crash so the next record starts on a line of its own.
    pub(crate) fn open(path: &Path, run: &str, bundle: &str) -> Result<Journal> {
        if let Ok(raw) = crate::fsx::read_small_nofollow(path, u64::MAX) {
            if !raw.is_empty() && !raw.ends_with(b"\n") {
                let keep = raw.iter().rposition(|b| *b == b'\n').map_or(0, |at| at + 1);
                use std::os::unix::fs::OpenOptionsExt;
                let file = OpenOptions::new()
                    .write(true)
                    .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                    .open(path)
                    .ctx("repairing the journal", path)?;
                file.set_len(keep as u64).ctx("repairing the journal", path)?;
            }
        }
        // For this user's eyes (what a step failed with may say more than it should), and
        // never through a link planted where it belongs.
        let new = !path.exists();
        let file = crate::fsx::open_private_append(path).ctx("opening the journal", path)?;
        if new {
            // The journal's name, and its state directory's, are on disk before its first
            // record: a power cut cannot take the whole journal with a directory entry.
            if let Some(dir) = path.parent() {
                airbin_format::files::sync_dir(dir);
                dir.parent().map(airbin_format::files::sync_dir);
            }
        }
        // A journal made before it was kept 0600 is made so now.
        let _ = file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
        Ok(Journal { file, path: path.to_path_buf(), run: run.to_string(), bundle: bundle.to_string(), recording: true })
    }

    /// A journal that records nothing when `on` is false (a run that runs no step).
    pub(crate) fn recording(mut self, on: bool) -> Journal {
        self.recording = on;
        self
    }

    /// Appends one record and waits until it is on disk.
    pub(crate) fn append(&mut self, event: Event) -> Result<()> {
        if !self.recording {
            return Ok(());
        }
        if matches!(event, Event::StepDone { .. } | Event::RunFinished { .. }) {
            // What the step placed (files, a registry's blobs, an engine's layers) and the
            // records before this one reach the disk before the record that says it is
            // done: after a power cut, a step the journal calls done is done.
            nix::unistd::sync();
        }
        let record = Record { at: crate::ui::timestamp(), run: self.run.clone(), bundle: self.bundle.clone(), event };
        // Nothing stored holds a secret: the line is masked whole.
        let mut line = crate::ui::runlog::mask(&serde_json::to_string(&record).expect("records serialize")).into_bytes();
        line.push(b'\n');
        crate::fsx::crash_point("journal-append");
        self.file.write_all(&line).ctx("writing the journal", &self.path)?;
        self.file.sync_data().ctx("writing the journal", &self.path)?;
        crate::fsx::crash_point("journal-appended");
        Ok(())
    }

    pub(crate) fn run_id(&self) -> &str {
        &self.run
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Done {
    pub(crate) at: String,
    pub(crate) does: String,
}

/// A step whose last attempt did not end well (killed or failed): its processes may
/// still run.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Unfinished {
    pub(crate) token: String,
    pub(crate) attempt: u32,
}

/// The latest run, gone without a word (kill -9, a crash, a power cut).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Killed {
    pub(crate) pid: u32,
    pub(crate) run: String,
    /// The step it was in, if any.
    pub(crate) step: Option<String>,
}

/// What the journal says of this host's install of a bundle name.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct History {
    /// The bundle of the latest run, and its version.
    pub(crate) bundle_sha256: Option<String>,
    pub(crate) version: Option<String>,
    /// Steps done for that bundle: when, and with which values.
    pub(crate) done: BTreeMap<String, Done>,
    /// Steps of that bundle whose last record is a hand-over: the engine may still be
    /// committing what a killed run gave it.
    pub(crate) handed_over: BTreeMap<String, HandedOver>,
    /// Whether that bundle's install is complete.
    pub(crate) complete: bool,
    /// Every directory runs said they write temporaries in.
    pub(crate) places: Vec<PathBuf>,
    /// Steps whose last attempt was killed or failed, with the token its processes carry.
    pub(crate) unfinished: BTreeMap<String, Unfinished>,
    /// The latest run, when it ended without `run-finished`.
    pub(crate) killed: Option<Killed>,
    /// The phase of the latest run.
    pub(crate) phase: Option<airbin_format::Phase>,
}

impl History {
    pub(crate) fn of(records: &[Record]) -> History {
        let mut history = History::default();
        for record in records {
            match &record.event {
                Event::RunStarted { bundle_sha256, version, reset, redo, places, pid, phase, .. } => {
                    if *reset || history.bundle_sha256.as_ref() != Some(bundle_sha256) || *phase != history.phase {
                        history.done.clear();
                        history.handed_over.clear();
                    }
                    history.killed = Some(Killed { pid: *pid, run: record.run.clone(), step: None });
                    history.phase = *phase;
                    for step in redo {
                        history.done.remove(step);
                    }
                    history.bundle_sha256 = Some(bundle_sha256.clone());
                    history.version = Some(version.clone());
                    history.complete = false;
                    for place in places {
                        if !history.places.contains(place) {
                            history.places.push(place.clone());
                        }
                    }
                }
                Event::StepStarted { step, token, attempt } => {
                    history.done.remove(step);
                    history.handed_over.remove(step);
                    if let Some(token) = token {
                        history.unfinished.insert(step.clone(), Unfinished { token: token.clone(), attempt: *attempt });
                    }
                    if let Some(killed) = &mut history.killed {
                        killed.step = Some(step.clone());
                    }
                }
                Event::StepDone { step, does, .. } => {
                    history.done.insert(step.clone(), Done { at: record.at.clone(), does: does.clone() });
                    history.handed_over.remove(step);
                    history.unfinished.remove(step);
                    if let Some(killed) = &mut history.killed {
                        killed.step = None;
                    }
                }
                Event::StepFailed { step, .. } => {
                    history.handed_over.remove(step);
                    if let Some(killed) = &mut history.killed {
                        killed.step = None;
                    }
                }
                Event::StepHandedOver { step, seconds, .. } => {
                    history.handed_over.insert(step.clone(), HandedOver { at: record.at.clone(), seconds: *seconds });
                }
                Event::RunFinished { complete, .. } => {
                    history.complete = *complete;
                    history.killed = None;
                }
            }
        }
        history
    }

    /// The latest run was of another bundle and did not complete.
    pub(crate) fn unfinished_other(&self, sha256: &str) -> bool {
        self.bundle_sha256.as_deref().is_some_and(|sha| sha != sha256) && !self.complete
    }
}

/// The records of the latest run (for `status`).
pub(crate) fn last_run(records: &[Record]) -> &[Record] {
    let start = records.iter().rposition(|r| matches!(r.event, Event::RunStarted { .. })).unwrap_or(records.len());
    &records[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(sha: &str, reset: bool, redo: &[&str]) -> Event {
        Event::RunStarted {
            bundle_sha256: sha.into(),
            version: "1".into(),
            pid: 1,
            log: PathBuf::from("l"),
            reset,
            redo: redo.iter().map(|s| s.to_string()).collect(),
            places: vec![],
            role: None,
            phase: None,
            fan_out: None,
        }
    }
    fn done(step: &str) -> Event {
        Event::StepDone { step: step.into(), attempt: 1, seconds: 0.0, detail: String::new(), does: String::new() }
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut journal = Journal::open(&path, "r1", "a").unwrap();
        journal.append(started("a", false, &[])).unwrap();
        journal.append(done("one")).unwrap();
        drop(journal);
        let mut raw = fs::read(&path).unwrap();
        raw.extend_from_slice(br#"{"at":"x","run":"r1","event":"step-do"#);
        fs::write(&path, &raw).unwrap();
        assert_eq!(read(&path).len(), 2);
        let mut journal = Journal::open(&path, "r2", "a").unwrap();
        journal.append(done("two")).unwrap();
        let records = read(&path);
        assert_eq!(records.len(), 3);
        assert_eq!(History::of(&records).done.keys().collect::<Vec<_>>(), ["one", "two"]);
    }

    #[test]
    fn what_is_done_follows_the_bundle_and_the_redo_rules() {
        let rec = |event| Record { at: "t".into(), run: "r".into(), bundle: String::new(), event };
        let mut records = vec![rec(started("a", false, &[])), rec(done("one")), rec(done("two"))];
        let h = History::of(&records);
        assert_eq!(h.done.len(), 2);
        assert!(!h.complete && h.unfinished_other("b") && !h.unfinished_other("a"));
        records.push(rec(started("a", false, &["two"])));
        assert_eq!(History::of(&records).done.keys().collect::<Vec<_>>(), ["one"]);
        records.push(rec(Event::StepStarted { step: "one".into(), attempt: 1, token: None }));
        assert!(History::of(&records).done.is_empty());
        records.push(rec(done("one")));
        records.push(rec(Event::RunFinished { outcome: Outcome::Ok, exit_code: 0, complete: true }));
        assert!(History::of(&records).complete && !History::of(&records).unfinished_other("b"));
        records.push(rec(started("b", false, &[])));
        assert!(History::of(&records).done.is_empty());
        records.push(rec(done("x")));
        records.push(rec(started("b", true, &[])));
        assert!(History::of(&records).done.is_empty());

        // A hand-over is remembered until the step's next record.
        records.push(rec(Event::StepStarted { step: "load".into(), attempt: 1, token: None }));
        records.push(rec(Event::StepHandedOver { step: "load".into(), attempt: 1, seconds: 2.5 }));
        records.push(rec(started("b", false, &[])));
        assert_eq!(History::of(&records).handed_over.get("load").map(|h| h.seconds), Some(2.5));
        records.push(rec(Event::StepStarted { step: "load".into(), attempt: 1, token: Some("t1".into()) }));
        let h = History::of(&records);
        assert!(h.handed_over.is_empty());
        // Killed in the step: said, with the token its processes carry.
        assert_eq!(h.killed.as_ref().and_then(|k| k.step.as_deref()), Some("load"));
        assert_eq!(h.unfinished.get("load").map(|u| u.token.as_str()), Some("t1"));
    }
}
