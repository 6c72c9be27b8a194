//! What the fan-out reads of a node's `--json` document: the node's runtime prints the
//! one `Envelope` every command prints, and this is the part of it the fan-out acts on
//! (whatever else the node says travels on untouched, in `NodeOutcome::report`).

use serde::Deserialize;

use airbin_format::console::Envelope;

/// A node's document, read once.
pub(crate) type NodeDoc = Envelope<NodeBody, NodeStep>;

/// The command's own fields the fan-out reads: `install`'s `nothing_to_do`, `status`'s
/// `last_run`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct NodeBody {
    #[serde(default)]
    pub(crate) nothing_to_do: bool,
    #[serde(default)]
    pub(crate) last_run: Option<LastRun>,
}

/// One step as a node's `install` or `status` reports it.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct NodeStep {
    pub(crate) name: String,
    /// `done`, `already-done`, `failed`, ...
    pub(crate) state: String,
    /// How `status` shows the state ("already done", "FAILED").
    #[serde(default)]
    pub(crate) label: String,
}

/// A node's last run, as its `status` reports it.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct LastRun {
    #[serde(default)]
    pub(crate) started: String,
    /// One line: "finished ok", "failed (exit 6)", "running (pid 42)"...
    #[serde(default)]
    pub(crate) result: String,
    /// ok, failed, interrupted, running, killed.
    #[serde(default)]
    pub(crate) outcome: String,
    #[serde(default)]
    pub(crate) exit_code: Option<i32>,
    #[serde(default)]
    pub(crate) log: Option<std::path::PathBuf>,
    /// The fan-out that started that run, if one did.
    #[serde(default)]
    pub(crate) fan_out: Option<String>,
}

/// The node's document, if its stdout is one.
pub(crate) fn read(stdout: &str) -> Option<(NodeDoc, serde_json::Value)> {
    let raw: serde_json::Value = serde_json::from_str(stdout.trim()).ok()?;
    let doc = serde_json::from_value(raw.clone()).ok()?;
    Some((doc, raw))
}

/// The message of the error the node reported, if it reported one.
pub(crate) fn error_of(doc: Option<&NodeDoc>) -> Option<String> {
    doc?.error.as_ref().map(|e| e.message.clone())
}
