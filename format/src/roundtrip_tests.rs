//! The writer and the reader, against each other: what the builder writes is what the
//! runtime reads, whole, verified, and refused when a byte of it changes. The members'
//! bytes come through readers that return short reads, as pipes and decompressors do.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::HashingWriter;
use crate::error::ExitClass;
use crate::testing::ShortReads;
use crate::{BuildFacts, Bundle, BundleMeta, BundleWriter, Codec, InstallRules, Layout, Member, MemberKind};

fn meta() -> BundleMeta {
    BundleMeta { name: "roundtrip".into(), version: "1.0".into(), arch: "amd64".into(), description: String::new(), hotfix_of: None }
}

fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Writes a bundle of `members` (name, codec, content), each member's content read
/// through `short` short reads when given. Returns its path.
fn write_bundle(dir: &Path, file: &str, members: &[(&str, Codec, Vec<u8>)], short: Option<u64>) -> PathBuf {
    let path = dir.join(file);
    let out = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
    let mut writer = BundleWriter::new(out, &content(5000, 7), &meta(), "test").unwrap();
    let mut records = Vec::new();
    for (name, codec, bytes) in members {
        let mut facts = None;
        let stored = writer
            .write_stored(|sink| {
                let mut hashing = HashingWriter::new(Vec::new());
                let mut source: Box<dyn Read> = match short {
                    Some(seed) => Box::new(ShortReads::new(&bytes[..], seed)),
                    None => Box::new(&bytes[..]),
                };
                io::copy(&mut source, &mut hashing)?;
                let (plain, size, sha256) = hashing.finish();
                let stored = match codec {
                    Codec::Zstd => zstd::encode_all(&plain[..], 3)?,
                    Codec::None => plain,
                    Codec::Xz => unreachable!("the test writes zstd and stored members"),
                };
                sink.write_all(&stored)?;
                facts = Some((size, sha256));
                Ok(())
            })
            .unwrap();
        let (size, sha256) = facts.unwrap();
        records.push(Member {
            name: name.to_string(),
            kind: MemberKind::File,
            layout: Layout::File,
            codec: *codec,
            offset: stored.offset,
            stored_size: stored.stored_size,
            stored_sha256: stored.stored_sha256,
            size,
            sha256,
            mode: 0o644,
            special_bits: false,
            unpacked_bytes: size.div_ceil(4096) * 4096,
            images: Vec::new(),
            registry: None,
        });
    }
    for member in records {
        writer.add_member(member);
    }
    let facts =
        BuildFacts { builder_version: "test".into(), built_at: String::new(), build_host: String::new(), delta_of: None, delta_for: None };
    writer.finish(meta(), facts, InstallRules::default(), None).unwrap();
    path
}

fn members() -> Vec<(&'static str, Codec, Vec<u8>)> {
    vec![("plain", Codec::None, content(100_000, 1)), ("packed", Codec::Zstd, content(300_000, 2)), ("empty", Codec::None, Vec::new())]
}

#[test]
fn what_the_writer_writes_the_reader_reads_back_whole_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_bundle(dir.path(), "a.bin", &members(), None);
    let bundle = Bundle::open(&path).unwrap();
    assert_eq!(bundle.index.bundle, meta());
    assert_eq!(bundle.trailer.total_len, std::fs::metadata(&path).unwrap().len());
    bundle.verify(&[], &|_| {}).unwrap();
    for (name, _, bytes) in members() {
        let member = bundle.member(name).unwrap();
        let mut read = Vec::new();
        // Read back in short pieces too: the content reader must not assume full buffers.
        ShortReads::new(bundle.content_reader(member).unwrap(), 3).read_to_end(&mut read).unwrap();
        assert_eq!(read, bytes, "{name}");
    }
}

#[test]
fn short_reads_of_the_members_write_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(write_bundle(dir.path(), "whole.bin", &members(), None)).unwrap();
    for seed in [1, 2, 99] {
        let short = std::fs::read(write_bundle(dir.path(), &format!("short{seed}.bin"), &members(), Some(seed))).unwrap();
        assert!(short == whole, "seed {seed}: a bundle written from short reads differs");
    }
}

#[test]
fn a_changed_byte_anywhere_after_the_launcher_fails_open_or_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_bundle(dir.path(), "a.bin", &members(), None);
    let original = std::fs::read(&path).unwrap();
    let len = original.len();
    // The stub, each member, the index, the trailer.
    for at in [4096 + 10, 4096 * 3 + 50_000, len - 400, len - 100, len - 1] {
        let mut damaged = original.clone();
        damaged[at] ^= 0x01;
        let bad = dir.path().join(format!("bad{at}.bin"));
        std::fs::write(&bad, &damaged).unwrap();
        let verdict = Bundle::open(&bad).and_then(|b| b.verify(&[], &|_| {}).map(drop));
        let err = verdict.expect_err(&format!("a flip at {at} of {len} passed"));
        assert_eq!(err.class, ExitClass::Integrity, "flip at {at}: {}", err.message);
    }
    let truncated = dir.path().join("truncated.bin");
    std::fs::write(&truncated, &original[..len - 1000]).unwrap();
    let err = Bundle::open(&truncated).map(drop).expect_err("a truncated bundle opened");
    assert_eq!(err.class, ExitClass::Integrity, "{}", err.message);
}
