//! The SBOM every bundle carries: validated against the CycloneDX 1.6 and SPDX 2.3
//! schemas by the reference libraries (cyclonedx-python-lib, spdx-tools, in the venv
//! hack/setup-host.sh makes), on images built here with real package databases, their
//! package counts compared with what the images' own tools say.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::registry::Registry;
use support::*;

const VALIDATOR_PYTHON: &str = "/opt/airbin-sbom/bin/python";

fn validate(kind: &str, text: &[u8], dir: &Path) {
    let file = dir.join(format!("sbom.{kind}.json"));
    fs::write(&file, text).unwrap();
    let out = Command::new(VALIDATOR_PYTHON).arg(repo_root().join("hack/sbom-validate.py")).arg(kind).arg(&file).output().unwrap();
    assert!(out.status.success(), "{kind} SBOM does not validate: {}{}", stdout(&out), stderr(&out));
}

fn validators_ready(test: &str) -> bool {
    skip::needs(
        test,
        "sbom-validators",
        Path::new(VALIDATOR_PYTHON).exists(),
        "the venv /opt/airbin-sbom with cyclonedx-python-lib and spdx-tools is missing (bash hack/setup-host.sh makes it)",
    )
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Each container component of a CycloneDX document, by its first tag and member.
fn containers(doc: &Value) -> Vec<&Value> {
    doc["components"].as_array().unwrap().iter().filter(|c| c["type"] == "container").collect()
}

fn property<'a>(component: &'a Value, name: &str) -> Vec<&'a str> {
    component["properties"]
        .as_array()
        .map_or(Vec::new(), |props| props.iter().filter(|p| p["name"] == name).map(|p| p["value"].as_str().unwrap()).collect())
}

fn libraries(container: &Value) -> Vec<&Value> {
    container["components"].as_array().unwrap().iter().filter(|c| c["type"] == "library").collect()
}

/// The package a container lists by name: (version, layer index, purl).
fn package<'a>(container: &'a Value, name: &str) -> Option<(&'a str, &'a str, &'a str)> {
    libraries(container)
        .into_iter()
        .find(|c| c["name"] == name)
        .map(|c| (c["version"].as_str().unwrap(), property(c, "airbin:layer-index")[0], c["purl"].as_str().unwrap()))
}

/// The images, a registry with them (skopeo pushes gzip'd layers), the pack as a
/// directory and as a tarball, and an OCI archive of the Alpine image.
fn inputs(dir: &Path) -> Registry {
    let made = Command::new("bash").arg(repo_root().join("hack/make-sbom-images.sh")).arg(dir).output().unwrap();
    assert!(made.status.success(), "make-sbom-images.sh: {}", stderr(&made));
    let root = dir.join("pack");
    let registry = Registry::start(&root);
    let archive = dir.join("images.tar");
    for image in ["airbin-test/debian:12", "airbin-test/alpine:3.20"] {
        let copy = Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("docker-archive:{}:{image}", archive.display()))
            .arg(format!("docker://{}/{image}", registry.address))
            .output()
            .unwrap();
        assert!(copy.status.success(), "skopeo copy {image}: {}", stderr(&copy));
    }
    let tar = Command::new("tar").arg("-C").arg(&root).args(["-cf"]).arg(dir.join("pack.tar")).arg("docker").output().unwrap();
    assert!(tar.status.success(), "{}", stderr(&tar));
    let oci = Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("docker-archive:{}:airbin-test/alpine:3.20", archive.display()))
        .arg(format!("oci-archive:{}:airbin-test/alpine:3.20", dir.join("alpine-oci.tar").display()))
        .output()
        .unwrap();
    assert!(oci.status.success(), "{}", stderr(&oci));
    fs::write(
        dir.join("bundle.yaml"),
        "name: sbomtest\nversion: '1.0'\nmembers:\n  - {name: images, kind: image, path: images.tar}\n  \
         - {name: oci, kind: image, path: alpine-oci.tar}\n  - {name: pack, kind: registry-pack, path: pack}\n  \
         - {name: pack-tar, kind: registry-pack, path: pack.tar}\n",
    )
    .unwrap();
    registry
}

#[test]
fn the_sbom_lists_every_package_of_real_debian_and_alpine_images() {
    let test = "the_sbom_lists_every_package_of_real_debian_and_alpine_images";
    if !docker_ready(test) || !require("mmdebstrap", test) || !require("skopeo", test) || !validators_ready(test) {
        return;
    }
    let dir = scratch();
    let _registry = inputs(dir.path());
    // What the images' own tools count: dpkg's installed packages, apk's database entries.
    let debian_count =
        docker(&["run", "--rm", "--network", "none", "airbin-test/debian:12", "dpkg-query", "-W", "-f=${db:Status-Status}\n"])
            .lines()
            .filter(|s| *s == "installed")
            .count();
    let alpine_count: usize = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "airbin-test/alpine:3.20",
        "/bin/busybox",
        "grep",
        "-c",
        "^P:",
        "/lib/apk/db/installed",
    ])
    .trim()
    .parse()
    .unwrap();
    let _ = Command::new("docker").args(["rmi", "airbin-test/debian:12", "airbin-test/alpine:3.20"]).output();
    assert!(debian_count > 50, "{debian_count}");

    let out = airbin().arg("build").arg(dir.path()).arg("-o").arg(dir.path().join("dist")).args(["--sbom", "spdx"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let bin = PathBuf::from(stdout(&out).trim());
    let cdx = run(Shell::Dash, &bin, &["sbom"], dir.path());
    assert!(cdx.status.success(), "{}", stderr(&cdx));
    validate("cyclonedx", &cdx.stdout, dir.path());
    let spdx = run(Shell::Busybox, &bin, &["sbom", "--format", "spdx"], dir.path());
    assert!(spdx.status.success(), "{}", stderr(&spdx));
    validate("spdx", &spdx.stdout, dir.path());
    // The builder prints the same document.
    let builder = airbin().arg("sbom").arg(&bin).output().unwrap();
    assert_eq!(builder.stdout, cdx.stdout);

    let doc: Value = serde_json::from_slice(&cdx.stdout).unwrap();
    assert_eq!(doc["specVersion"], "1.6");
    assert_eq!(doc["metadata"]["component"]["name"], "sbomtest");
    let images = containers(&doc);
    // images.tar: both; the OCI archive: Alpine; each pack: both.
    assert_eq!(images.len(), 7, "{images:#?}");
    for image in &images {
        let member = property(image, "airbin:member")[0];
        let tag = property(image, "airbin:tag")[0];
        let count = libraries(image).len();
        let purl = image["purl"].as_str().unwrap();
        if tag == "airbin-test/debian:12" {
            assert_eq!(count, debian_count, "{member}: Debian's packages");
            assert!(purl.starts_with("pkg:oci/debian@sha256:") && purl.ends_with("?repository_url=airbin-test/debian&tag=12"), "{purl}");
            let (version, layer, purl) = package(image, "airbin-extra-a").expect("the package dpkg -i installed");
            assert_eq!((version, layer), ("1.0", "3"), "{member}: installed in the third layer");
            assert_eq!(purl, "pkg:deb/debian/airbin-extra-a@1.0?arch=all&distro=debian-12");
            assert!(package(image, "airbin-extra-b").is_none(), "{member}: purged in the fourth layer");
            assert_eq!(package(image, "base-files").unwrap().1, "1");
            // Each layer is listed with its digest.
            let layers: Vec<&Value> = image["components"].as_array().unwrap().iter().filter(|c| c["type"] == "file").collect();
            assert_eq!(layers.len(), 4, "{member}");
        } else {
            assert_eq!(tag, "airbin-test/alpine:3.20");
            assert_eq!(count, alpine_count, "{member}: Alpine's packages");
            let (version, layer, purl) = package(image, "libcurl").unwrap();
            assert_eq!((version, layer), ("8.9.1-r1", "2"));
            assert_eq!(purl, "pkg:apk/alpine/libcurl@8.9.1-r1?arch=x86_64&distro=alpine-3.20.3&upstream=curl");
        }
    }
    // SPDX: the same packages, each contained by the layer it came from.
    let spdx: Value = serde_json::from_slice(&spdx.stdout).unwrap();
    let libraries = spdx["packages"].as_array().unwrap().iter().filter(|p| p["primaryPackagePurpose"] == "LIBRARY").count();
    assert_eq!(libraries, 3 * debian_count + 4 * alpine_count);
    // `info` names the document's digest, which the index (and so the bundle's digest
    // and signature) covers.
    let info: Value = serde_json::from_slice(&run(Shell::Bash, &bin, &["info", "--json"], dir.path()).stdout).unwrap();
    let member = info["members"].as_array().unwrap().iter().find(|m| m["name"] == "sbom.cdx.json").unwrap().clone();
    assert_eq!(info["sbom"]["cyclonedx"]["sha256"], member["sha256"]);
    let json: Value = serde_json::from_slice(&run(Shell::Bash, &bin, &["sbom", "--json"], dir.path()).stdout).unwrap();
    assert_eq!(json["sha256"], member["sha256"]);
    assert_eq!(json["document"], doc);
}

/// An image archive made here, of layers given as tar streams.
fn layered_image(path: &Path, tag: &str, layers: &[Vec<u8>]) {
    let hex = |data: &[u8]| airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(data));
    let names: Vec<String> = layers.iter().map(|l| format!("{}/layer.tar", hex(l))).collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", hex(l))).collect();
    let config =
        serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).to_string();
    let config_name = format!("{}.json", hex(config.as_bytes()));
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).to_string();
    let mut files: Vec<(&str, &[u8])> = vec![("manifest.json", manifest.as_bytes()), (&config_name, config.as_bytes())];
    for (name, layer) in names.iter().zip(layers) {
        files.push((name, layer));
    }
    files_tar(fs::File::create(path).unwrap(), &files);
}

#[test]
fn whiteouts_rpm_databases_and_images_without_packages() {
    let test = "whiteouts_rpm_databases_and_images_without_packages";
    if !validators_ready(test) {
        return;
    }
    let dir = scratch();
    let status = b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\n\n\
Package: old\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: amd64\n";
    let base = files_tar(Vec::new(), &[("var/lib/dpkg/status", status), ("etc/os-release", b"ID=debian\nVERSION_ID=12\n")]);
    let gone = files_tar(Vec::new(), &[("var/lib/.wh.dpkg", b"")]);
    let rpm = files_tar(Vec::new(), &[("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0")]);
    layered_image(&dir.path().join("kept.tar"), "site/kept:1", std::slice::from_ref(&base));
    layered_image(&dir.path().join("removed.tar"), "site/removed:1", &[base.clone(), gone]);
    layered_image(&dir.path().join("rpm.tar"), "site/rpm:1", &[rpm]);
    fs::write(
        dir.path().join("bundle.yaml"),
        "name: layers\nversion: '1'\nmembers:\n  - {name: kept, kind: image, path: kept.tar}\n  \
         - {name: removed, kind: image, path: removed.tar}\n  - {name: rpm, kind: image, path: rpm.tar}\n",
    )
    .unwrap();
    let bin = build(dir.path(), &dir.path().join("dist"));
    let out = airbin().arg("sbom").arg(&bin).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    validate("cyclonedx", &out.stdout, dir.path());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_tag = |tag: &str| *containers(&doc).iter().find(|c| property(c, "airbin:tag") == [tag]).unwrap();
    // config-files: removed, its files gone; not listed, as dpkg-query lists it as not installed.
    assert_eq!(libraries(by_tag("site/kept:1")).len(), 1);
    assert!(libraries(by_tag("site/removed:1")).is_empty(), "a whiteout of var/lib/dpkg removes the database");
    let rpm = by_tag("site/rpm:1");
    assert!(libraries(rpm).is_empty());
    assert_eq!(property(rpm, "airbin:packages-not-read"), ["var/lib/rpm/rpmdb.sqlite"]);
}

#[test]
fn the_sbom_is_covered_by_the_bundle_digest_and_refused_when_edited() {
    let dir = scratch();
    let bin = minimal();
    let info: Value = serde_json::from_slice(&run(Shell::Dash, bin, &["info", "--json"], dir.path()).stdout).unwrap();
    let index = airbin_format::Bundle::open(bin).unwrap().index;
    let sbom = index.members.iter().find(|m| m.name == "sbom.cdx.json").expect("every bundle carries its SBOM");
    assert_eq!(info["sbom"]["cyclonedx"]["sha256"], sbom.sha256);
    // One byte of the stored SBOM changed: refused as damaged, nothing printed.
    let edited = dir.path().join("edited.bin");
    fs::copy(bin, &edited).unwrap();
    let mut bytes = fs::read(&edited).unwrap();
    bytes[(sbom.offset + sbom.stored_size / 2) as usize] ^= 0x20;
    fs::write(&edited, bytes).unwrap();
    let out = run(Shell::Dash, &edited, &["sbom"], dir.path());
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(out.stdout.is_empty() || !stdout(&out).contains("CycloneDX"), "{}", stdout(&out));
    assert!(stderr(&out).contains("sbom.cdx.json") || stderr(&out).contains("damaged"), "{}", stderr(&out));
    // No SPDX in this bundle: said, with what it has.
    let out = run(Shell::Bash, bin, &["sbom", "--format", "spdx"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--sbom spdx") && stderr(&out).contains("--format cyclonedx"), "{}", stderr(&out));
    let out = run(Shell::Bash, bin, &["sbom", "--format", "swid"], dir.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn no_sbom_and_reserved_names() {
    let dir = scratch();
    let spec = repo_root().join("samples/minimal");
    let out = airbin().arg("build").arg(&spec).arg("-o").arg(dir.path().join("none")).arg("--no-sbom").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let bin = PathBuf::from(stdout(&out).trim());
    let sbom = run(Shell::Dash, &bin, &["sbom"], dir.path());
    assert_eq!(sbom.status.code(), Some(2));
    assert!(stderr(&sbom).contains("--no-sbom"), "{}", stderr(&sbom));
    // A spec may not name a member as the SBOM, or take its kind.
    fs::write(dir.path().join("doc.json"), "{}").unwrap();
    for (member, field) in [
        ("{name: sbom.cdx.json, kind: file, path: doc.json}", "members[0].name"),
        ("{name: x, kind: sbom, path: doc.json}", "members[0].kind"),
    ] {
        fs::write(dir.path().join("bundle.yaml"), format!("name: x\nversion: '1'\nmembers:\n  - {member}\n")).unwrap();
        let out = airbin().arg("build").arg(dir.path()).arg("-o").arg(dir.path().join("dist")).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(field), "{}", stderr(&out));
    }
}
