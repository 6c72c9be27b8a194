//! Install receipts: every install, upgrade, hotfix and uninstall leaves an in-toto
//! statement beside the state directories; `--receipt-key` signs it (a `.minisig` the
//! minisign tool checks); `sh x.bin receipt` prints the latest; `airbin receipt verify`
//! proves it, and refuses an edited one, another key's, and another bundle's.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::*;

/// A product whose steps load an image (into the engine), restore a registry pack
/// (into a root from the config) and run its tool, with a secret parameter.
fn product(dir: &Path, version: &str, hotfix_of: Option<&str>) -> PathBuf {
    let spec = dir.join(format!("spec-{version}"));
    fs::create_dir_all(&spec).unwrap();
    fs::write(spec.join("tool.sh"), "#!/bin/sh\necho \"$1 $AIRBIN_BUNDLE_VERSION\" >> \"$MARK\"\n").unwrap();
    let compass = repo_root().join("samples/compass");
    let hotfix = hotfix_of.map(|b| format!("hotfix_of: \"{b}\"\n")).unwrap_or_default();
    let images = match hotfix_of {
        Some(_) => String::new(),
        None => format!(
            "  - {{name: images, kind: image, path: {}}}\n  - {{name: pack, kind: registry-pack, path: {}}}\n",
            compass.join("images/release-images.tar").display(),
            compass.join("registry/registry-pack.tar").display()
        ),
    };
    let steps = match hotfix_of {
        Some(_) => "  - {name: patch, kind: command, run: [tool.sh, patch], env: {MARK: \"${config.mark}\"}}\n".to_string(),
        None => "  - {name: load, kind: load-images, member: images}\n  \
                 - {name: restore, kind: restore-registry, member: pack, root_from_config: registry_root}\n  \
                 - {name: setup, kind: command, run: [tool.sh, setup], env: {MARK: \"${config.mark}\", PASSWORD: \"${config.admin_password}\"}}\n  \
                 - {name: teardown, kind: command, run: [tool.sh, teardown], env: {MARK: \"${config.mark}\"}, when: uninstall}\n"
            .to_string(),
    };
    fs::write(
        spec.join("bundle.yaml"),
        format!(
            "name: rc\nversion: \"{version}\"\n{hotfix}members:\n  - {{name: tool.sh, kind: tool, path: tool.sh}}\n{images}\
             parameters:\n  - {{name: mark, type: path, required: true}}\n  - {{name: registry_root, type: path, required: true}}\n  \
             - {{name: admin_password, type: string, secret: true, required: true}}\nsteps:\n{steps}"
        ),
    )
    .unwrap();
    build(&spec, &dir.join("dist"))
}

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn run(&self, bin: &Path, args: &[&str]) -> Output {
        let d = self.dir.path();
        Shell::Dash
            .command(bin)
            .args(args)
            .env("TMPDIR", d)
            .env("AIRBIN_STATE_DIR", d.join("state"))
            .env("AIRBIN_KEY_PASSWORD", "")
            .output()
            .unwrap()
    }

    fn install(&self, bin: &Path, extra: &[&str]) -> Output {
        let d = self.dir.path();
        let mark = format!("mark={}", d.join("mark").display());
        let root = format!("registry_root={}", d.join("registry").display());
        let mut args = vec!["install", "--yes", "--set", &mark, "--set", &root, "--set", "admin_password=s3cret-value"];
        args.extend(extra);
        self.run(bin, &args)
    }

    fn receipts(&self) -> Vec<PathBuf> {
        let dir = self.dir.path().join("state/.receipts/rc");
        let mut found: Vec<PathBuf> =
            fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
        found.sort();
        found
    }
}

fn verify(receipt: &Path, key: &Path, bundle: Option<&Path>) -> Output {
    let mut command = airbin();
    command.args(["receipt", "verify"]).arg(receipt).arg("--key").arg(key);
    if let Some(bundle) = bundle {
        command.arg("--bundle").arg(bundle);
    }
    command.output().unwrap()
}

fn statement(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let out = airbin().args(["keygen", "--no-password", "-o"]).arg(dir.join(name)).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    (dir.join(format!("{name}.key")), dir.join(format!("{name}.pub")))
}

#[test]
fn every_run_leaves_a_signed_receipt_an_auditor_can_prove() {
    let test = "every_run_leaves_a_signed_receipt_an_auditor_can_prove";
    if !docker_ready(test) || !require("minisign", test) {
        return;
    }
    let site = Site { dir: scratch() };
    let d = site.dir.path();
    let (key, public) = keygen(d, "site");
    let (_, other) = keygen(d, "other");
    let v1 = product(d, "1.0", None);
    let installed = site.install(&v1, &["--receipt-key", key.to_str().unwrap(), "--json"]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    let doc: Value = serde_json::from_slice(&installed.stdout).unwrap();
    let receipts = site.receipts();
    assert_eq!(receipts.len(), 1);
    assert_eq!(doc["receipt"], receipts[0].to_str().unwrap(), "install --json names its receipt");
    let receipt = statement(&receipts[0]);
    assert_eq!(receipt["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(receipt["subject"][0]["name"], "rc-1.0-amd64.bin");
    let info: Value = serde_json::from_slice(&site.run(&v1, &["info", "--json"]).stdout).unwrap();
    assert_eq!(receipt["subject"][0]["digest"]["sha256"], info["sha256_of_payload"]);
    let predicate = &receipt["predicate"];
    assert_eq!(predicate["operation"], "install");
    assert_eq!(predicate["airbin_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(predicate["parameters"]["admin_password"]["value"], "********");
    assert!(!fs::read_to_string(&receipts[0]).unwrap().contains("s3cret-value"), "a secret in the receipt");
    let steps: Vec<(&str, &str)> =
        predicate["steps"].as_array().unwrap().iter().map(|s| (s["name"].as_str().unwrap(), s["outcome"].as_str().unwrap())).collect();
    assert_eq!(steps, [("load", "done"), ("restore", "done"), ("setup", "done")]);
    assert!(predicate["steps"][2]["started_at"].as_str().unwrap() <= predicate["steps"][2]["finished_at"].as_str().unwrap());
    let loaded = predicate["images_loaded"].as_array().unwrap();
    assert!(!loaded.is_empty() && loaded[0]["id"].as_str().unwrap().starts_with("sha256:"), "{predicate}");
    assert!(!predicate["registry_restored"].as_array().unwrap().is_empty(), "{predicate}");
    assert_eq!(predicate["host"]["hostname"], fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim());
    // The auditor: the receipt holds under the site's key and names this bundle; the
    // minisign tool agrees.
    let ok = verify(&receipts[0], &public, Some(&v1));
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("OK (install of rc 1.0"), "{}", stdout(&ok));
    let tool = Command::new("minisign").arg("-Vm").arg(&receipts[0]).arg("-p").arg(&public).output().unwrap();
    assert!(tool.status.success(), "{}", stderr(&tool));
    // `sh x.bin receipt` prints the latest, as written.
    let shown = site.run(&v1, &["receipt"]);
    assert_eq!(shown.stdout.trim_ascii_end(), fs::read(&receipts[0]).unwrap().trim_ascii_end());

    // A hotfix, then an upgrade: each leaves its own receipt, the latest printed.
    let fix = product(d, "1.0-hotfix1", Some("1.0"));
    assert!(site.install(&fix, &["--receipt-key", key.to_str().unwrap()]).status.success());
    let v2 = product(d, "2.0", None);
    assert!(site.install(&v2, &["--receipt-key", key.to_str().unwrap()]).status.success());
    let receipts = site.receipts();
    let operations: Vec<String> = receipts.iter().map(|r| statement(r)["predicate"]["operation"].as_str().unwrap().to_string()).collect();
    assert_eq!(operations, ["install", "hotfix", "upgrade"]);
    let latest: Value = serde_json::from_slice(&site.run(&v2, &["receipt", "--json"]).stdout).unwrap();
    assert_eq!(latest["statement"]["predicate"]["operation"], "upgrade");
    assert_eq!(latest["signature"], format!("{}.minisig", receipts[2].display()));

    // Refused: another bundle (exit 3), another key (exit 3), an edited receipt (exit 3).
    let wrong = verify(&receipts[0], &public, Some(&v2));
    assert_eq!(wrong.status.code(), Some(3), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("is the receipt of the bundle"), "{}", stderr(&wrong));
    let other_key = verify(&receipts[0], &other, None);
    assert_eq!(other_key.status.code(), Some(3));
    let edited = d.join("edited.intoto.json");
    fs::write(&edited, fs::read_to_string(&receipts[0]).unwrap().replace("\"install\"", "\"upgrade\"")).unwrap();
    fs::copy(format!("{}.minisig", receipts[0].display()), format!("{}.minisig", edited.display())).unwrap();
    let refused = verify(&edited, &public, None);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("does not hold"), "{}", stderr(&refused));

    // Uninstall: the state directory goes, the receipts stay, the uninstall's with them.
    let removed = site.run(&v2, &["uninstall", "--yes", "--receipt-key", key.to_str().unwrap()]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(!d.join("state/rc").exists());
    let receipts = site.receipts();
    assert_eq!(statement(receipts.last().unwrap())["predicate"]["operation"], "uninstall");
    assert!(verify(receipts.last().unwrap(), &public, Some(&v2)).status.success());
    let _ = Command::new("docker").args(["rmi", "-f", "compass/api:2.7.3", "compass/worker:2.7.3"]).output();
}

#[test]
fn unsigned_receipts_bad_keys_and_no_receipt_yet() {
    let site = Site { dir: scratch() };
    let d = site.dir.path();
    let bin = build(&repo_root().join("samples/minimal"), &d.join("dist"));
    // Nothing run yet: said, with what leaves one.
    let none = site.run(&bin, &["receipt"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("no receipt of minimal"), "{}", stderr(&none));
    // A key that is no key: refused before anything lands.
    fs::write(d.join("bad.key"), "not a key").unwrap();
    let bad = site.run(&bin, &["install", "--yes", "--receipt-key", d.join("bad.key").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("bad.key"), "{}", stderr(&bad));
    assert!(!d.join("state/minimal").exists());
    // Without a key: a receipt, and no signature; verify says it is unsigned.
    let installed = site.run(&bin, &["install", "--yes"]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    let shown: Value = serde_json::from_slice(&site.run(&bin, &["receipt", "--json"]).stdout).unwrap();
    assert!(shown["signature"].is_null(), "{shown}");
    let (_, public) = keygen(d, "site");
    let unsigned = verify(Path::new(shown["receipt"].as_str().unwrap()), &public, None);
    assert_eq!(unsigned.status.code(), Some(3));
    assert!(stderr(&unsigned).contains("unsigned"), "{}", stderr(&unsigned));
}
