//! Property tests over everything that reads a bundle's bytes: the trailer, the
//! launcher and index parsers, the rules, tar safety and the registry-pack check. Each
//! property: no panic, no unbounded allocation, and for unpacking, nothing written
//! outside the target. The suite runs a bounded number of cases (`PROPTEST_CASES`,
//! default 64); `hack/fuzz.sh` runs many more.

use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::registry_pack::{check_pack, pack_entry, TarStorage};
use super::tarsafe::{unpack_tree, BoundedHeaders, Unpack};
use super::trailer::{Trailer, TRAILER_LEN};
use super::{launcher, rules, validate, Index};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A valid index as the builder writes one, to mutate.
fn sample_index() -> Vec<u8> {
    let hex = "a".repeat(64);
    format!(
        r#"{{"format_version":3,"bundle":{{"name":"app","version":"1.0","arch":"amd64"}},"build":{{"builder_version":"0.3.0"}},
        "stub":{{"offset":4096,"length":100}},"members":[{{"name":"images","kind":"image","layout":"file","codec":"zstd","offset":8192,
        "stored_size":10,"stored_sha256":"{hex}","size":100,"sha256":"{hex}","mode":420,"unpacked_bytes":4096,
        "images":[{{"id":"sha256:{hex}","tags":["app/api:1.0"]}}]}},{{"name":"tool","kind":"tool","layout":"file","codec":"none",
        "offset":8202,"stored_size":5,"stored_sha256":"{hex}","size":5,"sha256":"{hex}","mode":493,"unpacked_bytes":4096}}],
        "steps":[{{"name":"load","kind":"load-images","member":"images"}},{{"name":"run","kind":"command","run":["tool","x"],"timeout":5}}]}}"#
    )
    .into_bytes()
}

/// Path components that make trouble, and plain ones.
fn component() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "c", ".", "..", "", "d/..", "/", "é", "a\nb"])
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(component(), 1..5).prop_map(|parts| parts.join("/"))
}

#[derive(Debug, Clone)]
struct RawEntry {
    path: String,
    kind: u8,
    link: String,
    mode: u32,
}

fn entry() -> impl Strategy<Value = RawEntry> {
    (path(), prop::sample::select(vec![b'0', b'5', b'2', b'1', b'3', b'6']), path(), 0u32..0o10000)
        .prop_map(|(path, kind, link, mode)| RawEntry { path, kind, link, mode })
}

/// A tar stream written byte by byte, whatever tar-rs's builder would refuse.
fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::new(e.kind));
        let data: &[u8] = if e.kind == b'0' { b"data" } else { b"" };
        header.set_size(data.len() as u64);
        header.set_mode(e.mode);
        let name = &mut header.as_old_mut().name;
        let n = e.path.len().min(100);
        name[..n].copy_from_slice(&e.path.as_bytes()[..n]);
        let linkname = &mut header.as_old_mut().linkname;
        let n = e.link.len().min(100);
        linkname[..n].copy_from_slice(&e.link.as_bytes()[..n]);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

/// Every path under `dir`, without following links.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_trailer_decodes_any_bytes_without_panic(raw in prop::collection::vec(any::<u8>(), TRAILER_LEN as usize)) {
        let raw: [u8; TRAILER_LEN as usize] = raw.try_into().unwrap();
        if let Some(trailer) = Trailer::decode(&raw) {
            prop_assert_eq!(trailer.encode().len(), TRAILER_LEN as usize);
        }
        let _ = Trailer::decode_tail(raw[112..160].try_into().unwrap());
    }

    #[test]
    fn the_launcher_parser_takes_any_bytes(mut raw in prop::collection::vec(any::<u8>(), 0..5000), shebang in any::<bool>()) {
        if shebang {
            raw.splice(0..0, b"#!/bin/sh\n# Bundle: a 1, made by airbin 0.3.0, format 3.\nAIRBIN_FORMAT=3\n".iter().copied());
        }
        let _ = launcher::parse(&raw);
    }

    #[test]
    fn a_mutated_index_parses_and_validates_without_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut raw = sample_index();
        for (at, byte) in flips {
            let i = at.index(raw.len());
            raw[i] = byte;
        }
        if let Ok(index) = serde_json::from_slice::<Index>(&raw) {
            if validate::check_index(&index).is_ok() {
                // What passes is safe to use as a path part and an engine argument.
                for member in &index.members {
                    prop_assert!(rules::unsafe_name(&member.name).is_none());
                    for image in &member.images {
                        prop_assert!(image.tags.iter().all(|t| !t.contains(['/', ' ', '?', '\r', '\n']) || rules::is_image_reference(t)));
                    }
                }
            }
        }
    }

    #[test]
    fn the_rules_take_any_text(text in any::<String>()) {
        if rules::is_image_reference(&text) {
            prop_assert!(!text.starts_with('-') && text.bytes().all(|b| b.is_ascii_graphic()) && !text.contains(['?', '#', '%']));
        }
        if rules::unsafe_name(&text).is_none() {
            prop_assert!(!text.contains('/') && text != "." && text != ".." && text.len() <= 100);
        }
        let _ = rules::unsafe_step_name(&text);
        let _ = rules::printable(&text, 10);
        let _ = pack_entry(&text);
    }

    #[test]
    fn unpacking_never_writes_outside_the_target(entries in prop::collection::vec(entry(), 1..8), special in any::<bool>()) {
        let sandbox = tempfile::tempdir().unwrap();
        fs::create_dir(sandbox.path().join("outside")).unwrap();
        fs::write(sandbox.path().join("outside/kept"), b"kept").unwrap();
        let dest = sandbox.path().join("box/out");
        fs::create_dir(sandbox.path().join("box")).unwrap();
        let tar = raw_tar(&entries);
        let result = unpack_tree("fuzz", &tar[..], &dest, &Unpack { special_bits: special, entry_rule: None });
        // Outside the target nothing changed, whatever the outcome.
        prop_assert_eq!(tree(&sandbox.path().join("outside")), vec!["kept".to_string()]);
        prop_assert_eq!(fs::read(sandbox.path().join("outside/kept")).unwrap(), b"kept".to_vec());
        let beside: Vec<String> = tree(&sandbox.path().join("box")).into_iter().filter(|p| !p.starts_with("out")).collect();
        prop_assert!(beside.is_empty(), "written beside the target: {:?}", beside);
        if result.is_ok() {
            // Every link left resolves inside.
            for rel in tree(&dest) {
                let full = dest.join(&rel);
                if fs::symlink_metadata(&full).unwrap().file_type().is_symlink() {
                    if let Ok(resolved) = fs::canonicalize(&full) {
                        prop_assert!(resolved.starts_with(fs::canonicalize(&dest).unwrap()), "{} -> {}", rel, resolved.display());
                    }
                }
            }
        }
    }

    #[test]
    fn bounded_headers_pass_any_stream(raw in prop::collection::vec(any::<u8>(), 0..4096)) {
        let mut reader = BoundedHeaders::new(&raw[..]);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    }

    #[test]
    fn the_pack_check_takes_any_pack(paths in prop::collection::vec(
        (prop::sample::select(vec![
            "docker/registry/v2/repositories/app/_manifests/tags/1.0/current/link",
            "docker/registry/v2/repositories/app/_manifests/revisions/sha256/HEX/link",
            "docker/registry/v2/repositories/app/_layers/sha256/HEX/link",
            "docker/registry/v2/blobs/sha256/HE/HEX/data",
            "docker/registry/v2/blobs/sha256/é/x/data",
            "docker/registry/v2/evil",
        ]), prop::sample::select(vec!["sha256:HEX", "sha256:", "x", "{\"manifests\":[{\"digest\":\"sha256:HEX\"}]}"])), 1..6)) {
        let hex = "ab".repeat(32);
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in &paths {
            let path = path.replace("HEX", &hex).replace("HE/", "ab/");
            let content = content.replace("HEX", &hex);
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            let _ = builder.append_data(&mut header, &path, content.as_bytes());
        }
        let tar = builder.into_inner().unwrap();
        if let Ok(storage) = TarStorage::read("fuzz", &tar[..]) {
            let _ = check_pack(&storage, None);
        }
    }
}
