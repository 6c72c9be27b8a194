//! Ctrl-C and SIGTERM: the handler only raises a flag; the copy loops check it between
//! buffers and unwind with `Error::interrupted()`, so that every temporary file and
//! directory is removed by its guard on the way out, instead of dying half-way.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::error::{Error, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGINT, SIGTERM and SIGHUP.
pub fn install_handler() {
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
pub fn ignore_hangup() {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: ignoring a signal installs no handler code.
    let _ = unsafe { sigaction(Signal::SIGHUP, &ignore) };
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Returns `Err(Interrupted)` once a signal has arrived.
pub fn check() -> Result<()> {
    if requested() {
        Err(Error::interrupted())
    } else {
        Ok(())
    }
}
