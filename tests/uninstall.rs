//! Day two with the real components: `status --verify` on a real engine and registry
//! (every kind of drift found, named, and repaired with the command it names), and
//! `uninstall`, after which the host is as it was before the install: the engine's
//! images, the registry root and the file tree compared, on docker, podman and containerd.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use support::registry::Registry;
use support::*;

/// Tests that load images share one engine: they run one at a time.
static ENGINE: Mutex<()> = Mutex::new(());

/// Every image of an engine's store: "reference id" lines (docker's and podman's CLI).
fn images_of(program: &str, env: &[(&str, &Path)]) -> BTreeSet<String> {
    let out = Command::new(program)
        .args(["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{program} images: {}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

/// Every path under `dir` (files and directories), relative, with each file's content.
fn tree(dir: &Path) -> BTreeSet<(String, Vec<u8>)> {
    let mut out = BTreeSet::new();
    let Ok(entries) = fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path.strip_prefix(dir).unwrap().display().to_string();
        if entry.file_type().unwrap().is_dir() {
            out.insert((format!("{rel}/"), Vec::new()));
            out.extend(tree(&path).into_iter().map(|(p, c)| (format!("{rel}/{p}"), c)));
        } else {
            out.insert((rel, fs::read(&path).unwrap_or_default()));
        }
    }
    out
}

struct Site {
    dir: tempfile::TempDir,
    root: PathBuf,
    registry: Registry,
}

impl Site {
    /// A registry root the site's registry serves (there before the install, empty).
    fn new() -> Site {
        let dir = scratch();
        let root = dir.path().join("registry");
        fs::create_dir_all(&root).unwrap();
        let registry = Registry::start(&root);
        Site { dir, root, registry }
    }
    fn config(&self) -> PathBuf {
        let config = self.dir.path().join("config");
        fs::write(
            &config,
            format!(
                "cluster_name: verify\nmanagement_nodes: [127.0.0.1]\nregistry_address: {}\nregistry_root: {}\ntools_dir: {}\n",
                self.registry.address,
                self.root.display(),
                self.tools().display()
            ),
        )
        .unwrap();
        config
    }
    fn tools(&self) -> PathBuf {
        self.dir.path().join("opt/compass/bin")
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new("sh")
            .arg(compass())
            .args(args)
            .env("AIRBIN_STATE_DIR", self.dir.path().join("state"))
            .env("TMPDIR", self.dir.path())
            .env("CADM_INSTALL_MARK", self.dir.path().join("installed"))
            .output()
            .unwrap()
    }
}

/// The compass images out of the shared engine: the test's "before" is an engine without them.
fn without_compass_images() {
    let _ = Command::new("docker").args(["rmi", "-f", "compass/api:2.7.3", "compass/worker:2.7.3"]).output();
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {}\n{}", stdout(out), stderr(out)))
}

#[test]
fn status_verify_names_each_drift_with_its_repair_and_uninstall_leaves_the_host_as_before() {
    if !docker_ready("status_verify_and_uninstall") || !require("docker-registry", "status_verify_and_uninstall") {
        return;
    }
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    without_compass_images();
    let site = Site::new();
    let config = site.config();
    let config = config.to_str().unwrap();
    let images_before = images_of("docker", &[]);
    let root_before = tree(&site.root);
    assert!(!site.dir.path().join("opt").exists());

    let install = site.run(&["--yes", "--json", "--engine", "docker", "--config", config]);
    assert!(install.status.success(), "{}", stderr(&install));
    assert!(site.dir.path().join("installed").exists(), "cadm install ran");
    let verify = site.run(&["status", "--verify", "--json"]);
    let doc = json(&verify);
    assert_eq!(verify.status.code(), Some(0), "{doc}");
    assert_eq!(doc["verify"]["drift"], serde_json::json!([]), "{doc}");
    assert!(doc["verify"]["images"].as_u64().unwrap() >= 2 && doc["verify"]["blobs"].as_u64().unwrap() > 0, "{doc}");
    let text = site.run(&["status", "--verify"]);
    assert!(stdout(&text).contains("all match the install"), "{}", stdout(&text));

    // Drift of every kind: an image gone, a blob altered, another blob gone, a tool edited.
    assert!(Command::new("docker").args(["rmi", "compass/api:2.7.3"]).status().unwrap().success());
    let blobs: Vec<PathBuf> = walk_files(&site.root.join("docker/registry/v2/blobs"));
    fs::write(&blobs[0], b"not what the digest says").unwrap();
    fs::remove_file(&blobs[1]).unwrap();
    let cadm = site.tools().join("cadm");
    fs::write(&cadm, "#!/bin/sh\necho edited\n").unwrap();
    let verify = site.run(&["status", "--verify", "--json"]);
    assert_eq!(verify.status.code(), Some(1), "{}", stderr(&verify));
    let doc = json(&verify);
    assert_eq!(doc["error"]["class"], "drift", "{doc}");
    let drift = doc["verify"]["drift"].as_array().unwrap();
    let kinds: BTreeSet<&str> = drift.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from(["image", "registry", "file"]), "{doc}");
    assert!(drift
        .iter()
        .any(|d| d["what"] == "compass/api:2.7.3" && d["repair"].as_str().unwrap().contains("--from 'load release images'")));
    assert!(drift.iter().any(|d| d["kind"] == "file" && d["found"] == "changed since the install"));
    assert!(drift.iter().filter(|d| d["kind"] == "registry").count() >= 2, "{doc}");
    let text = site.run(&["status", "--verify"]);
    assert_eq!(text.status.code(), Some(1));
    assert!(stdout(&text).contains("DRIFT image compass/api:2.7.3: not in"), "{}", stdout(&text));
    // The repair it names: the first drifted step on.
    let repair = drift.iter().find(|d| d["kind"] == "image").unwrap()["repair"].as_str().unwrap().to_string();
    let step = repair.split("--from ").nth(1).unwrap().trim_matches('\'').to_string();
    let fixed = site.run(&["install", "--yes", "--engine", "docker", "--config", config, "--from", &step]);
    assert!(fixed.status.success(), "{}", stderr(&fixed));
    let verify = site.run(&["status", "--verify", "--json"]);
    assert_eq!(verify.status.code(), Some(0), "after the repair: {}", json(&verify));

    // Uninstall: the plan first, then the run; the host as before.
    let dry = site.run(&["uninstall", "--dry-run", "--config", config]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("cadm uninstall") && stdout(&dry).contains("remove 2 image reference(s)"), "{}", stdout(&dry));
    assert!(site.dir.path().join("state/compass-component").exists(), "a dry run changes nothing");
    let gone = site.run(&["uninstall", "--json", "--config", config]);
    assert!(gone.status.success(), "{}", stderr(&gone));
    let doc = json(&gone);
    assert_eq!(doc["command"], "uninstall");
    assert!(!site.dir.path().join("installed").exists(), "cadm uninstall ran first");
    assert_eq!(images_of("docker", &[]), images_before, "the engine's images");
    assert_eq!(tree(&site.root), root_before, "the registry root");
    assert!(!site.dir.path().join("opt").exists(), "the tools and the directories made for them");
    assert!(!site.dir.path().join("state/compass-component").exists(), "the state directory");
    // The registry still runs, serving nothing of the pack.
    assert_eq!(site.registry.manifest_status("compass/agent", "2.7.3"), 404);
    let again = site.run(&["uninstall", "--config", config]);
    assert_eq!(again.status.code(), Some(7), "{}", stderr(&again));
    assert!(stderr(&again).contains("nothing of compass-component is installed"), "{}", stderr(&again));
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk_files(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out.sort();
    out
}

/// A bundle named `name` that loads the sample's images with `engine`, and writes a
/// tool into `tools`.
fn images_product(dir: &Path, name: &str, engine: &str, tools: &Path) -> PathBuf {
    let spec = dir.join(format!("spec-{name}"));
    fs::create_dir_all(&spec).unwrap();
    fs::copy(repo_root().join("samples/compass/images/release-images.tar"), spec.join("images.tar")).unwrap();
    fs::write(spec.join("tool.sh"), "#!/bin/sh\necho tool\n").unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        format!(
            "name: {name}\nversion: '1'\nmembers:\n  - {{name: images, kind: image, path: images.tar}}\n  - {{name: tool.sh, kind: tool, path: tool.sh}}\nsteps:\n  - {{kind: load-images, member: images, engine: {engine}}}\n  - {{name: install tool, kind: extract, member: tool.sh, to: {}}}\n",
            tools.display()
        ),
    )
    .unwrap();
    build(&spec.join("bundle.yaml"), &dir.join(format!("dist-{name}")))
}

#[test]
fn an_image_another_product_needs_stays_and_a_changed_file_is_kept_and_listed() {
    if !docker_ready("another_products_image") {
        return;
    }
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    without_compass_images();
    let dir = scratch();
    let before = images_of("docker", &[]);
    let state = dir.path().join("state");
    let a = images_product(dir.path(), "prod-a", "docker", &dir.path().join("a/bin"));
    let b = images_product(dir.path(), "prod-b", "docker", &dir.path().join("b/bin"));
    let run = |bin: &Path, args: &[&str]| {
        Command::new("sh").arg(bin).args(args).env("AIRBIN_STATE_DIR", &state).env("TMPDIR", dir.path()).output().unwrap()
    };
    assert!(run(&a, &["--yes"]).status.success());
    assert!(run(&b, &["--yes"]).status.success());
    fs::write(dir.path().join("a/bin/tool.sh"), "#!/bin/sh\necho edited on site\n").unwrap();
    let out = run(&a, &["uninstall", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    let kept: Vec<&str> = doc["kept"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert!(kept.iter().any(|k| k.contains("a/bin/tool.sh: changed since the install")), "{kept:?}");
    assert!(kept.iter().any(|k| k.contains("compass/api:2.7.3: another installed product's record names it")), "{kept:?}");
    assert_eq!(fs::read_to_string(dir.path().join("a/bin/tool.sh")).unwrap(), "#!/bin/sh\necho edited on site\n");
    assert!(images_of("docker", &[]).iter().any(|i| i.starts_with("compass/api:2.7.3 ")), "product B still needs it");
    // B's install found the images there (A's): once A has gone, B removes... nothing of
    // them, for it did not place them. The host keeps them, as B's record says.
    let out = run(&b, &["uninstall"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let left = images_of("docker", &[]);
    let _ = Command::new("docker").args(["rmi", "compass/api:2.7.3", "compass/worker:2.7.3"]).output();
    assert!(left.is_superset(&before));
}

#[test]
fn uninstall_on_podman_and_containerd_leaves_their_stores_as_before() {
    let podman = require("podman", "uninstall_on_podman");
    let containerd = std::env::var("AIRBIN_TEST_CONTAINERD").ok();
    let how = "AIRBIN_TEST_CONTAINERD names no containerd socket; run the suite with bash hack/test.sh, which sets it";
    let containerd_ok = skip::needs("uninstall_on_podman", "containerd", containerd.is_some(), how);
    let containerd = containerd.filter(|_| containerd_ok);
    let dir = scratch();
    if podman {
        fs::create_dir_all(dir.path().join("podman")).unwrap();
        let conf = podman_store(&dir.path().join("podman"));
        let env = [("CONTAINERS_STORAGE_CONF", conf.as_path())];
        let bin = images_product(dir.path(), "on-podman", "podman", &dir.path().join("p/bin"));
        let before = images_of("podman", &env);
        let run = |args: &[&str]| {
            Command::new("dash")
                .arg(&bin)
                .args(args)
                .env("CONTAINERS_STORAGE_CONF", &conf)
                .env("AIRBIN_STATE_DIR", dir.path().join("state"))
                .env("TMPDIR", dir.path())
                .output()
                .unwrap()
        };
        let out = run(&["--yes"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(images_of("podman", &env).len(), before.len() + 2);
        let verify = run(&["status", "--verify"]);
        assert!(verify.status.success(), "{}", stdout(&verify));
        let out = run(&["uninstall"]);
        let after = images_of("podman", &env);
        let _ = Command::new("podman").args(["system", "reset", "--force"]).env("CONTAINERS_STORAGE_CONF", &conf).output();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(after, before, "podman's images");
        assert!(!dir.path().join("p").exists());
    }
    if let Some(address) = containerd {
        let namespace = format!("airbin-uninstall-{}", std::process::id());
        let ctr = |args: &[&str]| {
            let out = Command::new("ctr").arg("-n").arg(&namespace).args(args).env("CONTAINERD_ADDRESS", &address).output().unwrap();
            stdout(&out).lines().map(str::to_string).collect::<BTreeSet<String>>()
        };
        let bin = images_product(dir.path(), "on-containerd", "containerd", &dir.path().join("c/bin"));
        let (images, content) = (ctr(&["images", "ls", "-q"]), ctr(&["content", "ls", "-q"]));
        let run = |args: &[&str]| {
            Command::new("sh")
                .arg(&bin)
                .args(args)
                .args(["--containerd-namespace", &namespace])
                .env("CONTAINERD_ADDRESS", &address)
                .env("AIRBIN_STATE_DIR", dir.path().join("state"))
                .env("TMPDIR", dir.path())
                .output()
                .unwrap()
        };
        let out = run(&["--yes"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(ctr(&["images", "ls", "-q"]).len(), images.len() + 2);
        let out = Command::new("sh")
            .arg(&bin)
            .args(["uninstall"])
            .env("CONTAINERD_ADDRESS", &address)
            .env("AIRBIN_STATE_DIR", dir.path().join("state"))
            .env("TMPDIR", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(ctr(&["images", "ls", "-q"]), images, "containerd's images");
        assert_eq!(ctr(&["content", "ls", "-q"]), content, "containerd's content store");
        assert!(!dir.path().join("c").exists());
    }
}
