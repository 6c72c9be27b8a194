//! What a spec's words refer to: every `${…}` is `${config.KEY}` of a key something
//! declares (a parameter, `config.required`, a node list, or the config sample), and
//! every program a command step runs is the bundle's or the host's on purpose.

use std::collections::BTreeSet;
use std::path::Path;

use airbin_format::{Action, MemberKind, Step};

use super::finding::{closest, Finding};
use crate::assemble::spec::LoadedSpec;

/// The config keys the spec declares: parameters' keys, `config.required`, the node
/// lists, and every key of the config sample (dotted for nesting).
pub(crate) fn declared_keys(loaded: &LoadedSpec) -> BTreeSet<String> {
    let spec = &loaded.spec;
    let mut keys: BTreeSet<String> = spec.parameters.iter().map(|p| p.key().to_string()).collect();
    keys.extend(spec.config.required.iter().cloned());
    keys.extend(spec.config.management_nodes_key.iter().cloned());
    keys.extend(spec.config.worker_nodes_key.iter().cloned());
    if let Some(sample) = config_sample(loaded) {
        if let Ok(text) = std::fs::read_to_string(sample) {
            if let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(&text) {
                flatten("", &value, &mut keys);
            }
        }
    }
    keys
}

/// The config sample's input, if the bundle carries one.
pub(crate) fn config_sample(loaded: &LoadedSpec) -> Option<&Path> {
    let at = loaded.spec.members.iter().position(|m| m.kind == MemberKind::ConfigSample)?;
    Some(&loaded.inputs[at])
}

fn flatten(prefix: &str, value: &serde_yaml::Value, out: &mut BTreeSet<String>) {
    let serde_yaml::Value::Mapping(map) = value else { return };
    for (key, item) in map {
        let Some(key) = key.as_str() else { continue };
        let path = if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
        out.insert(path.clone());
        flatten(&path, item, out);
    }
}

/// Every text of a step that `${config.KEY}` expands in, with its field.
fn expanded_fields(step: &Step, at: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut add = |name: String, text: &str| fields.push((format!("{at}.{name}"), text.to_string()));
    match &step.action {
        Action::Extract(a) => add("to".into(), &a.to),
        Action::WaitFor(a) => {
            a.tcp.iter().for_each(|t| add("tcp".into(), t));
            a.http.iter().for_each(|t| add("http".into(), t));
        }
        Action::PushImages(a) => {
            add("registry".into(), &a.registry);
            for (name, text) in [("prefix", &a.prefix), ("username", &a.username), ("password", &a.password)] {
                text.iter().for_each(|t| add(name.into(), t));
            }
        }
        Action::Command(a) => a.run.iter().enumerate().for_each(|(i, w)| add(format!("run[{i}]"), w)),
        Action::LoadImages(_) | Action::RestoreRegistry(_) => {}
    }
    for (key, value) in &step.env {
        add(format!("env.{key}"), value);
    }
    fields
}

/// Every step and on_failure step, with its field path.
fn all_steps(steps: &[Step]) -> Vec<(String, &Step)> {
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        out.push((format!("steps[{i}]"), step));
        for (j, extra) in step.on_failure.iter().enumerate() {
            out.push((format!("steps[{i}].on_failure[{j}]"), extra));
        }
    }
    out
}

/// Every `${…}` of the steps: only `${config.KEY}`, and only of a declared key.
pub(crate) fn placeholders(loaded: &LoadedSpec, declared: &BTreeSet<String>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (at, step) in all_steps(&loaded.spec.steps) {
        for (field, text) in expanded_fields(step, &at) {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                let after = &rest[start + 2..];
                let Some(end) = after.find('}') else {
                    out.push(Finding::error(&field, format!("`{}` has no closing brace", &rest[start..]), "write ${config.KEY}"));
                    break;
                };
                out.extend(one_placeholder(&field, &after[..end], declared));
                rest = &after[end + 1..];
            }
        }
    }
    out
}

fn one_placeholder(field: &str, inner: &str, declared: &BTreeSet<String>) -> Option<Finding> {
    let Some(key) = inner.strip_prefix("config.") else {
        let named = inner.rsplit('.').next().unwrap_or(inner);
        let fix = match declared.contains(named) {
            true => format!("write ${{config.{named}}}: only the product's config is expanded, and a parameter is read by its key"),
            false => "only ${config.KEY} is expanded (a parameter by its config key)".to_string(),
        };
        return Some(Finding::error(field, format!("`${{{inner}}}` is not a placeholder airbin expands"), fix));
    };
    if declared.contains(key) {
        return None;
    }
    let fix = match closest(key, declared.iter().map(String::as_str)) {
        Some(near) => format!("did you mean `{near}`? or declare `{key}`: in the config sample, config.required or parameters"),
        None => format!("declare `{key}`: in the config sample, config.required, or as a parameter's key"),
    };
    Some(Finding::error(field, format!("`${{config.{key}}}` names a config key nothing declares"), fix))
}

/// A command's program that is neither a member of the bundle nor an absolute path:
/// it must be on every site's PATH.
pub(crate) fn programs(loaded: &LoadedSpec) -> Vec<Finding> {
    let members: Vec<&str> = loaded.spec.members.iter().map(|m| m.name.as_str()).collect();
    let mut out = Vec::new();
    for (at, step) in all_steps(&loaded.spec.steps) {
        let Action::Command(command) = &step.action else { continue };
        let Some(program) = command.run.first() else { continue };
        let first = program.split('/').next().unwrap_or(program);
        if program.starts_with('/') || program.contains("${") || members.contains(&first) {
            continue;
        }
        let fix = match closest(program, members.iter().copied()) {
            Some(near) => format!("did you mean the member `{near}`? otherwise every site's PATH must have it"),
            None => "add it as a member of kind tool, or give its absolute path, if the sites may lack it".to_string(),
        };
        out.push(Finding::warning(
            format!("{at}.run[0]"),
            format!("`{program}` is neither a member of this bundle nor an absolute path"),
            fix,
        ));
    }
    out
}
