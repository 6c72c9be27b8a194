//! What a site holds, as a small JSON document (`sh x.bin inventory`, `airbin
//! inventory`): the installed records of every product under the state directory, the
//! blob digests under each registry root, and the images (IDs, tags, layer digests) in
//! the engine. `airbin build --base-inventory site.json` builds the delta that site needs:
//! its registry packs leave out every blob the site's registries hold already.
//!
//! Both programs collect it with this one module, so what a site writes is what a build
//! reads. Signed (a `.minisig` beside it, with a key) like bundles and receipts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::registry_pack::V2;

pub const FORMAT: u32 = 1;
/// An inventory of a large site (ten thousand blobs, a thousand images) stays far below.
pub const MAX_INVENTORY: u64 = 64 << 20;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub format: u32,
    /// The host's name, as the delta built for it names it.
    pub host: String,
    pub taken_at: String,
    #[serde(default)]
    pub installed: Vec<InstalledProduct>,
    #[serde(default)]
    pub registries: Vec<RegistryRoot>,
    /// Absent where no engine answered (said in `engine_note`).
    #[serde(default)]
    pub images: Vec<EngineImage>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine_note: String,
}

/// One product's install record, as its state directory keeps it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstalledProduct {
    pub name: String,
    pub version: String,
    /// The installed bundle's SHA-256.
    pub sha256: String,
    #[serde(default)]
    pub hotfixes: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegistryRoot {
    pub root: PathBuf,
    /// `sha256:<hex>` of every blob file under the root, sorted.
    pub blobs: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EngineImage {
    pub id: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The layers' diff IDs, bottom first.
    #[serde(default)]
    pub layers: Vec<String>,
}

impl Inventory {
    /// Every blob any of the site's registries holds.
    pub fn blobs(&self) -> BTreeSet<String> {
        self.registries.iter().flat_map(|r| r.blobs.iter()).filter_map(|b| b.strip_prefix("sha256:")).map(str::to_string).collect()
    }

    /// Reads and checks an inventory file (`airbin build --base-inventory`).
    pub fn read(path: &Path) -> Result<(Inventory, Vec<u8>)> {
        let text = crate::files::read_small_nofollow(path, MAX_INVENTORY + 1).ctx("reading", path)?;
        if text.len() as u64 > MAX_INVENTORY {
            return Err(Error::usage(format!("{} is larger than any inventory; give the file `inventory` wrote", path.display())));
        }
        let inventory: Inventory = serde_json::from_slice(&text).map_err(|e| {
            Error::usage(format!(
                "{} is not a site inventory ({e}); make one on the site with: sh x.bin inventory -o site.json",
                path.display()
            ))
        })?;
        if inventory.format != FORMAT {
            return Err(Error::usage(format!(
                "{} is an inventory of format {}; this airbin reads format {FORMAT}: make it again with this airbin's bundle",
                path.display(),
                inventory.format
            )));
        }
        let bad = inventory
            .registries
            .iter()
            .flat_map(|r| &r.blobs)
            .find(|b| !b.strip_prefix("sha256:").is_some_and(crate::rules::is_sha256_hex));
        if let Some(bad) = bad {
            return Err(Error::usage(format!(
                "{}: '{}' is not a blob digest (sha256:<64 hex digits>)",
                path.display(),
                crate::rules::printable(bad, 80)
            )));
        }
        if crate::rules::unsafe_text(&inventory.host, 255).is_some() {
            return Err(Error::usage(format!("{}: its host name is not printable text", path.display())));
        }
        Ok((inventory, text))
    }
}

/// What to take stock of.
pub struct Collect<'a> {
    /// Where the products' state directories are (`/var/lib/airbin`).
    pub state_base: &'a Path,
    pub registry_roots: &'a [PathBuf],
    /// Ask the engine (the `docker` command) for its images.
    pub engine: bool,
}

pub fn collect(what: &Collect) -> Result<Inventory> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let mut registries = Vec::new();
    for root in what.registry_roots {
        registries.push(RegistryRoot { root: root.clone(), blobs: registry_blobs(root)? });
    }
    let (images, engine_note) = match what.engine {
        true => engine_images(),
        false => (Vec::new(), "the engine was not asked (--no-engine)".to_string()),
    };
    Ok(Inventory {
        format: FORMAT,
        host,
        taken_at: crate::console::timestamp(),
        installed: installed(what.state_base),
        registries,
        images,
        engine_note,
    })
}

/// The blobs under a registry root: `docker/registry/v2/blobs/sha256/XX/HEX/data`.
fn registry_blobs(root: &Path) -> Result<Vec<String>> {
    let blobs = root.join(V2).join("blobs/sha256");
    if !root.is_dir() {
        return Err(Error::usage(format!("--registry-root {} is not a directory; give the registry's storage root", root.display())));
    }
    let mut out = Vec::new();
    let Ok(prefixes) = std::fs::read_dir(&blobs) else { return Ok(out) };
    for prefix in prefixes.flatten() {
        let Ok(entries) = std::fs::read_dir(prefix.path()) else { continue };
        for entry in entries.flatten() {
            let hex = entry.file_name().to_string_lossy().into_owned();
            if crate::rules::is_sha256_hex(&hex) && entry.path().join("data").is_file() {
                out.push(format!("sha256:{hex}"));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[derive(Deserialize)]
struct Record {
    name: String,
    version: String,
    sha256: String,
    #[serde(default)]
    hotfixes: Vec<Named>,
    #[serde(default)]
    parameters: Vec<Parameter>,
}

#[derive(Deserialize)]
struct Named {
    version: String,
}

#[derive(Deserialize)]
struct Parameter {
    name: String,
    value: String,
}

fn records(base: &Path) -> Vec<Record> {
    let Ok(dirs) = std::fs::read_dir(base) else { return Vec::new() };
    dirs.flatten()
        .filter_map(|d| crate::files::read_small_nofollow(&d.path().join("installed.json"), 16 << 20).ok())
        .filter_map(|text| serde_json::from_slice::<Record>(&text).ok())
        .collect()
}

/// The registry roots a site most likely has: each installed product's
/// `registry_root` parameter, and Debian's default root, where they are directories.
pub fn default_registry_roots(state_base: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = records(state_base)
        .into_iter()
        .flat_map(|r| r.parameters)
        .filter(|p| p.name == "registry_root")
        .map(|p| PathBuf::from(p.value))
        .chain(std::iter::once(PathBuf::from("/var/lib/docker-registry")))
        .filter(|p| p.is_absolute() && p.is_dir())
        .collect();
    roots.sort();
    roots.dedup();
    roots
}

/// Writes the inventory to `out` (a temporary, then renamed), with a `.minisig` beside
/// it when a key is given; stdout when `out` is none.
#[cfg(feature = "signing")]
pub fn write(inventory: &Inventory, out: Option<&Path>, key: Option<&crate::signing::SigningKey>) -> Result<()> {
    let text = serde_json::to_vec_pretty(inventory).expect("an inventory serializes");
    let Some(out) = out else {
        if key.is_some() {
            return Err(Error::usage("--sign writes a .minisig beside the inventory: give the file with -o FILE"));
        }
        crate::console::out_line(String::from_utf8_lossy(&text).trim_end());
        return Ok(());
    };
    if let Some(key) = key {
        let comment = format!("airbin site inventory of {} at {}", inventory.host, inventory.taken_at);
        let signature = key.sign(&text[..], &comment).ctx("signing", out)?;
        let mut sig = out.as_os_str().to_owned();
        sig.push(".minisig");
        crate::files::write_atomic(Path::new(&sig), signature.as_bytes(), 0o644)?;
    }
    crate::files::write_atomic(out, &text, 0o644)
}

/// One run of `inventory`, as both programs take it from their command lines.
#[cfg(feature = "signing")]
pub struct Run<'a> {
    pub state_base: &'a Path,
    /// Given roots; none: `default_registry_roots`.
    pub registry_roots: &'a [PathBuf],
    pub engine: bool,
    pub out: Option<&'a Path>,
    pub sign: Option<&'a Path>,
    pub json: bool,
}

/// Takes stock and prints or writes it (with `--json`, one envelope); returns the line
/// to say on stderr once a file is written.
#[cfg(feature = "signing")]
pub fn run(how: &Run) -> Result<Option<String>> {
    use crate::console::{print_json, Envelope};
    let key = how.sign.map(crate::signing::SigningKey::load).transpose()?;
    let roots = match how.registry_roots.is_empty() {
        true => default_registry_roots(how.state_base),
        false => how.registry_roots.to_vec(),
    };
    let taken = collect(&Collect { state_base: how.state_base, registry_roots: &roots, engine: how.engine })?;
    if how.json && how.out.is_none() && key.is_none() {
        print_json(&Envelope::ok("inventory", serde_json::json!({"inventory": taken})));
        return Ok(None);
    }
    write(&taken, how.out, key.as_ref())?;
    let Some(out) = how.out else { return Ok(None) };
    if how.json {
        print_json(&Envelope::ok("inventory", serde_json::json!({"out": out, "inventory": taken})));
        return Ok(None);
    }
    let blobs: usize = taken.registries.iter().map(|r| r.blobs.len()).sum();
    Ok(Some(format!(
        "wrote {}: {} product(s), {blobs} registry blob(s) in {} root(s), {} image(s)",
        out.display(),
        taken.installed.len(),
        taken.registries.len(),
        taken.images.len()
    )))
}

/// Each product's `installed.json` under the state base.
fn installed(base: &Path) -> Vec<InstalledProduct> {
    let mut out: Vec<InstalledProduct> = records(base)
        .into_iter()
        .map(|r| InstalledProduct {
            name: r.name,
            version: r.version,
            sha256: r.sha256,
            hotfixes: r.hotfixes.into_iter().map(|h| h.version).collect(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The engine's images through the `docker` command; none, with why, where it fails.
fn engine_images() -> (Vec<EngineImage>, String) {
    let ids = match Command::new("docker").args(["image", "ls", "--all", "--no-trunc", "--quiet"]).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => return (Vec::new(), format!("docker image ls failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => return (Vec::new(), format!("no docker command ({e})")),
    };
    let ids: BTreeSet<&str> = ids.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if ids.is_empty() {
        return (Vec::new(), String::new());
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Inspected {
        id: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        root_f_s: Option<RootFs>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct RootFs {
        #[serde(default)]
        layers: Vec<String>,
    }
    let out = Command::new("docker").args(["image", "inspect"]).args(&ids).output();
    let inspected: Vec<Inspected> = match out {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).unwrap_or_default(),
        _ => return (Vec::new(), "docker image inspect failed".to_string()),
    };
    let images = inspected
        .into_iter()
        .map(|i| EngineImage { id: i.id, tags: i.repo_tags.unwrap_or_default(), layers: i.root_f_s.map(|r| r.layers).unwrap_or_default() })
        .collect();
    (images, String::new())
}
