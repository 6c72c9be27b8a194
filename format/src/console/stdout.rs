//! The one way out of the process for what a person or a program reads: a write error
//! is ignored, because the terminal of a dropped SSH session is gone and the install
//! goes on logging to its file (`eprintln!` would panic), and a closed pipe (`| head`)
//! is a normal end. Everything is masked on its way out.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

static PRINTED: AtomicBool = AtomicBool::new(false);

/// One line on stderr.
pub fn err_line(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{}", super::mask(text));
}

/// One line on stdout.
pub fn out_line(text: &str) {
    let _ = writeln!(io::stdout().lock(), "{}", super::mask(text));
}

/// A JSON document on stdout, the one thing `--json` puts there.
pub fn print_json(document: &impl Serialize) {
    PRINTED.store(true, Ordering::SeqCst);
    let text = serde_json::to_string_pretty(document).expect("a document serializes");
    out_line(&text);
}

/// Whether the command printed its JSON document already (so `main` prints none).
pub fn json_printed() -> bool {
    PRINTED.load(Ordering::SeqCst)
}
