use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::*;
use crate::digest::to_hex;
use crate::records::RegistryPackRecord;

fn sha(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// A one-tag pack as a tar stream, with `break_it` applied to the file list first.
fn pack(break_it: impl FnOnce(&mut BTreeMap<String, Vec<u8>>)) -> Vec<u8> {
    let layer = b"layer bytes".to_vec();
    let config = b"{\"config\":{}}".to_vec();
    let manifest = format!(
        "{{\"schemaVersion\":2,\"config\":{{\"digest\":\"sha256:{}\"}},\"layers\":[{{\"digest\":\"sha256:{}\"}}]}}",
        sha(&config),
        sha(&layer)
    )
    .into_bytes();
    let mut files = BTreeMap::new();
    for blob in [&layer, &config, &manifest] {
        let hex = sha(blob);
        files.insert(format!("{V2}{}", blob_path(&hex)), blob.clone());
    }
    let repo = format!("{V2}repositories/app");
    for hex in [sha(&layer), sha(&config)] {
        files.insert(format!("{repo}/_layers/sha256/{hex}/link"), format!("sha256:{hex}").into_bytes());
    }
    let m = sha(&manifest);
    files.insert(format!("{repo}/_manifests/revisions/sha256/{m}/link"), format!("sha256:{m}").into_bytes());
    files.insert(format!("{repo}/_manifests/tags/1.0/current/link"), format!("sha256:{m}").into_bytes());
    break_it(&mut files);
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, &content[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

fn check(tar: Vec<u8>) -> std::result::Result<RegistryPackRecord, String> {
    check_pack(&TarStorage::read("pack", &tar[..]).unwrap(), None)
}

#[test]
fn a_whole_pack_records_its_tags() {
    let record = check(pack(|_| {})).unwrap();
    assert_eq!(record.repositories.len(), 1);
    assert_eq!(record.repositories[0].name, "app");
    assert_eq!(record.repositories[0].tags[0].tag, "1.0");
    assert_eq!(record.blobs, 3);
}

#[test]
fn a_missing_blob_is_named() {
    let err = check(pack(|files| {
        let layer = format!("{V2}{}", blob_path(&sha(b"layer bytes")));
        files.remove(&layer);
    }))
    .unwrap_err();
    assert!(err.contains("app:1.0: layer sha256:") && err.contains("has no blob"), "{err}");
}

#[test]
fn a_missing_layer_link_is_named() {
    let err = check(pack(|files| files.retain(|path, _| !path.contains("/_layers/sha256/") || !path.contains(&sha(b"{\"config\":{}}")))))
        .unwrap_err();
    assert!(err.contains("config sha256:") && err.contains("has no layer link"), "{err}");
}

#[test]
fn a_link_with_a_newline_is_refused() {
    let err = check(pack(|files| {
        for (path, content) in files.iter_mut() {
            if path.ends_with("current/link") {
                content.push(b'\n');
            }
        }
    }))
    .unwrap_err();
    assert!(err.contains("trailing newline"), "{err}");
}

#[test]
fn a_blob_that_does_not_match_its_name_is_refused() {
    let err = check(pack(|files| {
        let layer = format!("{V2}{}", blob_path(&sha(b"layer bytes")));
        files.insert(layer, b"other bytes".to_vec());
    }))
    .unwrap_err();
    assert!(err.contains("not its name"), "{err}");
}
