//! The bundle spec (`bundle.yaml`): parsing, and the checks that turn a wrong spec into
//! one message naming the file, the field and what is wrong.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use airbin_stub::error::{Error, Result};
use airbin_stub::format::{parse_mode, Step};
use airbin_stub::format::{Action, ConfigRules, MemberKind, Requires};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    pub version: String,
    #[serde(default = "default_arch")]
    pub arch: String,
    #[serde(default)]
    pub description: String,
    pub members: Vec<MemberSpec>,
    #[serde(default)]
    pub steps: Vec<Step>,
    /// The product's config: `required` keys, checked before step 1.
    #[serde(default)]
    pub config: ConfigRules,
    /// What the host must offer: `root: true`, `ports: [5000]`.
    #[serde(default)]
    pub requires: Requires,
}

fn default_arch() -> String {
    "amd64".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    pub name: String,
    pub kind: MemberKind,
    /// A file or a directory, relative to the spec's directory.
    pub path: PathBuf,
    #[serde(default)]
    pub compression: Compression,
    /// xz preset 0-9, zstd level 1-22.
    #[serde(default)]
    pub level: Option<i32>,
    /// Octal mode bits for a file member, such as "0755"; default: the input's own.
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// zstd, unless the input is already compressed or does not compress.
    #[default]
    Auto,
    Xz,
    Zstd,
    None,
}

/// A spec as loaded: where it came from, and its member paths made absolute.
#[derive(Debug)]
pub struct LoadedSpec {
    pub file: PathBuf,
    pub spec: Spec,
    /// `members[i].path`, resolved against the spec's directory.
    pub inputs: Vec<PathBuf>,
}

/// `DIR` means `DIR/bundle.yaml`.
pub fn spec_file(arg: &Path) -> PathBuf {
    if arg.is_dir() {
        arg.join("bundle.yaml")
    } else {
        arg.to_path_buf()
    }
}

pub fn load(arg: &Path) -> Result<LoadedSpec> {
    let file = spec_file(arg);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        Error::usage(format!(
            "cannot read the bundle spec {}: {e}; give a bundle directory holding bundle.yaml, or a .yaml file",
            file.display()
        ))
    })?;
    let spec = parse(&file, &text)?;
    let base = file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let inputs = spec.members.iter().map(|m| base.join(&m.path)).collect();
    let loaded = LoadedSpec { file, spec, inputs };
    validate(&loaded)?;
    Ok(loaded)
}

pub fn parse(file: &Path, text: &str) -> Result<Spec> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // yaml_serde names the path (or the part of it it knows) itself in some errors.
        let named = inner.split_once(": ").filter(|(head, _)| path.starts_with(head));
        match named {
            _ if path == "." => Error::usage(format!("{}: {inner}", file.display())),
            Some((_, rest)) => Error::usage(format!("{}: {path}: {rest}", file.display())),
            None => Error::usage(format!("{}: {path}: {inner}", file.display())),
        }
    })
}

fn field_error(spec: &LoadedSpec, field: &str, what: impl std::fmt::Display) -> Error {
    Error::usage(format!("{}: {field}: {what}", spec.file.display()))
}

/// A name that is safe in a file name and a shell word: letters, digits, `.`, `_`, `-`
/// and `+`, not starting with a dot or a dash.
fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(['.', '-'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
}

const SAFE_NAME: &str = "use letters, digits, '.', '_', '-' or '+', not starting with '.' or '-'";

fn validate(loaded: &LoadedSpec) -> Result<()> {
    let spec = &loaded.spec;
    for (field, value) in [("name", &spec.name), ("version", &spec.version)] {
        if !is_safe_name(value) {
            return Err(field_error(loaded, field, format_args!("'{value}' is not a valid {field}: {SAFE_NAME}")));
        }
    }
    if spec.arch != "amd64" {
        return Err(field_error(
            loaded,
            "arch",
            format_args!("'{}' is not supported: this airbin carries an amd64 (x86_64) runtime only; use amd64", spec.arch),
        ));
    }
    if spec.members.is_empty() {
        return Err(field_error(loaded, "members", "the bundle needs at least one member"));
    }
    let mut seen = HashSet::new();
    for (i, (member, input)) in spec.members.iter().zip(&loaded.inputs).enumerate() {
        let at = |field: &str| format!("members[{i}].{field}");
        if !is_safe_name(&member.name) {
            return Err(field_error(loaded, &at("name"), format_args!("'{}' is not a valid member name: {SAFE_NAME}", member.name)));
        }
        if !seen.insert(member.name.as_str()) {
            return Err(field_error(loaded, &at("name"), format_args!("'{}' names two members; member names must be unique", member.name)));
        }
        let meta = std::fs::metadata(input).map_err(|e| field_error(loaded, &at("path"), format_args!("{}: {e}", input.display())))?;
        let wants_file = !matches!(member.kind, MemberKind::RegistryPack | MemberKind::File);
        if wants_file && !meta.is_file() {
            return Err(field_error(
                loaded,
                &at("path"),
                format_args!("{} is not a regular file; a {} member is one file", input.display(), member.kind.as_str()),
            ));
        }
        if !meta.is_file() && !meta.is_dir() {
            return Err(field_error(loaded, &at("path"), format_args!("{} is neither a file nor a directory", input.display())));
        }
        if let Some(level) = member.level {
            let range = match member.compression {
                Compression::Xz => 0..=9,
                Compression::Zstd | Compression::Auto => 1..=22,
                Compression::None => {
                    return Err(field_error(loaded, &at("level"), "a level makes no sense with compression: none"));
                }
            };
            if !range.contains(&level) {
                return Err(field_error(loaded, &at("level"), format_args!("{level} is out of range {}..={}", range.start(), range.end())));
            }
        }
        if let Some(mode) = &member.mode {
            parse_mode(mode).ok_or_else(|| field_error(loaded, &at("mode"), format_args!("'{mode}' is not an octal mode such as 0755")))?;
        }
    }
    let mut names = HashSet::new();
    for (i, step) in spec.steps.iter().enumerate() {
        validate_step(loaded, step, &format!("steps[{i}]"), &mut names)?;
        for (j, extra) in step.on_failure.iter().enumerate() {
            let at = format!("steps[{i}].on_failure[{j}]");
            if !extra.on_failure.is_empty() {
                return Err(field_error(loaded, &at, "an on_failure step cannot have on_failure steps of its own"));
            }
            validate_step(loaded, extra, &at, &mut names)?;
        }
    }
    for (i, key) in spec.config.required.iter().enumerate() {
        if !is_config_key(key) {
            return Err(field_error(
                loaded,
                &format!("config.required[{i}]"),
                format_args!("'{key}' is not a config key (letters, digits, _ and -, dotted for nesting)"),
            ));
        }
    }
    Ok(())
}

/// A key of the product's config: words of letters, digits, `_` and `-`, joined by dots.
fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

/// A step name: shown everywhere, typed after --from: printable, one line, not too long.
fn is_step_name(name: &str) -> bool {
    !name.trim().is_empty() && name.len() <= 100 && !name.starts_with('-') && name.chars().all(|c| !c.is_control())
}

fn validate_step(loaded: &LoadedSpec, step: &Step, at: &str, names: &mut HashSet<String>) -> Result<()> {
    let spec = &loaded.spec;
    let wanted = match &step.action {
        Action::LoadImages { .. } => Some(MemberKind::Image),
        Action::RestoreRegistry { .. } => Some(MemberKind::RegistryPack),
        Action::Extract { .. } => None,
        Action::WaitFor { .. } | Action::Command { .. } => None,
    };
    if let Some(member) = step.action.member() {
        match spec.members.iter().find(|m| m.name == member) {
            None => return Err(field_error(loaded, &format!("{at}.member"), format_args!("no member is named '{member}'"))),
            Some(m) if wanted.is_some_and(|w| w != m.kind) => {
                return Err(field_error(
                    loaded,
                    &format!("{at}.member"),
                    format_args!(
                        "'{member}' is a {} member; this step needs a {} member",
                        m.kind.as_str(),
                        wanted.expect("checked").as_str()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    match &step.action {
        Action::RestoreRegistry { mode, root, root_from_config, address, address_from_config, .. } => {
            if let Some(mode) = mode {
                parse_mode(mode).ok_or_else(|| {
                    field_error(loaded, &format!("{at}.mode"), format_args!("'{mode}' is not an octal mode such as 0644"))
                })?;
            }
            if root.is_some() == root_from_config.is_some() {
                return Err(field_error(
                    loaded,
                    at,
                    "give the registry root either as root or as root_from_config (a key of the product's config)",
                ));
            }
            if address.is_some() && address_from_config.is_some() {
                return Err(field_error(loaded, at, "give address or address_from_config, not both"));
            }
        }
        Action::Extract { to, mode, .. } => {
            if !to.starts_with('/') && !to.starts_with("${config.") {
                return Err(field_error(
                    loaded,
                    &format!("{at}.to"),
                    format_args!("'{to}' is not an absolute directory (or ${{config.KEY}})"),
                ));
            }
            if let Some(mode) = mode {
                parse_mode(mode).ok_or_else(|| {
                    field_error(loaded, &format!("{at}.mode"), format_args!("'{mode}' is not an octal mode such as 0755"))
                })?;
            }
        }
        Action::WaitFor { tcp, http } => {
            if tcp.is_some() == http.is_some() {
                return Err(field_error(loaded, at, "a wait-for step names exactly one of tcp (host:port) or http (a URL)"));
            }
            if http.as_deref().is_some_and(|u| !u.starts_with("http://")) {
                return Err(field_error(loaded, &format!("{at}.http"), "only http:// URLs are supported"));
            }
        }
        Action::Command { run } => {
            if run.is_empty() || run[0].is_empty() {
                return Err(field_error(loaded, &format!("{at}.run"), "give the program and its arguments, such as [cadm, install]"));
            }
        }
        Action::LoadImages { .. } => {}
    }
    let name = step.name();
    if !is_step_name(&name) {
        return Err(field_error(
            loaded,
            &format!("{at}.name"),
            format_args!("'{name}' is not a usable step name: one printable line of at most 100 characters, not starting with '-'"),
        ));
    }
    if !names.insert(name.clone()) {
        return Err(field_error(loaded, &format!("{at}.name"), format_args!("'{name}' names two steps; give each step a unique name")));
    }
    for key in step.env.keys() {
        let ok = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(field_error(loaded, &format!("{at}.env"), format_args!("'{key}' is not an environment variable name")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(yaml: &str) -> String {
        parse(Path::new("bundle.yaml"), yaml).unwrap_err().message
    }

    #[test]
    fn a_wrong_field_is_named_with_its_path() {
        let msg = error_of("name: x\nversion: '1'\nmembers:\n  - name: a\n    kind: image\n    path: a.tar\n    compression: gzip\n");
        assert!(msg.starts_with("bundle.yaml: members[0].compression: unknown variant `gzip`"), "{msg}");
        assert!(msg.contains("line 7"), "{msg}");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let msg = error_of("name: x\nversion: '1'\nmembres: []\n");
        assert!(msg.contains("unknown field `membres`"), "{msg}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let msg = error_of("name: x\nmembers: []\n");
        assert!(msg.contains("missing field `version`"), "{msg}");
    }

    #[test]
    fn a_bad_step_kind_is_named() {
        let msg = error_of("name: x\nversion: '1'\nmembers: []\nsteps:\n  - kind: dance\n    member: a\n");
        assert!(msg.contains("steps[0]") && msg.contains("dance"), "{msg}");
    }

    #[test]
    fn names_must_be_safe() {
        assert!(is_safe_name("compass-component"));
        assert!(is_safe_name("v2.7.3+build1"));
        assert!(!is_safe_name("../x"));
        assert!(!is_safe_name("-rf"));
        assert!(!is_safe_name("a b"));
        assert!(!is_safe_name(""));
    }
}
