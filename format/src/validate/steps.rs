//! One step of the index against the builder's rules: its name, the member it reads,
//! and each kind's own fields.

use std::collections::HashSet;

use super::{article, has_bad_bytes, invalid, quoted, unsafe_root, Invalid, MemberFacts, MAX_SECONDS, SPECIAL_BITS};
use crate::rules::{self, STEP_NAME};
use crate::step::{parse_mode, CommandAction, ExtractAction, LoadImagesAction, PushImagesAction, RestoreRegistryAction, WaitForAction};
use crate::{Action, MemberKind, Step};

pub(super) fn check_step(
    step: &Step,
    at: &str,
    member: &dyn Fn(&str) -> Option<MemberFacts>,
    names: &mut HashSet<String>,
) -> Result<(), Invalid> {
    let field = |name: &str| format!("{at}.{name}");
    if !step.name.is_empty() {
        if let Some(why) = rules::unsafe_step_name(&step.name) {
            return Err(invalid(field("name"), format!("{} {why}: {STEP_NAME}", quoted(&step.name))));
        }
    }
    let mut roles = step.roles.clone();
    roles.sort();
    roles.dedup();
    if roles.len() != step.roles.len() {
        return Err(invalid(field("roles"), "names a role twice"));
    }
    let name = step.name();
    if !names.insert(name.clone()) {
        return Err(invalid(field("name"), format!("{} names two steps; give each step a unique name", quoted(&name))));
    }
    let special_bits = check_member_of(step, at, member)?;
    let at = at.to_string();
    match &step.action {
        Action::LoadImages(action) => check_load(action, &at)?,
        Action::RestoreRegistry(action) => check_restore(action, &at)?,
        Action::Extract(action) => check_extract(action, &at, special_bits)?,
        Action::WaitFor(action) => check_wait_for(action, &at)?,
        Action::PushImages(action) => check_push(action, &at)?,
        Action::Command(action) => check_command(action, &at)?,
    }
    check_env_and_times(step, &at)
}

/// The member the step reads is in the bundle and of the kind the step needs; whether
/// it is marked as carrying special bits.
fn check_member_of(step: &Step, at: &str, member: &dyn Fn(&str) -> Option<MemberFacts>) -> Result<bool, Invalid> {
    let Some(name) = step.action.member() else { return Ok(false) };
    let facts = member(name).ok_or_else(|| invalid(format!("{at}.member"), format!("no member is named {}", quoted(name))))?;
    let wanted = match &step.action {
        Action::LoadImages(_) | Action::PushImages(_) => Some(MemberKind::Image),
        Action::RestoreRegistry(_) => Some(MemberKind::RegistryPack),
        _ => None,
    };
    if let Some(wanted) = wanted.filter(|w| *w != facts.kind) {
        let (is, needs) = (facts.kind.as_str(), wanted.as_str());
        return Err(invalid(
            format!("{at}.member"),
            format!("'{name}' is a {is} member; this step needs {} {needs} member", article(needs)),
        ));
    }
    Ok(facts.special_bits)
}

fn check_mode(at: &str, mode: &Option<String>, allow_special: bool) -> Result<(), Invalid> {
    let Some(mode) = mode else { return Ok(()) };
    let bits =
        parse_mode(mode).ok_or_else(|| invalid(format!("{at}.mode"), format!("{} is not an octal mode such as 0644", quoted(mode))))?;
    if bits & SPECIAL_BITS != 0 && !allow_special {
        return Err(invalid(
            format!("{at}.mode"),
            format!("{mode} sets setuid, setgid or sticky bits: allowed only for a member marked special_bits: true"),
        ));
    }
    Ok(())
}

fn check_owner(at: &str, owner: &Option<String>) -> Result<(), Invalid> {
    match owner {
        Some(owner) if !rules::is_owner(owner) => Err(invalid(format!("{at}.owner"), format!("{} is not user[:group]", quoted(owner)))),
        _ => Ok(()),
    }
}

fn check_key(at: &str, name: &str, key: &Option<String>) -> Result<(), Invalid> {
    match key {
        Some(key) if !rules::is_config_key(key) => Err(invalid(format!("{at}.{name}"), format!("{} is not a config key", quoted(key)))),
        _ => Ok(()),
    }
}

fn check_load(action: &LoadImagesAction, at: &str) -> Result<(), Invalid> {
    match &action.engine {
        Some(engine) if !matches!(engine.as_str(), "auto" | "docker" | "docker-api" | "podman" | "containerd") => {
            Err(invalid(format!("{at}.engine"), format!("{} is not auto, docker, docker-api, podman or containerd", quoted(engine))))
        }
        _ => Ok(()),
    }
}

fn check_restore(action: &RestoreRegistryAction, at: &str) -> Result<(), Invalid> {
    let RestoreRegistryAction { root, root_from_config, owner, mode, address, address_from_config, .. } = action;
    if root.is_some() == root_from_config.is_some() {
        return Err(invalid(at, "give the registry root either as root or as root_from_config (a key of the product's config)"));
    }
    if let Some(why) = root.as_deref().and_then(unsafe_root) {
        return Err(invalid(format!("{at}.root"), format!("{} {why}", quoted(root.as_deref().unwrap_or("")))));
    }
    if address.is_some() && address_from_config.is_some() {
        return Err(invalid(at, "give address or address_from_config, not both"));
    }
    if address.as_deref().is_some_and(|a| has_bad_bytes(a, true) || a.is_empty()) {
        return Err(invalid(format!("{at}.address"), "is not host:port"));
    }
    check_key(at, "root_from_config", root_from_config)?;
    check_key(at, "address_from_config", address_from_config)?;
    check_owner(at, owner)?;
    check_mode(at, mode, false)
}

fn check_extract(action: &ExtractAction, at: &str, special_bits: bool) -> Result<(), Invalid> {
    let ExtractAction { to, mode, owner, .. } = action;
    let why = match to.strip_prefix("${config.") {
        Some(_) => has_bad_bytes(to, false).then_some("has a NUL byte"),
        None => unsafe_root(to),
    };
    if let Some(why) = why {
        return Err(invalid(format!("{at}.to"), format!("{} is not an absolute directory (or ${{config.KEY}}): it {why}", quoted(to))));
    }
    check_owner(at, owner)?;
    check_mode(at, mode, special_bits)
}

fn check_wait_for(action: &WaitForAction, at: &str) -> Result<(), Invalid> {
    let WaitForAction { tcp, http } = action;
    if tcp.is_some() == http.is_some() {
        return Err(invalid(at, "a wait-for step names exactly one of tcp (host:port) or http (a URL)"));
    }
    if http.as_deref().is_some_and(|u| !u.starts_with("http://")) {
        return Err(invalid(format!("{at}.http"), "only http:// URLs are supported"));
    }
    if tcp.iter().chain(http).any(|t| has_bad_bytes(t, true)) {
        return Err(invalid(at, "the address has a space, a line break or a control character"));
    }
    Ok(())
}

fn check_push(action: &PushImagesAction, at: &str) -> Result<(), Invalid> {
    let PushImagesAction { registry, prefix, username, password, .. } = action;
    if registry.is_empty() || has_bad_bytes(registry, true) {
        return Err(invalid(format!("{at}.registry"), "give the site registry as host:port (or ${config.KEY})"));
    }
    if let Some(prefix) = prefix.as_deref().filter(|p| !p.contains("${config.")) {
        if !rules::is_repository_name(prefix) {
            return Err(invalid(
                format!("{at}.prefix"),
                format!("{} is not a repository path such as release or oem/release", quoted(prefix)),
            ));
        }
    }
    if username.iter().chain(password).any(|t| has_bad_bytes(t, true)) {
        return Err(invalid(at, "the username or password has a space, a line break or a control character"));
    }
    Ok(())
}

fn check_command(action: &CommandAction, at: &str) -> Result<(), Invalid> {
    let run = &action.run;
    if run.is_empty() || run[0].is_empty() {
        return Err(invalid(format!("{at}.run"), "give the program and its arguments, such as [cadm, install]"));
    }
    if run.len() > 1024 || run.iter().any(|word| has_bad_bytes(word, false)) {
        return Err(invalid(format!("{at}.run"), "has a NUL byte, a word over 4096 bytes or over 1024 words"));
    }
    Ok(())
}

fn check_env_and_times(step: &Step, at: &str) -> Result<(), Invalid> {
    for (key, value) in &step.env {
        if !rules::is_env_name(key) {
            return Err(invalid(format!("{at}.env"), format!("{} is not an environment variable name", quoted(key))));
        }
        if has_bad_bytes(value, false) {
            return Err(invalid(format!("{at}.env"), format!("the value of {key} has a NUL byte or is over 4096 bytes")));
        }
    }
    for (name, seconds) in [("timeout", step.timeout), ("retry_delay", step.retry_delay)] {
        if seconds.is_some_and(|s| s.0 > MAX_SECONDS) {
            return Err(invalid(format!("{at}.{name}"), "is longer than 30 days"));
        }
    }
    if step.retries > 100 {
        return Err(invalid(format!("{at}.retries"), "is more than 100"));
    }
    Ok(())
}
