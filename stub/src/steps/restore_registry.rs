//! `restore-registry`: a registry pack restored into a registry's storage root, then
//! checked offline (every tag serves from the files) and, given an address, online.

use airbin_format::RestoreRegistryAction;
use std::path::PathBuf;

use super::placed::{Change, PlacedRegistry};
use super::{parse_mode, parse_owner, Inputs, Needs, Place, RunContext};
use crate::registry::{self, Ownership};
use airbin_format::error::{Error, Result};
use airbin_format::{validate, Bundle};

#[derive(Clone, Debug)]
pub(crate) struct RestoreRegistry {
    pub(crate) member: String,
    pub(crate) root: PathBuf,
    /// Where the root came from, for the plan: "--registry-root", "the spec", "config KEY".
    root_from: String,
    pub(crate) address: Option<String>,
    address_from: String,
    ownership: Ownership,
}

pub(crate) fn prepare(inputs: &Inputs, member: &str, action: &RestoreRegistryAction, step: &str) -> Result<RestoreRegistry> {
    let RestoreRegistryAction { root, root_from_config, owner, mode, address, address_from_config, .. } = action;
    let needed_by = format!("step '{step}'");
    let config =
        || inputs.config.ok_or_else(|| Error::usage(format!("{needed_by} takes values from the product's config, and there is none")));
    // The command line's --registry-root is a --set of the key a root comes from (so
    // every step that reads the key sees it); it stands in for a root the spec fixes.
    let (root, root_from) = match (root_from_config, &inputs.overrides.registry_root, root) {
        (Some(key), _, _) => (config()?.path_value(key, &needed_by)?, format!("config {key}")),
        (None, Some(overridden), _) => (crate::fsx::absolute(overridden), "--registry-root".to_string()),
        (None, None, Some(root)) => (PathBuf::from(root), "the spec".to_string()),
        (None, None, None) => return Err(Error::integrity(format!("{needed_by} names no registry root"))),
    };
    if let Some(why) = validate::unsafe_root(&root.to_string_lossy()) {
        return Err(Error::usage(format!(
            "{needed_by}: the registry root {} ({root_from}) {why}; give the registry's storage directory, such as /var/lib/docker-registry",
            root.display()
        )));
    }
    let (address, address_from) = match (address_from_config, &inputs.overrides.registry_address, address) {
        (Some(key), _, _) => (Some(config()?.text(key, &needed_by)?), format!("config {key}")),
        (None, Some(overridden), _) => (Some(overridden.clone()), "--registry-address".to_string()),
        (None, None, Some(address)) => (Some(address.clone()), "the spec".to_string()),
        (None, None, None) => (None, String::new()),
    };
    let (uid, gid) = match owner {
        Some(owner) => parse_owner(owner, step)?,
        None => (None, None),
    };
    let file_mode = mode
        .as_deref()
        .map(|m| parse_mode(m).filter(|bits| bits & validate::SPECIAL_BITS == 0))
        .map(|bits| bits.ok_or_else(|| Error::integrity(format!("the bundle's step '{step}' has a registry mode beyond rwx"))))
        .transpose()?;
    Ok(RestoreRegistry { member: member.to_string(), root, root_from, address, address_from, ownership: Ownership { uid, gid, file_mode } })
}

impl RestoreRegistry {
    pub(crate) fn describe(&self) -> String {
        let mut text = format!("restore registry pack {} into {} ({})", self.member, self.root.display(), self.root_from);
        if let Some(address) = &self.address {
            text.push_str(&format!(", then check it serves at {address} ({})", self.address_from));
        }
        text
    }

    pub(crate) fn needs(&self, bundle: &Bundle, step: &str) -> Needs {
        let bytes = bundle.index.member(&self.member).map_or(0, |m| m.unpacked_bytes);
        let moved_by = match self.root_from.strip_prefix("config ") {
            Some(key) => Some(format!("--set {key}=DIR")),
            None => Some("--registry-root DIR".to_string()),
        };
        Needs {
            space: vec![Place::new(&self.root, bytes, &format!("step '{step}'"), moved_by.as_deref())],
            registry: self.address.clone(),
            writes: vec![self.root.clone()],
            missing: bundle
                .index
                .member(&self.member)
                .and_then(|m| m.registry.as_ref())
                .and_then(|record| self.check_delta(record, bundle.index.build.delta_for.as_ref()).err())
                .map(|e| e.message)
                .into_iter()
                .collect(),
            ..Needs::default()
        }
    }

    /// A delta pack leaves out blobs its base carried: the root must hold them already
    /// (the base's install put them there). Checked before anything is placed.
    fn check_delta(&self, record: &airbin_format::RegistryPackRecord, site: Option<&airbin_format::InventoryBase>) -> Result<()> {
        use airbin_format::registry_pack::{blob_path, V2};
        let v2 = self.root.join(V2);
        let missing: Vec<&str> = record
            .omitted
            .iter()
            .filter(|digest| !v2.join(blob_path(digest.strip_prefix("sha256:").unwrap_or(digest))).is_file())
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = missing.iter().take(5).copied().collect();
        // What the delta was built against, and so what brings the blobs back.
        let (against, fix) = match site {
            Some(site) => (
                format!(
                    " for {}'s inventory (taken {}): it leaves out {} blob(s) that inventory listed",
                    site.host,
                    site.taken_at,
                    record.omitted.len()
                ),
                "give the root the inventory was taken of (--registry-root)",
            ),
            None => (format!(": it leaves out {} blob(s) its base bundle carried", record.omitted.len()), "install the base version first"),
        };
        Err(Error::host(format!(
            "registry pack {} is a delta{against}, and the registry root {} lacks {} of them ({}{}); {fix}, or use the full bundle",
            self.member,
            self.root.display(),
            missing.len(),
            shown.join(", "),
            if missing.len() > shown.len() { ", ..." } else { "" }
        )))
    }

    pub(crate) fn run(&self, ctx: &RunContext) -> Result<String> {
        let member = ctx.bundle.member(&self.member)?;
        let record =
            member.registry.as_ref().ok_or_else(|| Error::integrity(format!("member {} carries no registry pack record", member.name)))?;
        self.check_delta(record, ctx.bundle.index.build.delta_for.as_ref())?;
        let placed = |files: Vec<String>, dirs: Vec<String>, created_root: bool, blobs: Vec<String>, uses: Vec<String>| PlacedRegistry {
            root: self.root.clone(),
            member: member.name.clone(),
            step: ctx.step_name.to_string(),
            created_root,
            files,
            dirs,
            blobs,
            uses,
        };
        let intent =
            |new: registry::Intent| ctx.placed.add(Change::Registry(placed(new.files, new.dirs, new.created_root, Vec::new(), new.all)));
        let mut placement = registry::restore(ctx.bundle, member, &self.root, &self.ownership, ctx.ui, &intent)?;
        // Every blob the root holds for the pack, placed or found there (and a delta's
        // from its base): what `status --verify` checks.
        let mut blobs: Vec<String> = placement.blob_digests.keys().cloned().collect();
        blobs.extend(record.omitted.iter().filter_map(|d| d.strip_prefix("sha256:")).map(str::to_string));
        let restored = placement.restored;
        if restored.replaced_symlinks > 0 {
            ctx.ui.status(format!(
                "replaced {} symlink(s) found in {} where the registry keeps files",
                restored.replaced_symlinks,
                self.root.display()
            ));
        }
        if restored.repaired > 0 {
            ctx.ui.status(format!(
                "replaced {} blob(s) in {} whose content did not match their digest (a damaged earlier copy)",
                restored.repaired,
                self.root.display()
            ));
        }
        // A restore whose result would not serve is rolled back (dropping the placement).
        let storage = registry::DirStorage::with_known_digests(&self.root, std::mem::take(&mut placement.blob_digests));
        registry::check_pack(&storage, Some(record)).map_err(|why| {
            Error::step(format!(
                "registry pack {} does not serve from {} after the restore: {why}; what it placed was taken back",
                member.name,
                self.root.display()
            ))
        })?;
        placement.commit();
        ctx.placed.add(Change::Registry(placed(Vec::new(), Vec::new(), false, blobs, Vec::new())))?;
        let tags: usize = record.repositories.iter().map(|r| r.tags.len()).sum();
        let mut detail = format!("{} files placed in {}", restored.placed, self.root.display());
        if restored.repaired > 0 {
            detail.push_str(&format!(", {} damaged blobs replaced", restored.repaired));
        }
        detail.push_str(&format!(", {tags} tags checked offline"));
        if let Some(address) = &self.address {
            let fetched = registry::verify_online(address, record, &self.root)?;
            detail.push_str(&format!(", {fetched} manifests and blobs fetched from {address}"));
        }
        Ok(detail)
    }
}
