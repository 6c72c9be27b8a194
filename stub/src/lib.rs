//! The airbin runtime: everything a `.bin` does on the host, from its format to the
//! install steps. The builder links this library for the format, so the two sides
//! always agree on it.
//!
//! The modules follow the install flow: `format` (read and write a bundle), `verify`
//! is `format::Bundle::verify`, `preflight`, `extract` and `tarsafe`, `images`,
//! `registry`, `steps`; `cli` and `commands` are the `.bin`'s command line.

pub mod cli;
pub mod commands;
pub mod config;
pub mod digest;
pub mod error;
pub mod extract;
pub mod format;
pub mod http;
pub mod images;
pub mod interrupt;
pub mod preflight;
pub mod progress;
pub mod registry;
pub mod steps;
pub mod tarsafe;

/// The runtime's version, which every bundle records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
