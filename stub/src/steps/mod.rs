//! What each kind of install step does on the host. Every kind answers the same three
//! questions, in one file each:
//! - `prepare`: the step with every value resolved (from the spec, the command line's
//!   overrides and the product's config) and what it needs before anything lands
//!   (`Needs`: free space, an engine, a registry, programs, places it writes);
//! - `describe`: one line for the plan and the log, with the values it will use;
//! - `run`: do it, and say what was done.
//!
//! The step records themselves (`Step`, `Action`) are data of the bundle format.

mod command;
mod extract_to_dir;
mod load_images;
pub(crate) mod placed;
mod push_images;
mod restore_registry;
pub(crate) mod values;
mod wait_for;

use airbin_format::{CommandAction, ExtractAction, LoadImagesAction, WaitForAction};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engines::Engine;
use crate::ui::Ui;
use airbin_format::error::{Error, Result};
pub(crate) use airbin_format::{parse_mode, Action, Step};
use airbin_format::{Bundle, MemberKind};
pub(crate) use command::find_on_path;
pub(crate) use values::ConfigValues;

/// Values the command line overrides for every step that has them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Overrides {
    pub(crate) engine: Option<String>,
    pub(crate) registry_root: Option<PathBuf>,
    pub(crate) registry_address: Option<String>,
}

/// What steps are prepared from.
pub(crate) struct Inputs<'a> {
    pub(crate) bundle: &'a Bundle,
    /// The product's config, when there is one.
    pub(crate) config: Option<&'a dyn ConfigValues>,
    pub(crate) overrides: &'a Overrides,
    /// Where the members no built-in step consumes are staged; command steps run here.
    pub(crate) staging: &'a Path,
}

/// A place a run writes to: how much lands there, for what, and how to choose
/// another place when it is full or not writable (None: only another user can).
#[derive(Clone, Debug)]
pub(crate) struct Place {
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
    /// "staging", "step 'install cadm'"...
    pub(crate) what: String,
    /// "--target DIR", "--set tools_dir=DIR"...
    pub(crate) moved_by: Option<String>,
}

impl Place {
    pub(crate) fn new(path: &Path, bytes: u64, what: &str, moved_by: Option<&str>) -> Place {
        Place { path: path.to_path_buf(), bytes, what: what.to_string(), moved_by: moved_by.map(str::to_string) }
    }
}

/// What a step needs of the host before anything lands; preflight checks it all.
#[derive(Clone, Debug, Default)]
pub(crate) struct Needs {
    /// Where bytes will land (each place must be writable by this user).
    pub(crate) space: Vec<Place>,
    /// An engine to load images into: the spec's choice, if any.
    pub(crate) engine: Option<Option<String>>,
    /// What would be loaded into it ("release-images (compass/api:2.7.3, ...)").
    pub(crate) loads: Vec<String>,
    /// A registry (`host:port`) that must answer.
    pub(crate) registry: Option<String>,
    /// Programs of the host that must be on PATH.
    pub(crate) programs: Vec<String>,
    /// Directories the step creates temporaries in: what a rerun sweeps.
    pub(crate) writes: Vec<PathBuf>,
    /// What must be on the host already and is not (a delta's blobs from its base).
    pub(crate) missing: Vec<String>,
}

/// A step with every value resolved.
#[derive(Clone, Debug)]
pub(crate) enum Prepared {
    LoadImages(load_images::LoadImages),
    RestoreRegistry(restore_registry::RestoreRegistry),
    Extract(extract_to_dir::Extract),
    WaitFor(wait_for::WaitFor),
    PushImages(push_images::PushImages),
    Command(command::Command),
}

/// What a running step may use.
pub(crate) struct RunContext<'a> {
    pub(crate) bundle: &'a Bundle,
    /// Detected in preflight when any pending step loads images.
    pub(crate) engine: Option<&'a Engine>,
    pub(crate) ui: &'a Ui,
    pub(crate) staging: &'a Path,
    /// The environment every command step gets (bundle, config, role, ...).
    pub(crate) env: &'a [(String, String)],
    pub(crate) step_name: &'a str,
    pub(crate) step_env: &'a BTreeMap<String, String>,
    pub(crate) timeout: Option<Duration>,
    /// Done before and done again on purpose (`--force`, `--from`): no shortcut.
    pub(crate) redo: bool,
    /// A killed run had handed this step's whole stream to the engine.
    pub(crate) handed_over_before: Option<&'a HandedOver>,
    /// Records (in the journal) that this run has handed the whole stream over.
    pub(crate) hand_over: &'a (dyn Fn() + Sync),
    /// What every process this attempt starts carries as `AIRBIN_STEP_TOKEN`: how a
    /// later run finds what a killed one left running.
    pub(crate) token: &'a str,
    /// Where a step records what it places on the host, before it places it.
    pub(crate) placed: &'a placed::Recorder,
}

/// A step whose run ended (killed) after it had handed its whole stream to the engine.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct HandedOver {
    pub(crate) at: String,
    /// How long after the step's start.
    pub(crate) seconds: f64,
}

/// How a step failed: the message, and for a command the last lines of its output.
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) last_lines: Vec<String>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure { error, last_lines: Vec::new() }
    }
}

/// Resolves `step`'s values.
pub(crate) fn prepare(step: &Step, inputs: &Inputs) -> Result<Prepared> {
    let name = step.name();
    // The member a step reads, of the kind it needs (any kind for `extract`).
    let member = |name: &str, kind: Option<MemberKind>| -> Result<String> {
        match (inputs.bundle.index.member(name), kind) {
            (Some(m), Some(kind)) if m.kind != kind => {
                Err(Error::integrity(format!("step member {name} is a {} member, not a {}", m.kind.as_str(), kind.as_str())))
            }
            (Some(m), _) => Ok(m.name.clone()),
            (None, _) => Err(Error::integrity(format!("a step names member {name}, which the bundle does not carry"))),
        }
    };
    Ok(match &step.action {
        Action::LoadImages(LoadImagesAction { member: m, engine }) => {
            Prepared::LoadImages(load_images::prepare(inputs, &member(m, Some(MemberKind::Image))?, engine.as_deref()))
        }
        Action::RestoreRegistry(action) => Prepared::RestoreRegistry(restore_registry::prepare(
            inputs,
            &member(&action.member, Some(MemberKind::RegistryPack))?,
            action,
            &name,
        )?),
        Action::Extract(ExtractAction { member: m, to, mode, owner }) => {
            Prepared::Extract(extract_to_dir::prepare(inputs, &member(m, None)?, to, mode.as_deref(), owner.as_deref(), &name)?)
        }
        Action::WaitFor(WaitForAction { tcp, http }) => {
            Prepared::WaitFor(wait_for::prepare(inputs, tcp.as_deref(), http.as_deref(), step.timeout, &name)?)
        }
        Action::PushImages(action) => {
            Prepared::PushImages(push_images::prepare(inputs, &member(&action.member, Some(MemberKind::Image))?, action, &name)?)
        }
        Action::Command(CommandAction { run }) => Prepared::Command(command::prepare(inputs, run, &name)?),
    })
}

impl Prepared {
    pub(crate) fn describe(&self) -> String {
        match self {
            Prepared::LoadImages(s) => s.describe(),
            Prepared::RestoreRegistry(s) => s.describe(),
            Prepared::Extract(s) => s.describe(),
            Prepared::WaitFor(s) => s.describe(),
            Prepared::PushImages(s) => s.describe(),
            Prepared::Command(s) => s.describe(),
        }
    }

    pub(crate) fn needs(&self, bundle: &Bundle, step: &str) -> Needs {
        match self {
            Prepared::LoadImages(s) => s.needs(),
            Prepared::RestoreRegistry(s) => s.needs(bundle, step),
            Prepared::Extract(s) => s.needs(bundle, step),
            Prepared::WaitFor(_) => Needs::default(),
            Prepared::PushImages(s) => s.needs(),
            Prepared::Command(s) => s.needs(),
        }
    }

    /// Runs the step once; returns what was done, for the summary.
    pub(crate) fn run(&self, ctx: &RunContext) -> std::result::Result<String, Failure> {
        match self {
            Prepared::LoadImages(s) => Ok(s.run(ctx)?),
            Prepared::RestoreRegistry(s) => Ok(s.run(ctx)?),
            Prepared::Extract(s) => Ok(s.run(ctx)?),
            Prepared::WaitFor(s) => Ok(s.run(ctx)?),
            Prepared::PushImages(s) => Ok(s.run(ctx)?),
            Prepared::Command(s) => s.run(ctx),
        }
    }

    /// Whether a timeout bounds this kind (built-in steps that stream into an engine or
    /// a registry root stop on Ctrl-C instead).
    pub(crate) fn honours_timeout(&self) -> bool {
        matches!(self, Prepared::Command(_) | Prepared::WaitFor(_))
    }
}

/// `user[:group]` by name or number; the user must exist on this host.
pub(crate) fn parse_owner(owner: &str, step: &str) -> Result<(Option<u32>, Option<u32>)> {
    crate::registry::parse_owner(owner).map_err(|e| Error::new(e.class, format!("step '{step}': {}", e.message)))
}
