//! The install, as a plan that is computed, checked, then executed:
//!
//! 1. the bundle is being verified (by the caller, on another thread): no step but an
//!    image load or a registry restore starts before its verdict, and those hold back
//!    their commit until then (the end of the stream: `engines::load`; the placement:
//!    `registry::restore`), so nothing commits unverified bytes;
//! 2. every value is resolved once into the answers (`answers`: the config file, the
//!    answers remembered from the last run, `--set`, defaults, prompts), this node's
//!    role found (`--role`, or this host's address in the config's node list: `roles`),
//!    and the config checked: every key this role's steps take a value from;
//! 3. what this bundle is to what is installed is decided (`upgrade`: the install-kind
//!    table of docs/STATE.md), every step of the role prepared, and the plan made: this
//!    host's steps minus those done (by the journal of this very bundle, or, for an
//!    installed version, by the record);
//! 4. preflight checks what the steps to run need, and reports every problem at once;
//! 5. `runner`: the state directory is locked, leftovers of a killed run swept (files,
//!    processes), the log opened, the answers remembered, then each step runs,
//!    journaled as it starts and ends; the members the role's steps read from disk are
//!    staged first, with the config as `config`; staging goes when the run ends;
//! 6. the report says what was done, where the log is, and what to do next.

pub(crate) mod answers;
mod attempt;
pub(crate) mod config;
pub(crate) mod drift;
pub(crate) mod journal;
pub(crate) mod leftovers;

pub(crate) mod param_values;
pub(crate) mod plan;
pub(crate) mod preflight;
pub(crate) mod receipt;
pub(crate) mod record;
pub(crate) mod remembered;
pub(crate) mod report;
pub(crate) mod roles;
pub(crate) mod runner;
mod show;
pub(crate) mod staging;
pub(crate) mod state;
pub(crate) mod uninstall;
pub(crate) mod upgrade;
pub(crate) mod verified;

use std::path::PathBuf;

use airbin_format::Role;

use crate::steps::Overrides;
use plan::Redo;
pub(crate) use plan::{prepare, Prepared};
pub(crate) use preflight::check_host;
pub(crate) use report::{Report, StepReport, StepState, Stopped};
pub(crate) use runner::run;
pub(crate) use show::{plan_json, print_plan};

/// The install's options, typed once at the command line's edge.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// Stage here instead of the state directory's `staging/` (kept afterwards).
    pub(crate) target: Option<PathBuf>,
    pub(crate) keep: bool,
    /// Stage every member, run no step.
    pub(crate) noexec: bool,
    pub(crate) redo: Redo,
    pub(crate) overrides: Overrides,
    pub(crate) containerd_namespace: String,
    /// Where the values come from.
    pub(crate) given: answers::Given,
    pub(crate) skip_preflight: Vec<String>,
    /// This node's role, when given (`--role`); else found from the config's node lists.
    pub(crate) role: Option<Role>,
    /// Install over a newer version on purpose.
    pub(crate) allow_downgrade: bool,
    /// The `--all-nodes` run this one is part of (its tag, for the journal).
    pub(crate) fan_out: Option<String>,
    /// Signs the run's receipt (`--receipt-key`).
    pub(crate) receipt_key: Option<receipt::ReceiptKey>,
}
