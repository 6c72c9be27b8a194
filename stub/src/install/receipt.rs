//! The receipt of a finished run (install, upgrade, downgrade, reinstall, hotfix,
//! uninstall): an in-toto Statement (v1) whose subject is the bundle (its name and the
//! SHA-256 its signature covers) and whose predicate says what happened on this host:
//! the bundle's signer, the parameters (secrets masked, as the record keeps them),
//! every step with its outcome and times, the images loaded, the registry repositories
//! restored, the host and the airbin version. Signed with `--receipt-key` (a minisign
//! `.minisig` beside it, as bundles are), so an auditor proves with `airbin receipt
//! verify` what was installed where, and by which bundle.
//!
//! Receipts live beside the products' state directories, in `.receipts/NAME/` (no
//! bundle can be named `.receipts`): an uninstall removes its product's state and keeps
//! its receipts, its own included.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use airbin_format::error::{IoContext, Result};
use airbin_format::signing::SigningKey;
use airbin_format::{Action, Bundle};

use super::journal::{self, Event};
use super::param_values::Resolved;
use super::report::{StepReport, StepState};
use super::state::StateDir;

pub(crate) const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub(crate) const PREDICATE_TYPE: &str = "https://airbin.dev/receipt/v1";

/// `--receipt-key`, loaded once (Options are cloned; the key is shared).
#[derive(Clone)]
pub(crate) struct ReceiptKey(pub(crate) std::sync::Arc<SigningKey>);

impl ReceiptKey {
    pub(crate) fn load(path: &Path) -> Result<ReceiptKey> {
        SigningKey::load(path).map(|key| ReceiptKey(std::sync::Arc::new(key)))
    }
}

impl std::fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReceiptKey({})", self.0.id)
    }
}

/// What a finished run hands over for its receipt.
pub(crate) struct Finished<'a> {
    pub(crate) bundle: &'a Bundle,
    pub(crate) state: &'a StateDir,
    /// `install`, `upgrade`, `downgrade`, `reinstall`, `hotfix` or `uninstall`.
    pub(crate) operation: &'a str,
    pub(crate) parameters: &'a [Resolved],
    pub(crate) steps: &'a [StepReport],
    pub(crate) run_id: &'a str,
    pub(crate) key: Option<&'a SigningKey>,
}

/// Where the receipts of the product `name` are kept.
pub(crate) fn dir_of(state: &StateDir, name: &str) -> PathBuf {
    state.root.parent().unwrap_or(Path::new("/")).join(".receipts").join(name)
}

/// Every receipt of the product `name`, oldest first (run IDs start with the time).
pub(crate) fn all(state: &StateDir, name: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir_of(state, name)) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.to_string_lossy().ends_with(".intoto.json")).collect();
    found.sort();
    found
}

/// The newest receipt of the product `name`.
pub(crate) fn latest(state: &StateDir, name: &str) -> Option<PathBuf> {
    all(state, name).pop()
}

/// Writes the receipt (and its `.minisig` with a key); returns its path.
pub(crate) fn write(finished: &Finished) -> Result<PathBuf> {
    let statement = statement(finished);
    let text = serde_json::to_vec_pretty(&statement).expect("a JSON value serializes");
    let host = statement["predicate"]["host"]["hostname"].as_str().unwrap_or_default();
    let meta = &finished.bundle.index.bundle;
    let dir = dir_of(finished.state, &meta.name);
    std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
    let path = dir.join(format!("{}.intoto.json", finished.run_id));
    if let Some(key) = finished.key {
        let comment = format!("airbin receipt: {} of {} {} on {host}", finished.operation, meta.name, meta.version);
        let signature = key.sign(&text[..], &comment).ctx("signing the receipt", &path)?;
        crate::fsx::write_atomic(&dir.join(format!("{}.intoto.json.minisig", finished.run_id)), signature.as_bytes(), 0o644)?;
    }
    crate::fsx::write_atomic(&path, &text, 0o644)?;
    Ok(path)
}

fn statement(finished: &Finished) -> Value {
    let bundle = finished.bundle;
    let meta = &bundle.index.bundle;
    let parameters: serde_json::Map<String, Value> =
        finished.parameters.iter().map(|p| (p.name.clone(), json!({"value": p.value, "secret": p.secret, "from": p.from}))).collect();
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": format!("{}.bin", meta.file_stem()), "digest": {"sha256": bundle.sha256()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "operation": finished.operation,
            "bundle": {"name": meta.name, "version": meta.version, "arch": meta.arch, "hotfix_of": meta.hotfix_of},
            "signer": {"signed": bundle.signer_key().is_some(), "key_id": bundle.signer_key().map(|k| k.to_string())},
            "parameters": parameters,
            "steps": steps(finished),
            "images_loaded": images_loaded(bundle, finished.steps),
            "registry_restored": registry_restored(bundle, finished.steps),
            "host": host(),
            "airbin_version": env!("CARGO_PKG_VERSION"),
            "run": {"id": finished.run_id, "finished_at": crate::ui::timestamp()},
        }
    })
}

/// Each step with its outcome and, from the journal, when it last started and ended.
fn steps(finished: &Finished) -> Vec<Value> {
    let records = journal::read(&finished.state.journal());
    let sha = finished.bundle.sha256();
    let last = |step: &str, started: bool| {
        records
            .iter()
            .rfind(|r| {
                r.bundle == sha
                    && match &r.event {
                        Event::StepStarted { step: s, .. } => started && s == step,
                        Event::StepDone { step: s, .. } | Event::StepFailed { step: s, .. } => !started && s == step,
                        _ => false,
                    }
            })
            .map(|r| r.at.clone())
    };
    finished
        .steps
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "kind": s.kind,
                "outcome": s.state,
                "attempts": s.attempts,
                "seconds": s.seconds,
                "started_at": last(&s.name, true),
                "finished_at": last(&s.name, false),
            })
        })
        .collect()
}

/// The members of the steps of `kind` that are done (by this run or an earlier one).
fn done_members<'a>(bundle: &'a Bundle, steps: &[StepReport], wanted: fn(&Action) -> Option<&str>) -> Vec<&'a airbin_format::Member> {
    let done = |name: &str| steps.iter().any(|s| s.name == name && matches!(s.state, StepState::Done | StepState::AlreadyDone));
    bundle.index.steps.iter().filter(|s| done(&s.name())).filter_map(|s| wanted(&s.action)).filter_map(|m| bundle.index.member(m)).collect()
}

fn loaded(action: &Action) -> Option<&str> {
    match action {
        Action::LoadImages(load) => Some(load.member.as_str()),
        _ => None,
    }
}

fn restored(action: &Action) -> Option<&str> {
    match action {
        Action::RestoreRegistry(restore) => Some(restore.member.as_str()),
        _ => None,
    }
}

fn images_loaded(bundle: &Bundle, steps: &[StepReport]) -> Vec<Value> {
    done_members(bundle, steps, loaded).iter().flat_map(|m| &m.images).map(|i| json!({"id": i.id, "tags": i.tags})).collect()
}

fn registry_restored(bundle: &Bundle, steps: &[StepReport]) -> Vec<Value> {
    let members = done_members(bundle, steps, restored);
    let repositories = members.iter().filter_map(|m| m.registry.as_ref()).flat_map(|r| &r.repositories);
    repositories.map(|r| json!({"repository": r.name, "tags": r.tags.iter().map(|t| &t.tag).collect::<Vec<_>>()})).collect()
}

/// Who this host is: its name, machine ID, operating system, kernel and machine.
fn host() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).map(|t| t.trim().to_string()).unwrap_or_default();
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
        .unwrap_or_default();
    let machine = nix::sys::utsname::uname().map(|u| u.machine().to_string_lossy().into_owned()).unwrap_or_default();
    json!({
        "hostname": read("/proc/sys/kernel/hostname"),
        "machine_id": read("/etc/machine-id"),
        "os": os,
        "kernel": read("/proc/sys/kernel/osrelease"),
        "machine": machine,
    })
}
