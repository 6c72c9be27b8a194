//! End to end with the real components: a Docker Engine (the isolated one that
//! hack/test.sh starts, or the host's), Debian's `docker-registry` started here on
//! loopback, and containerd through `ctr`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use airbin_format::Bundle;
use support::registry::Registry;
use support::*;

/// Tests that load images share one engine: they run one at a time.
static ENGINE: Mutex<()> = Mutex::new(());

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap()
}

fn image_id(reference: &str) -> Option<String> {
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", reference]);
    out.status.success().then(|| stdout(&out).trim().to_string())
}

fn remove_images(references: &[String]) {
    for reference in references {
        let _ = docker(&["rmi", "-f", reference]);
    }
}

fn compass_refs() -> Vec<String> {
    let bundle = Bundle::open(compass()).unwrap();
    bundle.index.members.iter().flat_map(|m| m.images.iter()).flat_map(|i| i.tags.clone()).collect()
}

/// The compass sample's config for this host: the registry, and a tools directory.
fn compass_config(dir: &Path, registry: &Registry, root: &Path) -> PathBuf {
    compass_config_at(dir, &registry.address, root)
}

fn compass_config_at(dir: &Path, address: &str, root: &Path) -> PathBuf {
    let config = dir.join("config.yaml");
    fs::write(
        &config,
        format!(
            "cluster_name: test-cluster\nmanagement_nodes:\n  - 127.0.0.1\nregistry_address: {address}\nregistry_root: {}\ntools_dir: {}\n",
            root.display(),
            dir.join("bin").display()
        ),
    )
    .unwrap();
    config
}

/// Installs the compass sample as QA does: --yes --json, with its config.
fn install(bin: &Path, dir: &Path, registry: &Registry, root: &Path, extra: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(bin)
        .args(["install", "--yes", "--json", "--config"])
        .arg(compass_config(dir, registry, root))
        .args(extra)
        .env("TMPDIR", dir)
        .env("AIRBIN_STATE_DIR", dir.join("state"))
        .env("CADM_INSTALL_MARK", dir.join("installed"))
        .output()
        .unwrap()
}

/// A bundle of the sample's release images with one load-images step; `member_opts` and
/// `step_opts` add fields to the member and the step (", compression: xz").
fn sample_images_bundle(dir: &Path, member_opts: &str, step_opts: &str) -> PathBuf {
    let spec_dir = dir.join("spec");
    fs::create_dir_all(&spec_dir).unwrap();
    fs::copy(repo_root().join("samples/compass/images/release-images.tar"), spec_dir.join("images.tar")).unwrap();
    fs::write(
        spec_dir.join("bundle.yaml"),
        format!(
            "name: images\nversion: '1'\nmembers:\n  - {{name: images, kind: image, path: images.tar{member_opts}}}\nsteps:\n  - {{kind: load-images, member: images{step_opts}}}\n"
        ),
    )
    .unwrap();
    build(&spec_dir.join("bundle.yaml"), &dir.join("dist"))
}

#[test]
fn info_and_list_show_images_and_repositories() {
    let out = run(Shell::Dash, compass(), &["list"], Path::new("/tmp"));
    let text = stdout(&out);
    for expected in
        ["image compass/api:2.7.3", "image compass/worker:2.7.3", "repository compass/agent: 2.7.3", "repository compass/busybox: 1.35"]
    {
        assert!(text.contains(expected), "list lacks {expected}: {text}");
    }
    let out = run(Shell::Dash, compass(), &["info", "--json"], Path::new("/tmp"));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(info["members"][0]["images"][0]["id"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!((&info["steps"][0]["kind"], &info["steps"][1]["kind"]), (&"wait-for".into(), &"load-images".into()));
    assert_eq!(info["steps"][2]["roles"], serde_json::json!(["single", "primary"]), "the pack is restored where the registry runs");
    assert_eq!(info["config"]["management_nodes_key"], "management_nodes");
}

#[test]
fn the_compass_sample_loads_its_images_and_restores_a_pack_that_serves() {
    if !docker_ready("the_compass_sample_loads") || !require("docker-registry", "the_compass_sample_loads") {
        return;
    }
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let refs = compass_refs();
    remove_images(&refs);
    let dir = scratch();
    let root = dir.path().join("registry root");
    fs::create_dir(&root).unwrap();
    let registry = Registry::start(&root);

    let out = install(compass(), dir.path(), &registry, &root, &["--engine", "docker"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["done"; 6], "{report}");
    // cadm ran from the staging directory with the config and the bundle's environment.
    let installed = fs::read_to_string(dir.path().join("installed")).unwrap();
    assert_eq!(installed.trim(), format!("compass 2.7.3 cluster=test-cluster registry={}", registry.address));
    assert_eq!(fs::metadata(dir.path().join("bin/cadm")).unwrap().permissions().mode() & 0o777, 0o755, "the extract step's mode");

    let bundle = Bundle::open(compass()).unwrap();
    for image in bundle.index.members.iter().flat_map(|m| &m.images) {
        for tag in &image.tags {
            assert_eq!(image_id(tag).as_deref(), Some(image.id.as_str()), "{tag} in docker with the recorded ID");
        }
    }
    let pack = bundle.index.member("registry-pack").unwrap().registry.clone().unwrap();
    for repo in &pack.repositories {
        for tag in &repo.tags {
            assert_eq!(registry.manifest_status(&repo.name, &tag.tag), 200, "{}:{}", repo.name, tag.tag);
        }
    }
    let pulled = format!("{}/compass/agent:2.7.3", registry.address);
    let pull = docker(&["pull", &pulled]);
    assert!(pull.status.success(), "docker pull {pulled}: {}", stderr(&pull));
    remove_images(&[pulled]);
    // The image member was streamed into the engine, never staged on disk.
    assert!(!dir.path().join("state/compass-component/staging").exists(), "staging removed after a complete install");
    let log = report["log"].as_str().unwrap();
    assert!(fs::read_to_string(log).unwrap().contains("[cadm install] cadm: compass 2.7.3 installed"), "the log holds the step's output");
}

#[test]
fn the_engine_api_path_loads_and_checks_the_same_images() {
    if !docker_ready("the_engine_api_path") || !require("docker-registry", "the_engine_api_path") {
        return;
    }
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let refs = compass_refs();
    remove_images(&refs);
    let dir = scratch();
    let root = dir.path().join("root");
    let registry = Registry::start(&dir.path().join("empty"));
    // Only the API: no docker command on PATH for the bundle.
    let out = Command::new("/bin/bash")
        .arg(compass())
        .args(["--engine", "docker-api", "--yes", "--config"])
        .arg(compass_config_at(dir.path(), &registry.address, &root))
        .env("PATH", launcher_tools_only(dir.path()))
        .env("TMPDIR", dir.path())
        .env("AIRBIN_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    // The registry serves another root, so the online check must fail, naming it.
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("the registry at {} answers 404", registry.address)), "{}", stderr(&out));
    for reference in &refs {
        assert!(image_id(reference).is_some(), "{reference} loaded through the API");
    }
}

#[test]
fn containerd_gets_the_images_in_its_namespace() {
    if !require("ctr", "containerd_gets_the_images") {
        return;
    }
    let address = std::env::var("AIRBIN_TEST_CONTAINERD").ok();
    let how = "AIRBIN_TEST_CONTAINERD names no containerd socket; run the suite with bash hack/test.sh, which sets it";
    if !skip::needs("containerd_gets_the_images", "containerd", address.is_some(), how) {
        return;
    }
    let address = address.expect("checked");
    let dir = scratch();
    let namespace = format!("airbin-test-{}", std::process::id());
    let out = Command::new("sh")
        .arg(compass())
        .args(["--engine", "containerd", "--containerd-namespace", &namespace, "--noexec", "--target"])
        .arg(dir.path().join("noexec"))
        .env("CONTAINERD_ADDRESS", &address)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // --noexec stages all members and loads nothing.
    assert!(dir.path().join("noexec/release-images").is_file());

    let bin = sample_images_bundle(dir.path(), "", ", engine: containerd");
    let out = Command::new("sh")
        .arg(&bin)
        .args(["--containerd-namespace", &namespace])
        .env("CONTAINERD_ADDRESS", &address)
        .env("AIRBIN_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    let listing = Command::new("ctr").args(["-n", &namespace, "images", "ls", "-q"]).env("CONTAINERD_ADDRESS", &address).output().unwrap();
    let names = stdout(&listing);
    for name in ["docker.io/compass/api:2.7.3", "docker.io/compass/worker:2.7.3"] {
        let _ = Command::new("ctr").args(["-n", &namespace, "images", "rm", name]).env("CONTAINERD_ADDRESS", &address).output();
    }
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(names.contains("docker.io/compass/api:2.7.3") && names.contains("docker.io/compass/worker:2.7.3"), "{names}");
}

#[test]
fn podman_gets_the_images_with_the_recorded_ids() {
    if !require("podman", "podman_gets_the_images") {
        return;
    }
    let dir = scratch();
    let conf = podman_store(dir.path());
    let bin = sample_images_bundle(dir.path(), ", compression: xz", "");
    let out = Command::new("dash")
        .arg(&bin)
        .args(["--engine", "podman", "--json"])
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .env("AIRBIN_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    let inspect = Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Id}}", "compass/api:2.7.3"])
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .output()
        .unwrap();
    let _ = Command::new("podman").args(["system", "reset", "--force"]).env("CONTAINERS_STORAGE_CONF", &conf).output();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["steps"][0]["detail"].as_str().unwrap().contains("in podman, IDs checked"), "{report}");
    let bundle = Bundle::open(&bin).unwrap();
    let want = bundle.index.members[0].images.iter().find(|i| i.tags.contains(&"compass/api:2.7.3".to_string())).unwrap();
    assert_eq!(format!("sha256:{}", stdout(&inspect).trim()), want.id);
}

/// A load whose every tag is in the engine with the recorded ID already streams nothing
/// (what a rerun after a kill finds once the engine had committed); a tag that points
/// elsewhere, or --force, loads again.
#[test]
fn images_in_the_engine_with_the_recorded_ids_are_not_loaded_again() {
    if !docker_ready("images_in_the_engine") {
        return;
    }
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let refs = compass_refs();
    remove_images(&refs);
    let dir = scratch();
    let bin = sample_images_bundle(dir.path(), "", "");
    let install = |state: &str, extra: &[&str]| {
        let out = Command::new("sh")
            .arg(&bin)
            .args(["--yes", "--json", "--engine", "docker"])
            .args(extra)
            .env("AIRBIN_STATE_DIR", dir.path().join(state))
            .env("TMPDIR", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["steps"][0]["detail"].as_str().unwrap().to_string()
    };
    assert!(install("first", &[]).contains("IDs checked"), "the first install loads");
    // A fresh state directory: the journal knows nothing, the engine has it all.
    let detail = install("second", &[]);
    assert!(detail.contains("already, with the recorded IDs: not loaded again"), "{detail}");
    assert!(install("second", &["--force"]).contains("IDs checked"), "--force loads again");
    // One tag moved to another image: loaded again, and the tag back where it belongs.
    let worker = refs.iter().find(|r| r.contains("worker")).unwrap();
    let api = refs.iter().find(|r| r.contains("api")).unwrap();
    let want = image_id(worker).unwrap();
    assert!(docker(&["tag", api, worker]).status.success());
    assert!(install("third", &[]).contains("IDs checked"), "a moved tag means a load");
    assert_eq!(image_id(worker).unwrap(), want);
    remove_images(&refs);
}

/// The layers (diff IDs) the images of an image archive are made of.
fn diff_ids(archive: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    let mut tar = tar::Archive::new(fs::File::open(archive).unwrap());
    for entry in tar.entries().unwrap() {
        let entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if path.ends_with(".json") && !path.contains('/') && path != "manifest.json" {
            let config: serde_json::Value = serde_json::from_reader(entry).unwrap();
            ids.extend(config["rootfs"]["diff_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()));
        }
    }
    assert!(!ids.is_empty(), "no image config in {}", archive.display());
    ids
}

/// Where `needle` starts in the archive `archive`, inside the first entry whose path
/// `pick` takes.
fn offset_in_entry(archive: &Path, pick: impl Fn(&str) -> bool, needle: &str) -> u64 {
    let mut tar = tar::Archive::new(fs::File::open(archive).unwrap());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if !path.contains('/') && pick(&path) {
            let start = entry.raw_file_position();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            return start + text.find(needle).unwrap_or_else(|| panic!("no {needle} in {path}")) as u64;
        }
    }
    panic!("no such entry in {}", archive.display())
}

/// What an engine holds of `diff_ids` after a refused load: images, layers, blobs.
enum Leftovers<'a> {
    /// The Docker daemon's layer store: every layer's `diff` file.
    Docker,
    Podman {
        conf: &'a Path,
        graph: &'a Path,
    },
    Containerd {
        address: &'a str,
        namespace: &'a str,
    },
}

impl Leftovers<'_> {
    fn find(&self, refs: &[String], diff_ids: &[String]) -> Vec<String> {
        let mut found = Vec::new();
        match self {
            Leftovers::Docker => {
                found.extend(refs.iter().filter(|r| image_id(r).is_some()).map(|r| format!("image {r}")));
                let info = docker(&["info", "--format", "{{.DockerRootDir}} {{.Driver}}"]);
                let info = stdout(&info);
                let (root, driver) = info.trim().split_once(' ').unwrap();
                let layerdb = Path::new(root).join("image").join(driver).join("layerdb/sha256");
                for layer in fs::read_dir(&layerdb).into_iter().flatten().flatten() {
                    let diff = fs::read_to_string(layer.path().join("diff")).unwrap_or_default();
                    if diff_ids.contains(&diff.trim().to_string()) {
                        found.push(format!("layer {diff}"));
                    }
                }
            }
            Leftovers::Podman { conf, graph } => {
                let images = Command::new("podman").args(["images", "-a", "-q"]).env("CONTAINERS_STORAGE_CONF", conf).output().unwrap();
                found.extend(stdout(&images).lines().map(|id| format!("image {id}")));
                let layers = fs::read_to_string(graph.join("vfs-layers/layers.json")).unwrap_or_else(|_| "[]".into());
                let layers: Vec<serde_json::Value> = serde_json::from_str(&layers).unwrap();
                found.extend(layers.iter().map(|l| format!("layer {}", l["id"])));
            }
            Leftovers::Containerd { address, namespace } => {
                for what in [&["images", "ls", "-q"][..], &["content", "ls", "-q"], &["snapshots", "ls"], &["leases", "ls", "-q"]] {
                    let out = Command::new("ctr").arg("-n").arg(namespace).args(what).env("CONTAINERD_ADDRESS", address).output().unwrap();
                    let lines = stdout(&out);
                    // `snapshots ls` has a header line.
                    let skip = usize::from(what[0] == "snapshots");
                    found.extend(lines.lines().skip(skip).map(|l| format!("{} {l}", what[0])));
                }
            }
        }
        found
    }
}

/// The bundle is verified while the image streams into the engine; the end of the stream
/// waits for the verdict. Whatever the damage (a changed byte in a layer that decodes
/// fine and reaches the engine, a broken tar header the engine trips on first, a
/// compressed member that no longer decodes), every engine is left with no image, no
/// layer and no blob of it, and the install stops with exit 3 and no state directory.
#[test]
fn an_altered_image_member_leaves_nothing_in_any_engine() {
    if !docker_ready("an_altered_image_member") {
        return;
    }
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let refs = compass_refs();
    remove_images(&refs);
    let dir = scratch();
    let archive = repo_root().join("samples/compass/images/release-images.tar");
    let diff_ids = diff_ids(&archive);
    // Bytes an engine would take without complaint and commit: a digit of the first image's
    // creation time (the image would load under another ID) and a letter of a tag in
    // manifest.json (it would load under another name). Offsets into the archive, which
    // a `compression: none` member stores as it is.
    let created = offset_in_entry(&archive, |path| path.ends_with(".json") && path != "manifest.json", "\"created\":\"202") + 3;
    let tag = offset_in_entry(&archive, |path| path == "manifest.json", "compass/api") + 9;
    let mut damaged = Vec::new();
    for codec in ["none", "zstd", "none-then-more"] {
        let work = dir.path().join(codec);
        let bin = match codec {
            // 1 GiB stored after the image keeps the whole-file digest busy for a while
            // after the image has streamed: the engine has had all but the tail, and waits.
            "none-then-more" => {
                fs::create_dir_all(work.join("spec")).unwrap();
                fs::File::create(work.join("spec/more.dat")).unwrap().set_len(1 << 30).unwrap();
                fs::copy(&archive, work.join("spec/images.tar")).unwrap();
                fs::write(
                    work.join("spec/bundle.yaml"),
                    "name: images\nversion: '1'\nmembers:\n  - {name: images, kind: image, path: images.tar, compression: none}\n  - {name: more, kind: file, path: more.dat, compression: none}\nsteps:\n  - {kind: load-images, member: images}\n",
                )
                .unwrap();
                build(&work.join("spec/bundle.yaml"), &work.join("dist"))
            }
            codec => sample_images_bundle(&work, &format!(", compression: {codec}"), ""),
        };
        let bundle = Bundle::open(&bin).unwrap();
        let member = &bundle.index.members[0];
        let places: Vec<(&str, u64)> = match codec {
            "none" => vec![("an image's creation time", created), ("a tag", tag), ("the first tar header", 3)],
            "none-then-more" => vec![("an image's creation time, the verdict late", created)],
            _ => vec![("the middle of the compressed bytes", member.stored_size / 2)],
        };
        for (what, at) in &places {
            let path = work.join(format!("altered-{}.bin", damaged.len()));
            match places.len() {
                1 => fs::rename(&bin, &path).unwrap(),
                _ => drop(fs::copy(&bin, &path).unwrap()),
            }
            let file = fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
            let mut byte = [0u8];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut byte, member.offset + at).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, &[byte[0] ^ 0x01], member.offset + at).unwrap();
            damaged.push((format!("{codec} member, {what}"), path));
        }
        let _ = fs::remove_file(&bin);
    }

    let podman = require("podman", "an_altered_image_member_leaves_nothing_in_any_engine");
    let containerd = std::env::var("AIRBIN_TEST_CONTAINERD").ok();
    let how = "AIRBIN_TEST_CONTAINERD names no containerd socket; run the suite with bash hack/test.sh, which sets it";
    let containerd_ok = skip::needs("an_altered_image_member_leaves_nothing_in_any_engine", "containerd", containerd.is_some(), how);
    let containerd = containerd.filter(|_| containerd_ok);
    fs::create_dir_all(dir.path().join("podman")).unwrap();
    let conf = podman_store(&dir.path().join("podman"));
    let graph = dir.path().join("podman/graph");
    let namespace = format!("airbin-altered-{}", std::process::id());
    let mut engines: Vec<(&str, Leftovers)> = vec![("docker", Leftovers::Docker), ("docker-api", Leftovers::Docker)];
    if podman {
        engines.push(("podman", Leftovers::Podman { conf: &conf, graph: &graph }));
    } else {
        eprintln!("\n*** an_altered_image_member: podman missing, not tried ***\n");
    }
    if let Some(address) = &containerd {
        engines.push(("containerd", Leftovers::Containerd { address, namespace: &namespace }));
    } else {
        eprintln!("\n*** an_altered_image_member: AIRBIN_TEST_CONTAINERD unset, containerd not tried ***\n");
    }

    for (engine, leftovers) in &engines {
        for (what, bin) in &damaged {
            let state = dir.path().join(format!("state-{engine}"));
            let mut command = Command::new("sh");
            command
                .arg(bin)
                .args(["--yes", "--engine", engine, "--containerd-namespace", &namespace])
                .env("AIRBIN_STATE_DIR", &state)
                .env("TMPDIR", dir.path())
                .env("CONTAINERS_STORAGE_CONF", &conf);
            if let Some(address) = &containerd {
                command.env("CONTAINERD_ADDRESS", address);
            }
            let out = command.output().unwrap();
            let case = format!("{engine}, {what}");
            assert_eq!(out.status.code(), Some(3), "{case}: {}", stderr(&out));
            assert!(stderr(&out).contains("is damaged"), "{case}: {}", stderr(&out));
            assert_eq!(leftovers.find(&refs, &diff_ids), Vec::<String>::new(), "{case}: left in the engine");
            assert!(!state.exists(), "{case}: a state directory was left");
        }
    }
    if podman {
        let _ = Command::new("podman").args(["system", "reset", "--force"]).env("CONTAINERS_STORAGE_CONF", &conf).output();
    }
}

#[test]
fn no_engine_at_all_stops_before_anything_lands() {
    // The host's own engine socket, if it has one, is hidden under a tmpfs of a mount
    // namespace of the test's own.
    if !skip::root("no_engine_at_all") || !require("unshare", "no_engine_at_all") {
        return;
    }
    let dir = scratch();
    // Only what the launcher needs on PATH: no docker, podman or ctr.
    let bin_dir = launcher_tools_only(dir.path());
    // PATH holds the launcher's tools only: everything else by its full path.
    let hide = "/bin/mount -t tmpfs none /run && /bin/mount -t tmpfs none /var/run 2>/dev/null; exec /bin/sh \"$@\"";
    let out = Command::new("/usr/bin/unshare")
        .args(["-m", "/bin/sh", "-c", hide, "sh"])
        .arg(compass())
        .arg("--config")
        .arg(compass_config_at(dir.path(), "127.0.0.1:1", &dir.path().join("root")))
        .arg("--skip-preflight")
        .arg("registry")
        .env("PATH", &bin_dir)
        .env_remove("DOCKER_HOST")
        .env("AIRBIN_STATE_DIR", dir.path().join("state"))
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot load release-images (compass/api:2.7.3, compass/worker:2.7.3): no container engine found"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("state").exists(), "nothing staged before the engine check");
}

#[test]
fn a_stopped_daemon_is_named_with_what_to_do() {
    if !require("docker", "a_stopped_daemon") {
        return;
    }
    let dir = scratch();
    let out = Command::new("sh")
        .arg(compass())
        .arg("--config")
        .arg(compass_config_at(dir.path(), "127.0.0.1:1", &dir.path().join("root")))
        .env("DOCKER_HOST", format!("unix://{}/docker.sock", dir.path().display()))
        .env("AIRBIN_STATE_DIR", dir.path().join("state"))
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot load release-images (compass/api:2.7.3") && err.contains("its daemon does not answer"), "{err}");
    assert!(err.contains("start it"), "{err}");
    // Preflight reports the registry that does not answer in the same report.
    assert!(err.contains("2 problems") && err.contains("  - registry: the registry at 127.0.0.1:1 does not answer"), "{err}");
}

/// An image archive that passes the builder's checks but that docker cannot load: its
/// layer is not a tar stream.
fn unloadable_image(dir: &Path) -> PathBuf {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]},"config":{}}"#;
    let config_hex = airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(config));
    let manifest = format!(r#"[{{"Config":"{config_hex}.json","RepoTags":["airbin/broken:1"],"Layers":["layer/layer.tar"]}}]"#);
    let tar = files_tar(
        Vec::new(),
        &[("manifest.json", manifest.as_bytes()), (&format!("{config_hex}.json"), config), ("layer/layer.tar", b"this is no tar")],
    );
    let path = dir.join("broken.tar");
    fs::write(&path, tar).unwrap();
    fs::write(
        dir.join("bundle.yaml"),
        "name: broken\nversion: '1'\nmembers:\n  - {name: broken-image, kind: image, path: broken.tar}\nsteps:\n  - {kind: load-images, member: broken-image}\n",
    )
    .unwrap();
    build(&dir.join("bundle.yaml"), &dir.join("dist"))
}

#[test]
fn a_load_error_stops_the_install_naming_the_member_cli_and_api() {
    if !docker_ready("a_load_error_stops_the_install") {
        return;
    }
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch();
    let bin = unloadable_image(dir.path());
    for engine in ["docker", "docker-api"] {
        let out =
            Command::new("sh").arg(&bin).args(["--engine", engine]).env("AIRBIN_STATE_DIR", dir.path().join("state")).output().unwrap();
        assert_eq!(out.status.code(), Some(6), "{engine}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("loading the images of broken-image (airbin/broken:1) into") && err.contains("failed"), "{engine}: {err}");
        assert_eq!(image_id("airbin/broken:1"), None);
    }
}

#[test]
fn restore_keeps_what_the_registry_already_has_and_sets_owner_and_mode() {
    if !require("docker-registry", "restore_keeps") {
        return;
    }
    let dir = scratch();
    // A registry root that already serves something else.
    let root = sample_pack_root(dir.path());
    let v2 = root.join("docker/registry/v2/repositories");
    fs::rename(v2.join("compass/busybox"), v2.join("compass/already-here")).unwrap();

    let spec_dir = dir.path().join("spec");
    fs::create_dir(&spec_dir).unwrap();
    fs::copy(repo_root().join("samples/compass/registry/registry-pack.tar"), spec_dir.join("pack.tar")).unwrap();
    fs::write(
        spec_dir.join("bundle.yaml"),
        "name: pack\nversion: '1'\nmembers:\n  - {name: pack, kind: registry-pack, path: pack.tar}\nsteps:\n  - {kind: restore-registry, member: pack, root: /nonexistent, owner: '65534:65534', mode: '0640'}\n",
    )
    .unwrap();
    let bin = build(&spec_dir.join("bundle.yaml"), &dir.path().join("dist"));
    let registry = Registry::start(&root);
    let out = Command::new("busybox")
        .arg("sh")
        .arg(&bin)
        .args(["--registry-root"])
        .arg(&root)
        .args(["--registry-address", &registry.address])
        .env("AIRBIN_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(registry.manifest_status("compass/already-here", "1.35"), 200, "kept");
    assert_eq!(registry.manifest_status("compass/busybox", "1.35"), 200, "restored");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let link = v2.join("compass/busybox/_manifests/tags/1.35/current/link");
    let meta = fs::metadata(&link).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.permissions().mode() & 0o777), (65534, 65534, 0o640));
    let dir_meta = fs::metadata(link.parent().unwrap()).unwrap();
    assert_eq!(dir_meta.permissions().mode() & 0o777, 0o750);
    assert!(entries(&root).iter().all(|e| !e.starts_with(".airbin")), "no restore leftovers: {:?}", entries(&root));
}

#[test]
fn a_registry_pack_that_would_not_serve_is_refused_at_build_time() {
    let dir = scratch();
    let root = sample_pack_root(dir.path());
    // Remove the largest blob: a layer.
    let blobs = root.join("docker/registry/v2/blobs/sha256");
    let mut largest: Option<(u64, PathBuf)> = None;
    for prefix in fs::read_dir(&blobs).unwrap().flatten() {
        for blob in fs::read_dir(prefix.path()).unwrap().flatten() {
            let size = fs::metadata(blob.path().join("data")).unwrap().len();
            if largest.as_ref().is_none_or(|(s, _)| size > *s) {
                largest = Some((size, blob.path()));
            }
        }
    }
    let (_, victim) = largest.unwrap();
    fs::remove_dir_all(&victim).unwrap();
    let hex = victim.file_name().unwrap().to_string_lossy().into_owned();
    fs::write(dir.path().join("bundle.yaml"), "name: p\nversion: '1'\nmembers:\n  - {name: pack, kind: registry-pack, path: src-root}\n")
        .unwrap();
    let outdir = dir.path().join("dist");
    let out = airbin().arg("build").arg(dir.path().join("bundle.yaml")).arg("-o").arg(&outdir).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("would not serve") && err.contains(&format!("layer sha256:{hex} has no blob")), "{err}");
    assert!(!outdir.exists());
}

#[test]
fn a_tarball_that_is_no_image_archive_is_refused_at_build_time() {
    let dir = scratch();
    fs::write(dir.path().join("notimage.tar"), files_tar(Vec::new(), &[("hello.txt", b"hello")])).unwrap();
    fs::write(dir.path().join("bundle.yaml"), "name: p\nversion: '1'\nmembers:\n  - {name: img, kind: image, path: notimage.tar}\n")
        .unwrap();
    let out = airbin().arg("build").arg(dir.path().join("bundle.yaml")).arg("-o").arg(dir.path().join("dist")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not an image archive: it has no manifest.json or index.json"), "{}", stderr(&out));
}

/// A registry root holding the compass sample's pack.
fn sample_pack_root(dir: &Path) -> PathBuf {
    let root = dir.join("src-root");
    fs::create_dir_all(&root).unwrap();
    let pack = repo_root().join("samples/compass/registry/registry-pack.tar");
    assert!(Command::new("tar").arg("-C").arg(&root).arg("-xf").arg(pack).status().unwrap().success());
    root
}

#[test]
fn an_oci_layout_archive_is_inspected_too() {
    if !require("skopeo", "an_oci_layout_archive") {
        return;
    }
    let dir = scratch();
    let archive = repo_root().join("samples/compass/images/release-images.tar");
    let oci = dir.path().join("api-oci.tar");
    let copy = Command::new("skopeo")
        .arg("copy")
        .arg("-q")
        .arg(format!("docker-archive:{}:compass/api:2.7.3", archive.display()))
        .arg(format!("oci-archive:{}:compass/api:2.7.3", oci.display()))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", stderr(&copy));
    fs::write(dir.path().join("bundle.yaml"), "name: oci\nversion: '1'\nmembers:\n  - {name: api, kind: image, path: api-oci.tar}\n")
        .unwrap();
    let bin = build(&dir.path().join("bundle.yaml"), &dir.path().join("dist"));
    let images = Bundle::open(&bin).unwrap().index.members[0].images.clone();
    // skopeo rewrites the config for OCI: the ID is that archive's own config digest.
    let raw = Command::new("skopeo").arg("inspect").arg("--raw").arg(format!("oci-archive:{}", oci.display())).output().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(images[0].tags, ["compass/api:2.7.3"]);
}

#[test]
fn make_registry_pack_packs_a_tree_that_airbin_accepts() {
    if !require("docker-registry", "make_registry_pack") {
        return;
    }
    let dir = scratch();
    let source = Registry::start(&sample_pack_root(dir.path()));
    let list = dir.path().join("images.txt");
    fs::write(&list, "compass/busybox:1.35\n").unwrap();
    let pack = dir.path().join("out/pack.tar");
    // The wrapper runs the airbin under test, with no skopeo or docker-registry on PATH.
    let empty = dir.path().join("empty-path");
    fs::create_dir_all(&empty).unwrap();
    let wrapper = |args: &[&Path]| {
        Command::new("/bin/bash")
            .arg(repo_root().join("hack/make-registry-pack.sh"))
            .args(args)
            .arg(&source.address)
            .env("AIRBIN", env!("CARGO_BIN_EXE_airbin"))
            .env("AIRBIN_CACHE_DIR", dir.path().join("cache"))
            .env("PATH", &empty)
            .output()
            .unwrap()
    };
    let out = wrapper(&[&list, &pack]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    fs::write(
        dir.path().join("bundle.yaml"),
        "name: pk\nversion: '1'\nmembers:\n  - {name: pack, kind: registry-pack, path: out/pack.tar}\n",
    )
    .unwrap();
    let bin = build(&dir.path().join("bundle.yaml"), &dir.path().join("dist"));
    let record = Bundle::open(&bin).unwrap().index.members[0].registry.clone().unwrap();
    assert_eq!(record.repositories.len(), 1);
    assert_eq!(record.repositories[0].name, "compass/busybox");
    assert_eq!(record.repositories[0].tags[0].tag, "1.35");

    // --dir: the tree itself, which a delta needs.
    let tree = dir.path().join("out/tree");
    let out = wrapper(&[Path::new("--dir"), &list, &tree]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(tree.join("docker/registry/v2/repositories/compass/busybox/_manifests/tags/1.35/current/link").is_file());
}

/// A bundle of the sample registry pack whose restore step takes root and address from
/// the product's config.
fn pack_from_config_bundle(dir: &Path) -> PathBuf {
    let spec_dir = dir.join("spec");
    fs::create_dir_all(&spec_dir).unwrap();
    fs::copy(repo_root().join("samples/compass/registry/registry-pack.tar"), spec_dir.join("pack.tar")).unwrap();
    fs::write(
        spec_dir.join("bundle.yaml"),
        "name: cfg\nversion: '1'\nmembers:\n  - {name: pack, kind: registry-pack, path: pack.tar}\nsteps:\n  - {kind: restore-registry, member: pack, root_from_config: registry.root, address_from_config: registry.address}\n",
    )
    .unwrap();
    build(&spec_dir.join("bundle.yaml"), &dir.join("site"))
}

/// A restore overlaps the install's verification and places nothing before its verdict:
/// a pack altered inside a blob (which the registry's layout checks cannot see), its
/// verdict late behind 1 GiB more, leaves a root that did not exist absent and one that
/// did exist as it was, and no state directory.
#[test]
fn an_altered_registry_pack_leaves_the_root_as_it_was() {
    let dir = scratch();
    let spec_dir = dir.path().join("spec");
    fs::create_dir_all(&spec_dir).unwrap();
    let pack = repo_root().join("samples/compass/registry/registry-pack.tar");
    fs::copy(&pack, spec_dir.join("pack.tar")).unwrap();
    fs::File::create(spec_dir.join("more.dat")).unwrap().set_len(1 << 30).unwrap();
    fs::write(
        spec_dir.join("bundle.yaml"),
        "name: pack\nversion: '1'\nmembers:\n  - {name: pack, kind: registry-pack, path: pack.tar, compression: none}\n  - {name: more, kind: file, path: more.dat, compression: none}\nconfig: {required: [root]}\nsteps:\n  - {kind: restore-registry, member: pack, root_from_config: root}\n",
    )
    .unwrap();
    let bin = build(&spec_dir.join("bundle.yaml"), &dir.path().join("dist"));
    // The middle of the first blob's data.
    let mut tar = tar::Archive::new(fs::File::open(&pack).unwrap());
    let in_blob = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy().contains("/blobs/") && e.size() > 1000)
        .map(|e| e.raw_file_position() + e.size() / 2)
        .unwrap();
    let member_offset = Bundle::open(&bin).unwrap().index.members[0].offset;
    let file = fs::OpenOptions::new().read(true).write(true).open(&bin).unwrap();
    let mut byte = [0u8];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut byte, member_offset + in_blob).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[byte[0] ^ 0x01], member_offset + in_blob).unwrap();

    let existing = dir.path().join("existing");
    fs::create_dir_all(existing.join("docker")).unwrap();
    fs::write(existing.join("docker/earlier"), "an earlier file").unwrap();
    for root in [dir.path().join("absent/root"), existing.clone()] {
        let config = dir.path().join("config.yaml");
        fs::write(&config, format!("root: {}\n", root.display())).unwrap();
        let state = dir.path().join("state");
        let out = Command::new("sh")
            .arg(&bin)
            .args(["--yes", "--config"])
            .arg(&config)
            .env("AIRBIN_STATE_DIR", &state)
            .env("TMPDIR", dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{}: {}", root.display(), stderr(&out));
        assert!(stderr(&out).contains("is damaged"), "{}", stderr(&out));
        assert!(!state.exists(), "a state directory was left");
        if root == existing {
            let mut left: Vec<String> = walkdir::WalkDir::new(&root).into_iter().map(|e| e.unwrap().path().display().to_string()).collect();
            left.sort();
            assert_eq!(
                left,
                [root.display().to_string(), format!("{}/docker", root.display()), format!("{}/docker/earlier", root.display())]
            );
        } else {
            assert!(!dir.path().join("absent").exists(), "the root the restore made was left");
        }
    }
}

/// The pack bundle beside its `config` (as a field engineer leaves it), naming a running
/// registry's root and address.
fn pack_site(dir: &Path) -> (PathBuf, PathBuf, Registry) {
    let bin = pack_from_config_bundle(dir);
    let root = dir.join("registry");
    let registry = Registry::start(&root);
    fs::write(dir.join("site/config"), format!("registry:\n  root: {}\n  address: {}\n", root.display(), registry.address)).unwrap();
    (bin, root, registry)
}

#[test]
fn the_registry_root_and_address_can_come_from_the_product_config() {
    if !require("docker-registry", "the_registry_root_and_address_from_config") {
        return;
    }
    let dir = scratch();
    let (bin, _root, registry) = pack_site(dir.path());
    let out = Command::new("sh").arg(&bin).arg("--json").env("AIRBIN_STATE_DIR", dir.path().join("state")).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let detail = report["steps"][0]["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("fetched from {}", registry.address)), "{detail}");
    assert_eq!(registry.manifest_status("compass/agent", "2.7.3"), 200);

    // --config FILE from elsewhere, naming another root: the pack lands there (the
    // registry, serving the same pack from the first root, passes the online check).
    let other_root = dir.path().join("other");
    let config = dir.path().join("elsewhere.yaml");
    fs::write(&config, format!("registry:\n  root: {}\n  address: {}\n", other_root.display(), registry.address)).unwrap();
    let out = Command::new("sh").arg(&bin).arg("--config").arg(&config).env("AIRBIN_STATE_DIR", dir.path().join("state")).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(other_root.join("docker/registry/v2/repositories/compass/agent/_manifests/tags/2.7.3/current/link").is_file());
}

#[test]
fn a_missing_config_or_key_stops_before_anything_lands() {
    let dir = scratch();
    let bin = pack_from_config_bundle(dir.path());
    let state = dir.path().join("state");
    let out = Command::new("sh").arg(&bin).env("AIRBIN_STATE_DIR", &state).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("there is no config at {}", dir.path().join("site/config").display())), "{err}");
    assert!(err.contains(&format!("put it at {} or give --config FILE", dir.path().join("site/config").display())), "{err}");

    fs::write(dir.path().join("site/config"), "registry:\n  address: 127.0.0.1:1\n").unwrap();
    let out = Command::new("sh").arg(&bin).env("AIRBIN_STATE_DIR", &state).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("a key the bundle needs is missing or empty: registry.root"), "{}", stderr(&out));
    assert!(!state.exists(), "nothing staged or locked before the config is complete");
}

/// Every file under `root` with its content's SHA-256: a registry root's whole state.
fn tree_digest(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else {
                let digest = airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(fs::read(&path).unwrap()));
                out.push((path.strip_prefix(root).unwrap().display().to_string(), digest));
            }
        }
    }
    out.sort();
    out
}

fn journal_records(state: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(state.join("compass-component/journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Runs the compass install until the journal holds `records` records (plus `delay`),
/// then kills it with SIGKILL.
fn install_killed_after(dir: &Path, registry: &Registry, root: &Path, records: usize, delay: Duration) {
    let config = compass_config(dir, registry, root);
    let mut child = Command::new("bash")
        .arg(compass())
        .args(["--config"])
        .arg(&config)
        .env("TMPDIR", dir)
        .env("AIRBIN_STATE_DIR", dir.join("state"))
        .env("CADM_INSTALL_MARK", dir.join("installed"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while journal_records(&dir.join("state")).len() < records && child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the install never reached record {records}");
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(delay);
    let _ = child.kill();
    child.wait().unwrap();
}

#[test]
fn kill_9_at_every_step_boundary_and_mid_step_and_the_rerun_ends_as_an_uninterrupted_run() {
    if !docker_ready("kill_9_at_every_step") || !require("docker-registry", "kill_9_at_every_step") {
        return;
    }
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let refs = compass_refs();
    let bundle = Bundle::open(compass()).unwrap();
    let ids: Vec<(String, String)> =
        bundle.index.members.iter().flat_map(|m| &m.images).flat_map(|i| i.tags.iter().map(|t| (t.clone(), i.id.clone()))).collect();

    // The uninterrupted run, for the end state to compare with.
    remove_images(&refs);
    let reference = scratch();
    let ref_root = reference.path().join("root");
    let ref_registry = Registry::start(&ref_root);
    let out = install(compass(), reference.path(), &ref_registry, &ref_root, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected_root = tree_digest(&ref_root);
    let expected_cadm = fs::read(reference.path().join("bin/cadm")).unwrap();
    let full = journal_records(&reference.path().join("state")).len();

    // After each record (a step started or finished), and in the middle of the load
    // (record 2: it started) and of the restore (record 6).
    let mut points: Vec<(usize, Duration)> = (1..full).map(|n| (n, Duration::ZERO)).collect();
    points.extend([(2, Duration::from_millis(60)), (6, Duration::from_millis(20))]);
    for (records, delay) in points {
        let label = format!("killed after record {records} +{delay:?}");
        remove_images(&refs);
        let dir = scratch();
        let root = dir.path().join("root");
        let registry = Registry::start(&root);
        install_killed_after(dir.path(), &registry, &root, records, delay);
        let done_before: Vec<String> = journal_records(&dir.path().join("state"))
            .iter()
            .filter(|r| r["event"] == "step-done")
            .map(|r| r["step"].as_str().unwrap().to_string())
            .collect();

        let out = install(compass(), dir.path(), &registry, &root, &[]);
        assert!(out.status.success(), "{label}: {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for step in report["steps"].as_array().unwrap() {
            let name = step["name"].as_str().unwrap();
            let expected = if done_before.iter().any(|d| d == name) { "already-done" } else { "done" };
            assert_eq!(step["state"], expected, "{label}: {name}: {report}");
        }
        for (tag, id) in &ids {
            assert_eq!(image_id(tag).as_deref(), Some(id.as_str()), "{label}: {tag}");
        }
        assert_eq!(tree_digest(&root), expected_root, "{label}: the registry root equals an uninterrupted run's");
        assert_eq!(fs::read(dir.path().join("bin/cadm")).unwrap(), expected_cadm, "{label}");
        assert!(dir.path().join("installed").is_file(), "{label}: cadm install ran");
        assert_eq!(registry.manifest_status("compass/agent", "2.7.3"), 200, "{label}");
    }
    remove_images(&refs);
}

#[test]
fn a_rerun_repairs_a_blob_whose_content_does_not_match_its_digest() {
    if !require("docker-registry", "a_rerun_repairs_a_blob") {
        return;
    }
    let dir = scratch();
    let (bin, root, _registry) = pack_site(dir.path());
    let run = |extra: &[&str]| Command::new("sh").arg(&bin).args(extra).env("AIRBIN_STATE_DIR", dir.path().join("state")).output().unwrap();
    assert!(run(&[]).status.success());
    // Damage one blob in the root, as a disk error or a half copy would.
    let blobs = root.join("docker/registry/v2/blobs/sha256");
    let victim =
        fs::read_dir(&blobs).unwrap().flatten().flat_map(|d| fs::read_dir(d.path()).unwrap().flatten()).next().unwrap().path().join("data");
    let good = fs::read(&victim).unwrap();
    fs::write(&victim, b"damaged").unwrap();
    let out = run(&["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("replaced 1 blob(s)") && stderr(&out).contains("did not match their digest"), "{}", stderr(&out));
    assert_eq!(fs::read(&victim).unwrap(), good, "repaired from the bundle");
}

#[test]
fn a_user_who_may_not_open_the_docker_socket_gets_a_permission_error() {
    if !docker_ready("a_user_who_may_not_open_the_docker_socket") || !require("setpriv", "a_user_who_may_not_open") {
        return;
    }
    let socket = match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    };
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
    let bin = dir.path().join("compass.bin");
    fs::copy(compass(), &bin).unwrap();
    let config = compass_config_at(dir.path(), "127.0.0.1:1", &dir.path().join("root"));
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "sh"])
        .arg(&bin)
        .arg("--config")
        .arg(&config)
        .args(["--skip-preflight", "registry"])
        .env("TMPDIR", &tmp)
        .env("AIRBIN_STATE_DIR", tmp.join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("permission denied on the Docker socket {}", socket.display())) && err.contains("run the bundle as root"),
        "{err}"
    );
}

/// A docker-archive of one image whose one layer holds `bytes` of random data.
fn big_image(dir: &Path, bytes: usize) -> PathBuf {
    big_image_tagged(dir, bytes, "airbin/big:1")
}

fn big_image_tagged(dir: &Path, bytes: usize, tag: &str) -> PathBuf {
    image_archive(&dir.join("big.tar"), tag, &[&random_bytes(bytes, 11)])
}

#[test]
fn an_engine_that_goes_away_mid_load_is_named_as_such() {
    if !require("dockerd", "an_engine_that_goes_away") {
        return;
    }
    let dir = scratch();
    let spec = dir.path().join("spec");
    fs::create_dir(&spec).unwrap();
    big_image(&spec, 200 << 20);
    fs::write(spec.join("bundle.yaml"), "name: big\nversion: '1'\nmembers:\n  - {name: big, kind: image, path: big.tar, compression: none}\nsteps:\n  - {kind: load-images, member: big, engine: docker-api}\n").unwrap();
    let bin = build(&spec.join("bundle.yaml"), &dir.path().join("dist"));
    fs::remove_dir_all(&spec).unwrap();
    // An engine of its own, to kill: short path, for the socket.
    let engine = tempfile::Builder::new().prefix("airbin-gone-").tempdir_in("/tmp").unwrap();
    let started = Command::new("bash").arg(repo_root().join("hack/dockerd.sh")).arg("start").arg(engine.path()).output().unwrap();
    assert!(started.status.success(), "{}", stderr(&started));
    let socket = engine.path().join("docker.sock");
    let child = Command::new("sh")
        .arg(&bin)
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("AIRBIN_STATE_DIR", dir.path().join("state"))
        .env("TMPDIR", dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = fs::read_to_string(engine.path().join("docker.pid")).unwrap();
    let (status, seen) = act_when(child, "load: 0%", Duration::from_millis(300), |_| {
        Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    });
    let _ = Command::new("bash").arg(repo_root().join("hack/dockerd.sh")).arg("stop").arg(engine.path()).status();
    assert_eq!(status.code(), Some(6), "{seen:?}");
    let text = seen.join("\n");
    assert!(text.contains("the engine went away in the middle of the load") && !text.contains("no status line"), "{text}");
}

#[test]
fn a_rerun_after_a_kill_once_the_engine_had_the_whole_stream_waits_for_that_load() {
    if !docker_ready("a_rerun_after_a_kill_once_the_engine_had_the_whole_stream") {
        return;
    }
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let tag = "airbin/handed-over:1";
    let _ = docker(&["rmi", "-f", tag]);
    let dir = scratch();
    let spec = dir.path().join("spec");
    fs::create_dir(&spec).unwrap();
    big_image_tagged(&spec, 150 << 20, tag);
    fs::write(
        spec.join("bundle.yaml"),
        "name: handed\nversion: '1'\nmembers:\n  - {name: big, kind: image, path: big.tar, compression: none}\nsteps:\n  - {name: load, kind: load-images, member: big, engine: docker-api}\n",
    )
    .unwrap();
    let bin = build(&spec.join("bundle.yaml"), &dir.path().join("dist"));
    let state = dir.path().join("state");
    let journal = state.join("handed/journal.jsonl");
    let run = || Command::new("sh").arg(&bin).env("AIRBIN_STATE_DIR", &state).env("TMPDIR", dir.path()).output().unwrap();

    // Killed once the engine has had the last byte: the engine goes on without its client.
    let mut install = Command::new("sh")
        .arg(&bin)
        .env("AIRBIN_STATE_DIR", &state)
        .env("TMPDIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !fs::read_to_string(&journal).unwrap_or_default().contains("\"step-handed-over\"") {
        assert!(install.try_wait().unwrap().is_none(), "the install ended before it handed the stream over");
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    install.kill().unwrap();
    install.wait().unwrap();
    // The rerun does not stream the archive again: it waits for the engine, or finds the image there.
    let out = run();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("loading the images of"), "streamed again: {err}");
    assert!(
        err.contains("loaded from the stream a killed run had handed over whole") || err.contains("already, with the recorded IDs"),
        "{err}"
    );
    let recorded = Bundle::open(&bin).unwrap().index.members[0].images[0].id.clone();
    assert_eq!(image_id(tag).as_deref(), Some(recorded.as_str()));

    // An engine that dropped what it was handed (restarted, say): after a bounded wait, the load runs again.
    let _ = docker(&["rmi", "-f", tag]);
    let mut records = fs::read_to_string(&journal).unwrap();
    let run_id = "2026-01-01T000000Z-1";
    for event in
        [r#""event":"step-started","step":"load","attempt":1"#, r#""event":"step-handed-over","step":"load","attempt":1,"seconds":0.1"#]
    {
        let bundle_sha = Bundle::open(&bin).unwrap().sha256();
        records.push_str(&format!("{{\"at\":\"2026-01-01T00:00:00Z\",\"run\":\"{run_id}\",\"bundle\":\"{bundle_sha}\",{event}}}\n"));
    }
    fs::write(&journal, records).unwrap();
    let out = run();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("waiting up to 20s") && err.contains("did not finish the earlier load of big in time: loading again"), "{err}");
    assert_eq!(image_id(tag).as_deref(), Some(recorded.as_str()));
    let _ = docker(&["rmi", "-f", tag]);
}
