//! End to end: real bundles built by `airbin`, run as a field engineer runs them, with
//! bash, dash, busybox sh and `./x.bin`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use airbin_format::{BuildFacts, Bundle, BundleMeta, BundleWriter, Codec, InstallRules, Layout, Member, MemberKind, TRAILER_LEN};
use support::*;

fn all_shells_present(test: &str) -> bool {
    ["bash", "dash", "busybox"].iter().all(|p| require(p, test))
}

#[test]
fn build_writes_the_bin_and_a_sha256_that_sha256sum_accepts() {
    let bin = minimal();
    assert_eq!(bin.file_name().unwrap(), "minimal-1.0.0-amd64.bin");
    assert_eq!(fs::metadata(bin).unwrap().permissions().mode() & 0o777, 0o755);
    let dist = bin.parent().unwrap();
    assert_eq!(entries(dist), ["minimal-1.0.0-amd64.bin", "minimal-1.0.0-amd64.bin.sha256"]);
    let check = Command::new("sha256sum").arg("-c").arg("minimal-1.0.0-amd64.bin.sha256").current_dir(dist).output().unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
}

#[test]
fn the_builder_says_which_stubs_and_format_it_carries() {
    let out = airbin().arg("--version").output().unwrap();
    let text = stdout(&out);
    let (version, format) = (env!("CARGO_PKG_VERSION"), airbin_format::FORMAT_VERSION);
    assert!(text.starts_with(&format!("airbin {version} (stub {version}; bundle format {format})\n")), "{text}");
    // One line per arch: "arm64 stub for aarch64-unknown-linux-musl, 1049936 bytes: the
    // runtime's 1904944 packed". The stub carries the runtime compressed, and that is
    // what a bundle of that arch holds.
    let dir = scratch();
    for (arch, target) in [("amd64", "x86_64-unknown-linux-musl"), ("arm64", "aarch64-unknown-linux-musl")] {
        let prefix = format!("{arch} stub for {target}, ");
        let line = text.lines().find_map(|line| line.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {prefix:?} in {text}"));
        let numbers: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter(|n| !n.is_empty()).map(|n| n.parse().unwrap()).collect();
        let [stub, runtime] = numbers[..] else { panic!("{line}") };
        assert!(stub * 3 < runtime * 2, "{arch}: the stub ({stub} bytes) is not much smaller than the runtime ({runtime}): {text}");
        let out = airbin()
            .arg("build")
            .arg(repo_root().join("samples/minimal"))
            .args(["--arch", arch, "-q", "-o"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let carried = Bundle::open(&dir.path().join(format!("minimal-1.0.0-{arch}.bin"))).unwrap().trailer.stub_len;
        assert_eq!(carried, stub, "the {arch} bundle carries the stub the builder names");
    }
}

#[test]
fn a_damaged_runtime_on_a_host_without_cksum_is_refused_by_the_stub_before_it_runs() {
    let dir = scratch();
    // The launcher's cksum of the stub is skipped here; the loader must catch the damage.
    let tools = tools_only(&dir.path().join("tools"), &["dd", "tail", "chmod", "rm", "mkdir"]);
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let original = fs::read(minimal()).unwrap();
    let (at, len) = packed_runtime(minimal());
    let cases = [
        ("the frame's descriptor (checksum flag)", at + 4),
        ("the frame's recorded size", at + 6),
        // Its top byte: a size no runtime has, refused before it becomes an allocation.
        ("the recorded size's top byte", at + 8),
        ("the first block", at + 64),
        ("the middle of the data", at + len / 2),
        ("the last block", at + len - 100),
        ("the checksum", at + len - 2),
    ];
    for (i, (label, offset)) in cases.into_iter().enumerate() {
        let mut damaged = original.clone();
        damaged[offset] ^= 0x04;
        let bin = dir.path().join(format!("damaged-{i}.bin"));
        fs::write(&bin, &damaged).unwrap();
        let target = dir.path().join(format!("target-{i}"));
        // By full path: PATH holds the tools only.
        let shell = [&["/bin/bash"][..], &["/bin/dash"], &["/bin/busybox", "sh"]][i % 3];
        let json = i % 2 == 0;
        let mut args = vec!["extract", "--target", target.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let out = Command::new(shell[0]).args(&shell[1..]).arg(&bin).args(&args).env("PATH", &tools).env("TMPDIR", &tmp).output().unwrap();
        let err = stderr(&out);
        let label = format!("{label} at {offset} under {shell:?}");
        assert_eq!(out.status.code(), Some(3), "{label}: {err}");
        assert_eq!(err.lines().count(), 1, "{label}: one line: {err}");
        assert!(err.contains("is damaged: its runtime does not unpack") && err.contains(".sha256"), "{label}: {err}");
        // A frame without its checksum would go unchecked: refused as such.
        assert!(i != 0 || err.contains("its frame has no checksum"), "{label}: {err}");
        assert!(i != 2 || err.contains("more than a runtime can be"), "{label}: {err}");
        assert!(!target.exists() && entries(&tmp).is_empty(), "{label}: left {:?} in TMPDIR", entries(&tmp));
        if json {
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{label}: {e}: {}", stdout(&out)));
            assert_eq!((doc["exit_code"].as_i64(), doc["error"]["class"].as_str()), (Some(3), Some("integrity")), "{label}: {doc}");
        }
    }
}

#[test]
fn the_runtime_starts_where_the_kernel_forbids_executable_memory_files() {
    if !require("unshare", "the_runtime_starts_where_the_kernel_forbids") {
        return;
    }
    // Kernels before 6.3 cannot forbid it, so there is nothing to fall back from.
    let how = "this kernel has no vm.memfd_noexec (Linux 6.3 and later have it)";
    if !skip::needs("the_runtime_starts_where_the_kernel_forbids", "memfd-noexec", Path::new("/proc/sys/vm/memfd_noexec").exists(), how) {
        return;
    }
    let dir = scratch();
    let (bin, stub_kib) = minimal_copy(dir.path());
    let cases = [
        ("a roomy TMPDIR", "TMPDIR=/tmp/t bash \"$1\" extract --target \"$2\"".to_string(), 0),
        // Room for the stub but not for the runtime beside it: the launcher moves on to /tmp.
        (
            "a TMPDIR with room for the stub only",
            format!("mount -t tmpfs -o size={stub_kib}k tmpfs /tmp/t && TMPDIR=/tmp/t dash \"$1\" extract --target \"$2\""),
            0,
        ),
        // Nowhere with room for both: the launcher's own message, exit 7.
        (
            "no directory with room for the runtime",
            format!(
                "for d in /tmp /var/tmp /dev/shm /mnt/home; do mkdir -p $d && mount -t tmpfs -o size={stub_kib}k tmpfs $d || exit 99; done; \
                 cp \"$1\" /mnt/home/m.bin && cd /mnt/home && HOME=/mnt/home TMPDIR= busybox sh /mnt/home/m.bin extract --target \"$2\""
            ),
            7,
        ),
    ];
    for (i, (label, body, want)) in cases.iter().enumerate() {
        // A pid namespace of its own carries its own vm.memfd_noexec; 2 refuses every
        // executable memfd, so the runtime must run from a file.
        let script = dir.path().join(format!("case{i}.sh"));
        fs::write(
            &script,
            format!(
                "echo 2 > /proc/sys/vm/memfd_noexec || exit 97\n\
                 mount -t tmpfs -o size=32m tmpfs /tmp && mkdir /tmp/t || exit 99\n\
                 ( {body} ) >/dev/null; rc=$?\n\
                 echo \"left:$(find /tmp /var/tmp /dev/shm -mindepth 1 -path '*airbin*')\"\n\
                 exit $rc\n"
            ),
        )
        .unwrap();
        let target = dir.path().join(format!("out{i}"));
        let out = in_mount_namespace(dir.path(), "unshare --pid --fork sh \"$1\" \"$2\" \"$3\"", &[&script, &bin, &target]);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(97), "{label}: could not set vm.memfd_noexec: {err}");
        assert_eq!(out.status.code(), Some(*want), "{label}: {err}");
        assert_eq!(stdout(&out).trim(), "left:", "{label}: left files behind");
        if *want == 0 {
            assert_eq!(entries(&target), ["conf.d", "config.sample", "hello"], "{label}");
        } else {
            assert_eq!(err.lines().count(), 1, "{label}: one line: {err}");
            assert!(err.contains("where programs may run") && !target.exists(), "{label}: {err}");
        }
    }
}

#[test]
fn every_shell_runs_info_list_check_and_extract_from_any_directory() {
    if !all_shells_present("every_shell_runs") {
        return;
    }
    let dir = scratch();
    let spaced = dir.path().join("a dir with spaces");
    fs::create_dir(&spaced).unwrap();
    let bundle = spaced.join("my bundle.bin");
    fs::copy(minimal(), &bundle).unwrap();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();

    for shell in SHELLS {
        let info = shell.command(&bundle).arg("info").env("TMPDIR", &tmp).current_dir(&elsewhere).output().unwrap();
        assert!(info.status.success(), "{shell:?} info: {}", stderr(&info));
        let text = stdout(&info);
        for expected in [
            "name:        minimal",
            "version:     1.0.0",
            "arch:        amd64",
            &format!("by airbin {}", env!("CARGO_PKG_VERSION")),
            "hello",
            "config.sample",
            "conf.d",
        ] {
            assert!(text.contains(expected), "{shell:?} info lacks {expected}: {text}");
        }

        let list = run(shell, &bundle, &["--list"], &tmp);
        assert!(list.status.success() && stdout(&list).contains("config-sample"), "{shell:?} --list: {}", stderr(&list));

        let check = run(shell, &bundle, &["check"], &tmp);
        assert!(check.status.success(), "{shell:?} check: {}", stderr(&check));
        assert!(stdout(&check).contains("OK"), "{shell:?}: {}", stdout(&check));

        let target = dir.path().join(format!("out {shell:?}"));
        let extract =
            shell.command(&bundle).args(["extract", "--target"]).arg(&target).env("TMPDIR", &tmp).current_dir(&elsewhere).output().unwrap();
        assert!(extract.status.success(), "{shell:?} extract: {}", stderr(&extract));
        assert_eq!(entries(&target), ["conf.d", "config.sample", "hello"]);
        let hello = target.join("hello");
        // The checkout's own mode (which its umask made): the bundle keeps it.
        let source_mode = fs::metadata(repo_root().join("samples/minimal/hello.sh")).unwrap().permissions().mode() & 0o777;
        assert_eq!(fs::metadata(&hello).unwrap().permissions().mode() & 0o777, source_mode, "mode bits kept");
        assert_eq!(fs::read(&hello).unwrap(), fs::read(repo_root().join("samples/minimal/hello.sh")).unwrap());
        assert_eq!(
            fs::read(target.join("conf.d/app.yaml")).unwrap(),
            fs::read(repo_root().join("samples/minimal/conf.d/app.yaml")).unwrap()
        );
        assert!(entries(&tmp).is_empty(), "{shell:?} left {:?} in TMPDIR", entries(&tmp));
    }
}

#[test]
fn extract_of_named_members_writes_only_those_and_defaults_to_name_version() {
    let dir = scratch();
    let tmp = dir.path();
    let out = Shell::Dash.command(minimal()).args(["extract", "hello"]).env("TMPDIR", tmp).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(entries(&dir.path().join("minimal-1.0.0")), ["hello"]);

    let out = run(Shell::Dash, minimal(), &["extract", "--target", "x", "nosuch"], tmp);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no member 'nosuch'; its members are: hello, config.sample, conf.d"), "{}", stderr(&out));
}

#[test]
fn makeself_flags_mean_what_they_mean_there() {
    let dir = scratch();
    let tmp = dir.path();
    let info = run(Shell::Dash, minimal(), &["--info"], tmp);
    assert!(info.status.success() && stdout(&info).contains("name:        minimal"));
    let check = run(Shell::Dash, minimal(), &["--check", "--quiet"], tmp);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(stderr(&check).is_empty(), "--quiet prints nothing on success: {}", stderr(&check));

    let target = dir.path().join("staged");
    let staged = run(Shell::Dash, minimal(), &["--noexec", "--target", target.to_str().unwrap()], tmp);
    assert!(staged.status.success(), "{}", stderr(&staged));
    assert_eq!(entries(&target), ["conf.d", "config.sample", "hello"]);
    assert!(stdout(&staged).contains(&format!("staged in {}", target.display())), "{}", stdout(&staged));
}

#[test]
fn install_stages_into_the_state_directory_and_reports_json() {
    let dir = scratch();
    let state = dir.path().join("state");
    let out = Shell::Bash
        .command(minimal())
        .args(["--yes", "--json"])
        .env("TMPDIR", dir.path())
        .env("AIRBIN_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(
        (report["command"].as_str(), report["status"].as_str(), report["exit_code"].as_i64()),
        (Some("install"), Some("ok"), Some(0))
    );
    assert_eq!(report["staging"], state.join("minimal/staging").to_str().unwrap());
    assert_eq!(entries(&state.join("minimal/staging")), ["conf.d", "config.sample", "hello"]);
    assert!(report["log"].as_str().unwrap().starts_with(state.join("minimal/logs/install-").to_str().unwrap()), "{report}");
}

#[test]
fn info_json_describes_members_and_build() {
    let out = run(Shell::Dash, minimal(), &["info", "--json"], Path::new("/tmp"));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["bundle"]["name"], "minimal");
    assert_eq!(info["build"]["builder_version"], env!("CARGO_PKG_VERSION"));
    let members = info["members"].as_array().unwrap();
    assert_eq!(members.len(), 4);
    assert_eq!(members[3]["kind"], "sbom");
    assert_eq!(members[2]["layout"], "tree");
    assert_eq!(members[2]["codec"], "xz");
}

#[test]
fn help_names_the_commands_and_exit_codes() {
    let out = run(Shell::Dash, minimal(), &["--help"], Path::new("/tmp"));
    assert!(out.status.success());
    let text = stdout(&out);
    for expected in ["install", "info", "list", "check", "extract", "--target", "3 damaged", "130 interrupted"] {
        assert!(text.contains(expected), "help lacks {expected}: {text}");
    }
}

/// Offsets worth corrupting: every region's first and last byte, plus fields of the
/// trailer and the launcher's own padding.
fn interesting_offsets(bin: &Path) -> Vec<(String, u64)> {
    let bundle = Bundle::open(bin).unwrap();
    let t = &bundle.trailer;
    let mut offsets = vec![
        ("launcher padding".to_string(), 4000),
        ("launcher last byte".to_string(), 4095),
        ("stub first byte".to_string(), t.stub_offset),
        ("stub middle".to_string(), t.stub_offset + t.stub_len / 2),
        ("stub last byte".to_string(), t.stub_offset + t.stub_len - 1),
        ("stub padding".to_string(), t.stub_offset + t.stub_len),
        ("index first byte".to_string(), t.index_offset),
        ("index last byte".to_string(), t.index_offset + t.index_len - 1),
    ];
    for member in &bundle.index.members {
        offsets.push((format!("member {} first byte", member.name), member.offset));
        offsets.push((format!("member {} last byte", member.name), member.offset + member.stored_size - 1));
    }
    let trailer_at = t.total_len - TRAILER_LEN;
    for (field, at) in [
        ("file digest", 0),
        ("index digest", 32),
        ("index offset", 64),
        ("total length", 80),
        ("stub length", 96),
        ("builder version", 112),
        ("format version", 148),
    ] {
        offsets.push((format!("trailer {field}"), trailer_at + at));
    }
    offsets.push(("last byte".to_string(), t.total_len - 1));
    let head = fs::read(bin).unwrap()[..4096].to_vec();
    let text = String::from_utf8(head).unwrap();
    let total_at = text.find("AIRBIN_TOTAL_LEN=").unwrap() as u64 + "AIRBIN_TOTAL_LEN=".len() as u64;
    offsets.push(("launcher total length digit".to_string(), total_at + 2));
    offsets.push(("launcher comment".to_string(), text.find("# Bundle:").unwrap() as u64 + 12));
    offsets
}

#[test]
fn a_flipped_byte_anywhere_is_refused_before_anything_is_written() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let original = fs::read(minimal()).unwrap();
    for (i, (label, offset)) in interesting_offsets(minimal()).into_iter().enumerate() {
        let mut damaged = original.clone();
        damaged[offset as usize] ^= 0x20;
        let bin = dir.path().join(format!("damaged-{i}.bin"));
        fs::write(&bin, &damaged).unwrap();
        let target = dir.path().join(format!("target-{i}"));
        let shell = SHELLS[i % 3];
        let output = run(shell, &bin, &["extract", "--target", target.to_str().unwrap()], &tmp);
        assert_damage_refused(&format!("{label} at {offset} under {shell:?}"), &output, &target, &tmp);
        let state = dir.path().join(format!("state-{i}"));
        let install = shell.command(&bin).env("TMPDIR", &tmp).env("AIRBIN_STATE_DIR", &state).output().unwrap();
        assert_damage_refused(&format!("install, {label}"), &install, &state, &tmp);
    }
}

#[test]
fn truncated_and_extended_bundles_are_refused_at_once() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let original = fs::read(minimal()).unwrap();
    let bundle = Bundle::open(minimal()).unwrap();
    let len = original.len();
    let cuts = [
        len - 1,
        len - TRAILER_LEN as usize,
        bundle.trailer.index_offset as usize,
        bundle.index.members[0].offset as usize + 1,
        4096 + 100_000,
    ];
    for cut in cuts {
        let bin = dir.path().join(format!("cut-{cut}.bin"));
        fs::write(&bin, &original[..cut]).unwrap();
        let target = dir.path().join("t");
        let output = run(Shell::Dash, &bin, &["extract", "--target", target.to_str().unwrap()], &tmp);
        assert_damage_refused(&format!("cut at {cut}"), &output, &target, &tmp);
        assert!(stderr(&output).contains("truncated") || stderr(&output).contains("damaged"), "{}", stderr(&output));
    }
    for extra in [1usize, 4096] {
        let bin = dir.path().join(format!("extra-{extra}.bin"));
        let mut longer = original.clone();
        longer.extend(std::iter::repeat_n(b'x', extra));
        fs::write(&bin, &longer).unwrap();
        let target = dir.path().join("t");
        let output = run(Shell::Busybox, &bin, &["check"], &tmp);
        assert_damage_refused(&format!("{extra} bytes appended"), &output, &target, &tmp);
        assert!(stderr(&output).contains(&format!("{extra} unexpected bytes after its end")), "{}", stderr(&output));
    }
}

#[test]
fn an_unknown_format_version_names_the_builder_that_made_it() {
    let dir = scratch();
    let mut bytes = fs::read(minimal()).unwrap();
    let at = bytes.len() - 12;
    bytes[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
    let bin = dir.path().join("future.bin");
    fs::write(&bin, &bytes).unwrap();
    let out = airbin().arg("inspect").arg(&bin).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let want = format!(
        "is a format 77 bundle made by airbin {}; this airbin reads formats 1 to {}",
        env!("CARGO_PKG_VERSION"),
        airbin_format::FORMAT_VERSION
    );
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
}

#[test]
fn airbin_inspect_and_verify_read_finished_bundles() {
    let out = airbin().arg("verify").arg(minimal()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = airbin().args(["inspect", "--json"]).arg(minimal()).output().unwrap();
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["bundle"]["version"], "1.0.0");
}

/// A copy of the minimal bundle in `dir`, and the KiB a tmpfs needs for its stub alone.
fn minimal_copy(dir: &Path) -> (PathBuf, u64) {
    let bin = dir.join("m.bin");
    fs::copy(minimal(), &bin).unwrap();
    (bin, Bundle::open(minimal()).unwrap().trailer.stub_len.div_ceil(1024) + 64)
}

#[test]
fn runs_when_tmp_is_noexec_or_too_small_and_leaves_nothing_there() {
    if !require("unshare", "runs_when_tmp_is_noexec") {
        return;
    }
    let dir = scratch();
    let (bin, stub_kib) = minimal_copy(dir.path());
    let cases = [
        // /tmp noexec, TMPDIR unset: the launcher must move on to /var/tmp or beyond.
        (
            "noexec /tmp",
            "mount -t tmpfs -o noexec,size=8m tmpfs /tmp || exit 99; unset TMPDIR; sh \"$1\" extract --target \"$2\"".to_string(),
        ),
        // /tmp too small for the stub (and TMPDIR pointing at it): the launcher falls back.
        ("tiny /tmp", "mount -t tmpfs -o size=256k tmpfs /tmp || exit 99; TMPDIR=/tmp bash \"$1\" extract --target \"$2\"".to_string()),
        // Room for the stub and nothing more: everything else lands in the target.
        (
            "stub-sized /tmp",
            format!("mount -t tmpfs -o size={stub_kib}k tmpfs /tmp || exit 99; busybox sh \"$1\" install --noexec --target \"$2\""),
        ),
    ];
    for (i, (label, script)) in cases.iter().enumerate() {
        let target = dir.path().join(format!("out{i}"));
        // A /var/tmp of the test's own: what others left in the host's cannot steer it.
        let script = format!("mount -t tmpfs -o size=64m tmpfs /var/tmp || exit 99; {script} >/dev/null || exit $?; ls -A /tmp /var/tmp");
        let out = in_mount_namespace(dir.path(), &script, &[&bin, &target]);
        assert!(out.status.success(), "{label}: {}", stderr(&out));
        let listed = stdout(&out);
        let left: Vec<&str> = listed.lines().map(str::trim).filter(|l| !l.is_empty() && !l.ends_with(':')).collect();
        assert!(left.is_empty(), "{label}: left in /tmp or /var/tmp: {}", stdout(&out));
        assert_eq!(entries(&target), ["conf.d", "config.sample", "hello"], "{label}");
    }
}

#[test]
fn no_exec_able_directory_at_all_says_what_to_do() {
    if !require("unshare", "no_exec_able_directory") {
        return;
    }
    let dir = scratch();
    let bin = dir.path().join("m.bin");
    fs::copy(minimal(), &bin).unwrap();
    // Every candidate noexec: /tmp, /var/tmp, /dev/shm, and HOME, the bundle's directory
    // and the working directory, which are all one.
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let out = in_mount_namespace(
        dir.path(),
        "for d in /tmp /var/tmp /dev/shm \"$2\"; do mount -t tmpfs -o noexec tmpfs \"$d\" || exit 99; done; \
         cp \"$1\" \"$2/m.bin\" && cd \"$2\" && HOME=\"$2\" TMPDIR= sh \"$2/m.bin\" check; rc=$?; ls -A /tmp /var/tmp; exit $rc",
        &[&bin, &sub],
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("point TMPDIR at one"), "{}", stderr(&out));

    // ...and doing what it says works: TMPDIR is the one place left where programs run.
    let ok = dir.path().join("exec-ok");
    fs::create_dir(&ok).unwrap();
    let out = in_mount_namespace(
        dir.path(),
        "for d in /tmp /var/tmp /dev/shm \"$2\"; do mount -t tmpfs -o noexec tmpfs \"$d\" || exit 99; done; \
         cp \"$1\" \"$2/m.bin\" && cd \"$2\" && HOME=\"$2\" TMPDIR=\"$3\" sh \"$2/m.bin\" check; rc=$?; ls -A \"$3\"; exit $rc",
        &[&bin, &sub, &ok],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("OK"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("airbin."), "the copy in TMPDIR was removed: {}", stdout(&out));
}

/// Extracts `bin` onto a fresh tmpfs mounted with `options` (in a private mount
/// namespace); stdout lists what was left on it afterwards.
fn extract_onto_tmpfs(dir: &Path, bin: &Path, options: &str) -> std::process::Output {
    let mnt = dir.join("small");
    fs::create_dir_all(&mnt).unwrap();
    in_mount_namespace(
        dir,
        &format!(
            "mount -t tmpfs -o {options} tmpfs \"$2\" || exit 99; sh \"$1\" extract --target \"$2/out\"; rc=$?; ls -A \"$2\"; exit $rc"
        ),
        &[bin, &mnt],
    )
}

#[test]
fn a_full_disk_is_found_before_writing_and_says_how_much() {
    if !require("unshare", "a_full_disk") {
        return;
    }
    let dir = scratch();
    let input = dir.path().join("input");
    fs::create_dir(&input).unwrap();
    fs::write(input.join("big.dat"), random_bytes(6 << 20, 7)).unwrap();
    fs::write(input.join("bundle.yaml"), "name: big\nversion: '1'\nmembers:\n  - {name: big.dat, kind: file, path: big.dat}\n").unwrap();
    let bin = build(&input.join("bundle.yaml"), &dir.path().join("dist"));
    let out = extract_onto_tmpfs(dir.path(), &bin, "size=4m");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("not enough free space in") && err.contains("needed") && err.contains("available"), "{err}");
    assert!(stdout(&out).trim().is_empty(), "left behind: {}", stdout(&out));
}

#[test]
fn running_out_of_inodes_mid_way_removes_what_was_written() {
    if !require("unshare", "running_out_of_inodes") {
        return;
    }
    let dir = scratch();
    let input = dir.path().join("input");
    fs::create_dir_all(input.join("many")).unwrap();
    for i in 0..64 {
        fs::write(input.join(format!("many/f{i:02}")), format!("file {i}\n")).unwrap();
    }
    fs::write(input.join("bundle.yaml"), "name: many\nversion: '1'\nmembers:\n  - {name: many, kind: file, path: many}\n").unwrap();
    let bin = build(&input.join("bundle.yaml"), &dir.path().join("dist"));
    let out = extract_onto_tmpfs(dir.path(), &bin, "size=64m,nr_inodes=20");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("no space left while"), "{}", stderr(&out));
    assert!(stdout(&out).trim().is_empty(), "left behind: {}", stdout(&out));
}

#[test]
fn a_read_only_or_forbidden_target_is_a_permission_error() {
    if !require("unshare", "a_read_only_target") || !require("setpriv", "a_forbidden_target") {
        return;
    }
    let dir = scratch();
    let bin = dir.path().join("m.bin");
    fs::copy(minimal(), &bin).unwrap();
    let out = extract_onto_tmpfs(dir.path(), &bin, "ro");
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("read-only file system"), "{}", stderr(&out));

    let forbidden = dir.path().join("root-only");
    fs::create_dir(&forbidden).unwrap();
    fs::set_permissions(&forbidden, fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh"])
        .arg(&bin)
        .args(["extract", "--target"])
        .arg(forbidden.join("out"))
        .env("TMPDIR", "/tmp")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("permission denied while"), "{}", stderr(&out));
    assert!(entries(&forbidden).is_empty());
}

#[test]
fn another_user_extracts_a_tree_holding_read_only_directories() {
    if !skip::root("another_user_extracts_a_tree") || !require("setpriv", "another_user_extracts_a_tree") {
        return;
    }
    let dir = scratch();
    let input = dir.path().join("input");
    fs::create_dir_all(input.join("tree/ro/inner")).unwrap();
    fs::write(input.join("tree/ro/inner/file"), "in a read-only directory\n").unwrap();
    fs::write(input.join("tree/ro/later"), "written after its directory's entry\n").unwrap();
    for (d, mode) in [("tree/ro/inner", 0o555), ("tree/ro", 0o555)] {
        fs::set_permissions(input.join(d), fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::write(input.join("bundle.yaml"), "name: ro\nversion: '1'\nmembers:\n  - {name: tree, kind: file, path: tree}\n").unwrap();
    let bin = build(&input, &dir.path().join("dist"));
    // A directory of the other user's own to extract into.
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    nix::unistd::chown(&home, Some(nix::unistd::Uid::from_raw(65534)), Some(nix::unistd::Gid::from_raw(65534))).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh"])
        .arg(&bin)
        .args(["extract", "--target"])
        .arg(home.join("out"))
        .env("TMPDIR", &home)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success(), "a 0555 directory kept its own children out: {}", stderr(&out));
    let tree = home.join("out/tree");
    assert_eq!(fs::read_to_string(tree.join("ro/inner/file")).unwrap(), "in a read-only directory\n");
    assert_eq!(fs::read_to_string(tree.join("ro/later")).unwrap(), "written after its directory's entry\n");
    for d in ["ro", "ro/inner"] {
        assert_eq!(fs::metadata(tree.join(d)).unwrap().permissions().mode() & 0o777, 0o555, "{d}: its mode, applied last");
    }
    // The scratch directory must be removable.
    for d in ["ro/inner", "ro"] {
        fs::set_permissions(tree.join(d), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(input.join("tree").join(d), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Writes a bundle by hand around one tree member whose tar is `tar`: the builder
/// refuses to make such bundles, so this is how a malicious one would come about.
fn bundle_with_tree(dir: &Path, tar: Vec<u8>) -> PathBuf {
    let stub = {
        let source = Bundle::open(minimal()).unwrap();
        let raw = fs::read(minimal()).unwrap();
        raw[source.trailer.stub_offset as usize..(source.trailer.stub_offset + source.trailer.stub_len) as usize].to_vec()
    };
    let meta = BundleMeta { name: "evil".into(), version: "1".into(), arch: "amd64".into(), description: String::new(), hotfix_of: None };
    let path = dir.join("evil.bin");
    let file = fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
    let mut writer = BundleWriter::new(file, &stub, &meta, "0.1.0").unwrap();
    let stored = writer.write_stored(|sink| sink.write_all(&tar)).unwrap();
    let sha = airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(&tar));
    writer.add_member(Member {
        name: "pack".into(),
        kind: MemberKind::RegistryPack,
        layout: Layout::Tree,
        codec: Codec::None,
        offset: stored.offset,
        stored_size: stored.stored_size,
        stored_sha256: stored.stored_sha256,
        size: tar.len() as u64,
        sha256: sha,
        mode: 0o755,
        special_bits: false,
        unpacked_bytes: 1 << 20,
        images: vec![],
        registry: None,
    });
    let facts = BuildFacts {
        builder_version: "0.1.0".into(),
        built_at: "2026-01-01T00:00:00Z".into(),
        build_host: "test".into(),
        delta_of: None,
        delta_for: None,
    };
    writer.finish(meta, facts, InstallRules::default(), None).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn malicious_tar_paths_inside_a_bundle_are_refused_by_name() {
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("dot-dot", raw_tar(&[("../../escaped", tar::EntryType::Regular, None, b"x", 0o644)]), "'../../escaped' climbs out with '..'"),
        (
            "absolute",
            raw_tar(&[("/etc/airbin-escaped", tar::EntryType::Regular, None, b"x", 0o644)]),
            "'/etc/airbin-escaped' is an absolute path",
        ),
        (
            "symlink",
            raw_tar(&[("docker", tar::EntryType::Symlink, Some("../../../"), b"", 0o644)]),
            "'docker' is a symlink that points outside",
        ),
        ("hardlink", raw_tar(&[("passwd", tar::EntryType::Link, Some("/etc/passwd"), b"", 0o644)]), "'passwd' is a hard link to outside"),
    ];
    for (label, tar, expected) in cases {
        let dir = scratch();
        let bin = bundle_with_tree(dir.path(), tar);
        let target = dir.path().join("deep/target");
        let out = run(Shell::Dash, &bin, &["extract", "--target", target.to_str().unwrap()], dir.path());
        assert_eq!(out.status.code(), Some(3), "{label}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{label}: {}", stderr(&out));
        assert!(!dir.path().join("deep").exists(), "{label}: the target was left behind");
        assert!(!dir.path().join("escaped").exists() && !Path::new("/etc/airbin-escaped").exists());
    }
}

#[test]
fn a_bad_spec_names_file_field_and_problem_and_writes_nothing() {
    let dir = scratch();
    let spec = dir.path().join("bundle.yaml");
    let outdir = dir.path().join("dist");
    let cases = [
        (
            "name: x\nversion: '1'\nmembers:\n  - {name: a, kind: image, path: a.tar, compression: gzip}\n",
            "members[0].compression: unknown variant `gzip`",
        ),
        ("name: x\nversion: '1'\nmembers:\n  - {name: a, kind: tool, path: missing/cadm}\n", "members[0].path: "),
        ("name: 'x y'\nversion: '1'\nmembers: []\n", "name: 'x y' is not a valid name"),
        (
            "name: x\nversion: '1'\narch: riscv64\nmembers: []\n",
            "arch: 'riscv64' is not supported; use amd64 (or x86_64) or arm64 (or aarch64)",
        ),
        ("name: x\nversion: '1'\narch: arm\nmembers: []\n", "arch: 'arm' is not supported"),
        ("name: x\nversion: '1'\nmembers: []\n", "members: the bundle needs at least one member"),
        (
            "name: x\nversion: '1'\nmembers:\n  - {name: a, kind: tool, path: bundle.yaml}\nsteps:\n  - {kind: load-images, member: a}\n",
            "steps[0].member: 'a' is a tool member",
        ),
        (
            "name: x\nversion: '1'\nmembers:\n  - {name: p, kind: registry-pack, path: bundle.yaml}\nsteps:\n  - {kind: restore-registry, member: p, root: /r, root_from_config: k}\n",
            "steps[0]: give the registry root either as root or as root_from_config",
        ),
        (
            "name: x\nversion: '1'\nmembers:\n  - {name: a, kind: tool, path: bundle.yaml}\nsteps:\n  - {kind: command, run: [x], timout: 5m}\n",
            "steps[0].timout: `timout` is not a field here; did you mean `timeout`?",
        ),
        (
            "name: x\nversion: '1'\nmembers:\n  - {name: a, kind: tool, path: bundle.yaml}\nsteps:\n  - {kind: command, run: [x], timeout: soon}\n",
            "steps[0].timeout: 'soon' is not a duration such as 90s, 10m or 1h30m",
        ),
        (
            "name: x\nversion: '1'\nmembers:\n  - {name: a, kind: tool, path: bundle.yaml}\nsteps:\n  - {name: a, kind: command, run: [x]}\n  - {name: a, kind: command, run: [y]}\n",
            "steps[1].name: 'a' names two steps",
        ),
        (
            "name: x\nversion: '1'\nmembers:\n  - {name: a, kind: tool, path: bundle.yaml}\nsteps:\n  - {kind: wait-for, tcp: 'a:1', http: 'http://a'}\n",
            "steps[0]: a wait-for step names exactly one of tcp",
        ),
        ("name: x\nversion: '1'\nmembers:\n  - {name: a, kind: tool, path: bundle.yaml}\nsteps:\n  - {kind: command, run: []}\n", "steps[0].run: give the program"),
        (
            "name: x\nversion: '1'\nmembers:\n  - {name: a, kind: tool, path: bundle.yaml}\nsteps:\n  - {kind: extract, member: a, to: rel}\n",
            "steps[0].to: 'rel' is not an absolute directory",
        ),
        (
            "name: x\nversion: '1'\nmembers:\n  - {name: a, kind: tool, path: bundle.yaml}\nsteps:\n  - {kind: command, run: [x], on_failure: [{kind: command, run: [y], on_failure: [{kind: command, run: [z]}]}]}\n",
            "steps[0].on_failure[0]: an on_failure step cannot have on_failure steps of its own",
        ),
        ("name: x\nversion: '1'\nmembers:\n  - {name: a, kind: tool, path: bundle.yaml}\nconfig:\n  required: ['a b']\n", "config.required[0]: 'a b' is not a config key"),
    ];
    for (yaml, expected) in cases {
        fs::write(&spec, yaml).unwrap();
        let out = airbin().arg("build").arg(&spec).arg("-o").arg(&outdir).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{yaml}");
        let err = stderr(&out);
        // FILE:LINE: FIELD: problem, on one line.
        let at = err.strip_prefix(&format!("airbin: error: {}:", spec.display())).unwrap_or_else(|| panic!("want the file in: {err}"));
        let (line, rest) = at.split_once(": ").unwrap_or_else(|| panic!("want FILE:LINE: in: {err}"));
        assert!(line.parse::<usize>().is_ok_and(|l| l >= 1), "want a line number in: {err}");
        assert!(rest.starts_with(expected), "want «{expected}» in: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(!outdir.exists(), "nothing written for {yaml}");
    }
    // The missing input's path is named.
    fs::write(&spec, cases[1].0).unwrap();
    let out = airbin().arg("build").arg(&spec).arg("-o").arg(&outdir).output().unwrap();
    assert!(stderr(&out).contains(&dir.path().join("missing/cadm").display().to_string()), "{}", stderr(&out));
}

/// A bundle with a large member, for the memory and interrupt tests.
fn large() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, bin) = BUILT.get_or_init(|| {
        let dir = scratch();
        let input = dir.path().join("input");
        fs::create_dir(&input).unwrap();
        // Half text-like, half random: zstd has work to do on one, none on the other.
        let mut text = Vec::with_capacity(160 << 20);
        let mut n = 0u64;
        while text.len() < 160 << 20 {
            text.extend_from_slice(format!("line {n} of a log that compresses well, {}\n", n * 7919).as_bytes());
            n += 1;
        }
        fs::write(input.join("text.dat"), &text).unwrap();
        fs::write(input.join("random.dat"), random_bytes(160 << 20, 3)).unwrap();
        fs::write(
            input.join("bundle.yaml"),
            "name: large\nversion: '1'\nmembers:\n  - {name: text.dat, kind: file, path: text.dat, compression: zstd, level: 3}\n  - {name: random.dat, kind: file, path: random.dat}\n",
        )
        .unwrap();
        let bin = build(&input.join("bundle.yaml"), &dir.path().join("dist"));
        fs::remove_dir_all(&input).unwrap();
        (dir, bin)
    });
    bin
}

#[test]
fn memory_stays_flat_while_extracting_large_members() {
    if !require("/usr/bin/time", "memory_stays_flat") {
        return;
    }
    let dir = scratch();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M", "sh"])
        .arg(large())
        .args(["extract", "--target"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let kb: u64 = err.lines().find_map(|l| l.strip_prefix("maxrss_kb=")).unwrap().trim().parse().unwrap();
    // 320 MiB of payload; the stub streams it through fixed buffers.
    assert!(kb < 100 * 1024, "peak RSS {kb} KiB");
}

#[test]
fn ctrl_c_during_extraction_leaves_nothing_half_done() {
    let dir = scratch();
    let target = dir.path().join("out");
    for attempt in 0..3 {
        let child = Shell::Dash
            .command(large())
            .args(["extract", "--target"])
            .arg(&target)
            .env("TMPDIR", dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The first progress line of the extraction: the stub is writing now.
        let (status, seen) = act_when(child, "extract:", std::time::Duration::ZERO, |pid| send(pid, nix::sys::signal::Signal::SIGINT));
        if status.code() == Some(0) {
            // Finished before the signal landed: everything must be there; try again.
            fs::remove_dir_all(&target).unwrap();
            eprintln!("attempt {attempt}: extraction finished before SIGINT; retrying");
            continue;
        }
        assert_eq!(status.code(), Some(130), "{seen:?}");
        assert!(seen.iter().any(|l| l.contains("interrupted")), "{seen:?}");
        assert!(!target.exists(), "target left behind: {:?}", entries(&target));
        assert!(entries(dir.path()).is_empty(), "left: {:?}", entries(dir.path()));
        return;
    }
    panic!("the extraction always finished before SIGINT arrived");
}

#[test]
fn a_flipped_byte_in_the_launchers_code_never_runs_damaged_code() {
    if !all_shells_present("a_flipped_byte_in_the_launcher") {
        return;
    }
    let dir = scratch();
    let original = fs::read(minimal()).unwrap();
    let head = String::from_utf8(original[..4096].to_vec()).unwrap();
    let last_line = "point TMPDIR at one\"\n";
    let code_end = head.find(last_line).unwrap() + last_line.len();
    let body_start = head.match_indices('\n').nth(1).unwrap().0 + 1;
    // Every byte of the first two lines (the checksum that guards the rest), and a
    // sample of the code after them: one byte in SAMPLE_EVERY, from a seed the run
    // prints (AIRBIN_FLIP_SEED repeats one). `AIRBIN_FLIP_SWEEP=full` (hack/flip-sweep.sh)
    // takes every byte: some 4,000 shells.
    const SAMPLE_EVERY: usize = 10;
    let full = std::env::var("AIRBIN_FLIP_SWEEP").is_ok_and(|v| v == "full");
    let seed: usize = std::env::var("AIRBIN_FLIP_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(std::process::id() as usize);
    println!("launcher flips: {} (AIRBIN_FLIP_SEED={seed})", if full { "every byte" } else { "a sample" });
    let offsets: Vec<usize> = (0..code_end).filter(|&at| full || at < body_start || (at + seed).is_multiple_of(SAMPLE_EVERY)).collect();
    let cwd = dir.path().join("cwd");
    fs::create_dir(&cwd).unwrap();
    let dev_before = entries(Path::new("/dev"));
    std::thread::scope(|scope| {
        for (worker, chunk) in offsets.chunks(offsets.len().div_ceil(2)).enumerate() {
            let (dir, original, cwd) = (dir.path(), &original, &cwd);
            scope.spawn(move || {
                let tmp = dir.join(format!("tmp{worker}"));
                fs::create_dir(&tmp).unwrap();
                let bin = dir.join(format!("d{worker}.bin"));
                let target = dir.join(format!("target{worker}"));
                for &offset in chunk {
                    let mut damaged = original.clone();
                    damaged[offset] ^= 0x20;
                    fs::write(&bin, &damaged).unwrap();
                    let shell = SHELLS[offset % 3];
                    let out = shell
                        .command(&bin)
                        .args(["extract", "--target", target.to_str().unwrap()])
                        .env("TMPDIR", &tmp)
                        .current_dir(cwd)
                        .output()
                        .unwrap();
                    let code = out.status.code();
                    assert!(code.is_some_and(|c| c != 0), "flip at {offset} under {shell:?}: exit {code:?}");
                    assert!(!target.exists() && entries(&tmp).is_empty(), "flip at {offset} under {shell:?} left files");
                    if offset >= body_start {
                        assert_eq!(code, Some(3), "flip at {offset} under {shell:?}: {}", stderr(&out));
                        assert!(stderr(&out).contains("is damaged"), "flip at {offset}: {}", stderr(&out));
                    }
                    assert!(entries(cwd).is_empty(), "flip at {offset} under {shell:?} created {:?}", entries(cwd));
                }
            });
        }
    });
    // A damaged redirection (`>/dev/nUll`) would have created a file there.
    assert_eq!(entries(Path::new("/dev")), dev_before, "damaged bundles created files in /dev");
}

#[test]
fn a_host_with_only_dd_tail_and_chmod_is_enough() {
    let dir = scratch();
    // No cksum or mktemp either: the launcher's checks that need them are skipped.
    let tools = tools_only(&dir.path().join("tools"), &["dd", "tail", "chmod", "rm", "mkdir"]);
    let target = dir.path().join("out");
    let out = Command::new("/bin/dash")
        .arg(minimal())
        .args(["extract", "--target"])
        .arg(&target)
        .env("PATH", &tools)
        .env("TMPDIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(entries(&target), ["conf.d", "config.sample", "hello"]);
}

#[test]
fn a_second_install_of_the_same_bundle_waits_for_none_and_says_so() {
    if !require("flock", "a_second_install") {
        return;
    }
    let dir = scratch();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    // Another run holds the lock (flock(1) takes the same kind of lock as the stub).
    fs::create_dir(state.join("minimal")).unwrap();
    let lock = state.join("minimal/lock");
    let ready = dir.path().join("locked");
    let mut holder = Command::new("flock").arg(&lock).args(["sh", "-c", "touch \"$0\"; sleep 30"]).arg(&ready).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready.exists() {
        assert!(std::time::Instant::now() < deadline, "flock never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = Shell::Dash.command(minimal()).env("AIRBIN_STATE_DIR", &state).env("TMPDIR", dir.path()).output().unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("another run of this bundle is going on"), "{}", stderr(&out));
    assert!(!state.join("minimal/staging").exists(), "nothing staged");
}

#[test]
fn a_terminal_gets_a_progress_bar_and_a_log_gets_timestamped_lines() {
    if !require("script", "a_terminal_gets_a_progress_bar") {
        return;
    }
    // script(1) gives the bundle a pseudo-terminal, as an engineer's ssh session does.
    let command = format!("sh '{}' check", minimal().display());
    let tty = Command::new("script").args(["-qec", &command, "/dev/null"]).env("TERM", "xterm").output().unwrap();
    assert!(tty.status.success(), "{}", stdout(&tty));
    let screen = stdout(&tty);
    assert!(screen.contains("check") && screen.contains("[====="), "a bar on the terminal: {screen:?}");

    let log = run(Shell::Dash, minimal(), &["check"], Path::new("/tmp"));
    let lines = stderr(&log);
    let first = lines.lines().next().unwrap_or_default();
    // 2026-11-22T05:00:00Z check: 0% of 1.4 MiB
    assert!(first.len() > 21 && first.as_bytes()[4] == b'-' && first[19..].starts_with("Z check: 0% of"), "{lines}");
    assert!(!lines.contains('\r') && !lines.contains("[="), "no bar in a log: {lines}");
}

/// A directory member of many small files: unpacking it takes a while.
fn many_files() -> &'static Path {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, bin) = BUILT.get_or_init(|| {
        let dir = scratch();
        let tree = dir.path().join("input/tree");
        for d in 0..100 {
            let sub = tree.join(format!("d{d}"));
            fs::create_dir_all(&sub).unwrap();
            for f in 0..300 {
                fs::write(sub.join(format!("f{f}")), format!("file {d}/{f}\n").repeat(60)).unwrap();
            }
        }
        fs::write(dir.path().join("input/bundle.yaml"), "name: tree\nversion: '1'\nmembers:\n  - {name: tree, kind: file, path: tree}\n")
            .unwrap();
        let bin = build(&dir.path().join("input/bundle.yaml"), &dir.path().join("dist"));
        fs::remove_dir_all(dir.path().join("input")).unwrap();
        (dir, bin)
    });
    bin
}

#[test]
fn ctrl_c_or_sigterm_during_a_tree_unpack_is_an_interrupt_and_leaves_nothing() {
    for signal in [nix::sys::signal::Signal::SIGINT, nix::sys::signal::Signal::SIGTERM] {
        let dir = scratch();
        let target = dir.path().join("out");
        let mut interrupted = false;
        for _ in 0..5 {
            let child = Shell::Bash
                .command(many_files())
                .args(["extract", "--target"])
                .arg(&target)
                .env("TMPDIR", dir.path())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (status, seen) = act_when(child, "extract:", std::time::Duration::from_millis(30), |pid| send(pid, signal));
            if status.code() == Some(0) {
                fs::remove_dir_all(&target).unwrap();
                continue;
            }
            assert_eq!(status.code(), Some(130), "{signal}: {seen:?}");
            assert!(
                seen.iter().any(|l| l.contains("interrupted")) && !seen.iter().any(|l| l.contains("failed to unpack")),
                "{signal}: {seen:?}"
            );
            assert!(!target.exists() && entries(dir.path()).is_empty(), "{signal}: left {:?}", entries(dir.path()));
            interrupted = true;
            break;
        }
        assert!(interrupted, "{signal}: the unpack always finished before the signal");
    }
}

#[test]
fn a_host_without_mkdir_or_rm_or_dev_null_is_told_what_is_missing() {
    let dir = scratch();
    let tools = dir.path().join("tools");
    fs::create_dir(&tools).unwrap();
    for tool in ["dd", "tail", "chmod"] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().unwrap();
        std::os::unix::fs::symlink(stdout(&found).trim(), tools.join(tool)).unwrap();
    }
    for shell in ["/bin/dash", "/bin/bash"] {
        let out =
            Command::new(shell).arg(minimal()).args(["info", "--json"]).env("PATH", &tools).env("TMPDIR", dir.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(7), "{shell}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("this host lacks mkdir rm: the launcher needs sh, dd, chmod, mkdir and rm"),
            "{shell}: {}",
            stderr(&out)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json: one document from the launcher too");
        assert_eq!(
            (doc["status"].as_str(), doc["exit_code"].as_i64(), doc["error"]["class"].as_str()),
            (Some("failed"), Some(7), Some("host-not-ready"))
        );
    }
    if !require("unshare", "a_host_without_dev_null") {
        return;
    }
    // A chroot-like host without /dev: an empty tmpfs over it.
    let bin = dir.path().join("m.bin");
    fs::copy(minimal(), &bin).unwrap();
    let out = in_mount_namespace(dir.path(), "mount -t tmpfs tmpfs /dev || exit 99; dash \"$1\" info 2>&1; echo \"exit $?\"", &[&bin]);
    let text = stdout(&out);
    assert!(text.contains("this host has no /dev/null (a chroot without /dev?)") && text.contains("exit 7"), "{text} {}", stderr(&out));
}

#[test]
fn check_list_and_launcher_failures_share_the_json_envelope() {
    let dir = scratch();
    for (args, command) in [(&["check", "--json"][..], "check"), (&["list", "--json"][..], "list"), (&["info", "--json"][..], "info")] {
        let out = run(Shell::Dash, minimal(), args, dir.path());
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (doc["command"].as_str(), doc["status"].as_str(), doc["exit_code"].as_i64()),
            (Some(command), Some("ok"), Some(0)),
            "{doc}"
        );
        assert!(doc["error"].is_null() && doc.get("log").is_some() && doc.get("steps").is_some(), "{doc}");
    }
    // A damaged runtime, caught by the launcher before any of it runs.
    let mut bytes = fs::read(minimal()).unwrap();
    bytes[4096 + 100_000] ^= 1;
    let bin = dir.path().join("damaged.bin");
    fs::write(&bin, &bytes).unwrap();
    let out = run(Shell::Dash, &bin, &["check", "--json"], dir.path());
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (doc["status"].as_str(), doc["exit_code"].as_i64(), doc["error"]["class"].as_str()),
        (Some("failed"), Some(3), Some("integrity"))
    );
}
