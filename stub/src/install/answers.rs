//! Every value the install takes, resolved once, at the start, into one answers value:
//! the product's config (a file, the bundle's sample on purpose, or none), the answers
//! remembered from the last run, `--set` (parameters and the config keys the bundle
//! uses), the parameters' defaults, and what a terminal is asked. The plan, the steps,
//! the node lists, the record and the masker read only the result.
//!
//! For each value, the first of: `--set`, the config file, the answer remembered from
//! the last run, the parameter's default, a prompt (on a terminal, without `--yes`).

use airbin_format::{CommandAction, ExtractAction, PushImagesAction, RestoreRegistryAction, WaitForAction};
use std::collections::{BTreeMap, BTreeSet};

use super::config::{self, ProductConfig, Source};
use super::param_values::{self as params, From, Prompter, Resolved};
use super::remembered::{self, Remembered};
use super::state::StateDir;
use airbin_format::error::{Error, Result};
use airbin_format::{Action, Bundle, Index, ParamType, Parameter};

/// What the answers are resolved from, typed at the command line's edge.
#[derive(Clone, Debug, Default)]
pub(crate) struct Given {
    pub(crate) config: Option<std::path::PathBuf>,
    pub(crate) use_sample: bool,
    /// `--set KEY=VALUE` pairs (and the registry flags, as the sets they stand for).
    pub(crate) sets: Vec<(String, String)>,
    /// A terminal to ask on (not with `--yes` or `--json`).
    pub(crate) interactive: bool,
    /// Values asked for on the terminal already, by key.
    pub(crate) answered: Vec<(String, String)>,
    /// Leave the remembered secrets out (they are asked for again).
    pub(crate) forget_secrets: bool,
    /// Nothing runs (`--noexec`): no value is needed.
    pub(crate) noexec: bool,
}

/// The install's values.
pub(crate) struct Answers {
    /// The config the steps read, with every value in; None for a bundle that needs none.
    pub(crate) config: Option<ProductConfig>,
    /// Every parameter, its value (masked where secret) and where it came from.
    pub(crate) parameters: Vec<Resolved>,
    /// What the last run used (for `plan`'s marks and `status`).
    pub(crate) last: Remembered,
    /// What this run uses, to be remembered when it begins.
    pub(crate) used: Remembered,
    /// Config keys asked for on the terminal, by key (so the verification's progress
    /// does not ask twice).
    pub(crate) asked: Vec<(String, String)>,
}

/// The config keys the bundle uses: required ones, the node lists, those steps take a
/// value from, and the parameters' keys.
pub(crate) fn keys_used(index: &Index) -> Vec<String> {
    let mut keys: Vec<String> = index.config.required.clone();
    keys.extend(index.config.management_nodes_key.iter().cloned());
    keys.extend(index.config.worker_nodes_key.iter().cloned());
    for step in index.steps.iter().chain(index.steps.iter().flat_map(|s| &s.on_failure)) {
        keys.extend(step_keys(step));
    }
    keys.extend(index.parameters.iter().map(|p| p.key().to_string()));
    let mut seen = BTreeSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    keys
}

/// The config keys one step takes a value from.
pub(crate) fn step_keys(step: &airbin_format::Step) -> Vec<String> {
    let mut keys = Vec::new();
    match &step.action {
        Action::RestoreRegistry(RestoreRegistryAction { root_from_config, address_from_config, .. }) => {
            keys.extend(root_from_config.iter().cloned());
            keys.extend(address_from_config.iter().cloned());
        }
        Action::Extract(ExtractAction { to, .. }) => keys.extend(config::referenced_keys(to)),
        Action::WaitFor(WaitForAction { tcp, http }) => tcp.iter().chain(http).for_each(|t| keys.extend(config::referenced_keys(t))),
        Action::Command(CommandAction { run }) => run.iter().for_each(|w| keys.extend(config::referenced_keys(w))),
        Action::PushImages(PushImagesAction { registry, prefix, username, password, .. }) => {
            std::iter::once(registry).chain(prefix).chain(username).chain(password).for_each(|t| keys.extend(config::referenced_keys(t)))
        }
        Action::LoadImages(_) => {}
    }
    step.env.values().for_each(|v| keys.extend(config::referenced_keys(v)));
    keys
}

/// Whether the bundle's steps need the product's config at all.
fn needs_config(index: &Index, keys: &[String]) -> bool {
    !keys.is_empty() || index.steps.iter().any(|s| matches!(s.action, Action::Command(_)))
}

/// Keys whose values are never shown, and go only into the 0600 file of remembered secrets.
fn secret(index: &Index, key: &str) -> bool {
    config::is_secret_key(key) || index.parameters.iter().any(|p| p.secret && p.key() == key)
}

/// The node-list keys, whose values are lists.
fn is_list_key(index: &Index, key: &str) -> bool {
    index.config.management_nodes_key.as_deref() == Some(key) || index.config.worker_nodes_key.as_deref() == Some(key)
}

/// Resolves every value (see the module's doc). Reads; writes nothing.
pub(crate) fn resolve(bundle: &Bundle, given: &Given, state: &StateDir) -> Result<Answers> {
    let index = &bundle.index;
    let mut last = remembered::read(state);
    if given.forget_secrets {
        last.values.retain(|k, _| !secret(index, k));
    }
    let keys = keys_used(index);
    let Some(mut config) = find_config(bundle, given, &keys)? else {
        if let Some((key, _)) = given.sets.first() {
            return Err(Error::usage(format!("--set {key}: nothing runs that takes a value (--noexec, or a bundle without steps)")));
        }
        return Ok(Answers { config: None, parameters: Vec::new(), last, used: Remembered::default(), asked: Vec::new() });
    };
    let (mut from, problems) = sets_and_remembered(index, given, &keys, &last, &mut config)?;
    if given.noexec {
        return Ok(Answers { config: Some(config), parameters: Vec::new(), last, used: Remembered::default(), asked: Vec::new() });
    }
    let terminal = params::Terminal;
    let prompter = given.interactive.then_some(&terminal as &dyn Prompter);
    let asked = ask_missing(bundle, given, prompter, &last, &mut config, &mut from)?;
    let remembered_text = |key: &str| last.text(key);
    let sources = params::Sources {
        sets: &given.sets,
        answered: &given.answered,
        remembered: &remembered_text,
        prompter,
        config_shown: crate::shell::quote_path(&config.path),
        problems,
    };
    let mut parameters = params::resolve(&index.parameters, &mut config, &sources)?;
    for p in &mut parameters {
        p.was = last.text(&p.key).filter(|was| *was != p.actual).map(|was| if p.secret { "(another value)".into() } else { was });
    }
    for (key, secret_key) in keys.iter().map(|k| (k, secret(index, k))) {
        if secret_key {
            config.mark_secret(key);
        }
    }
    crate::ui::runlog::add_secrets(config.flat().into_iter().filter(|(k, _)| config.is_secret(k)).map(|(_, v)| v));
    let used = used_values(index, &parameters, &from, &config, &last);
    Ok(Answers { config: Some(config), parameters, last, used, asked })
}

/// The product's config: `--use-sample`, `--config FILE` or `config` beside the bundle,
/// or an empty one when the steps take values and none is there (`--set`, prompts and
/// remembered answers fill it).
fn find_config(bundle: &Bundle, given: &Given, keys: &[String]) -> Result<Option<ProductConfig>> {
    let index = &bundle.index;
    if given.use_sample {
        let sample =
            index.config_sample().ok_or_else(|| Error::usage("--use-sample: this bundle carries no config sample; give --config FILE"))?;
        return Ok(Some(super::config::sample_config(bundle, sample)?));
    }
    Ok(match config::locate(given.config.as_deref(), &bundle.path) {
        Some((path, source)) => Some(config::load(&path, source)?),
        None if given.noexec => None,
        None if needs_config(index, keys) || !given.sets.is_empty() => Some(config::empty(&bundle.path)),
        None => None,
    })
}

/// Where each config key's value came from: `--set` (a parameter's, or a key the bundle
/// uses), the file, or the answer the last run used for a key the file lacks. Returns
/// that, and the `--set`s that name nothing (said with the parameters' problems).
fn sets_and_remembered(
    index: &Index,
    given: &Given,
    keys: &[String],
    last: &Remembered,
    config: &mut ProductConfig,
) -> Result<(BTreeMap<String, &'static str>, Vec<String>)> {
    let mut problems = Vec::new();
    let mut from: BTreeMap<String, &'static str> = BTreeMap::new();
    for (key, value) in &given.sets {
        if params::declares(&index.parameters, key).is_some() {
            continue;
        }
        if !keys.contains(key) {
            problems.push(unknown_set(index, keys, key));
            continue;
        }
        config.set(key, typed_config_value(index, key, value));
        from.insert(key.clone(), "--set");
    }
    // A --set that names nothing is said with every bad value, in one message.
    if !problems.is_empty() && index.parameters.is_empty() {
        return Err(Error::usage(format!("{}; see {} plan for the values it takes", problems.join("; "), crate::shell::bundle())));
    }
    let param_keys: Vec<&str> = index.parameters.iter().map(Parameter::key).collect();
    for key in keys.iter().filter(|k| !param_keys.contains(&k.as_str())) {
        if from.contains_key(key) {
            continue;
        }
        if config.has(key) {
            from.insert(key.clone(), if config.source == Source::NoFile { "--set" } else { "config" });
        } else if let Some(value) = last.yaml(key) {
            config.set(key, value);
            from.insert(key.clone(), "remembered");
        }
    }
    Ok((from, problems))
}

/// With no file and values missing, says so first; on a terminal asks for each required
/// config key still unset (parameters are asked for by `params`). Returns the answers.
fn ask_missing(
    bundle: &Bundle,
    given: &Given,
    prompter: Option<&dyn Prompter>,
    last: &Remembered,
    config: &mut ProductConfig,
    from: &mut BTreeMap<String, &'static str>,
) -> Result<Vec<(String, String)>> {
    let index = &bundle.index;
    let required = required_keys(index);
    let missing_now = missing_values(index, config, &given.sets, last, &required);
    if config.source == Source::NoFile && !missing_now.is_empty() {
        match prompter {
            Some(_) => crate::ui::err_line(&format!(
                "there is no config at {} (or --config FILE): asking for the {} value(s) this bundle needs (or {})",
                crate::shell::quote_path(&config.path),
                missing_now.len(),
                no_config_hint(bundle)
            )),
            None => return Err(no_config(bundle, &config.path, &missing_now)),
        }
    }
    let Some(prompter) = prompter else { return Ok(Vec::new()) };
    let param_keys: Vec<&str> = index.parameters.iter().map(Parameter::key).collect();
    let unanswered: Vec<&String> = required.iter().filter(|k| !param_keys.contains(&k.as_str()) && !config.has(k)).collect();
    let mut asked = Vec::new();
    for key in unanswered {
        let answer = given
            .answered
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .or_else(|| params::ask_until_valid(prompter, &config_key_question(index, key)));
        if let Some(answer) = answer {
            config.set(key, typed_config_value(index, key, &answer));
            from.insert(key.clone(), "prompt");
            asked.push((key.clone(), answer));
        }
    }
    Ok(asked)
}

/// What this run uses, to remember: values given, asked for, in the file, or
/// remembered before (defaults are not kept).
fn used_values(
    index: &Index,
    parameters: &[params::Resolved],
    from: &BTreeMap<String, &'static str>,
    config: &ProductConfig,
    last: &Remembered,
) -> Remembered {
    let mut used = Remembered { at: crate::ui::timestamp(), version: index.bundle.version.clone(), ..Remembered::default() };
    for p in parameters {
        let origin = match p.from {
            From::Set => "--set".to_string(),
            From::Config => "config".to_string(),
            From::Prompt => "prompt".to_string(),
            From::Remembered => last.from.get(&p.key).cloned().unwrap_or_else(|| "remembered".into()),
            From::Default | From::Unset => continue,
        };
        used.values.insert(p.key.clone(), serde_json::Value::String(p.actual.clone()));
        used.from.insert(p.key.clone(), origin);
    }
    for (key, origin) in from {
        let Some(value) = config.lookup(key).and_then(|v| serde_json::to_value(v).ok()) else { continue };
        let origin = match *origin {
            "remembered" => last.from.get(key).cloned().unwrap_or_else(|| "remembered".into()),
            other => other.to_string(),
        };
        used.values.insert(key.clone(), value);
        used.from.insert(key.clone(), origin);
    }
    used
}

/// Keeps what this run uses (when it begins: a rerun after a failure needs them too).
pub(crate) fn remember(state: &StateDir, index: &Index, answers: &Answers, forget_secrets: bool) -> Result<()> {
    if forget_secrets {
        remembered::forget_secrets(state);
    }
    if answers.used.is_empty() {
        return Ok(());
    }
    remembered::write(state, &answers.used, &|key| secret(index, key))
}

/// The keys a run cannot go without: the config's required keys and its node lists,
/// and the required parameters' keys.
fn required_keys(index: &Index) -> Vec<String> {
    let mut keys = index.config.required.clone();
    keys.extend(index.config.management_nodes_key.iter().cloned());
    keys.extend(index.parameters.iter().filter(|p| p.required).map(|p| p.key().to_string()));
    let mut seen = BTreeSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    keys
}

/// Of `required`, those no source gives (by parameter name where a parameter holds it).
fn missing_values(index: &Index, config: &ProductConfig, sets: &[(String, String)], last: &Remembered, required: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|key| {
            let param = index.parameters.iter().find(|p| p.key() == key.as_str());
            let set = sets.iter().any(|(k, _)| k == *key || param.is_some_and(|p| p.name == *k));
            let default = param.is_some_and(|p| p.default.is_some());
            !(set || default || config.has(key) || last.text(key).is_some_and(|v| !v.trim().is_empty()))
        })
        .map(|key| index.parameters.iter().find(|p| p.key() == key).map_or_else(|| key.clone(), |p| p.name.clone()))
        .collect()
}

/// A config key as a question for the terminal.
fn config_key_question(index: &Index, key: &str) -> Parameter {
    let description = if index.config.management_nodes_key.as_deref() == Some(key) {
        "the management nodes' addresses, separated by spaces; of two, the primary first".to_string()
    } else if index.config.worker_nodes_key.as_deref() == Some(key) {
        "the worker nodes' addresses, separated by spaces".to_string()
    } else {
        "a key the bundle's config requires".to_string()
    };
    Parameter {
        name: key.to_string(),
        kind: ParamType::String,
        key: None,
        default: None,
        required: true,
        secret: config::is_secret_key(key),
        pattern: Some(r"\S.*".into()),
        values: Vec::new(),
        description,
    }
}

/// A `--set` value for a config key: a node list's words become a list.
fn typed_config_value(index: &Index, key: &str, value: &str) -> serde_yaml::Value {
    if is_list_key(index, key) {
        let words = value.split([' ', ',', '\t']).filter(|w| !w.is_empty()).map(|w| serde_yaml::Value::String(w.into())).collect();
        return serde_yaml::Value::Sequence(words);
    }
    serde_yaml::Value::String(value.to_string())
}

fn unknown_set(index: &Index, keys: &[String], key: &str) -> String {
    let names: Vec<&str> = index.parameters.iter().map(|p| p.name.as_str()).collect();
    let others: Vec<&String> = keys.iter().filter(|k| !index.parameters.iter().any(|p| p.key() == k.as_str())).collect();
    let mut known = Vec::new();
    if !names.is_empty() {
        known.push(format!("its parameters are {}", names.join(", ")));
    }
    if !others.is_empty() {
        known.push(format!("the config keys it uses are {}", others.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")));
    }
    let known = if known.is_empty() { "it takes no values".to_string() } else { known.join("; ") };
    format!(
        "--set {}: the bundle declares no such parameter nor uses such a config key ({known})",
        airbin_format::rules::printable(key, 80)
    )
}

/// How to get a config beside the bundle: the exact commands that start from its sample.
fn no_config_hint(bundle: &Bundle) -> String {
    let beside = config::beside_bundle(&bundle.path);
    let dir = beside
        .parent()
        .map_or_else(|| std::path::PathBuf::from("."), |d| if d.as_os_str().is_empty() { ".".into() } else { d.to_path_buf() });
    match bundle.index.config_sample() {
        Some(sample) => format!(
            "start from its sample: {} extract {} --target {} && cp {} {}, edit it, and run the bundle again (or --use-sample to install with the sample as it is)",
            crate::shell::bundle(),
            crate::shell::quote(&sample.name),
            crate::shell::quote_path(&dir),
            crate::shell::quote_path(&dir.join(&sample.name)),
            crate::shell::quote_path(&beside)
        ),
        None => format!("put it at {} or give --config FILE", crate::shell::quote_path(&beside)),
    }
}

/// The error for a run with no config, no terminal to ask on, and values missing.
pub(crate) fn no_config(bundle: &Bundle, path: &std::path::Path, missing: &[String]) -> Error {
    let sets = missing.iter().map(|k| format!("--set {k}=...")).collect::<Vec<_>>().join(" ");
    Error::usage(format!(
        "there is no config at {} (nor --config FILE), and this bundle needs {}: {}; or give the values on the command line: {sets}",
        crate::shell::quote_path(path),
        missing.join(", "),
        no_config_hint(bundle),
    ))
}
