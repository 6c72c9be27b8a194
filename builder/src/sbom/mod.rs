//! The bundle's SBOM: what it carries, down to the operating-system packages inside
//! its images. `images` reads the image and registry-pack members' layers before the
//! bundle is written (a bad layer fails the build in seconds); `write_members` renders
//! the documents from the members as written (their digests) and stores them as the
//! bundle's last members, so the index, the trailer's digest and the signature cover
//! them like any other member.
//!
//! `cyclonedx` and `spdx` render; `layers` reads layers; `packages` makes the package
//! list of an image from its layers; `sources` finds the layers of each image in an
//! image archive or a registry pack; `command` is `airbin sbom`.

mod command;
mod cyclonedx;
mod layers;
mod packages;
mod sources;
mod spdx;

use sha2::{Digest, Sha256};

use airbin_format::console::Ui;
use airbin_format::digest::HashingWriter;
use airbin_format::error::{IoContext, Result};
use airbin_format::{BuildFacts, BundleMeta, BundleWriter, Codec, Layout, Member, MemberKind};

pub(crate) use command::run;
pub(crate) use packages::{Ecosystem, ImagePackages, OsRelease, Package};

use crate::assemble::compress::Encoder;
use crate::assemble::source::Source;
use crate::images::reference::percent_encode;

/// Which documents a build writes (`--sbom`, `--no-sbom`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Formats {
    /// CycloneDX 1.6 JSON: every bundle's.
    #[default]
    CycloneDx,
    /// CycloneDX and SPDX 2.3 JSON (`--sbom spdx`).
    CycloneDxAndSpdx,
    None,
}

/// One image a member carries, as the SBOM lists it.
#[derive(Debug)]
pub(crate) struct ImageFacts {
    /// The member that carries it.
    pub(crate) member: String,
    /// The image ID (a docker archive's config digest) or, in a registry pack, the
    /// digest of the manifest its tags point at.
    pub(crate) digest: String,
    /// `repository:tag` references.
    pub(crate) tags: Vec<String>,
    /// Its layers' digests, bottom first.
    pub(crate) layers: Vec<String>,
    pub(crate) found: ImagePackages,
}

/// What a document is about: the bundle, its members as written, its images.
pub(crate) struct Subject<'a> {
    pub(crate) meta: &'a BundleMeta,
    pub(crate) facts: &'a BuildFacts,
    pub(crate) members: &'a [Member],
    pub(crate) images: &'a [ImageFacts],
}

impl Subject<'_> {
    /// The digest the documents give the bundle: the SHA-256 of its members' digests,
    /// one `SHA256  NAME` line each in the index's order (the SBOM's own members left
    /// out), as `sha256sum` would list them. The bundle file's digest cannot be inside
    /// the bundle; this one is, and `airbin sbom --json` shows both.
    pub(crate) fn members_sha256(&self) -> String {
        members_sha256(self.members)
    }

    /// A stable UUID (version 5 form) of this document's subject, for serial numbers
    /// that reproduce with the bundle.
    pub(crate) fn uuid(&self) -> String {
        let hex = self.members_sha256();
        format!("{}-{}-5{}-8{}-{}", &hex[..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
    }
}

pub(crate) fn members_sha256(members: &[Member]) -> String {
    let mut hasher = Sha256::new();
    for member in members.iter().filter(|m| m.kind != MemberKind::Sbom) {
        hasher.update(format!("{}  {}\n", member.sha256, member.name));
    }
    hex::encode(hasher.finalize())
}

/// A member whose images an SBOM lists: its input as the build reads it.
pub(crate) struct ImageInput<'a> {
    pub(crate) name: &'a str,
    pub(crate) kind: MemberKind,
    pub(crate) source: &'a Source,
    pub(crate) registry: Option<&'a airbin_format::RegistryPackRecord>,
}

/// Reads the layers of every image and registry-pack member.
pub(crate) fn images(inputs: &[ImageInput], arch: &str, ui: &Ui) -> Result<Vec<ImageFacts>> {
    let mut out = Vec::new();
    for input in inputs {
        match (input.kind, input.registry) {
            (MemberKind::Image, _) => out.extend(sources::image_archive(input.name, input.source.path(), arch)?),
            (MemberKind::RegistryPack, Some(record)) => out.extend(sources::registry_pack(input.name, input.source, record, arch)?),
            _ => {}
        }
    }
    let packages: usize = out.iter().map(|i| i.found.packages.len()).sum();
    ui.status(format!("sbom: {} image(s), {packages} operating-system package(s)", out.len()));
    Ok(out)
}

/// Renders the documents and stores each as a member (zstd, mode 0644).
pub(crate) fn write_members<W: std::io::Read + std::io::Write + std::io::Seek>(
    writer: &mut BundleWriter<W>,
    formats: Formats,
    subject: &Subject,
) -> Result<Vec<Member>> {
    let mut documents = Vec::new();
    if formats != Formats::None {
        documents.push(("cyclonedx", cyclonedx::document(subject)));
    }
    if formats == Formats::CycloneDxAndSpdx {
        documents.push(("spdx", spdx::document(subject)));
    }
    let mut members = Vec::new();
    for (format, document) in documents {
        let name = airbin_format::sbom_member_name(format).expect("a known format");
        let text = serde_json::to_vec_pretty(&document).expect("a JSON value serializes");
        let mut content = None;
        let stored = writer
            .write_stored(|sink| {
                let mut hashing = HashingWriter::new(Encoder::new(Codec::Zstd, Some(19), sink)?);
                std::io::Write::write_all(&mut hashing, &text)?;
                let (encoder, size, sha256) = hashing.finish();
                encoder.finish()?;
                content = Some((size, sha256));
                Ok(())
            })
            .ctx("writing the SBOM", std::path::Path::new(name))?;
        let (size, sha256) = content.expect("set by write_stored");
        members.push(Member {
            name: name.to_string(),
            kind: MemberKind::Sbom,
            layout: Layout::File,
            codec: Codec::Zstd,
            offset: stored.offset,
            stored_size: stored.stored_size,
            stored_sha256: stored.stored_sha256,
            size,
            sha256,
            mode: 0o644,
            special_bits: false,
            unpacked_bytes: size.div_ceil(4096).max(1) * 4096,
            images: Vec::new(),
            registry: None,
        });
    }
    Ok(members)
}

/// The purl of an OS package: `pkg:deb/debian/NAME@VERSION?arch=A&distro=debian-12`.
pub(crate) fn package_purl(package: &Package, os: Option<&OsRelease>) -> String {
    let vendor = match (os.map(|o| o.id.as_str()).filter(|id| !id.is_empty()), package.ecosystem) {
        (Some(id), _) => id.to_string(),
        (None, Ecosystem::Deb) => "debian".into(),
        (None, Ecosystem::Apk) => "alpine".into(),
    };
    let mut qualifiers = Vec::new();
    if !package.arch.is_empty() {
        qualifiers.push(format!("arch={}", percent_encode(&package.arch)));
    }
    if let Some(os) = os.filter(|o| !o.id.is_empty() && !o.version_id.is_empty()) {
        qualifiers.push(format!("distro={}", percent_encode(&format!("{}-{}", os.id, os.version_id))));
    }
    if let Some(source) = &package.source {
        qualifiers.push(format!("upstream={}", percent_encode(source)));
    }
    let query = if qualifiers.is_empty() { String::new() } else { format!("?{}", qualifiers.join("&")) };
    format!(
        "pkg:{}/{}/{}@{}{query}",
        package.ecosystem.purl_type(),
        percent_encode(&vendor),
        percent_encode(&package.name),
        percent_encode(&package.version)
    )
}

/// The purl of an image: `pkg:oci/NAME@sha256:…?repository_url=REPO&tag=TAG`.
pub(crate) fn image_purl(image: &ImageFacts) -> String {
    let Some(first) = image.tags.first() else { return format!("pkg:oci/image@{}", image.digest) };
    let (repository, tag) = first.rsplit_once(':').filter(|(_, t)| !t.contains('/')).unwrap_or((first, "latest"));
    let name = repository.rsplit('/').next().unwrap_or(repository).to_ascii_lowercase();
    format!("pkg:oci/{}@{}?repository_url={}&tag={}", percent_encode(&name), image.digest, encode_url(repository), percent_encode(tag))
}

/// A purl segment holds what a URL's may, the rest percent-encoded; a repository URL
/// qualifier keeps its slashes and port colon readable.
fn encode_url(text: &str) -> String {
    text.split('/').map(|part| percent_encode(part).replace("%3A", ":")).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests;
