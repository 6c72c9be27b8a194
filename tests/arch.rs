//! arm64 bundles, end to end on this x86_64 machine. An arm64 host is made of real parts:
//! the kernel runs aarch64 programs through Debian's qemu-user-static, registered with
//! binfmt_misc here (so the launcher execs the arm64 stub as it would on such a host),
//! and PATH holds Debian's arm64 busybox (hack/setup-host.sh unpacks it), so that
//! `uname -m` and the launcher's tools are arm64 programs too. Only the shells bash and
//! dash are the host's own; busybox sh is the arm64 one.

mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use airbin_format::Bundle;
use support::*;

const ARM64_BUSYBOX: &str = "/usr/local/lib/airbin-test/arm64/busybox";
const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// Registers qemu's aarch64 handler with binfmt_misc unless it is there; `Err` says why
/// it cannot be (no qemu-user-static, no right to mount binfmt_misc).
fn register_qemu() -> Result<(), String> {
    let entry = Path::new(BINFMT).join("qemu-aarch64");
    if fs::read_to_string(&entry).is_ok_and(|text| text.starts_with("enabled")) {
        return Ok(());
    }
    let rule = fs::read_to_string("/usr/lib/binfmt.d/qemu-aarch64.conf").map_err(|e| format!("qemu-user-static is missing ({e})"))?;
    if !Path::new(BINFMT).join("register").exists() {
        let mounted = Command::new("mount").args(["-t", "binfmt_misc", "binfmt_misc", BINFMT]).output().map_err(|e| e.to_string())?;
        if !mounted.status.success() {
            return Err(format!("cannot mount binfmt_misc: {}", stderr(&mounted).trim()));
        }
    }
    let written =
        fs::OpenOptions::new().write(true).open(Path::new(BINFMT).join("register")).and_then(|mut f| f.write_all(rule.trim().as_bytes()));
    // Another test binary may have registered it in the meantime.
    match written {
        Ok(()) => Ok(()),
        Err(_) if entry.exists() => Ok(()),
        Err(e) => Err(format!("cannot register qemu-aarch64 with binfmt_misc: {e}")),
    }
}

/// The arm64 host's tools: every applet of the arm64 busybox, linked in one directory.
fn arm64_tools() -> Option<&'static Path> {
    static TOOLS: OnceLock<Result<(tempfile::TempDir, PathBuf), String>> = OnceLock::new();
    let made = TOOLS.get_or_init(|| {
        register_qemu()?;
        if !Path::new(ARM64_BUSYBOX).exists() {
            return Err(format!("{ARM64_BUSYBOX} is missing"));
        }
        let dir = scratch();
        let bin = dir.path().join("arm64-bin");
        fs::create_dir(&bin).unwrap();
        let list = Command::new(ARM64_BUSYBOX).arg("--list").output().map_err(|e| format!("cannot run the arm64 busybox: {e}"))?;
        for applet in stdout(&list).lines() {
            std::os::unix::fs::symlink(ARM64_BUSYBOX, bin.join(applet)).unwrap();
        }
        let machine = Command::new(bin.join("uname")).arg("-m").output().unwrap();
        assert_eq!(stdout(&machine).trim(), "aarch64", "the arm64 busybox runs through qemu: {}", stderr(&machine));
        Ok((dir, bin))
    });
    match made {
        Ok((_, bin)) => Some(bin),
        Err(why) => {
            skip::needs("an arm64 test", "arm64", false, &format!("{why} (bash hack/setup-host.sh installs qemu-user-static, as root)"));
            None
        }
    }
}

/// The shells an engineer may start a bundle with on the arm64 host.
fn arm64_shells() -> [(&'static str, Vec<&'static str>); 3] {
    [("bash", vec!["/bin/bash"]), ("dash", vec!["/bin/dash"]), ("arm64 busybox sh", vec![ARM64_BUSYBOX, "sh"])]
}

/// Runs `bundle args` on the arm64 host: its tools (and `extra`, the host's) on PATH.
fn on_arm64(shell: &[&str], bundle: &Path, args: &[&str], tmp: &Path, path: &str) -> Output {
    Command::new(shell[0])
        .args(&shell[1..])
        .arg(bundle)
        .args(args)
        .env("PATH", path)
        .env("TMPDIR", tmp)
        .env("AIRBIN_STATE_DIR", tmp.join("state"))
        .output()
        .unwrap()
}

/// The minimal sample's members, for `arch: aarch64` (the alias), with two command
/// steps: the bundle's own tool, and the host's `uname -m` appending to `DIR/machine`.
fn arm64_bundle(dir: &Path) -> PathBuf {
    let spec = dir.join("spec");
    fs::create_dir(&spec).unwrap();
    let sample = repo_root().join("samples/minimal");
    fs::write(
        spec.join("bundle.yaml"),
        format!(
            "name: minimal\nversion: '1.0.0'\narch: aarch64\nmembers:\n\
             \x20 - {{name: hello, kind: tool, path: {0}/hello.sh}}\n\
             \x20 - {{name: config.sample, kind: config-sample, path: {0}/config.sample}}\n\
             \x20 - {{name: conf.d, kind: file, path: {0}/conf.d, compression: xz}}\n\
             steps:\n\
             \x20 - {{name: say hello, kind: command, run: [hello, from, arm64]}}\n\
             \x20 - {{name: record the machine, kind: command, run: [sh, -c, 'uname -m >> \"$0\"', '{1}/machine']}}\n",
            sample.display(),
            dir.display()
        ),
    )
    .unwrap();
    build(&spec, &dir.join("dist"))
}

#[test]
fn an_arm64_bundle_runs_on_an_arm64_host_under_each_shell() {
    let Some(tools) = arm64_tools() else { return };
    let dir = scratch();
    let bin = arm64_bundle(dir.path());
    assert_eq!(bin.file_name().unwrap(), "minimal-1.0.0-arm64.bin");
    let stub = &fs::read(&bin).unwrap()[4096..4096 + 20];
    assert_eq!(u16::from_le_bytes([stub[18], stub[19]]), 183, "the stub is an AArch64 ELF");
    let path = tools.to_str().unwrap();

    for (label, shell) in arm64_shells() {
        let tmp = dir.path().join(format!("tmp {label}"));
        fs::create_dir(&tmp).unwrap();
        let info = on_arm64(&shell, &bin, &["info"], &tmp, path);
        assert!(info.status.success(), "{label} info: {}", stderr(&info));
        for expected in ["name:        minimal", "arch:        arm64", "hello", "conf.d", "say hello"] {
            assert!(stdout(&info).contains(expected), "{label} info lacks {expected}: {}", stdout(&info));
        }

        let check = on_arm64(&shell, &bin, &["check"], &tmp, path);
        assert!(check.status.success() && stdout(&check).contains("OK"), "{label} check: {}", stderr(&check));

        let target = dir.path().join(format!("out {label}"));
        let extract = on_arm64(&shell, &bin, &["extract", "--target", target.to_str().unwrap()], &tmp, path);
        assert!(extract.status.success(), "{label} extract: {}", stderr(&extract));
        assert_eq!(entries(&target), ["conf.d", "config.sample", "hello"]);
        assert_eq!(
            fs::read(target.join("conf.d/app.yaml")).unwrap(),
            fs::read(repo_root().join("samples/minimal/conf.d/app.yaml")).unwrap()
        );

        let staged = dir.path().join(format!("staged {label}"));
        let noexec = on_arm64(&shell, &bin, &["install", "--noexec", "--target", staged.to_str().unwrap()], &tmp, path);
        assert!(noexec.status.success(), "{label} install --noexec: {}", stderr(&noexec));
        assert_eq!(entries(&staged), ["conf.d", "config.sample", "hello"]);
        assert!(!staged.join("machine").exists(), "{label}: --noexec ran a step");

        let install = on_arm64(&shell, &bin, &["install", "--yes", "--use-sample", "--json"], &tmp, path);
        assert!(install.status.success(), "{label} install: {}", stderr(&install));
        let report: serde_json::Value = serde_json::from_slice(&install.stdout).unwrap();
        assert_eq!(
            states(&report),
            [("say hello".to_string(), "done".to_string()), ("record the machine".to_string(), "done".to_string())],
            "{label}: {report}"
        );
        let machine = fs::read_to_string(dir.path().join("machine")).unwrap();
        assert_eq!(machine.lines().last(), Some("aarch64"), "{label}: the step ran on the arm64 host");
        let log = fs::read_to_string(report["log"].as_str().unwrap()).unwrap();
        assert!(log.contains("hello from the minimal bundle: from arm64"), "{label}: {log}");
        assert_eq!(entries(&tmp), ["state"], "{label} left files in TMPDIR");
    }
}

#[test]
fn a_flipped_byte_in_the_arm64_stub_is_caught_with_or_without_cksum() {
    let Some(tools) = arm64_tools() else { return };
    let dir = scratch();
    let bin = arm64_bundle(dir.path());
    let original = fs::read(&bin).unwrap();
    let trailer = Bundle::open(&bin).unwrap().trailer;
    let (frame, frame_len) = packed_runtime(&bin);
    // With cksum on PATH (the host's, as coreutils would be there): the launcher's check
    // catches a flip anywhere in the stub, the loader's code included.
    let with_cksum = dir.path().join("with-cksum");
    fs::create_dir(&with_cksum).unwrap();
    for entry in fs::read_dir(tools).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), with_cksum.join(entry.file_name())).unwrap();
    }
    tools_only(&with_cksum, &["cksum"]);
    let cases = [
        ("the loader's code, cksum on PATH", trailer.stub_offset as usize + 1000, &with_cksum, "its runtime fails its checksum"),
        ("the packed runtime, cksum on PATH", frame + frame_len / 2, &with_cksum, "its runtime fails its checksum"),
        ("the packed runtime, busybox only", frame + frame_len / 2, &tools.to_path_buf(), "its runtime does not unpack"),
        ("the runtime's last block, busybox only", frame + frame_len - 8, &tools.to_path_buf(), "its runtime does not unpack"),
    ];
    for (label, at, path, expected) in cases {
        let damaged = dir.path().join("damaged.bin");
        let mut bytes = original.clone();
        bytes[at] ^= 0x10;
        fs::write(&damaged, &bytes).unwrap();
        for (shell_label, shell) in arm64_shells() {
            let tmp = dir.path().join("tmp");
            fs::create_dir_all(&tmp).unwrap();
            let out = on_arm64(&shell, &damaged, &["check"], &tmp, path.to_str().unwrap());
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(3), "{label}, {shell_label}: {err}");
            assert!(err.lines().count() == 1 && err.contains(expected) && err.contains(".sha256"), "{label}, {shell_label}: {err}");
            assert!(entries(&tmp).is_empty(), "{label}, {shell_label}: left {:?}", entries(&tmp));
        }
    }
}

#[test]
fn the_launcher_refuses_a_host_of_the_other_arch_in_both_directions() {
    let dir = scratch();
    let arm64 = arm64_bundle(dir.path());
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    // arm64 on this x86_64 host: refused before the stub is copied (TMPDIR stays empty).
    for shell in SHELLS {
        for json in [false, true] {
            let args: &[&str] = if json { &["install", "--json"] } else { &["install"] };
            let out = run(shell, &arm64, args, &tmp);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(7), "{shell:?}: {err}");
            assert_eq!(
                err.trim(),
                "airbin: this bundle is for arm64; this host is x86_64: run it on an arm64 host, or get this bundle's build for x86_64"
            );
            assert!(entries(&tmp).is_empty(), "{shell:?}: the stub was copied");
            if json {
                let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!((doc["exit_code"].as_i64(), doc["error"]["class"].as_str()), (Some(7), Some("host-not-ready")), "{doc}");
                assert_eq!(doc["error"]["message"], "this bundle is for arm64; this host is x86_64");
            }
        }
    }
    // amd64 on the arm64 host.
    let Some(tools) = arm64_tools() else { return };
    for (label, shell) in arm64_shells() {
        let out = on_arm64(&shell, minimal(), &["info"], &tmp, tools.to_str().unwrap());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(7), "{label}: {err}");
        assert_eq!(
            err.trim(),
            "airbin: this bundle is for amd64; this host is aarch64: run it on an amd64 host, or get this bundle's build for aarch64",
            "{label}"
        );
        assert!(entries(&tmp).is_empty(), "{label}: the stub was copied");
    }
    // A host without uname (a bare busybox without the applet): no check, the stub runs.
    let no_uname = tools_only(&dir.path().join("no-uname"), &["dd", "cksum", "tail", "mktemp", "chmod", "rm", "mkdir", "head"]);
    let out = Command::new("/bin/dash").arg(minimal()).arg("info").env("PATH", &no_uname).env("TMPDIR", &tmp).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

fn sha256_hex(data: &[u8]) -> String {
    airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(data))
}

/// One image for `platform` ("linux/arm64", "linux/arm/v7"): a layer with one file that
/// says which, its config and manifest, as (digest, bytes) blobs plus the manifest's
/// descriptor.
fn platform_image(platform: &str) -> (Vec<(String, Vec<u8>)>, serde_json::Value) {
    let parts: Vec<&str> = platform.split('/').collect();
    let layer = files_tar(Vec::new(), &[("platform.txt", format!("built for {platform}\n").as_bytes())]);
    let mut config = serde_json::json!({
        "architecture": parts[1], "os": parts[0],
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&layer))]},
        "config": {"Cmd": ["/platform.txt"]},
    });
    let mut platform_json = serde_json::json!({"architecture": parts[1], "os": parts[0]});
    if let Some(variant) = parts.get(2) {
        config["variant"] = (*variant).into();
        platform_json["variant"] = (*variant).into();
    }
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", sha256_hex(&config)), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{}", sha256_hex(&layer)), "size": layer.len()}],
    }))
    .unwrap();
    let descriptor = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{}", sha256_hex(&manifest)),
        "size": manifest.len(), "platform": platform_json,
    });
    let blobs = [layer, config, manifest].into_iter().map(|blob| (sha256_hex(&blob), blob)).collect();
    (blobs, descriptor)
}

/// A multi-platform OCI archive (as `docker buildx ... --output type=oci` writes one):
/// index.json names one image index, tagged `tag`, which names an image per platform
/// and an attestation manifest (`unknown/unknown`, as buildx adds).
fn multi_platform_archive(path: &Path, tag: &str, platforms: &[&str]) {
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    for platform in platforms.iter().copied().chain(["unknown/unknown"]) {
        let (image_blobs, descriptor) = platform_image(platform);
        blobs.extend(image_blobs);
        manifests.push(descriptor);
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests,
    }))
    .unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": format!("sha256:{}", sha256_hex(&index)), "size": index.len(),
        "annotations": {"io.containerd.image.name": tag, "org.opencontainers.image.ref.name": tag.rsplit_once(':').unwrap().1},
    }]});
    blobs.push((sha256_hex(&index), index));
    let top = serde_json::to_vec(&top).unwrap();
    let names: Vec<String> = blobs.iter().map(|(hex, _)| format!("blobs/sha256/{hex}")).collect();
    let mut files: Vec<(&str, &[u8])> = vec![("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#), ("index.json", &top)];
    files.extend(names.iter().zip(&blobs).map(|(name, (_, blob))| (name.as_str(), blob.as_slice())));
    files_tar(fs::File::create(path).unwrap(), &files);
}

/// A docker-archive (`docker save`) of one image for `platform`, tagged `tag`.
fn docker_archive(path: &Path, tag: &str, platform: &str) {
    let (blobs, _) = platform_image(platform);
    let (layer, config) = (&blobs[0], &blobs[1]);
    let manifest =
        serde_json::json!([{"Config": format!("{}.json", config.0), "RepoTags": [tag], "Layers": [format!("{}/layer.tar", layer.0)]}]);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let (config_name, layer_name) = (format!("{}.json", config.0), format!("{}/layer.tar", layer.0));
    files_tar(fs::File::create(path).unwrap(), &[("manifest.json", &manifest), (&config_name, &config.1), (&layer_name, &layer.1)]);
}

/// `airbin build --arch ARCH` of a bundle whose one member is the image archive `image`.
fn build_image_bundle(dir: &Path, image: &Path, arch: &str) -> Output {
    fs::write(
        dir.join("bundle.yaml"),
        format!("name: images\nversion: '1'\nmembers:\n  - {{name: images, kind: image, path: {}, compression: none}}\n", image.display()),
    )
    .unwrap();
    airbin().arg("build").arg(dir.join("bundle.yaml")).args(["--arch", arch, "-o"]).arg(dir.join(format!("dist-{arch}"))).output().unwrap()
}

/// The names of a tar archive's entries and its index.json.
fn archive_entries(archive: &Path) -> (Vec<String>, serde_json::Value) {
    let mut names = Vec::new();
    let mut index = serde_json::Value::Null;
    for entry in tar::Archive::new(fs::File::open(archive).unwrap()).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name == "index.json" {
            index = serde_json::from_reader(&mut entry).unwrap();
        }
        names.push(name);
    }
    (names, index)
}

#[test]
fn image_members_are_checked_against_the_bundles_arch() {
    let dir = scratch();
    let amd64_image = dir.path().join("amd64.tar");
    docker_archive(&amd64_image, "airbin/app:1", "linux/amd64");
    let arm64_image = dir.path().join("arm64.tar");
    docker_archive(&arm64_image, "airbin/app:1", "linux/arm64/v8");
    let armv7_oci = dir.path().join("armv7-oci.tar");
    multi_platform_archive(&armv7_oci, "airbin/multi:1", &["linux/amd64", "linux/arm/v7"]);

    for (image, arch, refused, says) in [
        (&amd64_image, "arm64", true, "holds the image airbin/app:1, whose config says linux/amd64; this bundle is for linux/arm64"),
        (&arm64_image, "amd64", true, "holds the image airbin/app:1, whose config says linux/arm64; this bundle is for linux/amd64"),
        (&arm64_image, "arm64", false, ""),
        (&amd64_image, "amd64", false, ""),
        (
            &armv7_oci,
            "arm64",
            true,
            "holds the multi-platform image airbin/multi:1 without linux/arm64 (it has linux/amd64, linux/arm/v7, unknown/unknown)",
        ),
    ] {
        let out = build_image_bundle(dir.path(), image, arch);
        let case = format!("{} for {arch}", image.display());
        if refused {
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{case}: {err}");
            assert!(err.contains("member images: ") && err.contains(says) && err.contains("--platform linux/"), "{case}: {err}");
            assert!(!dir.path().join(format!("dist-{arch}")).exists(), "{case}: a refused build leaves nothing");
        } else {
            assert!(out.status.success(), "{case}: {}", stderr(&out));
        }
        let _ = fs::remove_dir_all(dir.path().join(format!("dist-{arch}")));
    }

    // A config that names no architecture is refused too: nothing says it runs here.
    let blank = dir.path().join("blank.tar");
    docker_archive(&blank, "airbin/app:1", "linux/");
    let out = build_image_bundle(dir.path(), &blank, "amd64");
    assert!(out.status.code() == Some(2) && stderr(&out).contains("whose config says linux/no architecture"), "{}", stderr(&out));
}

#[test]
fn a_multi_platform_archive_gives_each_bundle_its_own_platform_only() {
    let dir = scratch();
    let oci = dir.path().join("multi.tar");
    multi_platform_archive(&oci, "airbin/multi:1", &["linux/amd64", "linux/arm64/v8"]);
    let (all, _) = archive_entries(&oci);
    assert_eq!(all.len(), 2 + 3 * 3 + 1, "three images of three blobs, an index, oci-layout, index.json");

    for (arch, platform) in [("amd64", "linux/amd64"), ("arm64", "linux/arm64/v8")] {
        let out = build_image_bundle(dir.path(), &oci, arch);
        assert!(out.status.success(), "{arch}: {}", stderr(&out));
        let bin = PathBuf::from(stdout(&out).trim());
        let (blobs, descriptor) = platform_image(platform);
        let record = &Bundle::open(&bin).unwrap().index.members[0].images;
        assert_eq!(record.len(), 1, "{arch}");
        assert_eq!(record[0].id, format!("sha256:{}", blobs[1].0), "{arch}: the ID is that platform's config digest");
        assert_eq!(record[0].tags, ["airbin/multi:1"], "{arch}");

        // What the bundle carries: that platform's three blobs, and an index naming it.
        let out = airbin().arg("inspect").arg(&bin).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let extracted = dir.path().join(format!("extracted-{arch}"));
        // amd64's is extracted by its own bundle, arm64's read through the format.
        if arch == "amd64" {
            let out =
                Command::new("dash").arg(&bin).args(["extract", "--target"]).arg(&extracted).env("TMPDIR", dir.path()).output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
        } else {
            fs::create_dir(&extracted).unwrap();
            let bundle = Bundle::open(&bin).unwrap();
            let member = bundle.index.members[0].clone();
            let mut content = bundle.content_reader(&member).unwrap();
            std::io::copy(&mut content, &mut fs::File::create(extracted.join("images")).unwrap()).unwrap();
        }
        let (mut names, index) = archive_entries(&extracted.join("images"));
        names.sort();
        let mut want: Vec<String> = blobs.iter().map(|(hex, _)| format!("blobs/sha256/{hex}")).collect();
        want.extend(["index.json".to_string(), "oci-layout".to_string()]);
        want.sort();
        assert_eq!(names, want, "{arch}: only its platform's blobs");
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 1, "{arch}: {index}");
        assert_eq!(manifests[0]["digest"], descriptor["digest"], "{arch}");
        assert_eq!(manifests[0]["platform"], descriptor["platform"], "{arch}");
        assert_eq!(manifests[0]["annotations"]["io.containerd.image.name"], "airbin/multi:1", "{arch}");
    }
}

/// The platform the bundle carries is the one an engine gets: podman (which loads OCI
/// archives; Debian's dockerd 20.10 does not) holds the amd64 image under its tag.
#[test]
fn the_carried_platform_is_what_the_engine_loads() {
    if !require("podman", "the_carried_platform_is_what_the_engine_loads") {
        return;
    }
    let dir = scratch();
    let oci = dir.path().join("multi.tar");
    multi_platform_archive(&oci, "airbin/multi:1", &["linux/arm64/v8", "linux/amd64"]);
    fs::write(
        dir.path().join("bundle.yaml"),
        "name: multi\nversion: '1'\nmembers:\n  - {name: images, kind: image, path: multi.tar}\nsteps:\n  - {kind: load-images, member: images, engine: podman}\n",
    )
    .unwrap();
    let bin = build(&dir.path().join("bundle.yaml"), &dir.path().join("dist"));
    let conf = podman_store(dir.path());
    let podman = |args: &[&str]| Command::new("podman").args(args).env("CONTAINERS_STORAGE_CONF", &conf).output().unwrap();
    let out = Command::new("dash")
        .arg(&bin)
        .args(["--yes", "--json"])
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .env("AIRBIN_STATE_DIR", dir.path().join("state"))
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    let inspect = podman(&["image", "inspect", "--format", "{{.Id}} {{.Architecture}}", "airbin/multi:1"]);
    let images = podman(&["images", "-q", "--no-trunc"]);
    let _ = podman(&["system", "reset", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (blobs, _) = platform_image("linux/amd64");
    assert_eq!(stdout(&inspect).trim(), format!("{} amd64", blobs[1].0), "{}", stderr(&inspect));
    assert_eq!(stdout(&images).lines().count(), 1, "one image in the store: {}", stdout(&images));
}

#[test]
fn build_arch_overrides_the_spec_and_takes_either_spelling() {
    let dir = scratch();
    let sample = repo_root().join("samples/minimal");
    for (given, file) in
        [("arm64", "minimal-1.0.0-arm64.bin"), ("aarch64", "minimal-1.0.0-arm64.bin"), ("x86_64", "minimal-1.0.0-amd64.bin")]
    {
        let out_dir = dir.path().join(given);
        let out = airbin().arg("build").arg(&sample).args(["--arch", given, "-o"]).arg(&out_dir).output().unwrap();
        assert!(out.status.success(), "{given}: {}", stderr(&out));
        assert_eq!(entries(&out_dir), [file.to_string(), format!("{file}.sha256")], "{given}");
        let arch = Bundle::open(&out_dir.join(file)).unwrap().index.bundle.arch;
        assert_eq!(arch, file.trim_end_matches(".bin").rsplit('-').next().unwrap(), "{given}: the index names the arch one way");
    }
    for bad in ["mips", "", "ARM64"] {
        let out_dir = dir.path().join("bad");
        let out = airbin().arg("build").arg(&sample).args(["--arch", bad, "-o"]).arg(&out_dir).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(
            err.trim()
                == format!(
                    "airbin: error: --arch '{bad}' is not an architecture airbin builds for; use amd64 (or x86_64) or arm64 (or aarch64)"
                ),
            "{err}"
        );
        assert!(!out_dir.exists());
    }
}
