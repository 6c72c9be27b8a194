//! A bundle repository's release states, as a release engineer moves a version through
//! them: added as staging, promoted once its signature holds under the release key,
//! yanked with a reason (kept on disk, never "latest") and released again with
//! `--undo`; `index.json` rewritten whole each time, `repo verify` holding the states.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::*;

/// The minimal sample as `version`, signed with `key` (k.key / k.pub under `dir`).
fn signed(dir: &Path, version: &str, key: Option<&Path>) -> PathBuf {
    let spec = dir.join(format!("minimal-{version}"));
    fs::create_dir_all(dir).unwrap();
    let cp = std::process::Command::new("cp").arg("-r").arg(repo_root().join("samples/minimal")).arg(&spec).status().unwrap();
    assert!(cp.success());
    let text = fs::read_to_string(spec.join("bundle.yaml")).unwrap();
    fs::write(spec.join("bundle.yaml"), text.replace("version: \"1.0.0\"", &format!("version: \"{version}\""))).unwrap();
    let mut build = airbin();
    build.arg("build").arg(&spec).arg("-o").arg(dir.join("dist")).env("AIRBIN_KEY_PASSWORD", "");
    if let Some(key) = key {
        build.arg("--sign").arg(key);
    }
    let out = build.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    PathBuf::from(stdout(&out).trim())
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let out = airbin().args(["keygen", "--no-password", "-o"]).arg(dir.join(name)).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    (dir.join(format!("{name}.key")), dir.join(format!("{name}.pub")))
}

fn repo(args: &[&str]) -> Output {
    airbin().arg("repo").args(args).output().unwrap()
}

fn index(repo: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(repo.join("index.json")).unwrap()).unwrap()
}

/// (version, state, reason) of every listed version, newest first.
fn states(repo: &Path) -> Vec<(String, String, String)> {
    index(repo)["bundles"][0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().to_string(),
                v["state"].as_str().unwrap_or("released").to_string(),
                v["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn latest(repo: &Path) -> serde_json::Value {
    index(repo)["bundles"][0]["latest"].clone()
}

#[test]
fn a_version_goes_from_staging_to_released_to_yanked_and_back() {
    let dir = scratch();
    let (key, public) = keygen(dir.path(), "release");
    let (_, stranger) = keygen(dir.path(), "stranger");
    let v1 = signed(dir.path(), "1.0.0", Some(&key));
    let v2 = signed(dir.path(), "1.1.0", Some(&key));
    let unsigned = signed(&dir.path().join("u"), "1.2.0", None);
    let r = dir.path().join("repo");
    let rs = r.to_str().unwrap();
    let pk = public.to_str().unwrap();

    // Uploaded to staging: listed, not released, nothing is "latest".
    let added = repo(&["add", "--staging", rs, v1.to_str().unwrap(), v2.to_str().unwrap(), unsigned.to_str().unwrap()]);
    assert!(added.status.success(), "{}", stderr(&added));
    assert_eq!(index(&r)["format"], 2);
    assert!(states(&r).iter().all(|(_, s, _)| s == "staging"), "{:?}", states(&r));
    assert!(latest(&r).is_null(), "{}", latest(&r));
    let verified = repo(&["verify", rs]);
    assert!(verified.status.success() && stdout(&verified).contains("(0 released, 3 staging, 0 yanked)"), "{}", stdout(&verified));

    // Promoted only under the release key, and only when signed.
    let wrong = repo(&["promote", rs, "minimal", "1.0.0", "--key", stranger.to_str().unwrap()]);
    assert_eq!(wrong.status.code(), Some(3), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("does not match the bundle"), "{}", stderr(&wrong));
    let bare = repo(&["promote", rs, "minimal", "1.2.0", "--key", pk]);
    assert_eq!(bare.status.code(), Some(3), "{}", stderr(&bare));
    assert!(stderr(&bare).contains("not signed"), "{}", stderr(&bare));
    assert!(states(&r).iter().all(|(_, s, _)| s == "staging"), "a refused promote changed the index: {:?}", states(&r));
    let promoted = airbin().args(["repo", "promote", rs, "minimal", "1.0.0", "--key", pk, "--json"]).output().unwrap();
    assert!(promoted.status.success(), "{}", stderr(&promoted));
    let doc: serde_json::Value = serde_json::from_slice(&promoted.stdout).unwrap();
    assert_eq!((doc["command"].as_str(), doc["state"].as_str()), (Some("repo promote"), Some("released")), "{doc:#}");
    assert_eq!(latest(&r), serde_json::json!({"amd64": "1.0.0"}));
    let promoted = repo(&["promote", rs, "minimal", "1.1.0", "--key", pk]);
    assert!(promoted.status.success(), "{}", stderr(&promoted));
    assert_eq!(latest(&r), serde_json::json!({"amd64": "1.1.0"}));

    // Yanked: kept on disk, listed with its reason, no longer latest.
    let no_reason = repo(&["yank", rs, "minimal", "1.1.0"]);
    assert_eq!(no_reason.status.code(), Some(2), "{}", stderr(&no_reason));
    let yanked = repo(&["yank", rs, "minimal", "1.1.0", "--reason", "breaks upgrades from 0.9"]);
    assert!(yanked.status.success(), "{}", stderr(&yanked));
    assert!(states(&r).contains(&("1.1.0".into(), "yanked".into(), "breaks upgrades from 0.9".into())), "{:?}", states(&r));
    assert_eq!(latest(&r), serde_json::json!({"amd64": "1.0.0"}));
    assert!(r.join("minimal/amd64/1.1.0").join(v2.file_name().unwrap()).is_file());
    let verified = repo(&["verify", rs]);
    assert!(verified.status.success() && stdout(&verified).contains("(1 released, 1 staging, 1 yanked)"), "{}", stdout(&verified));
    let cannot = repo(&["promote", rs, "minimal", "1.1.0", "--key", pk]);
    assert_eq!(cannot.status.code(), Some(2), "a yanked version is not promoted: {}", stderr(&cannot));
    // Released again.
    let undone = repo(&["yank", rs, "minimal", "1.1.0", "--undo"]);
    assert!(undone.status.success(), "{}", stderr(&undone));
    assert_eq!(latest(&r), serde_json::json!({"amd64": "1.1.0"}));
    assert!(states(&r).contains(&("1.1.0".into(), "released".into(), String::new())), "{:?}", states(&r));

    // What is not there is named with what is.
    let missing = repo(&["yank", rs, "minimal", "9.9", "--reason", "x"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("holds no minimal 9.9") && stderr(&missing).contains("minimal 1.0.0 amd64 (released)"),
        "{}",
        stderr(&missing)
    );
    let other = repo(&["promote", rs, "nothere", "1.0", "--key", pk]);
    assert_eq!(other.status.code(), Some(2));

    // An index whose "latest" was edited by hand fails the check.
    let mut edited = index(&r);
    edited["bundles"][0]["latest"]["amd64"] = "1.2.0".into();
    fs::write(r.join("index.json"), serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
    let verified = repo(&["verify", rs]);
    assert_eq!(verified.status.code(), Some(3), "{}", stdout(&verified));
    assert!(stdout(&verified).contains("latest"), "{}", stdout(&verified));
}

#[test]
fn a_format_1_repository_reads_as_released_and_a_newer_format_is_refused() {
    let dir = scratch();
    let (key, _) = keygen(dir.path(), "release");
    let v1 = signed(dir.path(), "1.0.0", Some(&key));
    let r = dir.path().join("repo");
    let rs = r.to_str().unwrap();
    assert!(repo(&["add", rs, v1.to_str().unwrap()]).status.success());
    // What an airbin before the states wrote: format 1, no state, no latest.
    let mut old = index(&r);
    old["format"] = 1.into();
    old["bundles"][0].as_object_mut().unwrap().remove("latest");
    fs::write(r.join("index.json"), serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    let verified = repo(&["verify", rs]);
    assert!(verified.status.success() && stdout(&verified).contains("(1 released, 0 staging, 0 yanked)"), "{}", stdout(&verified));
    // The next change writes format 2 with its latest.
    let yanked = repo(&["yank", rs, "minimal", "1.0.0", "--reason", "withdrawn"]);
    assert!(yanked.status.success(), "{}", stderr(&yanked));
    assert_eq!(index(&r)["format"], 2);
    let mut newer = index(&r);
    newer["format"] = 3.into();
    fs::write(r.join("index.json"), serde_json::to_vec_pretty(&newer).unwrap()).unwrap();
    let refused = repo(&["verify", rs]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("newer than this airbin"), "{}", stderr(&refused));
}
