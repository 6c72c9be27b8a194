//! Signed bundles and reproducible builds: `airbin keygen`, `build --sign`, the embedded
//! signature the stub checks against pinned keys, the detached `.minisig` that the
//! standard `minisign -V` accepts, and two builds of the same inputs giving the same bytes.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let out = airbin().arg("keygen").arg("-o").arg(dir.join(name)).env("AIRBIN_KEY_PASSWORD", "secret words").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    (dir.join(format!("{name}.key")), dir.join(format!("{name}.pub")))
}

fn signed_build(dir: &Path, key: &Path) -> PathBuf {
    let out = airbin()
        .arg("build")
        .arg(repo_root().join("samples/minimal"))
        .arg("-o")
        .arg(dir.join("dist"))
        .arg("--sign")
        .arg(key)
        .env("AIRBIN_KEY_PASSWORD", "secret words")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join("dist/minimal-1.0.0-amd64.bin")
}

fn key_id(public: &Path) -> String {
    let text = fs::read_to_string(public).unwrap();
    text.lines().next().unwrap().rsplit(' ').next().unwrap().to_string()
}

fn check(bin: &Path, keys: &[&Path], tmp: &Path, keys_dir: &Path) -> Output {
    let mut args = vec!["check".to_string()];
    for key in keys {
        args.push("--trusted-key".into());
        args.push(key.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Shell::Dash.command(bin).args(&args).env("TMPDIR", tmp).env("AIRBIN_TRUSTED_KEYS_DIR", keys_dir).output().unwrap()
}

#[test]
fn a_signed_bundle_proves_its_maker_and_a_pinned_key_refuses_every_other() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    let no_keys = dir.path().join("no-keys");
    fs::create_dir_all(&tmp).unwrap();
    let (key, public) = keygen(dir.path(), "release");
    let (_, other_public) = keygen(dir.path(), "other");
    assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let bin = signed_build(dir.path(), &key);
    let id = key_id(&public);

    // The detached signature is minisign's own: the standard tool accepts it.
    assert!(bin.with_extension("bin.minisig").is_file());
    if require("minisign", "a_signed_bundle_proves_its_maker") {
        let out = Command::new("minisign").arg("-V").arg("-p").arg(&public).arg("-m").arg(&bin).output().unwrap();
        assert!(out.status.success(), "minisign -V: {}{}", stdout(&out), stderr(&out));
        assert!(stdout(&out).contains("airbin bundle minimal-1.0.0-amd64.bin"), "{}", stdout(&out));
    }

    // info names the signer; check with the key pinned says it is trusted.
    let info = run(Shell::Bash, &bin, &["info"], &tmp);
    assert!(stdout(&info).contains(&format!("signed by:   key {id}")), "{}", stdout(&info));
    let out = check(&bin, &[&public], &tmp, &no_keys);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("signed by key {id}, trusted")), "{}", stdout(&out));
    // Pinned through the trusted-keys directory, the same.
    let keys_dir = dir.path().join("trusted-keys");
    fs::create_dir(&keys_dir).unwrap();
    fs::copy(&public, keys_dir.join("release.pub")).unwrap();
    assert!(check(&bin, &[], &tmp, &keys_dir).status.success());
    // airbin verify --key on the build side.
    let out = airbin().arg("verify").arg(&bin).arg("--key").arg(&public).env("AIRBIN_TRUSTED_KEYS_DIR", &no_keys).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // Another key pinned: refused, naming the key the bundle carries and the one trusted.
    let other_id = key_id(&other_public);
    let out = check(&bin, &[&other_public], &tmp, &no_keys);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("signed by key {id}")) && stderr(&out).contains(&other_id), "{}", stderr(&out));

    // An unsigned bundle where a key is pinned: refused.
    let unsigned = build(&repo_root().join("samples/minimal"), &dir.path().join("unsigned"));
    let out = check(&unsigned, &[&public], &tmp, &no_keys);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not signed") && stderr(&out).contains(&id), "{}", stderr(&out));
    // ...and one rewritten after signing (every digest recomputed, the signature kept).
    let bundle = airbin_format::Bundle::open(&bin).unwrap();
    let raw = fs::read(&bin).unwrap();
    let at = bundle.digested_len() as usize;
    let block = &raw[at..at + 1024];
    let text = String::from_utf8(block[..block.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap();
    let forged = dir.path().join("forged.bin");
    forge_signed(&bin, &forged, |index, _| index.bundle.description = "rewritten".into(), |_| {}, Some(text));
    let out = Command::new(env!("CARGO_BIN_EXE_airbin"))
        .arg("verify")
        .arg(&forged)
        .arg("--key")
        .arg(&public)
        .env("AIRBIN_TRUSTED_KEYS_DIR", &no_keys)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not match its content"), "{}", stderr(&out));
}

#[test]
fn the_same_inputs_built_twice_in_two_places_give_the_same_bytes() {
    let dir = scratch();
    // Two copies of the sample, made at different times (different mtimes), built into
    // different directories.
    let copy = |name: &str| {
        let to = dir.path().join(name);
        let out = Command::new("cp").arg("-r").arg(repo_root().join("samples/minimal")).arg(&to).output().unwrap();
        assert!(out.status.success());
        to
    };
    let first = copy("first");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = copy("second");
    Command::new("touch").arg("-d").arg("2001-01-01").arg(second.join("conf.d")).status().unwrap();
    let a = build(&first, &dir.path().join("a"));
    let b = build(&second, &dir.path().join("b"));
    assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap(), "two builds of the same inputs differ");

    // With SOURCE_DATE_EPOCH the build time is recorded, and still the same.
    let with_epoch = |input: &Path, out: &str| {
        let output =
            airbin().arg("build").arg(input).arg("-o").arg(dir.path().join(out)).env("SOURCE_DATE_EPOCH", "1767225600").output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        fs::read(dir.path().join(out).join("minimal-1.0.0-amd64.bin")).unwrap()
    };
    assert!(with_epoch(&first, "c") == with_epoch(&second, "d"));
    let info = airbin().arg("inspect").arg(dir.path().join("c/minimal-1.0.0-amd64.bin")).output().unwrap();
    assert!(stdout(&info).contains("built:       2026-01-01T00:00:00Z"), "{}", stdout(&info));
    assert!(!stdout(&info).contains(" on "), "no host name unless asked: {}", stdout(&info));
}

use std::os::unix::fs::PermissionsExt;

#[test]
fn unattended_keys_sign_without_a_password_and_a_wrong_password_is_named() {
    let dir = scratch();
    let out = airbin().arg("keygen").arg("-o").arg(dir.path().join("ci")).arg("--no-password").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let sign = |key: &str, password: Option<&str>, outdir: &str| {
        let mut command = airbin();
        command
            .arg("build")
            .arg(repo_root().join("samples/minimal"))
            .arg("-o")
            .arg(dir.path().join(outdir))
            .arg("--sign")
            .arg(dir.path().join(key));
        command.env_remove("AIRBIN_KEY_PASSWORD");
        if let Some(password) = password {
            command.env("AIRBIN_KEY_PASSWORD", password);
        }
        command.stdin(std::process::Stdio::null()).output().unwrap()
    };
    let out = sign("ci.key", None, "a");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("a/minimal-1.0.0-amd64.bin.minisig").is_file());

    keygen(dir.path(), "locked");
    let out = sign("locked.key", None, "b");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("set AIRBIN_KEY_PASSWORD"), "{}", stderr(&out));
    let out = sign("locked.key", Some("wrong"), "c");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("check the password"), "{}", stderr(&out));
    assert!(!dir.path().join("b").exists() && !dir.path().join("c").exists(), "nothing written without a signature");
    // keygen does not overwrite a pair unless asked.
    let out = airbin().arg("keygen").arg("-o").arg(dir.path().join("ci")).arg("--no-password").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
