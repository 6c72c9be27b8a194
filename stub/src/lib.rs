//! The airbin runtime: everything a `.bin` does on the host, from its format to the
//! install steps. The builder links this library for the format, so the two sides
//! always agree on it.
//!
//! The modules follow the install flow: `format` (read and write a bundle, steps as
//! data; it depends on nothing else here), verification (`format::Bundle::verify`),
//! `install` (config, plan, journal, state, preflight, runner), `steps` (one file a
//! step kind), `engines` (one file an engine), `extract` and `tarsafe`, `registry`; `fsx`, `runlog`,
//! `progress`, `http`, `readahead` and `interrupt` are small helpers; `cli` and `commands` are the
//! `.bin`'s command line.

pub mod child;
pub mod cli;
pub mod commands;
pub mod engines;
pub mod entry;
pub mod error;
pub mod extract;
pub mod format;
pub mod fsx;
pub mod http;
pub mod install;
pub mod interrupt;
pub mod progress;
pub mod readahead;
pub mod registry;
pub mod runlog;
pub mod shell;
pub mod steps;

/// Hashing helpers live with the format (the builder writes digests, the stub checks them).
pub use format::{digest, tarsafe};

/// The runtime's version, which every bundle records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
