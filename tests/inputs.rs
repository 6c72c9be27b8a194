//! Image inputs without scripts: `image` and `registry-pack` members made by `airbin
//! build` from an image list, with real parts on every side. The sources are Debian's
//! `docker-registry` (plain, behind htpasswd, behind a token realm, over TLS with a
//! site CA), a Docker Engine (`docker-daemon`) and an OCI layout skopeo wrote; what
//! airbin makes is restored by the stub and served by a real registry, which `docker
//! pull` reads, and loaded into docker, podman and containerd.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use support::realm::{self, Realm};
use support::registry::Registry;
use support::tls::site_ca;
use support::*;

/// Tests that load or pull images share one engine: they run one at a time.
static ENGINE: Mutex<()> = Mutex::new(());

const USER: &str = "builder";
const PASSWORD: &str = "s3cret-pass";
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A manifest as `base` (`http://host:port`) serves it: its digest and its JSON.
fn served(base: &str, repo: &str, at: &str, authorization: Option<&str>) -> Option<(String, serde_json::Value)> {
    let mut request = ureq::get(&format!("{base}/v2/{repo}/manifests/{at}")).set("Accept", ACCEPT);
    if let Some(value) = authorization {
        request = request.set("Authorization", value);
    }
    let response = request.call().ok()?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    Some((sha256(&bytes), serde_json::from_slice(&bytes).unwrap()))
}

fn basic_auth() -> String {
    use ct_codecs::{Base64, Encoder};
    format!("Basic {}", Base64::encode_to_string(format!("{USER}:{PASSWORD}")).unwrap())
}

/// Images a source holds: `repo:tag` → (manifest digest, image ID), as its registry
/// serves them.
#[derive(Default)]
struct Source {
    root: PathBuf,
    images: BTreeMap<String, (String, String)>,
}

/// One image to put in a source: its tag, its layers' contents, its architecture.
struct Image<'a> {
    tag: &'a str,
    layers: Vec<Vec<u8>>,
    arch: &'a str,
}

fn image<'a>(tag: &'a str, seeds: &[u64]) -> Image<'a> {
    Image { tag, layers: seeds.iter().map(|s| random_bytes(4096 + *s as usize * 17, *s)).collect(), arch: "amd64" }
}

/// Pushes each image with skopeo into a registry over `root` (started for it, stopped
/// after): the storage a test's source registry then serves.
fn populate(dir: &Path, root: &Path, images: &[Image]) -> Source {
    let registry = Registry::start(root);
    let mut source = Source { root: root.to_path_buf(), ..Default::default() };
    for (i, image) in images.iter().enumerate() {
        let layers: Vec<&[u8]> = image.layers.iter().map(Vec::as_slice).collect();
        let archive = image_archive_for(&dir.join(format!("push-{i}.tar")), image.tag, &layers, image.arch);
        let out = Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false", "--quiet"])
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("docker://{}/{}", registry.address, image.tag))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo: {}", stderr(&out));
        let (repo, tag) = image.tag.rsplit_once(':').unwrap();
        let (digest, manifest) = served(&format!("http://{}", registry.address), repo, tag, None).unwrap();
        source.images.insert(image.tag.to_string(), (digest, manifest["config"]["digest"].as_str().unwrap().to_string()));
    }
    source
}

/// A spec directory: `bundle.yaml` with these members, a restore step for every
/// registry-pack member and a load step for every image member.
fn spec_dir(dir: &Path, name: &str, members: &str) -> PathBuf {
    let spec = dir.join(name);
    fs::create_dir_all(&spec).unwrap();
    let mut steps = String::new();
    for line in members.lines().filter(|l| l.contains("kind: registry-pack")) {
        let member = line.split("name: ").nth(1).unwrap().split([',', '}']).next().unwrap();
        steps.push_str(&format!(
            "  - {{name: restore-{member}, kind: restore-registry, member: {member}, root_from_config: registry_root}}\n"
        ));
    }
    for line in members.lines().filter(|l| l.contains("kind: image,")) {
        let member = line.split("name: ").nth(1).unwrap().split([',', '}']).next().unwrap();
        steps.push_str(&format!("  - {{name: load-{member}, kind: load-images, member: {member}}}\n"));
    }
    let config = if steps.contains("registry_root") { "config: {required: [registry_root]}\n" } else { "" };
    let steps = if steps.is_empty() { " []\n".to_string() } else { format!("\n{steps}") };
    fs::write(spec.join("bundle.yaml"), format!("name: listed\nversion: '1.0'\nmembers:\n{members}{config}steps:{steps}")).unwrap();
    spec
}

/// `airbin build` as a release engineer runs it, with nothing on PATH but an empty
/// directory: no skopeo, no docker-registry, no docker.
fn build_listed(spec: &Path, out: &Path, cache: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let empty = spec.parent().unwrap().join("empty-path");
    fs::create_dir_all(&empty).unwrap();
    let mut command = airbin();
    command.arg("build").arg(spec).arg("-o").arg(out).args(extra).env("AIRBIN_CACHE_DIR", cache).env("PATH", &empty);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn built(output: &Output) -> PathBuf {
    assert!(output.status.success(), "airbin build failed: {}", stderr(output));
    PathBuf::from(stdout(output).trim())
}

fn lock_of(spec: &Path) -> serde_json::Value {
    serde_yaml::from_str(&fs::read_to_string(spec.join("bundle.lock")).expect("bundle.lock beside the spec")).unwrap()
}

/// The lock's entries of `member`: reference → (digest, id).
fn locked(spec: &Path, member: &str) -> BTreeMap<String, (String, String)> {
    let lock = lock_of(spec);
    lock["members"][member]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            (e["reference"].as_str().unwrap().to_string(), (e["digest"].as_str().unwrap().to_string(), id))
        })
        .collect()
}

/// The site's config under `dir`: where a registry pack is restored (`restored`).
fn site_config(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let config = dir.join("site.yaml");
    fs::write(&config, format!("registry_root: {}\n", dir.join("restored").display())).unwrap();
    config
}

/// Runs the bundle's steps as a field engineer does, the registry root in its config;
/// the restored root.
fn install(bin: &Path, dir: &Path, engine: Option<&str>) -> PathBuf {
    let root = dir.join("restored");
    let config = site_config(dir);
    let mut command = Command::new("bash");
    command.arg(bin).args(["--yes", "--config"]).arg(&config).env("AIRBIN_STATE_DIR", dir.join("state"));
    if let Some(engine) = engine {
        command.args(["--engine", engine]);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "install: {}", stderr(&out));
    root
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

/// Pulls every image of `source` from a registry serving `root` (the pack the stub
/// restored), and checks that docker gets the source's manifest digest and image ID.
fn assert_pulls_as_the_source(root: &Path, source: &Source) {
    let registry = Registry::start(root);
    for (tag, (digest, id)) in &source.images {
        let reference = format!("{}/{tag}", registry.address);
        let out = docker(&["pull", "-q", &reference]);
        assert!(out.status.success(), "docker pull {reference}: {}", stderr(&out));
        let inspect = docker(&["image", "inspect", "--format", "{{.Id}} {{range .RepoDigests}}{{.}} {{end}}", &reference]);
        let _ = docker(&["rmi", "-f", &reference]);
        let text = stdout(&inspect);
        let repo = tag.rsplit_once(':').unwrap().0;
        assert!(text.starts_with(id.as_str()), "{reference}: image ID {text}, the source's {id}");
        assert!(text.contains(&format!("{}/{repo}@{digest}", registry.address)), "{reference}: digests {text}, the source's {digest}");
    }
}

#[test]
fn a_pack_from_a_registry_behind_basic_auth_is_served_with_the_source_digests() {
    let test = "a_pack_from_a_registry_behind_basic_auth";
    if !require("docker-registry", test) || !require("skopeo", test) || !docker_ready(test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let images = [image("sample/app:1.0", &[1, 2]), image("sample/app:1.1", &[1, 3]), image("tools/probe:2", &[4])];
    let source = populate(d, &d.join("source"), &images);
    let registry = Registry::start_with(&source.root, Some((USER, PASSWORD)));
    let base = format!("http://{}", registry.address);
    assert!(served(&base, "sample/app", "1.0", None).is_none(), "the source wants credentials");
    assert_eq!(served(&base, "sample/app", "1.0", Some(&basic_auth())).unwrap().0, source.images["sample/app:1.0"].0);
    let spec = spec_dir(
        d,
        "spec",
        &format!(
            "  - {{name: pack, kind: registry-pack, images: [sample/app:1.0], images_file: images.txt, from: '{}', username: '${{env.SRC_USER}}', password: '${{env.SRC_PASS}}'}}\n",
            registry.address
        ),
    );
    fs::write(spec.join("images.txt"), "# the product's images\nsample/app:1.1\n\ntools/probe:2   # the probe\nsample/app:1.0\n").unwrap();
    let creds = [("SRC_USER", USER), ("SRC_PASS", PASSWORD)];
    let bin = built(&build_listed(&spec, &d.join("dist"), &d.join("cache"), &[], &creds));

    // The lock pins what the source served; every image is in it once.
    let pinned = locked(&spec, "pack");
    assert_eq!(pinned.keys().collect::<Vec<_>>(), source.images.keys().collect::<Vec<_>>());
    for (tag, (digest, id)) in &source.images {
        assert_eq!(&pinned[tag], &(digest.clone(), id.clone()), "{tag}");
    }
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let root = install(&bin, d, None);
    assert_pulls_as_the_source(&root, &source);
}

#[test]
fn credentials_come_from_the_docker_config_and_their_absence_is_named() {
    let test = "credentials_come_from_the_docker_config";
    if !require("docker-registry", test) || !require("skopeo", test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let source = populate(d, &d.join("source"), &[image("sample/app:1.0", &[11])]);
    let registry = Registry::start_with(&source.root, Some((USER, PASSWORD)));
    let spec =
        spec_dir(d, "spec", &format!("  - {{name: pack, kind: registry-pack, images: [sample/app:1.0], from: '{}'}}\n", registry.address));

    // No credentials anywhere: the report says so, and what to do.
    let empty_config = d.join("no-docker-config");
    fs::create_dir_all(&empty_config).unwrap();
    let env = [("DOCKER_CONFIG", empty_config.to_str().unwrap())];
    let out = build_listed(&spec, &d.join("dist"), &d.join("cache"), &[], &env);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sample/app:1.0 (member pack) from 127.0.0.1"), "{}", stderr(&out));
    assert!(stderr(&out).contains("wants credentials (401): docker login to it"), "{}", stderr(&out));

    // `docker login`'s config.json, with the auth field it writes.
    use ct_codecs::{Base64, Encoder};
    let config_dir = d.join("docker-config");
    fs::create_dir_all(&config_dir).unwrap();
    let auth = Base64::encode_to_string(format!("{USER}:{PASSWORD}")).unwrap();
    fs::write(config_dir.join("config.json"), serde_json::json!({"auths": {registry.address.clone(): {"auth": auth}}}).to_string())
        .unwrap();
    let env = [("DOCKER_CONFIG", config_dir.to_str().unwrap())];
    built(&build_listed(&spec, &d.join("dist"), &d.join("cache"), &[], &env));
    assert_eq!(locked(&spec, "pack")["sample/app:1.0"].0, source.images["sample/app:1.0"].0);

    // Wrong credentials in the spec: refused, named.
    let spec = spec_dir(
        d,
        "wrong",
        &format!(
            "  - {{name: pack, kind: registry-pack, images: [sample/app:1.0], from: '{}', username: builder, password: nope}}\n",
            registry.address
        ),
    );
    let out = build_listed(&spec, &d.join("dist-wrong"), &d.join("cache-wrong"), &[], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refused the credentials (401)"), "{}", stderr(&out));
}

#[test]
fn a_registry_behind_a_token_realm_gives_its_images_for_a_bearer_token() {
    let test = "a_registry_behind_a_token_realm";
    if !require("docker-registry", test) || !require("skopeo", test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let source = populate(d, &d.join("source"), &[image("sample/app:1.0", &[21, 22]), image("sample/db:5", &[23])]);
    let realm = Realm::start(USER, PASSWORD);
    let registry = Registry::start_with_tokens(&source.root, &realm.url, realm::SERVICE, realm::ISSUER, &realm.cert_pem);
    // Without a token the registry refuses: the realm is what lets the build in.
    assert!(served(&format!("http://{}", registry.address), "sample/app", "1.0", None).is_none());
    let members = |password: &str| {
        format!(
            "  - {{name: pack, kind: registry-pack, images: [sample/app:1.0, sample/db:5], from: '{}', username: {USER}, password: {password}}}\n  - {{name: images, kind: image, images: [sample/db:5], from: '{}', username: {USER}, password: {password}}}\n",
            registry.address, registry.address
        )
    };
    let spec = spec_dir(d, "spec", &members(PASSWORD));
    built(&build_listed(&spec, &d.join("dist"), &d.join("cache"), &[], &[]));
    assert!(realm.issued.load(std::sync::atomic::Ordering::SeqCst) >= 2, "a token for each repository");
    for (member, tags) in [("pack", vec!["sample/app:1.0", "sample/db:5"]), ("images", vec!["sample/db:5"])] {
        let pinned = locked(&spec, member);
        for tag in tags {
            assert_eq!(pinned[tag], source.images[tag], "{member}: {tag}");
        }
    }

    // The realm refuses a wrong password: every image is named, nothing is built.
    let spec = spec_dir(d, "wrong", &members("wrong"));
    let out = build_listed(&spec, &d.join("dist-wrong"), &d.join("cache-wrong"), &[], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("3 image(s) could not be had"), "{err}");
    assert!(err.contains("the token service at http://127.0.0.1:"), "{err}");
    assert!(entries(&d.join("dist-wrong")).is_empty() && !spec.join("bundle.lock").exists());
}

#[test]
fn tls_with_the_sites_ca_is_trusted_and_without_it_refused_with_the_fix() {
    let test = "tls_with_the_sites_ca";
    if !require("docker-registry", test) || !require("skopeo", test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let source = populate(d, &d.join("source"), &[image("sample/app:1.0", &[31])]);
    let ca = site_ca();
    let registry = Registry::start_tls(&source.root, &ca.cert_pem, &ca.key_pem);
    let port = registry.address.rsplit_once(':').unwrap().1;
    fs::create_dir_all(d.join("certs")).unwrap();
    fs::write(d.join("certs/site-ca.pem"), &ca.ca_pem).unwrap();

    // `ca:` means TLS, even to a loopback name; by name and by address.
    for (name, from) in [("by-name", format!("localhost:{port}")), ("by-address", format!("https://127.0.0.1:{port}"))] {
        let spec = spec_dir(
            d,
            name,
            &format!("  - {{name: pack, kind: registry-pack, images: [sample/app:1.0], from: '{from}', ca: ../certs/site-ca.pem}}\n"),
        );
        built(&build_listed(&spec, &d.join(format!("dist-{name}")), &d.join(format!("cache-{name}")), &[], &[]));
        assert_eq!(locked(&spec, "pack")["sample/app:1.0"], source.images["sample/app:1.0"], "{name}");
    }

    // Without the CA the certificate is not trusted: the report names the fix.
    let spec = spec_dir(
        d,
        "no-ca",
        &format!("  - {{name: pack, kind: registry-pack, images: [sample/app:1.0], from: 'https://127.0.0.1:{port}'}}\n"),
    );
    let out = build_listed(&spec, &d.join("dist-no-ca"), &d.join("cache-no-ca"), &[], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("give the registry's CA certificate with `ca:`"), "{}", stderr(&out));
    // A CA file that is no certificate is the spec's error, before anything is fetched.
    fs::write(d.join("certs/bad.pem"), "not a certificate\n").unwrap();
    let spec = spec_dir(
        d,
        "bad-ca",
        &format!("  - {{name: pack, kind: registry-pack, images: [sample/app:1.0], from: 'localhost:{port}', ca: ../certs/bad.pem}}\n"),
    );
    let out = build_listed(&spec, &d.join("dist-bad-ca"), &d.join("cache-bad-ca"), &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.pem"), "{}", stderr(&out));
}

/// The engines a test can load into besides docker: podman (a private store) and
/// containerd (the socket hack/test.sh starts), each checked for the image's ID.
fn assert_loads_everywhere(bin: &Path, dir: &Path, ids: &BTreeMap<String, String>) {
    // Docker: the tags gone first, so that the bundle's load is what puts them back.
    for tag in ids.keys() {
        let _ = docker(&["rmi", "-f", tag]);
    }
    install(bin, &dir.join("docker"), Some("docker"));
    for (tag, id) in ids {
        let out = docker(&["image", "inspect", "--format", "{{.Id}}", tag]);
        let _ = docker(&["rmi", "-f", tag]);
        assert_eq!(stdout(&out).trim(), id, "docker: {tag}");
    }
    if require("podman", "assert_loads_everywhere") {
        fs::create_dir_all(dir.join("podman")).unwrap();
        let conf = podman_store(&dir.join("podman"));
        let out = Command::new("bash")
            .arg(bin)
            .args(["--yes", "--engine", "podman", "--config"])
            .arg(site_config(&dir.join("podman")))
            .env("CONTAINERS_STORAGE_CONF", &conf)
            .env("AIRBIN_STATE_DIR", dir.join("podman/state"))
            .output()
            .unwrap();
        let mut found = BTreeMap::new();
        for tag in ids.keys() {
            let inspect = Command::new("podman")
                .args(["image", "inspect", "--format", "{{.Id}}", tag])
                .env("CONTAINERS_STORAGE_CONF", &conf)
                .output()
                .unwrap();
            found.insert(tag.clone(), format!("sha256:{}", stdout(&inspect).trim()));
        }
        let _ = Command::new("podman").args(["system", "reset", "--force"]).env("CONTAINERS_STORAGE_CONF", &conf).output();
        assert!(out.status.success(), "podman: {}", stderr(&out));
        assert_eq!(&found, ids, "podman");
    }
    let address = std::env::var("AIRBIN_TEST_CONTAINERD").ok();
    let how = "AIRBIN_TEST_CONTAINERD names no containerd socket; run the suite with bash hack/test.sh, which sets it";
    if require("ctr", "assert_loads_everywhere") && skip::needs("assert_loads_everywhere", "containerd", address.is_some(), how) {
        let address = address.expect("checked");
        let namespace = format!("airbin-inputs-{}", std::process::id());
        let ctr =
            |args: &[&str]| Command::new("ctr").arg("-n").arg(&namespace).args(args).env("CONTAINERD_ADDRESS", &address).output().unwrap();
        let out = Command::new("bash")
            .arg(bin)
            .args(["--yes", "--engine", "containerd", "--containerd-namespace", &namespace, "--config"])
            .arg(site_config(&dir.join("containerd")))
            .env("CONTAINERD_ADDRESS", &address)
            .env("AIRBIN_STATE_DIR", dir.join("containerd-state"))
            .output()
            .unwrap();
        let listing = stdout(&ctr(&["images", "ls"]));
        let mut found = BTreeMap::new();
        for tag in ids.keys() {
            let name = format!("docker.io/{tag}");
            let manifest =
                listing.lines().find(|l| l.split_whitespace().next() == Some(name.as_str())).and_then(|l| l.split_whitespace().nth(2));
            if let Some(digest) = manifest {
                let json: serde_json::Value = serde_json::from_slice(&ctr(&["content", "get", digest]).stdout).unwrap_or_default();
                found.insert(tag.clone(), json["config"]["digest"].as_str().unwrap_or_default().to_string());
            }
            let _ = ctr(&["images", "rm", &name]);
        }
        assert!(out.status.success(), "containerd: {}", stderr(&out));
        assert_eq!(&found, ids, "containerd");
    }
}

#[test]
fn an_image_member_from_a_registry_loads_into_every_engine_with_the_source_ids() {
    let test = "an_image_member_from_a_registry_loads";
    if !require("docker-registry", test) || !require("skopeo", test) || !docker_ready(test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let tags = [format!("inputs-{}/api:3.1", std::process::id()), format!("inputs-{}/worker:3.1", std::process::id())];
    let source = populate(d, &d.join("source"), &[image(&tags[0], &[41, 42, 43]), image(&tags[1], &[41, 44])]);
    let registry = Registry::start(&source.root);
    let spec = spec_dir(
        d,
        "spec",
        &format!("  - {{name: images, kind: image, images: ['{}', '{}'], from: '{}'}}\n", tags[0], tags[1], registry.address),
    );
    let bin = built(&build_listed(&spec, &d.join("dist"), &d.join("cache"), &[], &[]));
    let ids: BTreeMap<String, String> = source.images.iter().map(|(t, (_, id))| (t.clone(), id.clone())).collect();
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    assert_loads_everywhere(&bin, d, &ids);
}

#[test]
fn the_docker_daemon_is_a_source_for_packs_and_archives_with_its_own_ids() {
    let test = "the_docker_daemon_is_a_source";
    if !require("docker-registry", test) || !docker_ready(test) {
        return;
    }
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch();
    let d = dir.path();
    let tag = format!("inputs-daemon-{}/app:7", std::process::id());
    let rootfs = files_tar(Vec::new(), &[("etc/product", b"daemon source\n"), ("bin/data", &random_bytes(20000, 51))]);
    let out = Command::new("docker").args(["import", "-", &tag]).stdin(std::process::Stdio::piped()).spawn().and_then(|mut child| {
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &rootfs)?;
        drop(child.stdin.take());
        child.wait_with_output()
    });
    assert!(out.unwrap().status.success());
    let id = stdout(&docker(&["image", "inspect", "--format", "{{.Id}}", &tag])).trim().to_string();
    let spec = spec_dir(
        d,
        "spec",
        &format!(
            "  - {{name: pack, kind: registry-pack, images: ['{tag}'], from: docker-daemon}}\n  - {{name: images, kind: image, images: ['{tag}'], from: docker-daemon}}\n"
        ),
    );
    let docker_host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let bin = built(&build_listed(&spec, &d.join("dist"), &d.join("cache"), &[], &[("DOCKER_HOST", &docker_host)]));
    assert_eq!(locked(&spec, "images")[&tag].1, id, "the lock records the engine's image ID");

    // The pack serves the image with the engine's ID; the archive loads with it.
    let root = install(&bin, &d.join("pack"), None);
    let registry = Registry::start(&root);
    let pulled = format!("{}/{tag}", registry.address);
    let out = docker(&["pull", "-q", &pulled]);
    assert!(out.status.success(), "docker pull: {}", stderr(&out));
    let got = stdout(&docker(&["image", "inspect", "--format", "{{.Id}}", &pulled])).trim().to_string();
    let _ = docker(&["rmi", "-f", &pulled]);
    assert_eq!(got, id);
    let ids = BTreeMap::from([(tag.clone(), id.clone())]);
    assert_loads_everywhere(&bin, &d.join("loads"), &ids);

    // The engine without the image: named, with what to do.
    let spec = spec_dir(d, "missing", "  - {name: images, kind: image, images: ['inputs-none/absent:1'], from: docker-daemon}\n");
    let out = build_listed(&spec, &d.join("dist-missing"), &d.join("cache"), &[], &[("DOCKER_HOST", &docker_host)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("inputs-none/absent:1 (member images) from docker-daemon: the engine has no image"), "{}", stderr(&out));
}

#[test]
fn an_oci_layout_from_skopeo_makes_a_pack_and_an_archive() {
    let test = "an_oci_layout_from_skopeo";
    if !require("docker-registry", test) || !require("skopeo", test) || !docker_ready(test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let spec = d.join("spec");
    fs::create_dir_all(&spec).unwrap();
    let tags = [format!("inputs-oci-{}/app:1.0", std::process::id()), format!("inputs-oci-{}/app:1.1", std::process::id())];
    let mut source = Source::default();
    for (i, tag) in tags.iter().enumerate() {
        let archive = image_archive(&d.join(format!("oci-{i}.tar")), tag, &[&random_bytes(5000, 61), &random_bytes(3000, 62 + i as u64)]);
        let out = Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("oci:{}:{tag}", spec.join("layout").display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo: {}", stderr(&out));
    }
    let index: serde_json::Value = serde_json::from_slice(&fs::read(spec.join("layout/index.json")).unwrap()).unwrap();
    for entry in index["manifests"].as_array().unwrap() {
        let tag = entry["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().to_string();
        let digest = entry["digest"].as_str().unwrap().to_string();
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(spec.join("layout/blobs/sha256").join(&digest[7..])).unwrap()).unwrap();
        source.images.insert(tag, (digest, manifest["config"]["digest"].as_str().unwrap().to_string()));
    }
    assert_eq!(source.images.len(), 2);
    let spec = spec_dir(
        d,
        "spec",
        &format!(
            "  - {{name: pack, kind: registry-pack, images: ['{0}', '{1}'], from: 'oci:layout'}}\n  - {{name: images, kind: image, images: ['{0}'], from: 'oci:layout'}}\n",
            tags[0], tags[1]
        ),
    );
    let bin = built(&build_listed(&spec, &d.join("dist"), &d.join("cache"), &[], &[]));
    let _engine = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let _ = docker(&["rmi", "-f", &tags[0]]);
    let root = install(&bin, d, Some("docker"));
    assert_pulls_as_the_source(&root, &source);
    let out = docker(&["image", "inspect", "--format", "{{.Id}}", &tags[0]]);
    let _ = docker(&["rmi", "-f", &tags[0]]);
    assert_eq!(stdout(&out).trim(), source.images[&tags[0]].1, "the archive loads with the layout's image ID");
}

/// Puts an index naming `manifests` (digest, size, arch) under `repo:tag`.
fn put_index(address: &str, repo: &str, tag: &str, manifests: &[(String, u64, &str)]) -> String {
    let list: Vec<serde_json::Value> = manifests
        .iter()
        .map(|(digest, size, arch)| {
            serde_json::json!({"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": digest, "size": size, "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json", "manifests": list});
    let bytes = serde_json::to_vec(&index).unwrap();
    ureq::put(&format!("http://{address}/v2/{repo}/manifests/{tag}"))
        .set("Content-Type", "application/vnd.docker.distribution.manifest.list.v2+json")
        .send_bytes(&bytes)
        .unwrap();
    sha256(&bytes)
}

#[test]
fn a_multi_platform_image_keeps_the_bundles_arch_unless_platforms_all() {
    let test = "a_multi_platform_image";
    if !require("docker-registry", test) || !require("skopeo", test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let mut arm = image("sample/multi:arm64", &[72]);
    arm.arch = "arm64";
    let source = populate(d, &d.join("source"), &[image("sample/multi:amd64", &[71]), arm]);
    let registry = Registry::start(&source.root);
    let size = |tag: &str| {
        let (repo, t) = tag.rsplit_once(':').unwrap();
        let response = ureq::get(&format!("http://{}/v2/{repo}/manifests/{t}", registry.address)).set("Accept", ACCEPT).call().unwrap();
        response.header("Content-Length").unwrap().parse::<u64>().unwrap()
    };
    let (amd, arm) = (source.images["sample/multi:amd64"].clone(), source.images["sample/multi:arm64"].clone());
    let index = put_index(
        &registry.address,
        "sample/multi",
        "2.0",
        &[(amd.0.clone(), size("sample/multi:amd64"), "amd64"), (arm.0.clone(), size("sample/multi:arm64"), "arm64")],
    );

    let pack = |name: &str, platforms: &str| {
        spec_dir(
            d,
            name,
            &format!("  - {{name: pack, kind: registry-pack, images: ['sample/multi:2.0'], from: '{}'{platforms}}}\n", registry.address),
        )
    };
    // The bundle's arch only: the tag names the amd64 manifest; arm64's is not packed.
    let spec = pack("one", "");
    let bin = built(&build_listed(&spec, &d.join("dist-one"), &d.join("cache"), &[], &[]));
    assert_eq!(lock_of(&spec)["members"]["pack"][0]["platform"], "linux/amd64");
    let root = install(&bin, &d.join("one"), None);
    let restored = Registry::start(&root);
    let base = format!("http://{}", restored.address);
    assert_eq!(served(&base, "sample/multi", "2.0", None).unwrap().0, amd.0);
    assert!(served(&base, "sample/multi", &arm.0, None).is_none(), "the arm64 manifest is left out");
    drop(restored);

    // platforms: all: the index, and every manifest under it.
    let spec = pack("all", ", platforms: all");
    let bin = built(&build_listed(&spec, &d.join("dist-all"), &d.join("cache"), &[], &[]));
    assert_eq!(lock_of(&spec)["members"]["pack"][0]["platform"], "all");
    let root = install(&bin, &d.join("all"), None);
    let restored = Registry::start(&root);
    let base = format!("http://{}", restored.address);
    assert_eq!(served(&base, "sample/multi", "2.0", None).unwrap().0, index);
    for digest in [&amd.0, &arm.0] {
        assert_eq!(&served(&base, "sample/multi", digest, None).unwrap().0, digest);
    }

    // An index without the bundle's arch: named with the platforms it has.
    put_index(&registry.address, "sample/multi", "arm-only", &[(arm.0.clone(), size("sample/multi:arm64"), "arm64")]);
    let spec = spec_dir(
        d,
        "arm-only",
        &format!("  - {{name: pack, kind: registry-pack, images: ['sample/multi:arm-only'], from: '{}'}}\n", registry.address),
    );
    let out = build_listed(&spec, &d.join("dist-arm-only"), &d.join("cache"), &[], &[]);
    assert!(stderr(&out).contains("it has no linux/amd64 image (it has linux/arm64)"), "{}", stderr(&out));
}

#[test]
fn a_moved_tag_builds_the_same_bytes_until_the_lock_is_updated_and_diff_names_it() {
    let test = "a_moved_tag_builds_the_same_bytes";
    if !require("docker-registry", test) || !require("skopeo", test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let root = d.join("source");
    let first = populate(d, &root, &[image("sample/app:1.0", &[81]), image("sample/db:5", &[82])]);
    let registry = Registry::start(&root);
    let spec = spec_dir(
        d,
        "spec",
        &format!(
            "  - {{name: pack, kind: registry-pack, images: [sample/app:1.0, sample/db:5], from: '{0}'}}\n  - {{name: images, kind: image, images: [sample/app:1.0], from: '{0}'}}\n",
            registry.address
        ),
    );
    let env = [("SOURCE_DATE_EPOCH", "1700000000")];
    let one = built(&build_listed(&spec, &d.join("one"), &d.join("cache"), &[], &env));
    let lock = fs::read(spec.join("bundle.lock")).unwrap();
    let address = registry.address.clone();
    drop(registry);

    // The tag moves at the source.
    let moved = populate(d, &root, &[image("sample/app:1.0", &[83])]);
    assert_ne!(moved.images["sample/app:1.0"], first.images["sample/app:1.0"]);
    let registry = Registry::start_at(&root, &address);
    let two = built(&build_listed(&spec, &d.join("two"), &d.join("cache"), &[], &env));
    assert_eq!(fs::read(&one).unwrap(), fs::read(&two).unwrap(), "the same spec and lock give the same bytes");
    assert_eq!(fs::read(spec.join("bundle.lock")).unwrap(), lock, "the lock is left as it was");
    // A fresh cache fetches the pinned manifests by digest and still gives the same bytes.
    let fresh = built(&build_listed(&spec, &d.join("fresh"), &d.join("cache-fresh"), &[], &env));
    assert_eq!(fs::read(&one).unwrap(), fs::read(&fresh).unwrap());

    let three = built(&build_listed(&spec, &d.join("three"), &d.join("cache"), &["--update-lock"], &env));
    assert_ne!(fs::read(&one).unwrap(), fs::read(&three).unwrap());
    assert_eq!(locked(&spec, "pack")["sample/app:1.0"], moved.images["sample/app:1.0"]);
    assert_eq!(locked(&spec, "pack")["sample/db:5"], first.images["sample/db:5"], "an unmoved tag keeps its digest");
    drop(registry);

    let out = airbin().arg("diff").arg(&one).arg(&three).output().unwrap();
    let text = stdout(&out);
    let short = |digest: &str| digest[7..19].to_string();
    let (old, new) = (&first.images["sample/app:1.0"], &moved.images["sample/app:1.0"]);
    assert!(text.contains(&format!("sample/app: tags moved to another manifest 1.0 ({} -> {})", short(&old.0), short(&new.0))), "{text}");
    assert!(text.contains(&format!("sample/app:1.0: retagged: image {} -> {}", short(&old.1), short(&new.1))), "{text}");
}

#[test]
fn every_image_that_cannot_be_had_is_named_in_one_report_and_nothing_is_written() {
    let test = "every_image_that_cannot_be_had";
    if !require("docker-registry", test) || !require("skopeo", test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let source = populate(d, &d.join("source"), &[image("sample/app:1.0", &[91]), image("sample/damaged:1", &[92, 93])]);
    // A blob the registry now serves with other bytes (its length kept).
    let (_, manifest) = {
        let registry = Registry::start(&source.root);
        served(&format!("http://{}", registry.address), "sample/damaged", "1", None).unwrap()
    };
    let layer = manifest["layers"][1]["digest"].as_str().unwrap()[7..].to_string();
    let data = source.root.join(format!("docker/registry/v2/blobs/sha256/{}/{layer}/data", &layer[..2]));
    let mut bytes = fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&data, bytes).unwrap();
    let registry = Registry::start(&source.root);
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let pinned = format!("sample/app@sha256:{}", "0".repeat(64));
    let spec = spec_dir(
        d,
        "spec",
        &format!(
            "  - {{name: pack, kind: registry-pack, images: [sample/app:1.0, 'sample/app:9.9', 'nosuch/repo:1', '{pinned}', sample/damaged:1], from: '{}'}}\n  - {{name: images, kind: image, images: [sample/app:1.0], from: '{gone}'}}\n",
            registry.address
        ),
    );
    let out = build_listed(&spec, &d.join("dist"), &d.join("cache"), &["--json"], &[]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["status"], "failed");
    let listed: Vec<(String, String, String)> = doc["image_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["member"].as_str().unwrap().into(), f["reference"].as_str().unwrap().into(), f["reason"].as_str().unwrap().into()))
        .collect();
    let names: Vec<(&str, &str)> = listed.iter().map(|(m, r, _)| (m.as_str(), r.as_str())).collect();
    assert_eq!(
        names,
        vec![
            ("pack", "sample/app:9.9"),
            ("pack", "nosuch/repo:1"),
            ("pack", pinned.as_str()),
            ("pack", "sample/damaged:1"),
            ("images", "sample/app:1.0")
        ],
        "{listed:?}"
    );
    assert!(listed[0].2.contains("(404)") && listed[2].2.contains("(404)"), "{listed:?}");
    assert!(listed[3].2.contains("the bytes received have the digest"), "{listed:?}");
    assert!(listed[4].2.contains("cannot reach") && listed[4].2.contains("check the address in from:"), "{listed:?}");
    assert!(doc["error"]["message"].as_str().unwrap().starts_with("5 image(s) could not be had; nothing was built"));
    // Nothing half-done: no bundle, no lock, no partial blob in the cache.
    assert!(entries(&d.join("dist")).is_empty(), "{:?}", entries(&d.join("dist")));
    assert!(!spec.join("bundle.lock").exists());
    let cached = entries(&d.join("cache/blobs/sha256"));
    assert!(cached.iter().all(|name| name.len() == 64), "{cached:?}");
    assert!(entries(&d.join("cache")).iter().all(|name| !name.starts_with("work-")), "{:?}", entries(&d.join("cache")));
}

#[test]
fn a_warm_cache_rebuilds_with_the_source_gone_and_a_damaged_blob_is_fetched_again() {
    let test = "a_warm_cache_rebuilds";
    if !require("docker-registry", test) || !require("skopeo", test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let source = populate(d, &d.join("source"), &[image("sample/app:1.0", &[101, 102]), image("sample/app:2.0", &[101, 103])]);
    let registry = Registry::start(&source.root);
    let spec =
        spec_dir(d, "spec", &format!("  - {{name: pack, kind: registry-pack, images: [sample/app:1.0], from: '{}'}}\n", registry.address));
    let one = built(&build_listed(&spec, &d.join("one"), &d.join("cache"), &[], &[]));
    // A list that grows fetches only what the cache lacks: 2.0's config and own layer.
    let grown = spec_dir(
        d,
        "grown",
        &format!("  - {{name: pack, kind: registry-pack, images: [sample/app:1.0, sample/app:2.0], from: '{}'}}\n", registry.address),
    );
    let out = build_listed(&grown, &d.join("grown-dist"), &d.join("cache"), &[], &[]);
    built(&out);
    assert!(stderr(&out).contains("fetching 2 blob(s) (3 in the cache already)"), "{}", stderr(&out));
    assert!(stderr(&out).contains("fetch 2/2 images: done"), "{}", stderr(&out));
    drop(registry);
    // The source is gone: the lock and the cache are all a rebuild needs.
    let two = built(&build_listed(&spec, &d.join("two"), &d.join("cache"), &[], &[]));
    assert_eq!(fs::read(&one).unwrap(), fs::read(&two).unwrap());

    // A cached blob damaged in place: the build refuses it and removes it; the next
    // build, with the source back, fetches it again.
    let blobs = d.join("cache/blobs/sha256");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blobs.join(&source.images["sample/app:1.0"].0[7..])).unwrap()).unwrap();
    let layer = blobs.join(&manifest["layers"][1]["digest"].as_str().unwrap()[7..]);
    let mut bytes = fs::read(&layer).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&layer, bytes).unwrap();
    let out = build_listed(&spec, &d.join("three"), &d.join("cache"), &[], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("was damaged; it is removed: build again"), "{}", stderr(&out));
    assert!(entries(&d.join("three")).is_empty());
    let _registry = Registry::start_at(&source.root, &one_address(&spec));
    let four = built(&build_listed(&spec, &d.join("four"), &d.join("cache"), &[], &[]));
    assert_eq!(fs::read(&one).unwrap(), fs::read(&four).unwrap());
}

#[test]
fn airbin_fetch_makes_a_pack_or_an_archive_apart_from_a_bundle() {
    let test = "airbin_fetch_makes_a_pack";
    if !require("docker-registry", test) || !require("skopeo", test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let source = populate(d, &d.join("source"), &[image("sample/app:1.0", &[111, 112])]);
    let registry = Registry::start(&source.root);
    let fetch = |args: &[&str]| {
        airbin().arg("fetch").args(args).args(["--from", &registry.address]).env("AIRBIN_CACHE_DIR", d.join("cache")).output().unwrap()
    };
    let tree = d.join("tree");
    let out = fetch(&["sample/app:1.0", "--registry-pack", tree.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let link = tree.join("docker/registry/v2/repositories/sample/app/_manifests/tags/1.0/current/link");
    assert_eq!(fs::read_to_string(link).unwrap(), source.images["sample/app:1.0"].0);
    // A tree is written into a new directory only.
    let out = fetch(&["sample/app:1.0", "--registry-pack", tree.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("exists: give a new directory"), "{}", stderr(&out));
    // A docker-archive, as docker save writes it, with the source's image ID.
    let archive = d.join("out/images.tar");
    let out = fetch(&["sample/app:1.0", "--docker-archive", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut tar = tar::Archive::new(fs::File::open(&archive).unwrap());
    let mut manifest = String::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            std::io::Read::read_to_string(&mut entry, &mut manifest).unwrap();
        }
    }
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], "sample/app:1.0");
    assert_eq!(format!("sha256:{}", manifest[0]["Config"].as_str().unwrap().trim_end_matches(".json")), source.images["sample/app:1.0"].1);
    // Nothing named: the usage, with the fix.
    let out = fetch(&["--docker-archive", archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("name the images"), "{}", stderr(&out));
}

#[test]
fn a_credential_from_an_unset_variable_is_named_before_anything_is_fetched() {
    let dir = scratch();
    let d = dir.path();
    let spec = spec_dir(
        d,
        "spec",
        "  - {name: pack, kind: registry-pack, images: [a/b:1], from: registry.example, username: u, password: '${env.AIRBIN_TEST_UNSET_PASSWORD}'}\n",
    );
    let out = build_listed(&spec, &d.join("dist"), &d.join("cache"), &[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("${env.AIRBIN_TEST_UNSET_PASSWORD} is not set in the build's environment: export AIRBIN_TEST_UNSET_PASSWORD"),
        "{}",
        stderr(&out)
    );
    assert!(entries(&d.join("dist")).is_empty());
}

/// The source address a spec names (to start its registry again on the same port).
fn one_address(spec: &Path) -> String {
    let text = fs::read_to_string(spec.join("bundle.yaml")).unwrap();
    text.split("from: '").nth(1).unwrap().split('\'').next().unwrap().to_string()
}

#[test]
fn lint_checks_image_lists_without_fetching() {
    let dir = scratch();
    let d = dir.path();
    // Nothing listens at the source: lint reads no image.
    let spec = spec_dir(d, "spec", "  - {name: pack, kind: registry-pack, images_file: images.txt, from: '127.0.0.1:9'}\n");
    fs::write(spec.join("images.txt"), "sample/app:1.0\n# a comment\nsample/db:5\n").unwrap();
    let out = airbin().arg("lint").arg(&spec).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    fs::write(spec.join("images.txt"), "sample/app:1.0\n\nNot An Image\n").unwrap();
    let out = airbin().arg("lint").arg(&spec).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("images.txt:3: 'Not An Image' is not an image reference"), "{}", stderr(&out));

    for (member, want) in [
        ("{name: pack, kind: registry-pack, images: [a:1]}", "say where the images come from"),
        ("{name: pack, kind: registry-pack, images: [a:1], from: x.example, path: pack.tar}", "give either path or images"),
        ("{name: cfg, kind: file, images: [a:1], from: x.example}", "only image and registry-pack members are made from image lists"),
        ("{name: img, kind: image, images: [a:1], from: x.example, platforms: all}", "platforms: all goes with a registry-pack member"),
        ("{name: img, kind: image, images: [a:1], from: docker-daemon, username: u, password: p}", "go with a registry source"),
        ("{name: img, kind: image, images: [a:1], from: x.example, username: u}", "give both username and password"),
        ("{name: img, kind: image, images: ['a@sha256:12'], from: x.example}", "pins no sha256"),
    ] {
        let spec = spec_dir(d, "bad", &format!("  - {member}\n"));
        let out = airbin().arg("lint").arg(&spec).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{member}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{member}: {}", stderr(&out));
        assert!(stderr(&out).contains("bundle.yaml:"), "{member}: at its line: {}", stderr(&out));
    }
}
