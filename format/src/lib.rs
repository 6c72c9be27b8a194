//! The `.bin` format, one crate for both sides: the builder writes with `writer`, the
//! runtime reads with `reader`, so the two can never disagree. `docs/FORMAT.md`
//! describes the same layout in prose.
//!
//! ```text
//! [launcher]  POSIX sh, one 4 KiB block
//! [stub]      static ELF, zero-padded to whole 4 KiB blocks
//! [members]   each stored on its own: xz, zstd or as is
//! [index]     JSON: members, steps, build facts
//! [signature] optional, 1 KiB: a minisign signature of the file's SHA-256 (format 3)
//! [trailer]   160 bytes: digests, offsets, total length, format version, magic
//! ```
//!
//! Besides the layout, what both sides must apply the same way lives here: the index's
//! records (members, images, registry packs, steps as data, parameters), the name and
//! reference rules and the index's validation, digests, tar safety, the registry-pack
//! check, and the one reader of image archives (docker-archive and OCI) that the
//! builder's inspection and the runtime's `push-images` share. `describe` is what both
//! programs print about a bundle, `console` how they print it.
//!
//! It depends on nothing of the runtime. Its error type is the one both programs exit
//! with (`error`); it installs no signal handler, the programs raise `cancel` instead.

pub mod arch;
pub mod cancel;
pub mod console;
pub mod describe;
pub mod diff;
pub mod digest;
pub mod error;
pub mod files;
#[cfg(test)]
mod fuzz;
pub mod image_archive;
mod index;
pub mod inventory;
pub mod launcher;
pub mod params;
pub mod parts;
mod reader;
mod records;
pub mod registry_pack;
#[cfg(test)]
mod roundtrip_tests;
pub mod rules;
pub mod signature;
#[cfg(feature = "signing")]
pub mod signing;
mod step;
pub mod tarsafe;
#[cfg(test)]
mod testing;
mod trailer;
pub mod validate;
mod writer;

pub use index::{BuildFacts, BundleMeta, Codec, DeltaBase, Index, InventoryBase, Layout, Member, MemberKind, Region};
pub use params::{ParamType, Parameter};
pub use reader::{Bundle, ContentReader, FileIdentity, RegionReader};
pub use records::{ImageRecord, RegistryPackRecord, RepositoryRecord, TagRecord};
pub use step::{
    parse_mode, Action, CommandAction, ConfigRules, ExtractAction, LoadImagesAction, Phase, PushImagesAction, Requires,
    RestoreRegistryAction, Role, Seconds, Step, WaitForAction,
};
pub use trailer::{Trailer, TrailerTail, MAGIC, TRAILER_LEN};
pub use writer::{BundleWriter, Finished, InstallRules, Sign, StoredFacts};

/// The format this builder writes; this runtime reads it and every older one back to
/// `OLDEST_FORMAT` (format 2 added step names, retries, timeouts, `on_failure`, the
/// `extract` and `wait-for` kinds, `config` and `requires`; format 3 the signature
/// block, `special_bits`, and build facts that may be left out; format 4 the steps'
/// `roles` and the config's node-list keys; format 5 parameters, the steps' `when`
/// (install, upgrade), `hotfix_of`, `push-images` and delta registry packs; format 6
/// the steps' `when: uninstall`; format 7 a delta's base, `build.delta_of`; format 8
/// the `sbom` member kind and `build.delta_for`, a delta built from a site's inventory).
pub const FORMAT_VERSION: u32 = 8;

/// The SBOM formats a bundle may carry, and the member each is in.
pub const SBOM_MEMBERS: [(&str, &str); 2] = [("cyclonedx", "sbom.cdx.json"), ("spdx", "sbom.spdx.json")];

/// The member name of an SBOM format (`cyclonedx`, `spdx`).
pub fn sbom_member_name(format: &str) -> Option<&'static str> {
    SBOM_MEMBERS.iter().find(|(f, _)| *f == format).map(|(_, name)| *name)
}
pub const OLDEST_FORMAT: u32 = 1;
