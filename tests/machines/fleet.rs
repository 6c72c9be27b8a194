//! Fleets through Ansible: the `airbin.fleet` collection, built with `ansible-galaxy` and
//! installed offline from its tarball, passes `ansible-test sanity`; its playbook drives
//! 20 test nodes (a pair and 18 workers, each with its own sshd and engine): install, a
//! rerun that changes nothing, check mode that changes nothing, a worker with a full disk
//! that fails alone and hands its support tarball to the controller, `--limit @retry`,
//! an upgrade that runs only the upgrade's steps, and a vaulted secret that shows up in
//! no log, no `ps` output and no fact.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::support::*;

const COLLECTION: &str = "ansible/ansible_collections/airbin/fleet";
const SECRET: &str = "Vaulted-s3cret-7f2c9d";
const WORKERS: usize = 18;

/// The collection as a site gets it: the tarball `ansible-galaxy collection build`
/// writes, installed from that file alone. Returns the collections path.
fn installed_collection(dir: &Path) -> PathBuf {
    let built = Command::new("ansible-galaxy")
        .args(["collection", "build", "--force", "--output-path"])
        .arg(dir)
        .arg(repo_root().join(COLLECTION))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    let tarball = dir.join("airbin-fleet-1.0.0.tar.gz");
    assert!(tarball.is_file(), "{}", stdout(&built));
    let path = dir.join("collections");
    let installed =
        Command::new("ansible-galaxy").args(["collection", "install", "--offline", "-p"]).arg(&path).arg(&tarball).output().unwrap();
    assert!(installed.status.success(), "{}", stderr(&installed));
    path
}

/// The compass sample as release `version`: a secret parameter the install step reads,
/// the heavy steps on a first install only, and a step that runs on an upgrade only.
fn fleet_bundle(dir: &Path, version: &str) -> PathBuf {
    let spec = dir.join(format!("spec-{version}"));
    let cp = Command::new("cp").arg("-r").arg(repo_root().join("samples/compass")).arg(&spec).status().unwrap();
    assert!(cp.success());
    let mut text = fs::read_to_string(spec.join("bundle.yaml")).unwrap();
    for (find, replace) in [
        ("version: v2.7.3", format!("version: {version}")),
        (
            "parameters:\n",
            "parameters:\n  - {name: admin_password, type: string, secret: true, required: true, description: the admin password}\n".into(),
        ),
        (
            "    member: release-images\n    roles: [single, primary, secondary]\n",
            "    member: release-images\n    roles: [single, primary, secondary]\n    when: install\n".into(),
        ),
        (
            "    mode: \"0644\"\n    roles: [single, primary]\n",
            "    mode: \"0644\"\n    roles: [single, primary]\n    when: install\n".into(),
        ),
        (
            "    run: [cadm, install, --config, config]\n",
            "    run: [cadm, install, --config, config]\n    env: {ADMIN_PASSWORD: '${config.admin_password}'}\n    when: install\n".into(),
        ),
        ("    run: [cadm, join, --config, config]\n", "    run: [cadm, join, --config, config]\n    when: install\n".into()),
        ("    retry_delay: 3s\n    roles: [worker]\n", "    retry_delay: 3s\n    roles: [worker]\n    when: install\n".into()),
    ] {
        assert!(text.contains(find), "the compass sample changed: no {find:?}");
        text = text.replacen(find, &replace, 1);
    }
    text.push_str("  - {name: cadm upgrade, kind: command, run: [cadm, version], when: upgrade}\n");
    fs::write(spec.join("bundle.yaml"), text).unwrap();
    build(&spec, &dir.join("dist"))
}

struct Fleet {
    dir: PathBuf,
    collections: PathBuf,
    cluster: Cluster,
}

impl Fleet {
    fn host(&self, k: usize) -> String {
        self.cluster.addr(k)
    }

    fn inventory(&self) -> PathBuf {
        let base = format!("/tmp/airbin-qa-{}", self.cluster.id);
        let workers: Vec<String> = (3..3 + WORKERS).map(|k| self.host(k)).collect();
        let path = self.dir.join("inventory.ini");
        fs::write(
            &path,
            format!(
                "[airbin_primary]\n{}\n[airbin_secondary]\n{}\n[airbin_workers]\n{}\n[all:vars]\nansible_user=root\n\
                 ansible_python_interpreter=/usr/bin/python3\nansible_remote_tmp=/var/tmp/.ansible\n\
                 ansible_ssh_common_args=-i {base}/id_ed25519 -o UserKnownHostsFile={base}/known_hosts -o BatchMode=yes\n",
                self.host(1),
                self.host(2),
                workers.join("\n")
            ),
        )
        .unwrap();
        path
    }

    /// `ansible-playbook airbin.fleet.install` over the fleet with `bundle`.
    fn play(&self, bundle: &Path, extra: &[&str]) -> Output {
        let out = Command::new("ansible-playbook")
            .arg("-i")
            .arg(self.inventory())
            .arg("airbin.fleet.install")
            .arg("-e")
            .arg(format!("airbin_bundle={}", bundle.display()))
            .arg("-e")
            .arg(format!("airbin_config={}", self.dir.join("config").display()))
            .arg("-e")
            .arg(format!("@{}", self.dir.join("secrets.yml").display()))
            .arg("--vault-password-file")
            .arg(self.dir.join("vault-pass"))
            .args(extra)
            .env("ANSIBLE_COLLECTIONS_PATH", &self.collections)
            .env("ANSIBLE_FORKS", "20")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_PIPELINING", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "1")
            .env("ANSIBLE_RETRY_FILES_SAVE_PATH", &self.dir)
            .env("ANSIBLE_CACHE_PLUGIN", "jsonfile")
            .env("ANSIBLE_CACHE_PLUGIN_CONNECTION", self.dir.join("facts"))
            .env_remove("DOCKER_HOST")
            // As a shell run there would set it.
            .env("PWD", &self.dir)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        let log = self.dir.join("plays.log");
        let mut all = fs::read_to_string(&log).unwrap_or_default();
        all.push_str(&stdout(&out));
        all.push_str(&stderr(&out));
        fs::write(log, all).unwrap();
        out
    }

    /// The PLAY RECAP line of node `k`.
    fn recap(&self, text: &str, k: usize) -> String {
        let host = self.host(k);
        text.lines().find(|l| l.starts_with(&format!("{host} ")) && l.contains("ok=")).unwrap_or("").to_string()
    }

    /// What node `k`'s `status --json` says: (complete, installed version).
    fn status(&self, k: usize, bundle: &Path) -> (bool, String) {
        let name = bundle.file_name().unwrap().to_string_lossy();
        let out = self.cluster.ssh(k, &format!("sh /var/tmp/airbin/{name} status --json"));
        let doc: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap_or_default();
        (doc["complete"].as_bool().unwrap_or(false), doc["installed"]["version"].as_str().unwrap_or_default().to_string())
    }

    fn journal_lines(&self, k: usize) -> usize {
        stdout(&self.cluster.ssh(k, "cat /var/lib/airbin/compass-component/journal.jsonl 2>/dev/null | wc -l")).trim().parse().unwrap_or(0)
    }
}

/// Every process's command line on this host, sampled until stopped: the nodes share
/// this host's process table, so a secret on any command line (the controller's, a
/// node's module, the bundle's) would show here.
fn watch_command_lines(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let mut seen = false;
        while !stop.load(Ordering::SeqCst) {
            for entry in fs::read_dir("/proc").unwrap().flatten() {
                if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
                    seen |= String::from_utf8_lossy(&cmdline).contains(SECRET);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        seen
    })
}

#[test]
fn the_collection_passes_ansible_test_sanity_and_ansible_lint() {
    let test = "the_collection_passes_ansible_test_sanity_and_ansible_lint";
    let ansible_test = "/opt/airbin-lint/bin/ansible-test";
    if !skip::needs(test, "ansible-test", Path::new(ansible_test).is_file(), "bash hack/setup-host.sh makes /opt/airbin-lint") {
        return;
    }
    // ansible-test wants the collection under ansible_collections/NAMESPACE/NAME, and
    // writes its output there: a copy.
    let dir = scratch();
    let copy = dir.path().join("ansible_collections/airbin");
    fs::create_dir_all(&copy).unwrap();
    let cp = Command::new("cp").arg("-r").arg(repo_root().join(COLLECTION)).arg(&copy).status().unwrap();
    assert!(cp.success());
    // ansible-lint's production profile over the role, the playbook and the metadata
    // (before ansible-test writes its output into the copy).
    let lint = Command::new("/opt/airbin-lint/bin/ansible-lint")
        .args(["--offline", "--nocolor"])
        .env("ANSIBLE_COLLECTIONS_PATH", dir.path())
        .current_dir(copy.join("fleet"))
        .output()
        .unwrap();
    assert!(lint.status.success(), "{}\n{}", stdout(&lint), stderr(&lint));
    assert!(format!("{}{}", stdout(&lint), stderr(&lint)).contains("'production'"), "{}", stderr(&lint));
    let out =
        Command::new(ansible_test).args(["sanity", "--python", "3.11", "--color", "no"]).current_dir(copy.join("fleet")).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    // The module's documentation renders.
    let doc = Command::new("ansible-doc").arg("airbin.fleet.airbin_bundle").env("ANSIBLE_COLLECTIONS_PATH", dir.path()).output().unwrap();
    assert!(doc.status.success() && stdout(&doc).contains("check mode"), "{}", stderr(&doc));
}

#[test]
fn a_fleet_of_20_installs_reruns_checks_fails_alone_retries_and_upgrades() {
    let test = "a_fleet_of_20";
    for tool in ["ansible-playbook", "ansible-galaxy", "ansible-vault"] {
        if !require(tool, test) {
            return;
        }
    }
    let Some(cluster) = Cluster::up(40, 2 + WORKERS, test) else { return };
    cluster.registry(1);
    let dir = scratch();
    let fleet = Fleet { dir: dir.path().to_path_buf(), collections: installed_collection(dir.path()), cluster };
    let v1 = fleet_bundle(dir.path(), "v3.0.0");
    let v2 = fleet_bundle(dir.path(), "v3.0.1");
    let workers: Vec<usize> = (3..3 + WORKERS).collect();
    fs::write(dir.path().join("config"), fleet.cluster.compass_config(&[1, 2], &workers)).unwrap();
    // The secret, vaulted as a site keeps it.
    fs::write(dir.path().join("vault-pass"), "lab-vault-password\n").unwrap();
    let vaulted = Command::new("ansible-vault")
        .args(["encrypt_string", "--vault-password-file"])
        .arg(dir.path().join("vault-pass"))
        .args([SECRET, "--name", "admin_password"])
        .output()
        .unwrap();
    assert!(vaulted.status.success(), "{}", stderr(&vaulted));
    let indented: String = stdout(&vaulted).lines().map(|l| format!("  {l}\n")).collect();
    fs::write(dir.path().join("secrets.yml"), format!("airbin_params:\n{indented}")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_command_lines(stop.clone());

    // Install: the primary, then the secondary, then the workers, which take their copy
    // of the bundle from the primary rather than over the controller's uplink.
    let from_primary = format!("airbin_bundle_from={}", fleet.host(1));
    let first = fleet.play(&v1, &["-v", "-e", &from_primary]);
    let text = stdout(&first);
    assert!(first.status.success(), "{text}\n{}", stderr(&first));
    for k in 1..=2 + WORKERS {
        let recap = fleet.recap(&text, k);
        assert!(recap.contains("failed=0") && !recap.contains("changed=0"), "node{k}: {recap}");
        assert_eq!(fleet.status(k, &v1), (true, "v3.0.0".to_string()), "node{k}");
    }
    assert!(text.contains(&format!("\"root@{}:/var/tmp/airbin/", fleet.host(1))), "the workers copy from the primary: {text}");
    let order: Vec<usize> = ["PLAY [Primary", "PLAY [Secondary", "PLAY [Workers"].iter().map(|p| text.find(p).unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "primary, secondary, workers: {text}");

    // A rerun changes nothing anywhere.
    let again = fleet.play(&v1, &[]);
    let text = stdout(&again);
    assert!(again.status.success(), "{text}");
    for k in 1..=2 + WORKERS {
        assert!(fleet.recap(&text, k).contains("changed=0"), "node{k}: {}", fleet.recap(&text, k));
    }

    // Check mode with the next release: says what would run, runs nothing.
    let journals: Vec<usize> = (1..=2 + WORKERS).map(|k| fleet.journal_lines(k)).collect();
    let check = fleet.play(&v2, &["--check", "--diff"]);
    let text = stdout(&check);
    assert!(check.status.success(), "{text}\n{}", stderr(&check));
    assert!(text.contains("compass-component v3.0.1: 4 step(s) would run") && text.contains("cadm upgrade"), "{text}");
    assert!(text.contains("\"version\": \"v3.0.0\"") && text.contains("\"version\": \"v3.0.1\""), "the diff shows both versions: {text}");
    for k in 1..=2 + WORKERS {
        assert_eq!(fleet.status(k, &v1).1, "v3.0.0", "node{k} changed in check mode");
        assert_eq!(fleet.journal_lines(k), journals[k - 1], "node{k} ran something in check mode");
    }

    // The upgrade, with one worker's disk full: that worker fails alone, its support
    // tarball lands on the controller, and the others upgrade running only the upgrade's steps.
    let full = 7;
    let mounted = fleet.cluster.qa(&["exec", &full.to_string(), "mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", "/var/lib/airbin"]);
    assert!(mounted.status.success(), "{}", stderr(&mounted));
    let upgrade = fleet.play(&v2, &[]);
    let text = stdout(&upgrade);
    assert!(!upgrade.status.success(), "{text}");
    for k in 1..=2 + WORKERS {
        let recap = fleet.recap(&text, k);
        let failed = if k == full { "failed=1" } else { "failed=0" };
        assert!(recap.contains(failed), "node{k}: {recap}\n{text}");
    }
    assert!(text.contains("exit 4, disk-space"), "the failure says what: {text}");
    let tarball = dir.path().join("airbin-support").join(format!("{}.tar.gz", fleet.host(full)));
    let listed = Command::new("tar").arg("-tzf").arg(&tarball).output().unwrap();
    assert!(listed.status.success() && !listed.stdout.is_empty(), "no support tarball at {}", tarball.display());
    let ran_lines: Vec<&str> = text.lines().filter(|l| l.contains("\"msg\": \"compass-component v3.0.1:")).collect();
    assert_eq!(ran_lines.len(), 1 + WORKERS, "{text}");
    for line in ran_lines {
        assert!(line.contains("cadm upgrade"), "{line}");
        for install_only in ["load release images", "restore registry pack", "cadm install", "cadm join", "pull the agent image"] {
            assert!(!line.contains(install_only), "the upgrade ran {install_only}: {line}");
        }
    }

    // The disk freed, Ansible's own retry file finishes that node alone.
    let _ = fleet.cluster.qa(&["exec", &full.to_string(), "umount", "/var/lib/airbin"]);
    let retry = dir.path().join("install.retry");
    assert_eq!(fs::read_to_string(&retry).unwrap().trim(), fleet.host(full));
    let again = fleet.play(&v2, &["--limit", &format!("@{}", retry.display())]);
    let text = stdout(&again);
    assert!(again.status.success(), "{text}\n{}", stderr(&again));
    assert!(fleet.recap(&text, full).contains("failed=0") && fleet.recap(&text, 1).is_empty(), "{text}");
    for k in 1..=2 + WORKERS {
        assert_eq!(fleet.status(k, &v2), (true, "v3.0.1".to_string()), "node{k}");
    }

    // The secret reached the product (kept 0600 in secrets.json) and nowhere else.
    stop.store(true, Ordering::SeqCst);
    assert!(!watcher.join().unwrap(), "the secret was on a command line");
    assert!(fleet
        .cluster
        .ssh(1, "cat /var/lib/airbin/compass-component/secrets.json")
        .stdout
        .windows(SECRET.len())
        .any(|w| w == SECRET.as_bytes()));
    let plays = fs::read_to_string(dir.path().join("plays.log")).unwrap();
    assert!(!plays.contains(SECRET), "the secret is in Ansible's output");
    let grep = Command::new("grep")
        .args(["-rl", "--exclude=secrets.json", SECRET])
        .arg(dir.path().join("facts"))
        .arg(format!("/tmp/airbin-qa-{}", fleet.cluster.id))
        .output()
        .unwrap();
    assert!(stdout(&grep).trim().is_empty(), "the secret is in: {}", stdout(&grep));
}

#[test]
fn the_module_verifies_finds_drift_and_removes_with_facts_and_check_mode() {
    let test = "the_module_verifies_finds_drift_and_removes";
    if !require("ansible", test) || !require("ansible-galaxy", test) {
        return;
    }
    let Some(cluster) = Cluster::up(42, 1, test) else { return };
    cluster.registry(1);
    let dir = scratch();
    let collections = installed_collection(dir.path());
    let base = format!("/tmp/airbin-qa-{}", cluster.id);
    let host = cluster.addr(1);
    fs::write(
        dir.path().join("inventory.ini"),
        format!(
            "{host} ansible_user=root ansible_python_interpreter=/usr/bin/python3 ansible_remote_tmp=/var/tmp/.ansible \
             ansible_ssh_common_args='-i {base}/id_ed25519 -o UserKnownHostsFile={base}/known_hosts -o BatchMode=yes'\n"
        ),
    )
    .unwrap();
    let name = compass().file_name().unwrap().to_string_lossy().into_owned();
    cluster.put(1, compass(), &format!("/var/tmp/airbin/{name}"));
    cluster.put_text(1, &cluster.compass_config(&[1], &[]), "/var/tmp/airbin/config");
    // One module run, ad hoc, its result as JSON.
    let module = |args: &str, check: bool| -> (bool, serde_json::Value) {
        let mut cmd = Command::new("ansible");
        cmd.arg(&host)
            .arg("-i")
            .arg(dir.path().join("inventory.ini"))
            .args(["-m", "airbin.fleet.airbin_bundle", "-a"])
            .arg(format!("path=/var/tmp/airbin/{name} config=/var/tmp/airbin/config {args}"))
            .env("ANSIBLE_COLLECTIONS_PATH", &collections)
            .env("ANSIBLE_LOAD_CALLBACK_PLUGINS", "1")
            .env("ANSIBLE_STDOUT_CALLBACK", "json")
            .env_remove("DOCKER_HOST");
        if check {
            cmd.arg("--check");
        }
        let out = cmd.output().unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
        let result = doc["plays"][0]["tasks"][0]["hosts"][&host].clone();
        (out.status.success(), result)
    };
    // Check mode before anything: a first install would run every step; nothing runs.
    let (ok, planned) = module("", true);
    assert!(ok && planned["changed"] == true && planned["ran"].as_array().unwrap().len() == 6, "{planned:#}");
    assert!(cluster.ssh(1, "test ! -e /var/lib/airbin/compass-component/installed.json").status.success());
    let (ok, installed) = module("", false);
    assert!(ok && installed["changed"] == true, "{installed:#}");
    assert_eq!(installed["ansible_facts"]["airbin_installed"]["compass-component"]["version"], "v2.7.3", "{installed:#}");
    let (ok, verified) = module("state=verified", false);
    assert!(ok && verified["changed"] == false, "{verified:#}");
    // A file the install placed, edited: the drift check fails, saying so.
    cluster.ssh_ok(1, "echo edited >> /srv/compass/bin/cadm");
    let (ok, drift) = module("state=verified", false);
    assert!(!ok && drift["exit_class"] == "drift" && drift["exit_code"] == 1, "{drift:#}");
    assert!(drift["msg"].as_str().unwrap().contains("cadm"), "{drift:#}");
    // Removed; then absent already: nothing to do.
    let (ok, removed) = module("state=absent", false);
    assert!(ok && removed["changed"] == true, "{removed:#}");
    assert_eq!(removed["ansible_facts"]["airbin_installed"]["compass-component"], serde_json::json!({}), "{removed:#}");
    let (ok, again) = module("state=absent", false);
    assert!(ok && again["changed"] == false, "{again:#}");
    // A failure says the bundle's words, its exit code and class, and where its log is.
    cluster.ssh_ok(1, "sed -i 's/^cluster_name:.*/cluster_name: BAD NAME/' /var/tmp/airbin/config");
    let (ok, failed) = module("", false);
    assert!(!ok && failed["exit_code"] == 2 && failed["exit_class"] == "usage", "{failed:#}");
    assert!(failed["msg"].as_str().unwrap().contains("cluster_name"), "{failed:#}");
}
