//! The index: what the members are and where they lie, the spec's install steps, and
//! the facts of the build. Stored as JSON just before the trailer.

use serde::{Deserialize, Serialize};

use super::params::Parameter;
use super::records::{ImageRecord, RegistryPackRecord};
use super::step::{ConfigRules, Requires, Step};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub format_version: u32,
    pub bundle: BundleMeta,
    pub build: BuildFacts,
    pub stub: Region,
    pub members: Vec<Member>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// The product's config: which keys must be set.
    #[serde(default, skip_serializing_if = "ConfigRules::is_empty")]
    pub config: ConfigRules,
    /// What the host must offer (root, free ports).
    #[serde(default, skip_serializing_if = "Requires::is_empty")]
    pub requires: Requires,
    /// The install's parameters: typed, checked before step 1, held by config keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BundleMeta {
    pub name: String,
    pub version: String,
    pub arch: String,
    #[serde(default)]
    pub description: String,
    /// A hotfix: the installed version it applies to, and only to (format 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotfix_of: Option<String>,
}

impl BundleMeta {
    /// `<name>-<version>-<arch>`: the bundle's file name without `.bin`.
    pub fn file_stem(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.arch)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BuildFacts {
    pub builder_version: String,
    /// RFC 3339, UTC: from `SOURCE_DATE_EPOCH`, or empty (left out) for a build that
    /// must reproduce byte for byte.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub built_at: String,
    /// Empty unless the release engineer asked for it (`--record-host`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub build_host: String,
    /// A delta (format 7): the bundle it was built against, which the site must have
    /// installed; it leaves out the registry blobs that bundle carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_of: Option<DeltaBase>,
    /// A delta built from a site's inventory (format 8): it leaves out the registry
    /// blobs that site's registries held; it installs wherever they are there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_for: Option<InventoryBase>,
}

/// The site inventory a delta was built for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InventoryBase {
    pub host: String,
    pub taken_at: String,
    /// Of the inventory file.
    pub sha256: String,
}

/// The bundle a delta was built against.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeltaBase {
    pub version: String,
    /// Of the base's whole file, as its `.sha256` says.
    pub sha256: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub offset: u64,
    pub length: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum MemberKind {
    /// A `docker save` tarball (docker-archive or OCI layout).
    Image,
    /// A docker registry's storage tree (`docker/registry/v2/...`).
    RegistryPack,
    /// An executable the install steps run, such as the product's admin tool.
    Tool,
    /// A sample of the product's config file.
    ConfigSample,
    File,
    /// The bundle's software bill of materials (CycloneDX or SPDX JSON), written by
    /// `airbin build` itself, never named in a spec (format 8).
    #[cfg_attr(feature = "schema", schemars(skip))]
    Sbom,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::Image => "image",
            MemberKind::RegistryPack => "registry-pack",
            MemberKind::Tool => "tool",
            MemberKind::ConfigSample => "config-sample",
            MemberKind::File => "file",
            MemberKind::Sbom => "sbom",
        }
    }
}

/// How a member's content lands on disk.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// One file, written as `<target>/<name>` with `mode`.
    File,
    /// A tar stream, unpacked into the directory `<target>/<name>/`.
    Tree,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Codec {
    Xz,
    Zstd,
    /// Stored as it is.
    None,
}

impl Codec {
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Xz => "xz",
            Codec::Zstd => "zstd",
            Codec::None => "none",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: String,
    pub kind: MemberKind,
    pub layout: Layout,
    pub codec: Codec,
    /// Where the stored (compressed) bytes start in the bundle, and how many there are.
    pub offset: u64,
    pub stored_size: u64,
    pub stored_sha256: String,
    /// The content once decompressed: the file, or the tar stream of a tree.
    pub size: u64,
    pub sha256: String,
    /// Mode bits of a `file` member.
    pub mode: u32,
    /// The spec marks the member as carrying setuid, setgid or sticky bits; without the
    /// mark they are dropped on extraction (format 3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub special_bits: bool,
    /// Disk space the member takes once extracted, rounded up to whole 4 KiB blocks
    /// per entry: what the free-space check compares with.
    pub unpacked_bytes: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryPackRecord>,
}

impl Index {
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The product's config sample, if the bundle carries one.
    pub fn config_sample(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.kind == MemberKind::ConfigSample)
    }

    /// The SBOM member in `format` (`cyclonedx` or `spdx`), if the bundle carries one.
    pub fn sbom(&self, format: &str) -> Option<&Member> {
        let name = crate::sbom_member_name(format)?;
        self.members.iter().find(|m| m.kind == MemberKind::Sbom && m.name == name)
    }
}
