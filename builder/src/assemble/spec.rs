//! The bundle spec (`bundle.yaml`): parsing, and the checks that turn a wrong spec into
//! one message naming the file, the field and what is wrong.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use airbin_format::error::{Error, Result};

use super::check::finding::Finding;
use super::check::located::Located;
use airbin_format::rules::{self, printable, SAFE_NAME};
use airbin_format::validate::{self, MemberFacts, SPECIAL_BITS};
use airbin_format::{parse_mode, Step};
use airbin_format::{ConfigRules, MemberKind, Parameter, Requires};

/// A bundle spec (`bundle.yaml`): what `airbin build` makes a bundle from.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Spec {
    pub(crate) name: String,
    pub(crate) version: String,
    #[serde(default = "default_arch")]
    pub(crate) arch: String,
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) members: Vec<MemberSpec>,
    #[serde(default)]
    pub(crate) steps: Vec<Step>,
    /// The product's config: `required` keys, checked before step 1.
    #[serde(default)]
    pub(crate) config: ConfigRules,
    /// What the host must offer: `root: true`, `ports: [5000]`.
    #[serde(default)]
    pub(crate) requires: Requires,
    /// The install's parameters: typed, with defaults, held by config keys.
    #[serde(default)]
    pub(crate) parameters: Vec<Parameter>,
    /// A hotfix: the version it applies to, and only to.
    #[serde(default)]
    pub(crate) hotfix_of: Option<String>,
}

fn default_arch() -> String {
    "amd64".into()
}

/// One thing the bundle carries.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
// Its input: a path, or an image list (for editors; the builder says which fits).
#[schemars(extend("anyOf" = [{"required": ["path"]}, {"required": ["images"]}, {"required": ["images_file"]}]))]
pub(crate) struct MemberSpec {
    pub(crate) name: String,
    #[serde(deserialize_with = "spec_kind")]
    pub(crate) kind: MemberKind,
    /// A file or a directory, relative to the spec's directory (or, for an `image` or
    /// `registry-pack` member, `images` and `from` instead).
    #[serde(default)]
    pub(crate) path: Option<PathBuf>,
    /// The images to make the member of (`repo:tag` or `repo@sha256:...`): airbin
    /// fetches them from `from` and writes the docker-archive or registry pack itself.
    #[serde(default)]
    pub(crate) images: Vec<String>,
    /// A file listing images, one a line (`#` comments), relative to the spec.
    #[serde(default)]
    pub(crate) images_file: Option<PathBuf>,
    /// Where the images come from: a registry `host[:port]`, `docker-daemon`, or
    /// `oci:DIR` (an OCI layout directory).
    #[serde(default)]
    pub(crate) from: Option<String>,
    /// `all`: a registry pack keeps every platform of a multi-platform image (default:
    /// the bundle's arch only).
    #[serde(default)]
    pub(crate) platforms: Option<Platforms>,
    /// The source registry's CA certificate (PEM), for a private CA.
    #[serde(default)]
    pub(crate) ca: Option<PathBuf>,
    /// Plain HTTP to the source registry (loopback ones are spoken to so anyway).
    #[serde(default)]
    pub(crate) insecure: bool,
    /// The source registry's user; `${env.X}` expands (default: `docker login`'s).
    #[serde(default)]
    pub(crate) username: Option<String>,
    /// Its password; `${env.X}` expands: keep it out of the spec.
    #[serde(default)]
    pub(crate) password: Option<String>,
    #[serde(default)]
    pub(crate) compression: Compression,
    /// xz preset 0-9, zstd level 1-22.
    #[serde(default)]
    pub(crate) level: Option<i32>,
    /// Octal mode bits for a file member, such as "0755"; default: the input's own.
    #[serde(default)]
    pub(crate) mode: Option<String>,
    /// Keep setuid, setgid and sticky bits (of the file, or of a tree's entries):
    /// without this they are dropped on extraction.
    #[serde(default)]
    pub(crate) special_bits: bool,
    /// Take what a symlinked `path` points at; without this a symlink is refused.
    #[serde(default)]
    pub(crate) follow_symlinks: bool,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Platforms {
    /// Every platform of a multi-platform image.
    All,
}

impl MemberSpec {
    /// Made from an image list rather than a path.
    pub(crate) fn is_listed(&self) -> bool {
        !self.images.is_empty() || self.images_file.is_some()
    }

    pub(crate) fn all_platforms(&self) -> bool {
        self.platforms == Some(Platforms::All)
    }
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Compression {
    /// zstd, unless the input is already compressed or does not compress.
    #[default]
    Auto,
    Xz,
    Zstd,
    None,
}

/// A spec as loaded: where it came from, and its member paths made absolute.
#[derive(Debug)]
pub(crate) struct LoadedSpec {
    pub(crate) file: PathBuf,
    pub(crate) spec: Spec,
    /// `members[i].path`, resolved against the spec's directory.
    pub(crate) inputs: Vec<PathBuf>,
    /// Where each field is, for the line of every error.
    pub(crate) located: Located,
}

/// What checking a spec found: the spec, when it parses, and every finding.
pub(crate) struct Checked {
    pub(crate) loaded: Option<LoadedSpec>,
    pub(crate) findings: Vec<Finding>,
}

/// `DIR` means `DIR/bundle.yaml`.
pub(crate) fn spec_file(arg: &Path) -> PathBuf {
    if arg.is_dir() {
        arg.join("bundle.yaml")
    } else {
        arg.to_path_buf()
    }
}

/// A spec is a page of YAML: one larger than this is not a spec.
const MAX_SPEC: u64 = 1 << 20;
/// How deep a spec's YAML may nest: a real one nests four levels.
pub(crate) const MAX_DEPTH: usize = 64;

pub(crate) fn read_text(file: &Path) -> Result<String> {
    let cannot = |why: String| {
        Error::usage(format!(
            "cannot read the bundle spec {}: {why}; give a bundle directory holding bundle.yaml, or a .yaml file",
            file.display()
        ))
    };
    // Not a FIFO or a device: reading one would wait for ever, or never end.
    let meta = std::fs::metadata(file).map_err(|e| cannot(e.to_string()))?;
    if !meta.is_file() {
        return Err(cannot("it is not a regular file".into()));
    }
    if meta.len() > MAX_SPEC {
        return Err(cannot(format!("it is {} bytes, more than a spec's 1 MiB", meta.len())));
    }
    let mut text = String::new();
    let handle = std::fs::File::open(file).map_err(|e| cannot(e.to_string()))?;
    std::io::Read::read_to_string(&mut std::io::Read::take(handle, MAX_SPEC), &mut text).map_err(|e| cannot(e.to_string()))?;
    Ok(text)
}

/// The first tab in a line's indentation (line and column, from 1), which YAML refuses.
pub(crate) fn tab_in_indentation(text: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(n, line)| {
        let indent = line.len() - line.trim_start_matches([' ', '\t', '-']).len();
        line[..indent].find('\t').map(|col| (n + 1, col + 1))
    })
}

pub(crate) fn canonical_arch(spec: &Spec, arch: Option<&str>) -> std::result::Result<String, Finding> {
    let known = airbin_format::arch::spellings;
    match arch {
        Some(written) => airbin_format::arch::canonical(written).map(str::to_string).ok_or_else(|| {
            let mut finding = Finding::error(
                "",
                format!("--arch '{}' is not an architecture airbin builds for", printable(written, 40)),
                format!("use {}", known()),
            );
            finding.rendered =
                Some(format!("--arch '{}' is not an architecture airbin builds for; use {}", printable(written, 40), known()));
            finding
        }),
        None => airbin_format::arch::canonical(&spec.arch)
            .map(str::to_string)
            .ok_or_else(|| Finding::error("arch", format!("'{}' is not supported", printable(&spec.arch, 40)), format!("use {}", known()))),
    }
}

/// The spec's types from its text; an error names the field and its line.
pub(crate) fn parse(text: &str, located: &Located) -> std::result::Result<Spec, Finding> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // yaml_serde names the path (or the part of it it knows) itself in some errors,
        // and where it stands ("at line 3 column 5").
        let inner = inner.split_once(": ").filter(|(head, _)| path.starts_with(head)).map_or(inner.as_str(), |(_, rest)| rest);
        let inner = inner.split(" at line ").next().unwrap_or(inner).to_string();
        let field = if path == "." { String::new() } else { path };
        let fix = match unknown_variant(&inner) {
            Some((word, near)) => format!("did you mean `{near}` for `{word}`?"),
            None => "see docs/SPEC.md for this field (airbin schema prints every field and its type)".to_string(),
        };
        Finding::error(field, inner, fix).at(located)
    })
}

/// serde's "unknown variant `imag`, expected one of `image`, ...": the word, and the
/// choice nearest it.
fn unknown_variant(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("unknown variant `")?;
    let (word, choices) = rest.split_once('`')?;
    let choices: Vec<&str> = choices.split('`').skip(1).step_by(2).collect();
    super::check::finding::closest(word, choices.into_iter()).map(|near| (word.to_string(), near.to_string()))
}

/// The line where flow brackets or indentation nest deeper than `MAX_DEPTH`, if any:
/// checked before parsing, so that no parser recursion depends on the input.
pub(crate) fn too_deep(text: &str) -> Option<usize> {
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        for c in line.chars() {
            match c {
                '[' | '{' => flow += 1,
                ']' | '}' => flow = flow.saturating_sub(1),
                '#' => break,
                _ => {}
            }
            if flow > MAX_DEPTH {
                return Some(n + 1);
            }
        }
        if indent / 2 > MAX_DEPTH * 2 {
            return Some(n + 1);
        }
    }
    None
}

/// An error at `field` of the spec: `FILE:LINE: FIELD: what`.
pub(crate) fn field_error(spec: &LoadedSpec, field: &str, what: impl std::fmt::Display) -> Error {
    let line = spec.located.line_of(field).map(|l| format!(":{l}")).unwrap_or_default();
    Error::usage(format!("{}{line}: {field}: {what}", spec.file.display()))
}

pub(crate) fn validate(loaded: &LoadedSpec) -> Result<()> {
    let spec = &loaded.spec;
    for (field, value) in [("name", &spec.name), ("version", &spec.version)] {
        if let Some(why) = rules::unsafe_name(value) {
            return Err(field_error(
                loaded,
                field,
                format_args!("'{}' is not a valid {field}: it {why}; {SAFE_NAME}", printable(value, 120)),
            ));
        }
    }
    if let Some(why) = rules::unsafe_text(&spec.description, 4096) {
        return Err(field_error(loaded, "description", format_args!("it {why}: one paragraph of printable text, at most 4096 bytes")));
    }
    if spec.members.is_empty() {
        return Err(field_error(loaded, "members", "the bundle needs at least one member"));
    }
    let mut seen = HashSet::new();
    for (i, (member, input)) in spec.members.iter().zip(&loaded.inputs).enumerate() {
        if !seen.insert(member.name.as_str()) {
            let at = format!("members[{i}].name");
            return Err(field_error(loaded, &at, format_args!("'{}' names two members; member names must be unique", member.name)));
        }
        validate_member(loaded, i, member, input)?;
    }
    let facts =
        |name: &str| spec.members.iter().find(|m| m.name == name).map(|m| MemberFacts { kind: m.kind, special_bits: m.special_bits });
    validate::check_steps(&spec.steps, &facts).map_err(|invalid| {
        let mut what = invalid.what.clone();
        if invalid.field.ends_with(".member") && what.starts_with("no member is named") {
            let names: Vec<&str> = spec.members.iter().map(|m| m.name.as_str()).collect();
            let named = what.rsplit('\'').nth(1).unwrap_or("");
            match super::check::finding::closest(named, names.iter().copied()) {
                Some(near) => what.push_str(&format!("; did you mean `{near}`?")),
                None => what.push_str(&format!("; the members are {}", names.join(", "))),
            }
        }
        field_error(loaded, &invalid.field, what)
    })?;
    validate::check_parameters(&spec.parameters, &spec.steps).map_err(|invalid| field_error(loaded, &invalid.field, &invalid.what))?;
    validate_hotfix_and_config(loaded)
}

/// A member kind a spec may name: every kind but the SBOM's, which the build writes.
fn spec_kind<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<MemberKind, D::Error> {
    match MemberKind::deserialize(deserializer)? {
        MemberKind::Sbom => Err(serde::de::Error::custom(validate::sbom_reserved(MemberKind::Sbom, "").expect("reserved").1)),
        kind => Ok(kind),
    }
}

/// One member: its name, its input (a real path of the kind the member needs), its
/// compression level and its mode.
fn validate_member(loaded: &LoadedSpec, i: usize, member: &MemberSpec, input: &Path) -> Result<()> {
    let at = |field: &str| format!("members[{i}].{field}");
    if let Some(why) = rules::unsafe_name(&member.name) {
        return Err(field_error(
            loaded,
            &at("name"),
            format_args!("'{}' is not a valid member name: it {why}; {SAFE_NAME}", printable(&member.name, 120)),
        ));
    }
    if let Some((field, why)) = validate::sbom_reserved(member.kind, &member.name) {
        return Err(field_error(loaded, &at(field), why));
    }
    if let Some(found) = list_member_problem(member) {
        return Err(field_error(loaded, &at(found.0), found.1));
    }
    if member.is_listed() {
        let dir = loaded.file.parent().unwrap_or(Path::new("."));
        let file = member.images_file.as_ref().map(|f| dir.join(f));
        return crate::images::reference::read_list(&member.images, file.as_deref()).map(drop).map_err(|why| {
            let field = if why.starts_with("images[") { "images" } else { "images_file" };
            field_error(loaded, &at(field), why)
        });
    }
    let missing = |e: std::io::Error| {
        field_error(loaded, &at("path"), format_args!("{}: {e}; give the path relative to the spec's directory", input.display()))
    };
    let link = std::fs::symlink_metadata(input).map_err(missing)?;
    if link.file_type().is_symlink() && !member.follow_symlinks {
        let target = std::fs::read_link(input).map(|t| t.display().to_string()).unwrap_or_default();
        return Err(field_error(
            loaded,
            &at("path"),
            format_args!(
                "{} is a symlink (to {target}); give the real path, or set follow_symlinks: true on the member to take what it points at",
                input.display()
            ),
        ));
    }
    let meta = std::fs::metadata(input).map_err(missing)?;
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
            Compression::None => return Err(field_error(loaded, &at("level"), "a level makes no sense with compression: none")),
        };
        if !range.contains(&level) {
            return Err(field_error(loaded, &at("level"), format_args!("{level} is out of range {}..={}", range.start(), range.end())));
        }
    }
    if let Some(mode) = &member.mode {
        let bits =
            parse_mode(mode).ok_or_else(|| field_error(loaded, &at("mode"), format_args!("'{mode}' is not an octal mode such as 0755")))?;
        if bits & SPECIAL_BITS != 0 && !member.special_bits {
            return Err(field_error(
                loaded,
                &at("mode"),
                format_args!("'{mode}' sets setuid, setgid or sticky bits; mark the member with special_bits: true to keep them"),
            ));
        }
    }
    Ok(())
}

/// What is wrong with how a member says where its input comes from: a path, or an
/// image list and its source, never both, and the source's settings only with a list.
fn list_member_problem(member: &MemberSpec) -> Option<(&'static str, String)> {
    let registry_source = member.from.as_deref().is_some_and(|f| f != "docker-daemon" && !f.starts_with("oci:"));
    if member.is_listed() {
        if member.path.is_some() {
            return Some(("path", "give either path or images (with from), not both".into()));
        }
        if !matches!(member.kind, MemberKind::Image | MemberKind::RegistryPack) {
            return Some((
                "images",
                format!("only image and registry-pack members are made from image lists; a {} member takes a path", member.kind.as_str()),
            ));
        }
        if member.from.as_deref().is_none_or(str::is_empty) {
            return Some(("from", "say where the images come from: a registry host[:port], docker-daemon, or oci:DIR".into()));
        }
        if member.all_platforms() && member.kind == MemberKind::Image {
            return Some(("platforms", "a docker-archive holds one platform: platforms: all goes with a registry-pack member".into()));
        }
        if !registry_source && (member.ca.is_some() || member.insecure || member.username.is_some() || member.password.is_some()) {
            return Some(("from", "ca, insecure, username and password go with a registry source".into()));
        }
        if member.username.is_some() != member.password.is_some() {
            let field = if member.username.is_some() { "password" } else { "username" };
            return Some((
                field,
                "give both username and password (`${env.X}` keeps them out of the spec), or neither for docker login's".into(),
            ));
        }
        return None;
    }
    if member.path.is_none() {
        return Some(("path", "give the member's input: path (or, for an image or registry-pack member, images and from)".into()));
    }
    if member.from.is_some()
        || member.platforms.is_some()
        || member.ca.is_some()
        || member.insecure
        || member.username.is_some()
        || member.password.is_some()
    {
        return Some(("from", "from, platforms, ca, insecure, username and password go with images (an image list)".into()));
    }
    None
}

/// `hotfix_of` names another version; the config's node-list and required keys are keys.
fn validate_hotfix_and_config(loaded: &LoadedSpec) -> Result<()> {
    let spec = &loaded.spec;
    if let Some(base) = &spec.hotfix_of {
        if let Some(why) = rules::unsafe_name(base) {
            return Err(field_error(loaded, "hotfix_of", format_args!("'{base}' {why}: {SAFE_NAME}")));
        }
        if base == &spec.version {
            return Err(field_error(
                loaded,
                "hotfix_of",
                "is the bundle's own version; give a hotfix its own version, such as 2.0-hotfix1",
            ));
        }
    }
    for (field, key) in
        [("config.management_nodes_key", &spec.config.management_nodes_key), ("config.worker_nodes_key", &spec.config.worker_nodes_key)]
    {
        if let Some(why) = key.as_deref().and_then(validate::unsafe_node_key) {
            return Err(field_error(loaded, field, why));
        }
    }
    for (i, key) in spec.config.required.iter().enumerate() {
        if !rules::is_config_key(key) {
            return Err(field_error(
                loaded,
                &format!("config.required[{i}]"),
                format_args!("'{key}' is not a config key (letters, digits, _ and -, dotted for nesting)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
