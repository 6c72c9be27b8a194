//! The plan as `plan` (and `install --dry-run`) shows it: text for the engineer, JSON
//! for tooling. Values are masked where secret; on an upgrade, what changes.

use super::config::Source;
use super::plan::PlanState;
use super::{record, Prepared};
use crate::ui::runlog;

/// The plan as the engineer reads it, and as `--json` gives it.
pub(crate) fn plan_json(prepared: &Prepared) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = prepared
        .plan
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name, "kind": s.step.action.kind(), "state": s.state, "does": runlog::mask(&s.prepared.describe()), "done_at": s.done_at,
            })
        })
        .collect();
    let other_roles: Vec<serde_json::Value> =
        prepared.other_roles.iter().map(|s| serde_json::json!({"name": s.name(), "kind": s.action.kind(), "roles": s.roles})).collect();
    serde_json::json!({
        "role": prepared.role.role,
        "role_from": prepared.role.why,
        "role_why": prepared.role.explain(),
        "other_roles_steps": other_roles,
        "config": prepared.config().map(|c| serde_json::json!({
            "path": c.path, "source": c.source.as_str(),
            "values": prepared.config_values.iter().map(|(k, v, _)| (k.clone(), serde_json::Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
            "was": prepared.config_values.iter().filter_map(|(k, _, was)| Some((k.clone(), serde_json::Value::String(was.clone()?)))).collect::<serde_json::Map<_, _>>(),
        })),
        "parameters": prepared.answers.parameters,
        "remembered_at": (!prepared.answers.last.is_empty()).then_some(&prepared.answers.last.at),
        "installed": prepared.installed,
        "change": prepared.change,
        "change_why": prepared.change.describe(&prepared.bundle.index.bundle),
        "other_phase_steps": prepared.other_phase.iter().map(|s| serde_json::json!({"name": s.name(), "kind": s.action.kind(), "when": s.when})).collect::<Vec<_>>(),
        "changes": installed_diff(prepared).map(|d| d.to_json()),
        "staging": prepared.plan.staging,
        "state_dir": prepared.state.root,
        "steps": steps,
    })
}

/// What changes from the installed bundle to this one, on an upgrade, downgrade or
/// hotfix (from the index the record keeps).
fn installed_diff(prepared: &Prepared) -> Option<airbin_format::diff::Diff> {
    if !matches!(prepared.change.phase(), airbin_format::Phase::Upgrade) {
        return None;
    }
    let old = record::read_index(&prepared.state)?;
    Some(airbin_format::diff::diff(&old, &prepared.bundle.index))
}

pub(crate) fn print_plan(prepared: &Prepared) {
    use crate::ui::out_line;
    let meta = &prepared.bundle.index.bundle;
    let role = &prepared.role;
    out_line(&format!("plan for {} {} on this host (role: {}, {})", meta.name, meta.version, role.role, role.explain()));
    out_line(&format!("  this is: {}", prepared.change.describe(meta)));
    if let Some(diff) = installed_diff(prepared) {
        out_line(&format!("  what changes from the installed {}:", prepared.installed.as_ref().map_or("", |i| i.version.as_str())));
        for line in diff.lines() {
            out_line(&format!("    {line}"));
        }
    }
    match prepared.config() {
        Some(c) if c.source == Source::NoFile => out_line("  config:  no file: --set, defaults, prompts and remembered answers"),
        Some(c) => out_line(&format!("  config:  {} ({})", c.path.display(), c.source.as_str())),
        None => out_line("  config:  none needed"),
    }
    if !prepared.answers.last.is_empty() {
        out_line(&format!("  remembered: the answers of the run of {} at {}", prepared.answers.last.version, prepared.answers.last.at));
    }
    let was = |was: &Option<String>| was.as_ref().map(|w| format!("  [CHANGED: was {w}]")).unwrap_or_default();
    for (key, value, before) in &prepared.config_values {
        out_line(&format!("           {key} = {value}{}", was(before)));
    }
    let parameters = &prepared.answers.parameters;
    if !parameters.is_empty() {
        out_line("  parameters:");
        let width = parameters.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in parameters {
            let key = if p.key != p.name { format!(", config key {}", p.key) } else { String::new() };
            out_line(&format!("           {:width$} = {}  ({}, {}{key}){}", p.name, p.value, p.from.as_str(), p.kind, was(&p.was)));
        }
    }
    out_line(&format!("  staging: {}", prepared.plan.staging.display()));
    out_line(&format!("  journal: {}", prepared.state.journal().display()));
    if prepared.plan.steps.is_empty() {
        out_line("  no install steps: install stages the members and stops");
    }
    let width = prepared.plan.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for (n, s) in prepared.plan.steps.iter().enumerate() {
        let state = match s.state {
            PlanState::Pending => "to do".to_string(),
            PlanState::Done => format!("done {}", s.done_at.as_deref().unwrap_or("")),
            PlanState::Redo => "redo".to_string(),
        };
        out_line(&format!("  {}. {:width$}  [{state}]  {}", n + 1, s.name, runlog::mask(&s.prepared.describe())));
    }
    for s in &prepared.other_roles {
        let roles: Vec<&str> = s.roles.iter().map(|r| r.as_str()).collect();
        out_line(&format!("  -. {:width$}  [not on a {} node: runs on {}]", s.name(), role.role, roles.join(", ")));
    }
    for s in &prepared.other_phase {
        out_line(&format!(
            "  -. {:width$}  [not in this {}: the step is for {} only]",
            s.name(),
            prepared.change.as_str(),
            s.when.as_str()
        ));
    }
    if prepared.change.nothing_to_do() || (prepared.plan.steps.iter().any(|s| s.state == PlanState::Done) && !prepared.plan.runs_any()) {
        out_line("every step is done: install does nothing (--from STEP or --force redoes on purpose)");
    }
}
