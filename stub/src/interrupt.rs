//! Ctrl-C, SIGTERM and SIGHUP: the handler only raises the format crate's flag
//! (`airbin_format::cancel`); the copy loops check it between buffers and unwind with
//! `Error::interrupted()`, so that every temporary file and directory is removed by its
//! guard on the way out, instead of dying half-way.

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use airbin_format::cancel;
use airbin_format::error::Result;

extern "C" fn on_signal(_: nix::libc::c_int) {
    cancel::raise();
}

/// Installs the handler for SIGINT, SIGTERM and SIGHUP.
pub(crate) fn install_handler() {
    // No SA_RESTART: a blocking read or write returns EINTR, so a wait on a stuck pipe
    // ends too.
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// Ignores SIGHUP from now on: an install goes on when the engineer's SSH session
/// drops, logging to its file (`status --follow` picks it up again).
pub(crate) fn ignore_hangup() {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: ignoring a signal installs no handler code.
    let _ = unsafe { sigaction(Signal::SIGHUP, &ignore) };
}

pub(crate) fn requested() -> bool {
    cancel::requested()
}

/// Returns `Err(Interrupted)` once a signal has arrived.
pub(crate) fn check() -> Result<()> {
    airbin_format::error::check_cancel()
}
