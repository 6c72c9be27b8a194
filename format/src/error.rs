//! One error type for the whole runtime. Every error carries the class that picks the
//! exit code (documented in the README) and a one-line message that says what went wrong,
//! where, and what to do next.

use std::fmt;
use std::io;
use std::path::Path;

/// The documented exit codes, one per class of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitClass {
    /// Something no other class covers (a bug, an unexpected I/O error): 1.
    Internal,
    /// `status --verify` found the host no longer matching the install record: 1.
    Drift,
    /// Bad command line, bad spec, bad config: 2.
    Usage,
    /// The bundle is truncated, altered, of an unknown format, or carries unsafe content: 3.
    Integrity,
    /// Not enough free space where members would land: 4.
    Space,
    /// Permission denied, read-only file system, or root needed: 5.
    Permission,
    /// An install step failed (an image load, a registry restore, a product command): 6.
    Step,
    /// The host is not ready: a missing engine or command, another run holding the lock: 7.
    Host,
    /// Interrupted by a signal (Ctrl-C, SIGTERM): 130.
    Interrupted,
}

impl ExitClass {
    /// Space and permission problems, which choosing another place can solve.
    pub fn is_about_a_place(self) -> bool {
        matches!(self, ExitClass::Space | ExitClass::Permission)
    }

    pub fn code(self) -> i32 {
        match self {
            ExitClass::Internal | ExitClass::Drift => 1,
            ExitClass::Usage => 2,
            ExitClass::Integrity => 3,
            ExitClass::Space => 4,
            ExitClass::Permission => 5,
            ExitClass::Step => 6,
            ExitClass::Host => 7,
            ExitClass::Interrupted => 130,
        }
    }

    /// The class of a documented exit code (another runtime's, such as a node's).
    pub fn from_code(code: i32) -> ExitClass {
        match code {
            0 | 1 => ExitClass::Internal,
            2 => ExitClass::Usage,
            3 => ExitClass::Integrity,
            4 => ExitClass::Space,
            5 => ExitClass::Permission,
            6 => ExitClass::Step,
            130 => ExitClass::Interrupted,
            // 7, and what SSH or a signal gave: the node is not ready.
            _ => ExitClass::Host,
        }
    }

    /// A short name for JSON output and logs.
    pub fn name(self) -> &'static str {
        match self {
            ExitClass::Internal => "internal",
            ExitClass::Drift => "drift",
            ExitClass::Usage => "usage",
            ExitClass::Integrity => "integrity",
            ExitClass::Space => "disk-space",
            ExitClass::Permission => "permission",
            ExitClass::Step => "step-failed",
            ExitClass::Host => "host-not-ready",
            ExitClass::Interrupted => "interrupted",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Error {
    pub class: ExitClass,
    pub message: String,
    /// What a caller must tell apart beyond the class (never by the message's text).
    pub kind: Kind,
}

/// Errors a caller treats apart from the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    #[default]
    Plain,
    /// A worker stopped because a sibling failed: it only echoes that failure, which
    /// is the one to report.
    SiblingFailed,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(class: ExitClass, message: impl Into<String>) -> Error {
        Error { class, message: message.into(), kind: Kind::Plain }
    }

    /// A worker stopped because a sibling failed (see `Kind::SiblingFailed`).
    pub fn sibling_failed() -> Error {
        Error { kind: Kind::SiblingFailed, ..Error::internal("stopped because another worker failed") }
    }
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(ExitClass::Usage, message)
    }
    pub fn integrity(message: impl Into<String>) -> Error {
        Error::new(ExitClass::Integrity, message)
    }
    pub fn space(message: impl Into<String>) -> Error {
        Error::new(ExitClass::Space, message)
    }
    pub fn permission(message: impl Into<String>) -> Error {
        Error::new(ExitClass::Permission, message)
    }
    pub fn step(message: impl Into<String>) -> Error {
        Error::new(ExitClass::Step, message)
    }
    pub fn host(message: impl Into<String>) -> Error {
        Error::new(ExitClass::Host, message)
    }
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ExitClass::Internal, message)
    }
    pub fn drift(message: impl Into<String>) -> Error {
        Error::new(ExitClass::Drift, message)
    }
    /// Ctrl-C or SIGTERM; what was half-done is gone (the install says what it keeps).
    pub fn interrupted() -> Error {
        Error::new(ExitClass::Interrupted, "interrupted; nothing half-done was kept: run the same command again")
    }

    /// This error with `hint` (what applies where it happened) added to its message.
    pub fn hint(mut self, hint: &str) -> Error {
        self.message.push_str(hint);
        self
    }

    /// Classifies an I/O error on `path` while doing `what` ("writing", "reading", ...):
    /// a full disk and a permission problem get their own exit codes and advice.
    pub fn io(err: io::Error, what: &str, path: &Path) -> Error {
        // Ctrl-C makes reads fail in whatever wraps them (tar-rs's "failed to unpack"):
        // the interrupt is the cause.
        if crate::cancel::requested() {
            return Error::interrupted();
        }
        let path = path.display();
        match root_os_error(&err) {
            // The advice that is true everywhere; where another place can be chosen, the
            // caller adds how (`hint`).
            Some(libc_enospc) if libc_enospc == nix::libc::ENOSPC || libc_enospc == nix::libc::EDQUOT => {
                Error::space(format!("no space left while {what} {path}; free space there"))
            }
            Some(code) if code == nix::libc::EACCES || code == nix::libc::EPERM => {
                Error::permission(format!("permission denied while {what} {path}; run as a user who may write there (root?)"))
            }
            Some(code) if code == nix::libc::EROFS => Error::permission(format!("{path} is on a read-only file system ({what})")),
            _ if err.kind() == io::ErrorKind::Interrupted && crate::cancel::requested() => Error::interrupted(),
            _ => Error::internal(format!("{what} {path}: {err}")),
        }
    }
}

impl Error {
    /// An error of ours that a reader or writer wrapped into an I/O error (an interrupt,
    /// a digest mismatch), also where a library (tar-rs) wrapped that once more.
    pub fn wrapped_in(err: &io::Error) -> Option<Error> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|e| e as _);
        while let Some(e) = source {
            if let Some(ours) = e.downcast_ref::<Error>() {
                return Some(ours.clone());
            }
            source = e.source().or_else(|| e.downcast_ref::<io::Error>().and_then(|io| io.get_ref().map(|i| i as _)));
        }
        None
    }
}

/// `Err(Interrupted)` once the person running us asked to stop (`cancel`).
pub fn check_cancel() -> Result<()> {
    match crate::cancel::requested() {
        true => Err(Error::interrupted()),
        false => Ok(()),
    }
}

/// The OS error under an I/O error, also where a library (tar-rs) wrapped it in its own.
fn root_os_error(err: &io::Error) -> Option<i32> {
    if let Some(code) = err.raw_os_error() {
        return Some(code);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|e| e as _);
    while let Some(e) = source {
        if let Some(code) = e.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error) {
            return Some(code);
        }
        source = e.source();
    }
    None
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Attaches a path and an action to I/O results, the way every caller wants them reported.
pub trait IoContext<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|e| {
            // A reader or writer of ours may have wrapped an Error of ours (an interrupt,
            // a digest mismatch) inside the io::Error: give that back as it was.
            match Error::wrapped_in(&e) {
                Some(ours) => ours,
                None => Error::io(e, what, path),
            }
        })
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::other(e)
    }
}
