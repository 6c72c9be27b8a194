//! What the install placed on this host, kept in the state directory (`placed.json`)
//! for `uninstall` (remove what the install placed, and nothing else) and for
//! `status --verify` (is it all still there, unchanged?). It grows over a product's
//! life: each version's install and upgrade adds what it placed.
//!
//! Written before a step acts (what it is about to place, and what was there before),
//! and again when it is done (digests): a run killed half-way still leaves a record
//! that names what may be there, and a rerun does not take its own leftovers for the
//! host's.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::engines::Engine;
use airbin_format::error::Result;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Placed {
    #[serde(default)]
    pub(crate) images: Vec<PlacedImage>,
    #[serde(default)]
    pub(crate) registries: Vec<PlacedRegistry>,
    #[serde(default)]
    pub(crate) files: Vec<PlacedFile>,
    /// Directories an extract step created (none was there before it).
    #[serde(default)]
    pub(crate) dirs: Vec<PathBuf>,
}

/// An image reference a load step needs: one it created (it was absent, or named
/// another image), or one the host had already with the bundle's ID (`placed: false`:
/// an uninstall leaves it, and it keeps another product's uninstall from removing it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PlacedImage {
    pub(crate) engine: EngineRecord,
    pub(crate) reference: String,
    pub(crate) id: String,
    pub(crate) step: String,
    #[serde(default = "yes")]
    pub(crate) placed: bool,
}

fn yes() -> bool {
    true
}

/// How an engine is named in the record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum EngineRecord {
    Docker,
    DockerApi { socket: PathBuf },
    Podman,
    Containerd { namespace: String },
}

impl EngineRecord {
    pub(crate) fn of(engine: &Engine) -> EngineRecord {
        match engine {
            Engine::DockerCli => EngineRecord::Docker,
            Engine::DockerApi { socket } => EngineRecord::DockerApi { socket: socket.clone() },
            Engine::Podman => EngineRecord::Podman,
            Engine::Containerd { namespace } => EngineRecord::Containerd { namespace: namespace.clone() },
        }
    }

    pub(crate) fn engine(&self) -> Engine {
        match self {
            EngineRecord::Docker => Engine::DockerCli,
            EngineRecord::DockerApi { socket } => Engine::DockerApi { socket: socket.clone() },
            EngineRecord::Podman => Engine::Podman,
            EngineRecord::Containerd { namespace } => Engine::Containerd { namespace: namespace.clone() },
        }
    }

    /// Docker's CLI and its API reach the same images.
    fn same_store(&self, other: &EngineRecord) -> bool {
        let docker = |e: &EngineRecord| matches!(e, EngineRecord::Docker | EngineRecord::DockerApi { .. });
        self == other || (docker(self) && docker(other))
    }
}

/// What a restore step placed in a registry root: files and directories that were not
/// there (paths below the root), and every blob the pack needs there (its digests).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PlacedRegistry {
    pub(crate) root: PathBuf,
    pub(crate) member: String,
    pub(crate) step: String,
    /// The root itself was made by the restore.
    #[serde(default)]
    pub(crate) created_root: bool,
    #[serde(default)]
    pub(crate) files: Vec<String>,
    #[serde(default)]
    pub(crate) dirs: Vec<String>,
    /// Every blob (hex) the pack has the root hold, placed or found there.
    #[serde(default)]
    pub(crate) blobs: Vec<String>,
    /// Every file of the pack (paths below the root), placed or found there: what
    /// another product's uninstall must leave.
    #[serde(default)]
    pub(crate) uses: Vec<String>,
}

/// A file an extract step wrote, with the SHA-256 it wrote (empty until the step is done).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct PlacedFile {
    pub(crate) path: PathBuf,
    #[serde(default)]
    pub(crate) sha256: String,
    pub(crate) step: String,
    /// Something was at the path before the product's first install wrote it.
    #[serde(default)]
    pub(crate) existed_before: bool,
}

/// What an install placed, from its record file (nothing, if it placed nothing).
pub(crate) fn read(record: &Path) -> Placed {
    crate::fsx::read_small_nofollow(record, 64 << 20).ok().and_then(|raw| serde_json::from_slice(&raw).ok()).unwrap_or_default()
}

fn write(record: &Path, placed: &Placed) -> Result<()> {
    let text = serde_json::to_vec_pretty(placed).expect("the record serializes");
    crate::fsx::write_atomic(record, &text, 0o644)
}

pub(crate) fn remove(record: &Path) {
    let _ = std::fs::remove_file(record);
}

/// One change to the record, as a step reports it.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    Image(PlacedImage),
    Registry(PlacedRegistry),
    /// A file about to be written (its digest not yet known) or written.
    File(PlacedFile),
    Dir(PathBuf),
}

/// Adds to the record, one change at a time, each on disk before the step goes on.
pub(crate) struct Recorder {
    record: Option<PathBuf>,
    placed: Mutex<Placed>,
}

impl Recorder {
    /// Adds to the record file `record` (created with its directory when missing).
    pub(crate) fn new(record: &Path) -> Recorder {
        Recorder { record: Some(record.to_path_buf()), placed: Mutex::new(read(record)) }
    }

    /// A recorder that keeps nothing (a run that places nothing for good: `--noexec`).
    pub(crate) fn none() -> Recorder {
        Recorder { record: None, placed: Mutex::new(Placed::default()) }
    }

    /// What was recorded before this run, for a step that must tell its own
    /// leftovers from what the host had.
    pub(crate) fn snapshot(&self) -> Placed {
        self.placed.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn add(&self, change: Change) -> Result<()> {
        let Some(record) = &self.record else { return Ok(()) };
        let mut placed = self.placed.lock().unwrap_or_else(|e| e.into_inner());
        placed.apply(change);
        if let Some(dir) = record.parent() {
            std::fs::create_dir_all(dir).map_err(|e| airbin_format::error::Error::io(e, "creating", dir))?;
        }
        write(record, &placed)
    }
}

impl Placed {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Image(image) => {
                self.images.retain(|i| !(i.reference == image.reference && i.engine.same_store(&image.engine)));
                self.images.push(image);
            }
            Change::Registry(mut registry) => {
                if let Some(earlier) = self.registries.iter_mut().find(|r| r.root == registry.root && r.member == registry.member) {
                    registry.created_root |= earlier.created_root;
                    merge(&mut registry.files, &earlier.files);
                    merge(&mut registry.dirs, &earlier.dirs);
                    merge(&mut registry.blobs, &earlier.blobs);
                    merge(&mut registry.uses, &earlier.uses);
                    *earlier = registry;
                } else {
                    self.registries.push(registry);
                }
            }
            Change::File(mut file) => {
                if let Some(earlier) = self.files.iter_mut().find(|f| f.path == file.path) {
                    // What was there before the product's first write stays what it was.
                    file.existed_before = earlier.existed_before;
                    *earlier = file;
                } else {
                    self.files.push(file);
                }
            }
            Change::Dir(dir) => {
                if !self.dirs.contains(&dir) {
                    self.dirs.push(dir);
                }
            }
        }
    }

    /// Whether this product's record names the file (written by an earlier run).
    pub(crate) fn has_file(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f.path == path)
    }

    /// This product's record of the image reference in `engine`'s store.
    pub(crate) fn image(&self, engine: &EngineRecord, reference: &str) -> Option<&PlacedImage> {
        self.images.iter().find(|i| i.reference == reference && i.engine.same_store(engine))
    }

    /// Whether this product's record names the image reference (placed or needed).
    pub(crate) fn has_image(&self, engine: &EngineRecord, reference: &str) -> bool {
        self.image(engine, reference).is_some()
    }

    /// Whether this product's record names the registry file (`rel` below `root`),
    /// placed or needed.
    pub(crate) fn has_registry_file(&self, root: &Path, rel: &str) -> bool {
        self.registries.iter().any(|r| r.root == root && (r.files.iter().any(|f| f == rel) || r.uses.iter().any(|f| f == rel)))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.images.is_empty() && self.registries.is_empty() && self.files.is_empty() && self.dirs.is_empty()
    }
}

fn merge(into: &mut Vec<String>, earlier: &[String]) {
    let mut all: std::collections::BTreeSet<String> = earlier.iter().cloned().collect();
    all.extend(into.drain(..));
    *into = all.into_iter().collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_grows_and_keeps_what_was_there_first() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("p/placed.json");
        let recorder = Recorder::new(&record);
        let file = |sha: &str, before: bool| {
            Change::File(PlacedFile { path: "/opt/p/tool".into(), sha256: sha.into(), step: "s".into(), existed_before: before })
        };
        recorder.add(file("", true)).unwrap();
        recorder.add(file("abc", false)).unwrap();
        let image = |engine| PlacedImage { engine, reference: "a:1".into(), id: "sha256:1".into(), step: "load".into(), placed: true };
        recorder.add(Change::Image(image(EngineRecord::Docker))).unwrap();
        recorder.add(Change::Image(image(EngineRecord::DockerApi { socket: "/s".into() }))).unwrap();
        let registry = |files: &[&str]| {
            Change::Registry(PlacedRegistry {
                root: "/r".into(),
                member: "pack".into(),
                files: files.iter().map(|f| f.to_string()).collect(),
                ..PlacedRegistry::default()
            })
        };
        recorder.add(registry(&["a", "b"])).unwrap();
        recorder.add(registry(&["c"])).unwrap();
        let placed = read(&record);
        assert_eq!(placed.files.len(), 1);
        assert!(placed.files[0].existed_before && placed.files[0].sha256 == "abc");
        assert_eq!(placed.images.len(), 1, "docker's CLI and API share one store");
        assert_eq!(placed.registries[0].files, ["a", "b", "c"]);
        assert!(placed.has_registry_file(Path::new("/r"), "b"));
    }
}
