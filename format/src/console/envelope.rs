//! The one shape of every `--json` outcome, of both programs: `command`, `status` (ok,
//! failed, interrupted), `exit_code`, `steps`, `error` (null on success), `log`, and
//! the command's own fields beside them (`body`). A node's document is read back into
//! the same type by the fan-out.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ExitClass};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
    Interrupted,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorDoc {
    /// The exit class's name (`ExitClass::name`).
    pub class: String,
    pub message: String,
}

/// What a command without steps has in `steps`: nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum NoSteps {}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope<T, S = NoSteps> {
    pub command: String,
    pub status: Outcome,
    pub exit_code: i32,
    pub steps: Vec<S>,
    pub error: Option<ErrorDoc>,
    pub log: Option<PathBuf>,
    #[serde(flatten)]
    pub body: T,
}

/// The body of a document that says nothing more than the envelope.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Empty {}

impl<T> Envelope<T> {
    /// A command that did what it was asked.
    pub fn ok(command: &str, body: T) -> Envelope<T> {
        Envelope::ended(command, None, body)
    }

    /// How a command ended: `error` is None on success.
    pub fn ended(command: &str, error: Option<&Error>, body: T) -> Envelope<T> {
        Envelope {
            command: command.to_string(),
            status: match error.map(|e| e.class) {
                None => Outcome::Ok,
                Some(ExitClass::Interrupted) => Outcome::Interrupted,
                Some(_) => Outcome::Failed,
            },
            exit_code: error.map_or(0, |e| e.class.code()),
            steps: Vec::new(),
            error: error.map(|e| ErrorDoc { class: e.class.name().to_string(), message: e.message.clone() }),
            log: super::transcript_path(),
            body,
        }
    }

    /// The same document, with the steps the command ran or would run.
    pub fn with_steps<S>(self, steps: Vec<S>) -> Envelope<T, S> {
        let Envelope { command, status, exit_code, error, log, body, .. } = self;
        Envelope { command, status, exit_code, steps, error, log, body }
    }
}

impl Envelope<Empty> {
    /// The document of a command that failed before it had anything else to say.
    pub fn failed(command: &str, error: &Error) -> Envelope<Empty> {
        Envelope::ended(command, Some(error), Empty {})
    }
}
