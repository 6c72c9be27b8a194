//! The answers an install used, kept in the state directory so that a rerun, an
//! upgrade, `plan` and `status` use them without the engineer typing them again: the
//! values given with `--set`, at a prompt or by the config file (defaults are not kept:
//! a newer bundle's default should win). Secret values go into a file of their own,
//! 0600, and nowhere else; `--forget-secrets` drops it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::state::StateDir;
use airbin_format::error::Result;

/// What one run used: each key's value and where it came from.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Remembered {
    /// When the run that used them began.
    #[serde(default)]
    pub(crate) at: String,
    /// The bundle's version then.
    #[serde(default)]
    pub(crate) version: String,
    #[serde(default)]
    pub(crate) values: BTreeMap<String, serde_json::Value>,
    /// `--set`, `prompt` or `config`, by key.
    #[serde(default)]
    pub(crate) from: BTreeMap<String, String>,
}

impl Remembered {
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of `key` as YAML, for the config.
    pub(crate) fn yaml(&self, key: &str) -> Option<serde_yaml::Value> {
        self.values.get(key).and_then(|v| serde_yaml::to_value(v).ok())
    }

    /// The value of `key` as text (a list joined by spaces), to compare and show.
    pub(crate) fn text(&self, key: &str) -> Option<String> {
        self.values.get(key).map(text_of)
    }
}

/// A JSON value as one line of text (a list's items joined by spaces).
pub(crate) fn text_of(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(" "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn answers_path(state: &StateDir) -> PathBuf {
    state.root.join("answers.json")
}

fn secrets_path(state: &StateDir) -> PathBuf {
    state.root.join("secrets.json")
}

/// The answers of the last run, secrets included (where this user may read them).
pub(crate) fn read(state: &StateDir) -> Remembered {
    let mut remembered: Remembered = read_file(&answers_path(state)).unwrap_or_default();
    if let Some(secrets) = read_file::<Remembered>(&secrets_path(state)) {
        remembered.values.extend(secrets.values);
        remembered.from.extend(secrets.from);
    }
    remembered
}

fn read_file<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Option<T> {
    let raw = crate::fsx::read_small_nofollow(path, 1 << 20).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// Keeps what this run used: `secret` tells the keys whose values go into the 0600
/// file alone.
pub(crate) fn write(state: &StateDir, answers: &Remembered, secret: &dyn Fn(&str) -> bool) -> Result<()> {
    let (mut open, mut hidden) =
        (Remembered { at: answers.at.clone(), version: answers.version.clone(), ..Remembered::default() }, Remembered::default());
    for (key, value) in &answers.values {
        let into = if secret(key) { &mut hidden } else { &mut open };
        into.values.insert(key.clone(), value.clone());
        if let Some(from) = answers.from.get(key) {
            into.from.insert(key.clone(), from.clone());
        }
    }
    let text = serde_json::to_vec_pretty(&open).expect("answers serialize");
    crate::fsx::write_atomic(&answers_path(state), &text, 0o644)?;
    if hidden.is_empty() {
        forget_secrets(state);
        return Ok(());
    }
    let text = serde_json::to_vec_pretty(&hidden).expect("answers serialize");
    crate::fsx::write_atomic(&secrets_path(state), &text, 0o600)
}

/// Drops the remembered secret values (`--forget-secrets`).
pub(crate) fn forget_secrets(state: &StateDir) -> bool {
    std::fs::remove_file(secrets_path(state)).is_ok()
}

/// Drops every remembered answer (after an uninstall).
pub(crate) fn forget_all(state: &StateDir) {
    let _ = std::fs::remove_file(answers_path(state));
    forget_secrets(state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_go_into_their_own_0600_file_and_can_be_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir { root: dir.path().to_path_buf() };
        let mut answers = Remembered { at: "t".into(), version: "1".into(), ..Remembered::default() };
        answers.values.insert("host".into(), "a".into());
        answers.values.insert("db.password".into(), "hunter2".into());
        answers.values.insert("nodes".into(), serde_json::json!(["10.0.0.1", "10.0.0.2"]));
        answers.from.insert("host".into(), "--set".into());
        write(&state, &answers, &|k| k.contains("password")).unwrap();
        let open = std::fs::read_to_string(dir.path().join("answers.json")).unwrap();
        assert!(!open.contains("hunter2") && open.contains("\"host\""), "{open}");
        let mode = std::fs::metadata(dir.path().join("secrets.json")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = read(&state);
        assert_eq!(back.text("db.password").as_deref(), Some("hunter2"));
        assert_eq!(back.text("nodes").as_deref(), Some("10.0.0.1 10.0.0.2"));
        assert!(forget_secrets(&state));
        assert_eq!(read(&state).text("db.password"), None);
        assert_eq!(read(&state).text("host").as_deref(), Some("a"));
    }
}
