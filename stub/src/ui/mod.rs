//! How the runtime talks: the format crate's console (progress, the stdout and stderr
//! writer, the one JSON `Envelope`), with the run's log and its masking of secrets
//! plugged in as the console's transcript; and which command is running, which every
//! JSON document and usage error names.

pub(crate) mod runlog;

use std::sync::Mutex;

pub(crate) use airbin_format::console::{
    err_line, json_printed, out_line, print_json, timestamp, Empty, Envelope, Progress, ProgressReader, Ui,
};

static COMMAND: Mutex<&'static str> = Mutex::new("install");

/// Names the command being run, for its JSON document (failures included).
pub(crate) fn set_command(name: &'static str) {
    *COMMAND.lock().unwrap_or_else(|e| e.into_inner()) = name;
}

/// The command being run.
pub(crate) fn command() -> &'static str {
    *COMMAND.lock().unwrap_or_else(|e| e.into_inner())
}
