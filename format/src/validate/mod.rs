//! The checks an index must pass before the stub uses any of it, and a spec before the
//! builder writes it: the same function runs on both sides (`check_steps` on a spec's
//! steps, `check_index` on a whole index), so a bundle the builder writes always passes
//! and one rewritten by someone else is held to the same rules.
//!
//! The index's own digest proves only that nobody changed it by accident: whoever can
//! change the file can recompute every digest. So every name that becomes a path part,
//! every reference that reaches an engine, every size that sizes a check is held to its
//! grammar and its bounds here.

mod steps;

use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path};

use super::rules::{self, SAFE_NAME};
use super::{Action, Index, Layout, MemberKind, Step};
use super::{Codec, Member};
use crate::step::{CommandAction, ExtractAction, PushImagesAction, RestoreRegistryAction, WaitForAction};

/// What is wrong, and where: `field` is the path of the field (`members[2].name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub what: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.what)
    }
}

fn invalid(field: impl Into<String>, what: impl Into<String>) -> Invalid {
    Invalid { field: field.into(), what: what.into() }
}

/// A value quoted in a message: control characters escaped, cut to a bound, so that a
/// hostile index cannot flood or steer the terminal through an error.
fn quoted(text: &str) -> String {
    format!("'{}'", rules::printable(text, 120))
}

/// Bits beyond rwx for user, group, others: setuid, setgid, sticky.
pub const SPECIAL_BITS: u32 = 0o7000;
/// No member is larger than this (1 PiB): sizes beyond it are lies, and sums of
/// sizes under it cannot overflow.
const MAX_SIZE: u64 = 1 << 50;
/// The longest a step may wait or sleep, so that deadlines never overflow.
const MAX_SECONDS: u64 = 30 * 24 * 3600;

/// What a step may know of the members it names.
pub struct MemberFacts {
    pub kind: MemberKind,
    pub special_bits: bool,
}

/// Checks a whole index: the bundle's names, every member, every step.
pub fn check_index(index: &Index) -> Result<(), Invalid> {
    let bundle = &index.bundle;
    for (field, value) in [("bundle.name", &bundle.name), ("bundle.version", &bundle.version)] {
        if let Some(why) = rules::unsafe_name(value) {
            return Err(invalid(field, format!("{} {why}: {SAFE_NAME}", quoted(value))));
        }
    }
    if super::arch::machine(&bundle.arch).is_none() {
        return Err(invalid("bundle.arch", format!("{} is not an architecture airbin knows", quoted(&bundle.arch))));
    }
    if let Some(why) = rules::unsafe_text(&bundle.description, 4096) {
        return Err(invalid("bundle.description", why));
    }
    check_build(index)?;
    let mut names = HashSet::new();
    let mut total_size = 0u64;
    let mut total_unpacked = 0u64;
    for (i, member) in index.members.iter().enumerate() {
        check_member(member, &format!("members[{i}]"))?;
        if member.kind == MemberKind::Sbom && index.format_version < 8 {
            return Err(invalid(format!("members[{i}].kind"), "an sbom member is carried from format 8 on"));
        }
        if !names.insert(member.name.as_str()) {
            return Err(invalid(format!("members[{i}].name"), format!("{} names two members", quoted(&member.name))));
        }
        // Bounded per member, so these sums cannot overflow; checked anyway.
        let overflow = || invalid(format!("members[{i}]"), "the members' sizes add up to more than a file can hold");
        total_size = total_size.checked_add(member.size).ok_or_else(overflow)?;
        total_unpacked = total_unpacked.checked_add(member.unpacked_bytes).ok_or_else(overflow)?;
    }
    let mut regions: Vec<(u64, u64, &str)> =
        index.members.iter().map(|m| (m.offset, m.offset.saturating_add(m.stored_size), m.name.as_str())).collect();
    regions.sort();
    for pair in regions.windows(2) {
        if pair[0].1 > pair[1].0 {
            return Err(invalid("members", format!("members {} and {} overlap", pair[0].2, pair[1].2)));
        }
    }

    let facts = |name: &str| index.member(name).map(|m| MemberFacts { kind: m.kind, special_bits: m.special_bits });
    check_steps(&index.steps, &facts)?;
    check_parameters(&index.parameters, &index.steps)?;
    if let Some(base) = &index.bundle.hotfix_of {
        if let Some(why) = rules::unsafe_name(base) {
            return Err(invalid("bundle.hotfix_of", format!("{} {why}: {SAFE_NAME}", quoted(base))));
        }
    }
    for (i, key) in index.config.required.iter().enumerate() {
        if !rules::is_config_key(key) {
            return Err(invalid(format!("config.required[{i}]"), format!("{} is not a config key", quoted(key))));
        }
    }
    let secrets: Vec<&str> = index.parameters.iter().filter(|p| p.secret).map(|p| p.key()).collect();
    for (field, key) in
        [("config.management_nodes_key", &index.config.management_nodes_key), ("config.worker_nodes_key", &index.config.worker_nodes_key)]
    {
        if let Some(why) = key.as_deref().and_then(unsafe_node_key) {
            return Err(invalid(field, why));
        }
        if let Some(key) = key.as_deref().filter(|k| secrets.contains(k)) {
            return Err(invalid(field, format!("`{key}` holds a secret, and a node list's entries become ssh's arguments")));
        }
    }
    if index.requires.ports.len() > 1024 {
        return Err(invalid("requires.ports", "lists more than 1024 ports"));
    }
    Ok(())
}

/// What the builder recorded of itself, and of a delta's base.
fn check_build(index: &Index) -> Result<(), Invalid> {
    let build = &index.build;
    for (field, value, max) in [
        ("build.builder_version", &build.builder_version, 32),
        ("build.built_at", &build.built_at, 64),
        ("build.build_host", &build.build_host, 255),
    ] {
        if let Some(why) = rules::unsafe_text(value, max).or(value.contains('\n').then_some("has a line break")) {
            return Err(invalid(field, why));
        }
    }
    if let Some(site) = &build.delta_for {
        if index.format_version < 8 || build.delta_of.is_some() {
            return Err(invalid("build.delta_for", "a delta for a site's inventory is recorded from format 8 on, and never with delta_of"));
        }
        for (field, value) in [("build.delta_for.host", &site.host), ("build.delta_for.taken_at", &site.taken_at)] {
            if let Some(why) = rules::unsafe_text(value, 255).or(value.contains('\n').then_some("has a line break")) {
                return Err(invalid(field, why));
            }
        }
        if !rules::is_sha256_hex(&site.sha256) {
            return Err(invalid("build.delta_for.sha256", "is not 64 lowercase hex digits"));
        }
    }
    if let Some(base) = &build.delta_of {
        if index.format_version < 7 {
            return Err(invalid("build.delta_of", "a delta's base is recorded from format 7 on"));
        }
        if let Some(why) = rules::unsafe_name(&base.version) {
            return Err(invalid("build.delta_of.version", format!("{} {why}", quoted(&base.version))));
        }
        if !rules::is_sha256_hex(&base.sha256) {
            return Err(invalid("build.delta_of.sha256", "is not 64 lowercase hex digits"));
        }
    }

    Ok(())
}

/// What a spec may not name: the SBOM's kind and members are the build's own. The
/// field, and why.
pub fn sbom_reserved(kind: MemberKind, name: &str) -> Option<(&'static str, String)> {
    if kind == MemberKind::Sbom {
        let why = "sbom members are the ones airbin build writes itself (airbin build --sbom); carry a document of your own as kind: file";
        return Some(("kind", why.to_string()));
    }
    crate::SBOM_MEMBERS
        .iter()
        .any(|(_, sbom)| *sbom == name)
        .then(|| ("name", format!("'{name}' is the name of the SBOM airbin build writes; give the member another name")))
}

fn check_member(member: &Member, at: &str) -> Result<(), Invalid> {
    let field = |name: &str| format!("{at}.{name}");
    if let Some(why) = rules::unsafe_name(&member.name) {
        return Err(invalid(field("name"), format!("{} {why}: {SAFE_NAME}", quoted(&member.name))));
    }
    for (name, hex) in [("stored_sha256", &member.stored_sha256), ("sha256", &member.sha256)] {
        if !rules::is_sha256_hex(hex) {
            return Err(invalid(field(name), "is not 64 lowercase hex digits"));
        }
    }
    if member.mode > 0o7777 || (member.mode & SPECIAL_BITS != 0 && !member.special_bits) {
        return Err(invalid(
            field("mode"),
            format!("{:o} has bits beyond rwx (setuid, setgid, sticky) and the member is not marked as carrying them", member.mode),
        ));
    }
    let layout_ok = match member.kind {
        MemberKind::Image | MemberKind::Tool | MemberKind::ConfigSample => member.layout == Layout::File,
        MemberKind::RegistryPack => member.layout == Layout::Tree,
        MemberKind::File => true,
        MemberKind::Sbom => member.layout == Layout::File && crate::SBOM_MEMBERS.iter().any(|(_, name)| *name == member.name),
    };
    if !layout_ok {
        return Err(invalid(field("layout"), format!("a {} member cannot have this layout", member.kind.as_str())));
    }
    if member.size > MAX_SIZE || member.stored_size > MAX_SIZE || member.unpacked_bytes > MAX_SIZE {
        return Err(invalid(field("size"), "is larger than any member can be"));
    }
    if member.codec == Codec::None && member.stored_size != member.size {
        return Err(invalid(field("size"), "a member stored as it is has the same size stored and unpacked"));
    }
    // What the free-space checks compare with must cover what the content writes: a
    // file takes at least its size; a tar stream takes at most twice what its entries
    // take on disk (each at least 4 KiB there, and at most 512 header bytes and a long
    // name more in the stream), plus end padding.
    let covers = match member.layout {
        Layout::File => member.unpacked_bytes >= member.size,
        Layout::Tree => member.size <= member.unpacked_bytes * 2 + (64 << 10),
    };
    if !covers {
        return Err(invalid(
            field("unpacked_bytes"),
            format!("{} is far below the member's {} bytes of content", member.unpacked_bytes, member.size),
        ));
    }
    check_member_records(member, at)
}

/// The images and the registry record a member carries: only the kinds that carry
/// them, and every name and digest in them as the rules want it.
fn check_member_records(member: &Member, at: &str) -> Result<(), Invalid> {
    let field = |name: &str| format!("{at}.{name}");
    if !member.images.is_empty() && member.kind != MemberKind::Image {
        return Err(invalid(field("images"), "only image members carry images"));
    }
    for (j, image) in member.images.iter().enumerate() {
        if !rules::is_digest(&image.id) {
            return Err(invalid(format!("{at}.images[{j}].id"), format!("{} is not sha256:<64 hex digits>", quoted(&image.id))));
        }
        for tag in &image.tags {
            if !rules::is_image_reference(tag) {
                return Err(invalid(format!("{at}.images[{j}].tags"), format!("{} is not an image reference", quoted(tag))));
            }
        }
    }
    if let Some(pack) = &member.registry {
        if member.kind != MemberKind::RegistryPack {
            return Err(invalid(field("registry"), "only registry-pack members carry a registry record"));
        }
        for (j, repo) in pack.repositories.iter().enumerate() {
            let at = format!("{at}.registry.repositories[{j}]");
            if !rules::is_repository_name(&repo.name) {
                return Err(invalid(format!("{at}.name"), format!("{} is not a repository name", quoted(&repo.name))));
            }
            for tag in &repo.tags {
                if !rules::is_tag(&tag.tag) {
                    return Err(invalid(format!("{at}.tags"), format!("{} is not a tag", quoted(&tag.tag))));
                }
                if !rules::is_digest(&tag.manifest) {
                    return Err(invalid(format!("{at}.tags"), format!("{} is not sha256:<64 hex digits>", quoted(&tag.manifest))));
                }
            }
        }
        if let Some(bad) = pack.omitted.iter().find(|d| !rules::is_digest(d)) {
            return Err(invalid(field("registry.omitted"), format!("{} is not sha256:<64 hex digits>", quoted(bad))));
        }
    }
    Ok(())
}

/// Checks steps against the members they name (`member` answers for a name). Names
/// (given or derived) are unique across the steps and their `on_failure` steps.
pub fn check_steps(steps: &[Step], member: &dyn Fn(&str) -> Option<MemberFacts>) -> Result<(), Invalid> {
    let mut names = HashSet::new();
    for (i, step) in steps.iter().enumerate() {
        let at = format!("steps[{i}]");
        steps::check_step(step, &at, member, &mut names)?;
        for (j, extra) in step.on_failure.iter().enumerate() {
            let at = format!("{at}.on_failure[{j}]");
            if !extra.on_failure.is_empty() {
                return Err(invalid(at, "an on_failure step cannot have on_failure steps of its own"));
            }
            if !extra.roles.is_empty() {
                return Err(invalid(format!("{at}.roles"), "an on_failure step runs where its step runs; give roles to the step"));
            }
            steps::check_step(extra, &at, member, &mut names)?;
        }
    }
    Ok(())
}

/// Checks the parameters' declarations, and that no secret can reach a command line:
/// a step's `run` may not take a secret's key (steps get secrets in their environment,
/// or from the staged config, which is 0600).
pub fn check_parameters(params: &[super::Parameter], steps: &[Step]) -> Result<(), Invalid> {
    super::params::check_declarations(params).map_err(|(field, what)| invalid(field, what))?;
    let secret_keys: Vec<&str> = params.iter().filter(|p| p.secret).map(|p| p.key()).collect();
    let all = steps.iter().enumerate().flat_map(|(i, s)| {
        std::iter::once((format!("steps[{i}]"), s))
            .chain(s.on_failure.iter().enumerate().map(move |(j, f)| (format!("steps[{i}].on_failure[{j}]"), f)))
    });
    for (at, step) in all {
        if let Action::Command(CommandAction { run }) = &step.action {
            let named = run.iter().flat_map(|w| config_placeholders(w)).find(|k| secret_keys.contains(&k.as_str()));
            if let Some(key) = named {
                return Err(invalid(
                    format!("{at}.run"),
                    format!("puts the secret `{key}` on a command line, where any user of the host can read it; pass it in env (env: {{NAME: \"${{config.{key}}}\"}}) or let the program read the staged config"),
                ));
            }
        }
        // A secret never becomes a path, a host name or a registry's address.
        for (field, text) in secret_free_fields(&step.action) {
            let keys: Vec<String> = match field {
                "root_from_config" | "address_from_config" => vec![text.to_string()],
                _ => config_placeholders(text),
            };
            if let Some(key) = keys.iter().find(|k| secret_keys.contains(&k.as_str())) {
                return Err(invalid(
                    format!("{at}.{field}"),
                    format!("takes the secret `{key}`, which would become a path, a host name or an address (shown and logged as such)"),
                ));
            }
        }
    }
    Ok(())
}

/// The fields of a step whose values become paths, host names or addresses.
fn secret_free_fields(action: &Action) -> Vec<(&'static str, &str)> {
    match action {
        Action::RestoreRegistry(RestoreRegistryAction { root_from_config, address_from_config, .. }) => root_from_config
            .iter()
            .map(|k| ("root_from_config", k.as_str()))
            .chain(address_from_config.iter().map(|k| ("address_from_config", k.as_str())))
            .collect(),
        Action::Extract(ExtractAction { to, .. }) => vec![("to", to.as_str())],
        Action::WaitFor(WaitForAction { tcp: Some(tcp), .. }) => vec![("tcp", tcp.as_str())],
        Action::PushImages(PushImagesAction { registry, prefix, .. }) => {
            std::iter::once(("registry", registry.as_str())).chain(prefix.iter().map(|p| ("prefix", p.as_str()))).collect()
        }
        _ => Vec::new(),
    }
}

/// The keys of the `${config.KEY}` placeholders in `text`.
pub fn config_placeholders(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${config.") {
        let after = &rest[start + "${config.".len()..];
        let Some(end) = after.find('}') else { break };
        keys.push(after[..end].to_string());
        rest = &after[end..];
    }
    keys
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Why a config key naming a node list cannot be one, if it cannot (the list's entries
/// become ssh's arguments: a key that holds a secret never names them).
pub fn unsafe_node_key(key: &str) -> Option<String> {
    if !rules::is_config_key(key) {
        return Some(format!("{} is not a config key (letters, digits, _ and -, dotted for nesting)", quoted(key)));
    }
    rules::is_secret_key(key).then(|| format!("{} is named like a secret, and a node list's entries become ssh's arguments", quoted(key)))
}

/// An absolute path without `..`, and not `/` itself: a place the stub may create and fill.
pub fn unsafe_root(path: &str) -> Option<&'static str> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Some("is relative");
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Some("has a '..' component");
    }
    if p.components().all(|c| c == Component::RootDir || c == Component::CurDir) {
        return Some("is the root directory");
    }
    if path.contains('\0') {
        return Some("has a NUL byte");
    }
    None
}

/// Text a step hands on (an address, a URL, a word to run): no NUL, and for what goes
/// into a request no line break or space either.
fn has_bad_bytes(text: &str, one_token: bool) -> bool {
    text.contains('\0') || text.len() > 4096 || (one_token && text.chars().any(|c| c.is_control() || c.is_whitespace()))
}
