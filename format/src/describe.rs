//! What both programs say about a bundle: `info` and `list` of the runtime and
//! `airbin inspect` of the builder print the same lines and the same JSON, from the
//! index alone; `check` and `airbin verify` the same verdict.

use std::path::PathBuf;

use indicatif::HumanBytes;
use serde::Serialize;

use crate::index::{BuildFacts, BundleMeta, Member};
use crate::params::Parameter;
use crate::reader::Bundle;
use crate::rules::printable;
use crate::signature::Signer;
use crate::step::{ConfigRules, Phase, Requires, Step};

/// The whole index as `info --json` and `airbin inspect --json` give it.
#[derive(Serialize)]
pub struct Info<'a> {
    pub bundle: &'a BundleMeta,
    pub build: &'a BuildFacts,
    pub format_version: u32,
    /// The version of the program that describes it (the runtime, or the builder).
    pub runtime_version: &'static str,
    pub bytes: u64,
    pub sha256_of_payload: String,
    pub signature: Signature,
    pub members: &'a [Member],
    pub steps: &'a [Step],
    pub config: &'a ConfigRules,
    pub requires: &'a Requires,
    #[serde(skip_serializing_if = "<[Parameter]>::is_empty")]
    pub parameters: &'a [Parameter],
    /// The SBOM documents carried, by format: the member and its content's SHA-256.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sbom: std::collections::BTreeMap<&'static str, SbomMember<'a>>,
}

#[derive(Serialize)]
pub struct SbomMember<'a> {
    pub member: &'a str,
    pub sha256: &'a str,
}

/// Who signed a bundle, and whether that was checked against a pinned key.
#[derive(Clone, Debug, Serialize)]
pub struct Signature {
    pub signed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Absent where nothing was checked (`info` reads the index only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_key: Option<PathBuf>,
}

impl From<&Signer> for Signature {
    fn from(signer: &Signer) -> Signature {
        match signer {
            Signer::Unsigned => Signature { signed: false, key_id: None, trusted: None, trusted_key: None },
            Signer::Unchecked(id) => Signature { signed: true, key_id: Some(id.to_string()), trusted: Some(false), trusted_key: None },
            Signer::Trusted { id, file } => {
                Signature { signed: true, key_id: Some(id.to_string()), trusted: Some(true), trusted_key: Some(file.clone()) }
            }
        }
    }
}

/// The verdict of `check` and `airbin verify`.
#[derive(Serialize)]
pub struct Checked<'a> {
    pub bundle: &'a std::path::Path,
    /// A split bundle's files, the first one included.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<&'a std::path::Path>,
    pub sha256: String,
    pub bytes: u64,
    pub signature: Signature,
}

impl<'a> Checked<'a> {
    pub fn new(bundle: &'a Bundle, signer: &Signer) -> Checked<'a> {
        let parts = if bundle.files().len() > 1 { bundle.files() } else { Vec::new() };
        Checked { bundle: &bundle.path, parts, sha256: bundle.sha256(), bytes: bundle.trailer.total_len, signature: signer.into() }
    }
}

/// The one line `check` prints when every byte and the signature passed.
pub fn checked_line(bundle: &Bundle, signer: &Signer) -> String {
    let parts = match bundle.files().len() {
        1 => String::new(),
        n => format!(" in {n} parts"),
    };
    format!(
        "{}: OK ({} {}, {} bytes{parts}, all checksums match; {signer})",
        bundle.path.display(),
        bundle.index.bundle.name,
        bundle.index.bundle.version,
        bundle.trailer.total_len
    )
}

pub fn info(bundle: &Bundle) -> Info<'_> {
    let index = &bundle.index;
    Info {
        bundle: &index.bundle,
        build: &index.build,
        format_version: index.format_version,
        runtime_version: env!("CARGO_PKG_VERSION"),
        bytes: bundle.trailer.total_len,
        sha256_of_payload: bundle.sha256(),
        signature: match bundle.signer_key() {
            Some(id) => Signature { signed: true, key_id: Some(id.to_string()), trusted: None, trusted_key: None },
            None => Signature { signed: false, key_id: None, trusted: None, trusted_key: None },
        },
        members: &index.members,
        steps: &index.steps,
        config: &index.config,
        requires: &index.requires,
        parameters: &index.parameters,
        sbom: crate::SBOM_MEMBERS
            .iter()
            .filter_map(|(format, _)| index.sbom(format).map(|m| (*format, SbomMember { member: &m.name, sha256: &m.sha256 })))
            .collect(),
    }
}

/// What the bundle is and what it carries, as `info` prints it.
pub fn info_lines(bundle: &Bundle) -> Vec<String> {
    let index = &bundle.index;
    let b = &index.bundle;
    let mut lines = vec![format!("name:        {}", b.name), format!("version:     {}", b.version), format!("arch:        {}", b.arch)];
    if !b.description.is_empty() {
        lines.push(format!("description: {}", printable(&b.description, 4096)));
    }
    if let Some(base) = &b.hotfix_of {
        lines.push(format!("hotfix of:   {base}"));
    }
    if let Some(base) = &index.build.delta_of {
        let sha = base.sha256.get(..12).unwrap_or(&base.sha256);
        lines.push(format!("delta of:    {} (SHA-256 {sha}): installs only over that version", base.version));
    }
    if let Some(site) = &index.build.delta_for {
        lines.push(format!(
            "delta for:   {}'s inventory taken {}: installs where the registry root holds what it leaves out",
            site.host, site.taken_at
        ));
    }
    let build = &index.build;
    let when = if build.built_at.is_empty() { "(time not recorded)".to_string() } else { build.built_at.clone() };
    let host = if build.build_host.is_empty() { String::new() } else { format!(" on {}", build.build_host) };
    lines.push(format!("built:       {when} by airbin {}{host}", build.builder_version));
    lines.push(match bundle.signer_key() {
        Some(id) => format!("signed by:   key {id} (check and install verify it against the keys this host pins)"),
        None => "signed by:   nobody (unsigned)".to_string(),
    });
    lines.push(format!("format:      {}", index.format_version));
    lines.push(format!("size:        {} ({} bytes)", HumanBytes(bundle.trailer.total_len), bundle.trailer.total_len));
    for (format, _) in crate::SBOM_MEMBERS {
        if let Some(m) = index.sbom(format) {
            lines.push(format!("sbom:        {format} in {}, SHA-256 {} (print it: sbom --format {format})", m.name, m.sha256));
        }
    }
    lines.push("members:".to_string());
    lines.extend(member_lines(&index.members));
    if !index.steps.is_empty() {
        lines.push("steps:".to_string());
        lines.extend(index.steps.iter().enumerate().map(|(n, step)| step_line(n, step)));
    }
    lines
}

fn step_line(n: usize, step: &Step) -> String {
    let roles: Vec<&str> = step.roles.iter().map(|r| r.as_str()).collect();
    let on = if roles.is_empty() { String::new() } else { format!("; on {}", roles.join(", ")) };
    let when = if step.when == Phase::Both { String::new() } else { format!("; {} only", step.when.as_str()) };
    format!("  {}. {} ({}{on}{when})", n + 1, step.name(), step.action.kind())
}

/// The members, one a line (name, kind, codec, size, stored size), each with the images
/// and registry repositories it carries: what `list` prints.
pub fn member_lines(members: &[Member]) -> Vec<String> {
    let width = members.iter().map(|m| m.name.len()).max().unwrap_or(4).max(4);
    let mut lines = vec![format!("  {:width$}  {:13}  {:5}  {:>10}  {:>10}", "NAME", "KIND", "CODEC", "SIZE", "STORED")];
    for m in members {
        lines.push(format!(
            "  {:width$}  {:13}  {:5}  {:>10}  {:>10}",
            m.name,
            m.kind.as_str(),
            m.codec.as_str(),
            HumanBytes(m.size).to_string(),
            HumanBytes(m.stored_size).to_string()
        ));
        for image in &m.images {
            let tags = if image.tags.is_empty() { "<untagged>".to_string() } else { image.tags.join(", ") };
            lines.push(format!("  {:width$}    image {tags} ({})", "", short_id(&image.id)));
        }
        if let Some(pack) = &m.registry {
            for repo in &pack.repositories {
                let tags: Vec<&str> = repo.tags.iter().map(|t| t.tag.as_str()).collect();
                lines.push(format!("  {:width$}    repository {}: {}", "", repo.name, tags.join(", ")));
            }
        }
    }
    lines
}

/// The first 12 hex digits of an image ID, as docker shows it; the index was checked
/// to hold `sha256:` and 64 hex digits.
fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// What `sbom --json` gives: the document, which member holds it, and the digests
/// that tie it to the bundle.
#[derive(Serialize)]
pub struct SbomDocument {
    pub format: &'static str,
    pub member: String,
    /// The member's content, as the index (covered by the bundle's digest and
    /// signature) records it.
    pub sha256: String,
    /// The bundle's own payload digest, which the document cannot hold.
    pub sha256_of_payload: String,
    pub document: serde_json::Value,
}

/// The SBOM a bundle carries in `format` (`cyclonedx`, `spdx`), its bytes checked
/// against the index as they are read.
pub fn sbom(bundle: &Bundle, format: &str) -> crate::error::Result<(SbomDocument, Vec<u8>)> {
    use crate::error::{Error, IoContext};
    let Some((format, name)) = crate::SBOM_MEMBERS.iter().find(|(f, _)| *f == format) else {
        return Err(Error::usage(format!("'{format}' is no SBOM format airbin writes; use --format cyclonedx or --format spdx")));
    };
    let index = &bundle.index;
    let Some(member) = index.members.iter().find(|m| m.name == *name && m.kind == crate::MemberKind::Sbom) else {
        let carried: Vec<&str> = crate::SBOM_MEMBERS.iter().filter(|(f, _)| index.sbom(f).is_some()).map(|(f, _)| *f).collect();
        let why = match (index.format_version < 8, carried.is_empty()) {
            (true, _) => format!(
                "was built by airbin {} (format {}), before bundles carried an SBOM; rebuild it with this airbin to have one",
                index.build.builder_version, index.format_version
            ),
            (false, true) => "was built without an SBOM (airbin build --no-sbom); rebuild it without --no-sbom".to_string(),
            (false, false) => {
                format!("carries no {format} SBOM (build with --sbom spdx for both); it has: --format {}", carried.join(", --format "))
            }
        };
        return Err(Error::usage(format!("{} {why}", bundle.path.display())));
    };
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut bundle.content_reader(member)?, &mut text).ctx("reading", &bundle.path)?;
    let document = serde_json::from_slice(&text)
        .map_err(|e| Error::integrity(format!("{}: member {name} is not JSON ({e})", bundle.path.display())))?;
    let facts =
        SbomDocument { format, member: member.name.clone(), sha256: member.sha256.clone(), sha256_of_payload: bundle.sha256(), document };
    Ok((facts, text))
}
