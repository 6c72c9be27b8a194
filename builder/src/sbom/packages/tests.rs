use super::*;

const STATUS_1: &str =
    "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\nArchitecture: amd64\nDescription: x\n more text\n\n\
Package: libc6\nStatus: install ok installed\nSource: glibc\nVersion: 2.36-9\nArchitecture: amd64\n\n\
Package: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: all\n";

fn layer(put: &[(&str, &str)], removed: &[&str], opaque: &[&str]) -> LayerScan {
    LayerScan {
        put: put.iter().map(|(p, c)| (p.to_string(), c.as_bytes().to_vec())).collect(),
        removed: removed.iter().map(|p| p.to_string()).collect(),
        opaque: opaque.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn dpkg_lists_what_has_files_on_disk() {
    let packages = dpkg_status(STATUS_1);
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["base-files", "libc6"]);
    assert_eq!(packages[1].source.as_deref(), Some("glibc"));
    assert_eq!(packages[0].version, "12.4+deb12u5");
}

#[test]
fn apk_paragraphs_are_packages() {
    let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\n";
    let packages = apk_installed(text);
    assert_eq!(packages.len(), 2);
    assert_eq!(packages[0].license.as_deref(), Some("MIT"));
    assert_eq!(packages[0].source, None);
    assert_eq!(packages[1].version, "1.36.1-r15");
}

#[test]
fn each_package_is_credited_to_the_layer_it_has_its_version_from() {
    let base = layer(&[(DPKG_STATUS, STATUS_1), ("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n")], &[], &[]);
    let nothing = layer(&[], &[], &[]);
    let upgraded = STATUS_1.replace("2.36-9", "2.36-9+deb12u4")
        + "\nPackage: extra\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n";
    let second = layer(&[(DPKG_STATUS, &upgraded)], &[], &[]);
    let image = of_image(&[&base, &nothing, &second]);
    let found: Vec<(&str, usize)> = image.packages.iter().map(|p| (p.name.as_str(), p.layer)).collect();
    assert_eq!(found, [("base-files", 0), ("extra", 2), ("libc6", 2)]);
    assert_eq!(image.os, Some(OsRelease { id: "debian".into(), version_id: "12".into(), pretty_name: String::new() }));
}

#[test]
fn whiteouts_and_opaque_directories_remove_databases() {
    let base = layer(&[(DPKG_STATUS, STATUS_1), (APK_INSTALLED, "P:musl\nV:1\n"), ("var/lib/rpm/rpmdb.sqlite", "")], &[], &[]);
    let image = of_image(&[&base]);
    assert_eq!(image.packages.len(), 3);
    assert_eq!(image.not_read, ["var/lib/rpm/rpmdb.sqlite"]);
    let gone = of_image(&[&base, &layer(&[], &["var/lib/dpkg"], &["lib/apk"])]);
    assert!(gone.packages.is_empty(), "{:?}", gone.packages);
    // An opaque directory hides the layers below, not what its own layer writes.
    let again = of_image(&[&base, &layer(&[(APK_INSTALLED, "P:zlib\nV:1.3\n")], &[], &["lib/apk/db"])]);
    let names: Vec<&str> = again.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["base-files", "libc6", "zlib"]);
    assert_eq!(again.packages[2].layer, 1);
}
