//! What the steps read from disk: the members staged for them, the config beside
//! them, and the environment every command step gets.

use airbin_format::CommandAction;
use std::fs;
use std::path::Path;

use airbin_format::error::{Error, IoContext, Result};
use airbin_format::{Action, Bundle, Member, MemberKind, Role};

use super::config::ProductConfig;
use super::plan::Plan;
use super::{param_values, Options};
use crate::fsx;
use crate::ui::{runlog, Ui};

/// Members the run reads from disk: those this role's command steps run or name, and the
/// tools, files and config samples no command step names (the product's tools may read
/// them beside themselves); one that only another role's commands name is that role's.
/// Images and registry packs stream from the bundle: one is staged only when a command
/// of this role names it. With `--noexec`, and for a bundle without steps (staging is
/// what its install is for, as makeself's), every member.
pub(crate) fn members_to_stage<'a>(bundle: &'a Bundle, plan: &Plan, options: &Options) -> Vec<&'a Member> {
    // Everything the product carries; the SBOM is the bundle's own (`sbom` prints it).
    if options.noexec || bundle.index.steps.is_empty() {
        return bundle.index.members.iter().filter(|m| m.kind != airbin_format::MemberKind::Sbom).collect();
    }
    let commands = |steps: &mut dyn Iterator<Item = &'a airbin_format::Step>| -> Vec<&'a airbin_format::Step> {
        steps.flat_map(|s| std::iter::once(s).chain(&s.on_failure)).filter(|s| matches!(s.action, Action::Command(_))).collect()
    };
    let ours: Vec<&airbin_format::Step> = plan
        .steps
        .iter()
        .flat_map(|s| std::iter::once(&s.step).chain(&s.step.on_failure))
        .filter(|s| matches!(s.action, Action::Command(_)))
        .collect();
    if ours.is_empty() {
        return Vec::new();
    }
    let every = commands(&mut bundle.index.steps.iter());
    let names = |steps: &[&airbin_format::Step], member: &Member| {
        steps.iter().any(|step| match &step.action {
            Action::Command(CommandAction { run }) => {
                run.iter().any(|word| word == &member.name || word.starts_with(&format!("{}/", member.name)))
            }
            _ => false,
        })
    };
    bundle
        .index
        .members
        .iter()
        .filter(|m| {
            names(&ours, m) || (matches!(m.kind, MemberKind::Tool | MemberKind::File | MemberKind::ConfigSample) && !names(&every, m))
        })
        .collect()
}

/// Stages the members, then the config as `config`. A full or unwritable staging
/// directory says how to choose another.
pub(crate) fn stage(
    bundle: &Bundle,
    members: &[&Member],
    config: Option<&ProductConfig>,
    staging: &Path,
    ui: &Ui,
    own_target: bool,
) -> Result<()> {
    let hint = |e: Error| match (e.class.is_about_a_place(), own_target) {
        (true, false) => e.hint(" (or stage elsewhere: --target DIR)"),
        (true, true) => e.hint(" (or give another --target DIR)"),
        _ => e,
    };
    if own_target {
        fs::create_dir_all(staging).ctx("creating the staging directory", staging).map_err(hint)?;
    } else {
        // The state directory's own: this user's alone.
        super::state::StateDir { root: staging.parent().unwrap_or(staging).to_path_buf() }.subdir(staging)?;
    }
    if !members.is_empty() {
        let written = crate::unpack::extract_members(bundle, members, staging, ui).map_err(hint)?;
        ui.status(format!("staged {} member(s) into {}", written.len(), staging.display()));
    }
    if let Some(config) = config {
        // The answers file holds the secrets: for root's eyes only.
        fsx::write_atomic(&staging.join("config"), config.staged_text().as_bytes(), 0o600).map_err(hint)?;
    }
    Ok(())
}

/// The environment of every command step; `kind` is the run's (`install`, `upgrade`,
/// `uninstall`...) and the version installed before it.
pub(crate) fn environment(
    bundle: &Bundle,
    config: Option<&ProductConfig>,
    parameters: &[param_values::Resolved],
    kind: (&str, Option<&str>),
    role: Role,
    staging: &Path,
) -> Vec<(String, String)> {
    let meta = &bundle.index.bundle;
    let mut env = vec![
        ("AIRBIN_STAGING".to_string(), staging.display().to_string()),
        ("AIRBIN_BUNDLE_NAME".to_string(), meta.name.clone()),
        ("AIRBIN_BUNDLE_VERSION".to_string(), meta.version.clone()),
        ("AIRBIN_BUNDLE_SHA256".to_string(), bundle.sha256()),
        ("AIRBIN_BUNDLE".to_string(), fsx::absolute(&bundle.path).display().to_string()),
        ("AIRBIN_ROLE".to_string(), role.to_string()),
        ("AIRBIN_INSTALL_KIND".to_string(), kind.0.to_string()),
        ("AIRBIN_INSTALLED_VERSION".to_string(), kind.1.unwrap_or("").to_string()),
    ];
    if let Some(log) = runlog::path() {
        env.push(("AIRBIN_LOG".to_string(), log.display().to_string()));
    }
    if let Some(config) = config {
        env.push(("AIRBIN_CONFIG".to_string(), staging.join("config").display().to_string()));
        for (key, value) in config.flat() {
            env.push((super::config::env_name("AIRBIN_CONFIG_", &key), value));
        }
    }
    for param in parameters {
        env.push((super::config::env_name("AIRBIN_PARAM_", &param.name), param.actual.clone()));
    }
    env
}
