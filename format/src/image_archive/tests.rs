use sha2::{Digest, Sha256};

use super::*;
use crate::testing::{tar_of, ShortReads};

fn hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn refuse(why: String) -> Error {
    Error::usage(format!("archive {why}"))
}

fn read_all(archive: &[u8], digest_layers: bool) -> Result<ImageArchive> {
    read(archive, &ReadOptions { arch: "amd64", digest_layers }, &refuse)
}

const CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux","rootfs":{"diff_ids":[]}}"#;

#[test]
fn both_docker_save_layouts_give_configs_tags_and_layer_digests() {
    let layer = tar_of(&[("a", b"layer bytes")]);
    let gz = [&[0x1f, 0x8b][..], b"not really gzip"].concat();
    // Docker before 25: <id>.json and <id>/layer.tar.
    let legacy = tar_of(&[
        ("l/layer.tar", &layer),
        ("g/layer.tar", &gz),
        (&format!("{}.json", hex(CONFIG)), CONFIG),
        (
            "manifest.json",
            format!(r#"[{{"Config":"{}.json","RepoTags":["a:1"],"Layers":["l/layer.tar","g/layer.tar"]}}]"#, hex(CONFIG)).as_bytes(),
        ),
    ]);
    // Docker 25 and later: an OCI layout, with manifest.json naming its blobs.
    let (c, l) = (hex(CONFIG), hex(&layer));
    let oci = tar_of(&[
        (&format!("blobs/sha256/{l}"), &layer),
        (&format!("blobs/sha256/{c}"), CONFIG),
        ("manifest.json", format!(r#"[{{"Config":"blobs/sha256/{c}","RepoTags":["a:1"],"Layers":["blobs/sha256/{l}"]}}]"#).as_bytes()),
    ]);
    for (what, archive, layers) in [("legacy", legacy, 2), ("oci", oci, 1)] {
        let read = read_all(&archive, true).unwrap();
        let image = &read.images[0];
        assert_eq!((image.id.as_str(), image.tags.as_slice()), (format!("sha256:{c}").as_str(), &["a:1".to_string()][..]), "{what}");
        assert_eq!(image.config, CONFIG, "{what}");
        assert_eq!(image.layers.len(), layers, "{what}");
        assert_eq!(image.layers[0].digest.as_deref(), Some(format!("sha256:{l}").as_str()), "{what}");
        assert_eq!(image.layers[0].media_type, Some(LAYER_TAR), "{what}");
        if layers == 2 {
            assert_eq!(image.layers[1].media_type, Some(LAYER_GZIP));
        }
        // Inspection does not digest layers; it still finds them.
        let inspected = read_all(&archive, false).unwrap();
        assert_eq!(inspected.images[0].layers.len(), layers, "{what}");
        assert_eq!(inspected.images[0].layers[0].digest, None, "{what}");
    }
}

/// An OCI layout of one multi-platform image (amd64 and arm64) named `a:1`.
fn multi_platform() -> Vec<u8> {
    let arm_config = br#"{"architecture":"arm64","os":"linux"}"#;
    let (layer, arm_layer) = (tar_of(&[("a", b"amd64")]), tar_of(&[("a", b"arm64")]));
    let manifest = |config: &[u8], layer: &[u8]| {
        format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"sha256:{}","size":{}}},"layers":[{{"digest":"sha256:{}","size":{}}}]}}"#,
            hex(config),
            config.len(),
            hex(layer),
            layer.len()
        )
    };
    let (amd, arm) = (manifest(CONFIG, &layer), manifest(arm_config, &arm_layer));
    let platforms = format!(
        r#"{{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {{"digest":"sha256:{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}},
            {{"digest":"sha256:{}","size":{},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
        hex(amd.as_bytes()),
        amd.len(),
        hex(arm.as_bytes()),
        arm.len()
    );
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:{}","size":{},
            "annotations":{{"io.containerd.image.name":"docker.io/library/a:1"}}}}]}}"#,
        hex(platforms.as_bytes()),
        platforms.len()
    );
    let blob = |data: &[u8]| format!("blobs/sha256/{}", hex(data));
    tar_of(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", index.as_bytes()),
        (&blob(platforms.as_bytes()), platforms.as_bytes()),
        (&blob(amd.as_bytes()), amd.as_bytes()),
        (&blob(arm.as_bytes()), arm.as_bytes()),
        (&blob(CONFIG), CONFIG),
        (&blob(arm_config), arm_config),
        (&blob(&layer), &layer),
        (&blob(&arm_layer), &arm_layer),
    ])
}

#[test]
fn a_multi_platform_oci_image_gives_the_bundles_platform_and_its_subset() {
    let amd = read_all(&multi_platform(), true).unwrap();
    assert_eq!(amd.images.len(), 1);
    assert_eq!(amd.images[0].id, format!("sha256:{}", hex(CONFIG)));
    assert_eq!(amd.images[0].tags, ["docker.io/library/a:1"]);
    let subset = amd.subset.expect("a subset for one platform");
    assert!(subset.keep.contains("oci-layout") && subset.keep.contains(&format!("blobs/sha256/{}", hex(CONFIG))));
    assert_eq!(subset.keep.len(), 4, "the layout, the manifest, the config and the layer of amd64 only");
    let arm = read(&multi_platform()[..], &ReadOptions { arch: "arm64", digest_layers: false }, &refuse).unwrap();
    assert_ne!(arm.images[0].id, format!("sha256:{}", hex(CONFIG)));
}

#[test]
fn what_docker_save_does_not_write_is_refused_with_what_is_wrong() {
    let refused = |archive: Vec<u8>| read_all(&archive, false).err().expect("refused").message;
    let c = hex(CONFIG);
    let manifest = |layers: &str| format!(r#"[{{"Config":"{c}.json","RepoTags":["a:1"],"Layers":[{layers}]}}]"#);
    assert!(refused(tar_of(&[("x", b"1")])).contains("has no manifest.json or index.json"));
    assert!(refused(tar_of(&[("manifest.json", b"[]")])).contains("holds no image"));
    assert!(refused(tar_of(&[("index.json", br#"{"manifests":[]}"#)])).contains("holds no image"));
    assert!(refused(tar_of(&[("manifest.json", manifest("").as_bytes())])).contains("lacks the config"));
    let missing_layer = tar_of(&[(&format!("{c}.json"), CONFIG), ("manifest.json", manifest(r#""l/layer.tar""#).as_bytes())]);
    assert!(refused(missing_layer).contains("lacks the layer l/layer.tar"));
    let arm = br#"{"architecture":"arm64","os":"linux"}"#;
    let wrong_arch = tar_of(&[
        (&format!("{}.json", hex(arm)), arm),
        ("manifest.json", format!(r#"[{{"Config":"{}.json","RepoTags":["a:1"]}}]"#, hex(arm)).as_bytes()),
    ]);
    assert!(refused(wrong_arch).contains("whose config says linux/arm64; this bundle is for linux/amd64"));
    let bad_tag =
        tar_of(&[(&format!("{c}.json"), CONFIG), ("manifest.json", format!(r#"[{{"Config":"{c}.json","RepoTags":["A B"]}}]"#).as_bytes())]);
    assert!(refused(bad_tag).contains("which is not a Docker image reference"));
    assert!(refused(b"not a tar at all, but long enough to be read as a header block......".repeat(10)).contains("tar archive"));
}

#[test]
fn json_files_are_kept_within_one_bound() {
    // Seventeen 4 MiB JSON files: more than MAX_KEPT, refused before memory runs out.
    let big = [b"{".as_slice(), &vec![b' '; (MAX_JSON - 1) as usize]].concat();
    let names: Vec<String> = (0..17).map(|n| format!("blobs/sha256/{n:064x}")).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), big.as_slice())).collect();
    let err = read_all(&tar_of(&files), false).err().unwrap();
    assert!(err.message.contains("more than 64 MiB of JSON files"), "{}", err.message);
}

#[test]
fn short_reads_give_the_same_archive() {
    for archive in [multi_platform()] {
        let whole = read_all(&archive, true).unwrap();
        for seed in 1..20 {
            let short = read(ShortReads::new(&archive[..], seed), &ReadOptions { arch: "amd64", digest_layers: true }, &refuse).unwrap();
            assert_eq!(short.images[0].id, whole.images[0].id);
            assert_eq!(short.images[0].layers[0].digest, whole.images[0].layers[0].digest);
        }
    }
}
