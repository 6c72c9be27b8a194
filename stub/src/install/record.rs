//! What is installed on this host, per bundle name: the version, the bundle's SHA-256,
//! when, how (install, upgrade, downgrade, reinstall), the parameters used (secrets
//! masked), the hotfixes applied on top, and what came before. Written whole (a
//! temporary, then renamed) once a run has finished every step, never before: a failed
//! or killed upgrade leaves the record at the old version. Beside it the installed
//! bundle's index, which `plan` diffs an upgrade against.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::param_values::Resolved;
use super::state::StateDir;
use airbin_format::error::{IoContext, Result};
use airbin_format::Index;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Installed {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) sha256: String,
    pub(crate) installed_at: String,
    /// `install`, `upgrade`, `downgrade` or `reinstall`: how this version came.
    pub(crate) how: String,
    #[serde(default)]
    pub(crate) parameters: Vec<ParameterUsed>,
    /// Hotfixes applied on top of this version, oldest first.
    #[serde(default)]
    pub(crate) hotfixes: Vec<Applied>,
    /// Earlier versions and hotfixes, oldest first.
    #[serde(default)]
    pub(crate) history: Vec<Applied>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ParameterUsed {
    pub(crate) name: String,
    /// Masked for a secret.
    pub(crate) value: String,
    pub(crate) from: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) version: String,
    pub(crate) sha256: String,
    pub(crate) at: String,
    pub(crate) how: String,
}

impl Installed {
    /// The version with its hotfixes, as a person reads it: `2.0 + 2.0-hotfix1`.
    pub(crate) fn describe(&self) -> String {
        let mut text = self.version.clone();
        for fix in &self.hotfixes {
            text.push_str(&format!(" + {}", fix.version));
        }
        text
    }
}

fn record_path(state: &StateDir) -> PathBuf {
    state.root.join("installed.json")
}

fn index_path(state: &StateDir) -> PathBuf {
    state.root.join("installed-index.json")
}

/// The record, if this host has one (an unreadable one reads as none, and is said so).
pub(crate) fn read(state: &StateDir) -> Option<Installed> {
    let text = crate::fsx::read_small_nofollow(&record_path(state), 16 << 20).ok()?;
    match serde_json::from_slice(&text) {
        Ok(record) => Some(record),
        Err(e) => {
            crate::ui::err_line(&format!(
                "airbin: warning: {} is not an install record ({e}); taking this host as having none",
                record_path(state).display()
            ));
            None
        }
    }
}

/// The index of the bundle the record names, for `plan`'s diff.
pub(crate) fn read_index(state: &StateDir) -> Option<Index> {
    serde_json::from_slice(&crate::fsx::read_small_nofollow(&index_path(state), 64 << 20).ok()?).ok()
}

/// Forgets what is installed (after an uninstall).
pub(crate) fn remove(state: &StateDir) {
    let _ = std::fs::remove_file(record_path(state));
    let _ = std::fs::remove_file(index_path(state));
}

/// What a finished run writes.
pub(crate) struct Finished<'a> {
    pub(crate) index: &'a Index,
    pub(crate) sha256: &'a str,
    /// `install`, `upgrade`, `downgrade`, `reinstall` or `hotfix` (`Change::as_str`).
    pub(crate) how: &'static str,
    pub(crate) parameters: &'a [Resolved],
}

/// Writes the record for a run that finished every step.
pub(crate) fn write(state: &StateDir, finished: &Finished) -> Result<Installed> {
    let meta = &finished.index.bundle;
    let now = crate::ui::timestamp();
    let earlier = read(state);
    let parameters = finished
        .parameters
        .iter()
        .map(|p| ParameterUsed { name: p.name.clone(), value: p.value.clone(), from: p.from.as_str().to_string() })
        .collect();
    let applied = Applied { version: meta.version.clone(), sha256: finished.sha256.to_string(), at: now.clone(), how: finished.how.into() };
    let record = match (earlier, meta.hotfix_of.is_some()) {
        // A hotfix goes on top of the record of its version.
        (Some(mut record), true) => {
            // Applied again (--force): once in the list, at its latest.
            record.hotfixes.retain(|h| h.version != applied.version);
            record.hotfixes.push(applied.clone());
            record.history.push(applied);
            record
        }
        (earlier, _) => {
            let mut history = earlier.map(|e| e.history).unwrap_or_default();
            history.push(applied);
            Installed {
                name: meta.name.clone(),
                version: meta.version.clone(),
                sha256: finished.sha256.to_string(),
                installed_at: now,
                how: finished.how.into(),
                parameters,
                hotfixes: Vec::new(),
                history,
            }
        }
    };
    std::fs::create_dir_all(&state.root).ctx("creating", &state.root)?;
    // The index first: a record always has the index of its version beside it.
    if meta.hotfix_of.is_none() {
        let index = serde_json::to_vec(finished.index).expect("an index serializes");
        crate::fsx::write_atomic(&index_path(state), &index, 0o644)?;
    }
    let text = serde_json::to_vec_pretty(&record).expect("a record serializes");
    crate::fsx::write_atomic(&record_path(state), &text, 0o644)?;
    Ok(record)
}
