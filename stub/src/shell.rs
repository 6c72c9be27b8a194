//! Words for a POSIX shell: what messages tell the engineer to type, and what the
//! fan-out sends to other nodes. Every path in a suggested command is quoted when it
//! needs to be, and the bundle is named as the engineer ran it.

use std::path::Path;
use std::sync::OnceLock;

static BUNDLE: OnceLock<String> = OnceLock::new();

/// A word for a POSIX shell, quoted unless plainly safe.
pub(crate) fn quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A path as a quoted shell word.
pub(crate) fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

/// Remembers how this bundle is run (`sh PATH`, or `airbin-run PATH` by the trusted
/// runner), for every message that says what to run next. Set once, by `entry`.
pub(crate) fn set_bundle(path: &Path, trusted_runner: bool) {
    let runner = if trusted_runner { "airbin-run" } else { "sh" };
    let _ = BUNDLE.set(format!("{runner} {}", quote_path(path)));
}

/// `sh '/path/to/x.bin'`: the command that runs this bundle, as a message shows it.
pub(crate) fn bundle() -> &'static str {
    BUNDLE.get().map_or("sh BUNDLE.bin", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_a_shell() {
        assert_eq!(quote("/var/tmp/airbin/x.bin"), "/var/tmp/airbin/x.bin");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(quote(""), "''");
    }
}
