use super::*;

fn package(ecosystem: Ecosystem, name: &str, version: &str) -> Package {
    Package { ecosystem, name: name.into(), version: version.into(), arch: "amd64".into(), source: None, license: None, layer: 0 }
}

#[test]
fn purls_encode_what_a_segment_may_not_hold() {
    let os = OsRelease { id: "debian".into(), version_id: "12".into(), pretty_name: String::new() };
    let mut libc = package(Ecosystem::Deb, "libc6", "1:2.36-9+deb12u4");
    libc.source = Some("glibc".into());
    assert_eq!(package_purl(&libc, Some(&os)), "pkg:deb/debian/libc6@1%3A2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc");
    assert_eq!(package_purl(&package(Ecosystem::Apk, "musl", "1.2.4-r2"), None), "pkg:apk/alpine/musl@1.2.4-r2?arch=amd64");
}

#[test]
fn image_purls_carry_repository_and_tag() {
    let image = |tags: &[&str]| ImageFacts {
        member: "images".into(),
        digest: format!("sha256:{}", "a".repeat(64)),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        layers: Vec::new(),
        found: ImagePackages::default(),
    };
    let digest = format!("sha256:{}", "a".repeat(64));
    assert_eq!(
        image_purl(&image(&["registry.local:5000/Team/App:1.0"])),
        format!("pkg:oci/app@{digest}?repository_url=registry.local:5000/Team/App&tag=1.0")
    );
    assert_eq!(image_purl(&image(&[])), format!("pkg:oci/image@{digest}"));
}
