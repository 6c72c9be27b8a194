//! Whether the person running us asked to stop (Ctrl-C, SIGTERM). This crate installs
//! no signal handler: each program does, and raises this flag from it. The long loops
//! here (verifying, unpacking, checking a registry pack) look at it between buffers and
//! unwind with `Error::interrupted()`, so every guard removes what it made.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Raises the flag: async-signal-safe (one atomic store), so a handler may call it.
pub fn raise() {
    REQUESTED.store(true, Ordering::SeqCst);
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
