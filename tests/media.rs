//! Bundles that fit the media: `airbin build --split-size` cuts a bundle into parts,
//! each with its `.sha256`; `sh x.bin` reads them from beside it or from `--parts DIR`,
//! checks each as it reads it, and names a missing or damaged part before anything
//! lands. Tested on real FAT32 file systems (loop images), as field deliveries carry them.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

/// A bundle of about 10 MiB that stays that size (random bytes, stored as they are),
/// whose one step places its member under `target`.
fn spec(dir: &Path, target: &Path) -> PathBuf {
    fs::write(dir.join("data.bin"), random_bytes(10 << 20, 7)).unwrap();
    fs::write(
        dir.join("bundle.yaml"),
        format!(
            "name: media\nversion: '1.0'\nmembers:\n  - {{name: data, kind: file, path: data.bin, compression: none}}\n\
             steps:\n  - {{name: place data, kind: extract, member: data, to: {}}}\n",
            target.display()
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

fn build_split(spec: &Path, out: &Path, size: &str) -> Output {
    airbin().arg("build").arg(spec).arg("-o").arg(out).args(["--split-size", size]).env("SOURCE_DATE_EPOCH", "1700000000").output().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    entries(dir)
}

#[test]
fn parts_each_with_a_sha256_that_add_up_to_the_bundle() {
    let dir = scratch();
    let spec = spec(dir.path(), &dir.path().join("placed"));
    let whole =
        airbin().arg("build").arg(&spec).arg("-o").arg(dir.path().join("whole")).env("SOURCE_DATE_EPOCH", "1700000000").output().unwrap();
    assert!(whole.status.success(), "{}", stderr(&whole));
    let out = dir.path().join("parts");
    let built = build_split(&spec, &out, "4M");
    assert!(built.status.success(), "{}", stderr(&built));
    assert_eq!(
        names(&out),
        [
            "media-1.0-amd64.bin",
            "media-1.0-amd64.bin.part2",
            "media-1.0-amd64.bin.part2.sha256",
            "media-1.0-amd64.bin.part3",
            "media-1.0-amd64.bin.part3.sha256",
            "media-1.0-amd64.bin.sha256",
        ]
    );
    // Every part checks with sha256sum as it is; together they are the unsplit bundle.
    let sums = Command::new("sh").arg("-c").arg("sha256sum -c *.sha256").current_dir(&out).output().unwrap();
    assert!(sums.status.success(), "{}", stdout(&sums));
    let joined: Vec<u8> =
        ["", ".part2", ".part3"].iter().flat_map(|p| fs::read(out.join(format!("media-1.0-amd64.bin{p}"))).unwrap()).collect();
    assert_eq!(joined, fs::read(dir.path().join("whole/media-1.0-amd64.bin")).unwrap());
    assert_eq!(fs::metadata(out.join("media-1.0-amd64.bin")).unwrap().len(), 4 << 20);
    // The JSON names the parts; a build into the same place with larger parts leaves
    // no stale part behind.
    let json = airbin().arg("build").arg(&spec).arg("-o").arg(&out).args(["--split-size", "8M", "--json"]).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["parts"].as_array().unwrap().len(), 1, "{doc}");
    assert!(!out.join("media-1.0-amd64.bin.part3").exists() && !out.join("media-1.0-amd64.bin.part3.sha256").exists());
    let checked = run(Shell::Busybox, &out.join("media-1.0-amd64.bin"), &["check"], dir.path());
    assert!(checked.status.success(), "{}", stderr(&checked));
    // A part smaller than the runtime the first part must hold: refused, nothing written.
    let small = build_split(&spec, &dir.path().join("small"), "1M");
    assert_eq!(small.status.code(), Some(2));
    assert!(stderr(&small).contains("--split-size") && stderr(&small).contains("give at least"), "{}", stderr(&small));
    assert!(names(&dir.path().join("small")).is_empty());
}

/// A FAT32 file system of `mb` MiB (`mkfs.vfat`), mounted at `at` for as long as the
/// value lives: by the kernel's vfat driver over a loop device where the kernel has one,
/// else by fusefat, the same file system driven from user space (this CI's kernel has
/// no vfat).
struct Stick {
    at: PathBuf,
}

fn kernel_has_vfat() -> bool {
    fs::read_to_string("/proc/filesystems").unwrap_or_default().lines().any(|l| l.trim_end().ends_with("vfat"))
}

impl Stick {
    fn new(image: &Path, at: &Path, mb: u64) -> Stick {
        let file = fs::File::create(image).unwrap();
        file.set_len(mb << 20).unwrap();
        let mkfs = Command::new("mkfs.vfat").args(["-F", "32"]).arg(image).output().unwrap();
        assert!(mkfs.status.success(), "{}", stderr(&mkfs));
        fs::create_dir_all(at).unwrap();
        let mount = match kernel_has_vfat() {
            true => Command::new("mount").args(["-t", "vfat", "-o", "loop"]).arg(image).arg(at).output().unwrap(),
            false => Command::new("fusefat").args(["-o", "rw+"]).arg(image).arg(at).output().unwrap(),
        };
        assert!(mount.status.success(), "{}", stderr(&mount));
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(mounts.contains(at.to_str().unwrap()), "{} is not mounted", at.display());
        Stick { at: at.to_path_buf() }
    }
}

impl Drop for Stick {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

#[test]
fn a_bundle_on_two_fat32_sticks_installs_and_a_missing_or_damaged_part_is_named() {
    let test = "a_bundle_on_two_fat32_sticks_installs_and_a_missing_or_damaged_part_is_named";
    if !skip::root(test) || !require("mkfs.vfat", test) || (!kernel_has_vfat() && !require("fusefat", test)) {
        return;
    }
    let dir = scratch();
    let target = dir.path().join("placed");
    let out = dir.path().join("dist");
    let built = build_split(&spec(&dir.path().join("."), &target), &out, "4M");
    assert!(built.status.success(), "{}", stderr(&built));
    let one = Stick::new(&dir.path().join("one.img"), &dir.path().join("one"), 40);
    let two = Stick::new(&dir.path().join("two.img"), &dir.path().join("two"), 40);
    // The first stick: the bundle and part 2; the second: part 3.
    for (name, stick) in [("media-1.0-amd64.bin", &one), ("media-1.0-amd64.bin.part2", &one), ("media-1.0-amd64.bin.part3", &two)] {
        for file in [name.to_string(), format!("{name}.sha256")] {
            // As a file manager copies: bytes only (FAT has no modes to copy).
            fs::write(stick.at.join(&file), fs::read(out.join(&file)).unwrap()).unwrap();
        }
    }
    let bin = one.at.join("media-1.0-amd64.bin");
    let state = dir.path().join("state");
    let install = |shell: Shell, args: &[&str]| {
        shell.command(&bin).args(args).env("TMPDIR", dir.path()).env("AIRBIN_STATE_DIR", &state).output().unwrap()
    };
    // Part 3 is on the other stick, and not named: said, nothing lands.
    let missing = install(Shell::Dash, &["install", "--yes"]);
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("media-1.0-amd64.bin.part3 is missing") && stderr(&missing).contains("--parts DIR"),
        "{}",
        stderr(&missing)
    );
    assert!(!target.exists() && !state.join("media").exists());
    // Part 3 damaged on its stick: named, nothing lands.
    let part3 = two.at.join("media-1.0-amd64.bin.part3");
    let good = fs::read(&part3).unwrap();
    let flip = |byte: u8| {
        use std::os::unix::fs::FileExt;
        fs::OpenOptions::new().write(true).open(&part3).unwrap().write_all_at(&[byte], 1000).unwrap();
    };
    flip(good[1000] ^ 1);
    let two_dir = two.at.to_str().unwrap();
    let damaged = install(Shell::Busybox, &["install", "--yes", "--parts", two_dir]);
    assert_eq!(damaged.status.code(), Some(3), "{}", stderr(&damaged));
    assert!(
        stderr(&damaged).contains("media-1.0-amd64.bin.part3 is damaged") && stderr(&damaged).contains("copy this part again"),
        "{}",
        stderr(&damaged)
    );
    assert!(!target.join("data").exists(), "nothing lands from a damaged bundle");
    // Copied again: the install reads both sticks and places the member whole.
    flip(good[1000]);
    let installed = install(Shell::Bash, &["install", "--yes", "--parts", two_dir]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    assert_eq!(fs::read(target.join("data")).unwrap(), fs::read(dir.path().join("data.bin")).unwrap());
    let status = install(Shell::Dash, &["status", "--parts", two_dir, "--json"]);
    assert!(status.status.success(), "{}", stderr(&status));
}
