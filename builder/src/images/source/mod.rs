//! Where a member's images come from: a registry (the registry API v2), the local
//! Docker Engine (`docker-daemon`), or an OCI layout directory (`oci:DIR`). Each gives
//! manifests by tag or digest, and blobs by digest; errors are one phrase, which the
//! build's failure report puts after the reference and the source.

mod auth;
mod daemon;
mod oci;
mod registry;

use std::io::Write;
use std::path::Path;

use airbin_format::error::{Error, Result};

use super::cache::Cache;
use super::reference::Reference;
use crate::assemble::spec::MemberSpec;

/// A manifest as a source serves it: its exact bytes (its digest is theirs).
pub(crate) struct Fetched {
    pub(crate) bytes: Vec<u8>,
    pub(crate) media_type: String,
}

pub(crate) trait ImageSource: Sync {
    /// How reports name the source (`127.0.0.1:5000`, `docker-daemon`, `oci:DIR`).
    fn name(&self) -> String;
    /// The manifest (or index) `at` (a tag or a digest) names in `reference`'s repository.
    fn manifest(&self, reference: &Reference, at: &str) -> std::result::Result<Fetched, String>;
    /// Streams the blob `digest` of `reference`'s repository into `out`.
    fn blob(&self, reference: &Reference, digest: &str, out: &mut dyn Write) -> std::result::Result<(), String>;
}

/// The source a member's `from` names; a registry's credentials come from the member
/// (`username`/`password`, `${env.X}` expanded) or from the Docker config.
pub(crate) fn open(member: &MemberSpec, spec_dir: &Path, cache: &Cache) -> Result<Box<dyn ImageSource>> {
    let from = member.from.as_deref().unwrap_or_default();
    if from == "docker-daemon" {
        // A registry holds what `docker push` puts there: gzip'd layers.
        let gzip = member.kind == airbin_format::MemberKind::RegistryPack;
        return Ok(Box::new(daemon::Daemon::new(cache, gzip)?));
    }
    if let Some(dir) = from.strip_prefix("oci:") {
        return Ok(Box::new(oci::Layout::open(&spec_dir.join(dir))?));
    }
    let username = member.username.as_deref().map(expand_env).transpose()?;
    let password = member.password.as_deref().map(expand_env).transpose()?;
    let credentials = match (username, password) {
        (Some(user), Some(password)) => Some((user, password)),
        (None, None) => auth::docker_config_credentials(from.split_once("://").map_or(from, |(_, host)| host)),
        _ => return Err(Error::usage(format!("member {}: give both username and password, or neither", member.name))),
    };
    let ca = member.ca.as_ref().map(|ca| spec_dir.join(ca));
    Ok(Box::new(registry::Registry::new(from, member.insecure, ca.as_deref(), credentials)?))
}

/// `${env.X}` replaced by the build host's `X` (a credential kept out of the spec).
pub(crate) fn expand_env(text: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${env.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let end = after.find('}').ok_or_else(|| Error::usage(format!("'{text}': an unterminated ${{env. placeholder")))?;
        let name = &after[..end];
        let value = std::env::var(name).map_err(|_| {
            Error::usage(format!("${{env.{name}}} is not set in the build's environment: export {name}, or give the value another way"))
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
