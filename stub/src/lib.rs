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

pub(crate) mod child;
pub(crate) mod cli;
pub(crate) mod commands;
pub(crate) mod engines;
pub mod entry;
pub(crate) mod fan_out;
pub(crate) mod fsx;
pub(crate) mod http;
pub(crate) mod install;
pub(crate) mod interrupt;
pub(crate) mod readahead;
pub(crate) mod registry;
pub(crate) mod shell;
pub(crate) mod steps;
#[cfg(test)]
mod testing;
pub(crate) mod ui;
pub(crate) mod unpack;

/// The runtime's version, which every bundle records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
