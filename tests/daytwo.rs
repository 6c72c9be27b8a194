//! Day two: an install lived with for years. The install-kind table pair by pair
//! (docs/STATE.md), remembered answers, a run killed at every write of its state, what
//! a killed step left running, each role's staging, a non-root preflight, broken pipes
//! and the one JSON document of every command. Bundles here need no engine: their
//! steps are the product's commands, which write what they did into a file.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// The product's tool: each step appends "VERSION STEP KIND" to $MARK, and `files`
/// writes the product's installed file (what a hotfix changes).
const TOOL: &str = r#"#!/bin/sh
echo "$AIRBIN_BUNDLE_VERSION $1 $AIRBIN_INSTALL_KIND" >> "$MARK"
case $1 in files) echo "$AIRBIN_BUNDLE_VERSION" > "$MARK.files" ;; esac
"#;

/// A bundle of the day-two product: `version`, a hotfix of `hotfix_of`, `note` making
/// another build of the same version.
fn product(dir: &Path, version: &str, hotfix_of: Option<&str>, note: &str) -> PathBuf {
    let spec = dir.join(format!("spec-{version}-{note}"));
    fs::create_dir_all(&spec).unwrap();
    fs::write(spec.join("tool.sh"), TOOL).unwrap();
    let hotfix = hotfix_of.map(|b| format!("hotfix_of: \"{b}\"\n")).unwrap_or_default();
    fs::write(
        spec.join("bundle.yaml"),
        format!(
            r#"name: dt
version: "{version}"
{hotfix}description: "day two {note}"
members:
  - {{name: tool.sh, kind: tool, path: tool.sh}}
config:
  required: [mark]
steps:
  - {{name: files, kind: command, run: [sh, tool.sh, files], env: {{MARK: '${{config.mark}}'}}}}
  - {{name: create, kind: command, run: [sh, tool.sh, create], env: {{MARK: '${{config.mark}}'}}, when: install}}
  - {{name: migrate, kind: command, run: [sh, tool.sh, migrate], env: {{MARK: '${{config.mark}}'}}, when: upgrade}}
"#
        ),
    )
    .unwrap();
    build(&spec.join("bundle.yaml"), &dir.join(format!("dist-{version}-{note}")))
}

/// A host for the day-two product: its state directory and config.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let host = Host { dir: scratch() };
        fs::write(host.config(), format!("mark: {}\n", host.mark().display())).unwrap();
        host
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }
    fn mark(&self) -> PathBuf {
        self.dir.path().join("mark")
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    /// `sh BIN ARGS --config CONFIG` on this host, to run or spawn.
    fn command(&self, bin: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("sh");
        command
            .arg(bin)
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env("TMPDIR", self.dir.path())
            .env("AIRBIN_STATE_DIR", self.state())
            .stdin(Stdio::null());
        command
    }
    fn run(&self, bin: &Path, args: &[&str]) -> Output {
        self.command(bin, args).output().unwrap()
    }
    /// The lines the product's steps appended since the last call.
    fn ran(&self) -> Vec<String> {
        let text = fs::read_to_string(self.mark()).unwrap_or_default();
        let _ = fs::remove_file(self.mark());
        text.lines().map(str::to_string).collect()
    }
    fn record(&self) -> serde_json::Value {
        serde_json::from_slice(&fs::read(self.state().join("dt/installed.json")).unwrap()).unwrap()
    }
    fn installed_files(&self) -> String {
        fs::read_to_string(self.dir.path().join("mark.files")).unwrap_or_default().trim().to_string()
    }
}

fn doc(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {}\n{}", stdout(out), stderr(out)))
}

/// One pair of the table: the plan says `says`, the install ends as `kind` (or is refused
/// with `refused`), and the product's steps that ran are `ran`.
fn pair(host: &Host, bin: &Path, flags: &[&str], says: &str, outcome: Result<&str, i32>, ran: &[&str]) {
    let mut plan_args = vec!["plan"];
    plan_args.extend(flags.iter().filter(|f| **f != "--yes"));
    let plan = host.run(bin, &plan_args);
    let shown = format!("{}{}", stdout(&plan), stderr(&plan));
    assert!(shown.contains(says), "plan {flags:?} of {}: wanted {says:?} in:\n{shown}", bin.display());
    let mut args = vec!["install", "--yes", "--json"];
    args.extend(flags);
    let out = host.run(bin, &args);
    let doc = doc(&out);
    match outcome {
        Ok(kind) => {
            assert_eq!(out.status.code(), Some(0), "{flags:?} {}: {}", bin.display(), stderr(&out));
            assert_eq!(doc["change"]["kind"], kind, "{}", stderr(&out));
        }
        Err(code) => {
            assert_eq!(out.status.code(), Some(code), "{flags:?} {}: {}", bin.display(), stderr(&out));
            assert_eq!(doc["command"], "install");
        }
    }
    assert_eq!(host.ran(), ran, "steps that ran for {} {flags:?}", bin.display());
}

#[test]
fn the_install_kind_table_pair_by_pair_undoes_nothing_silently() {
    let dir = scratch();
    let v2 = product(dir.path(), "2.0", None, "a");
    let v2_again = product(dir.path(), "2.0", None, "b");
    let hf1 = product(dir.path(), "2.0-hf1", Some("2.0"), "a");
    let hf1_again = product(dir.path(), "2.0-hf1", Some("2.0"), "b");
    let hf2 = product(dir.path(), "2.0-hf2", Some("2.0"), "a");
    let foreign = product(dir.path(), "1.0-hf1", Some("1.0"), "a");
    let v3 = product(dir.path(), "3.0", None, "a");
    let v1 = product(dir.path(), "1.0", None, "a");
    let host = Host::new();

    // Nothing installed: a hotfix is refused, the version installs.
    pair(&host, &hf1, &[], "no dt is installed", Err(7), &[]);
    pair(&host, &v2, &[], "first install of 2.0", Ok("install"), &["2.0 files install", "2.0 create install"]);
    // The same build, another build: nothing to do.
    pair(&host, &v2, &[], "its journal says what is done", Ok("same"), &[]);
    pair(&host, &v2_again, &[], "from another build of it: nothing to do", Ok("same"), &[]);
    // Its hotfix, then again (this build, another build of it): nothing the second time.
    pair(&host, &hf1, &[], "hotfix 2.0-hf1 on 2.0", Ok("hotfix"), &["2.0-hf1 files hotfix", "2.0-hf1 migrate hotfix"]);
    assert_eq!(host.installed_files(), "2.0-hf1");
    pair(&host, &hf1, &[], "applied already", Ok("same"), &[]);
    pair(&host, &hf1_again, &[], "applied already: nothing to do", Ok("same"), &[]);
    // The base of the hotfix: nothing to do, and the hotfix stays (the bug this table fixes).
    pair(&host, &v2, &[], "the base of the hotfixes on top: nothing to do", Ok("same"), &[]);
    assert_eq!(host.installed_files(), "2.0-hf1");
    assert_eq!(host.record()["hotfixes"][0]["version"], "2.0-hf1");
    pair(&host, &v2, &["--from", "files"], "would undo what the hotfixes after it changed", Err(7), &[]);
    // A hotfix of another version: refused.
    pair(&host, &foreign, &[], "is a hotfix for dt 1.0", Err(7), &[]);
    // A second hotfix goes on top; the first again is applied earlier.
    pair(&host, &hf2, &[], "hotfix 2.0-hf2 on 2.0 + 2.0-hf1", Ok("hotfix"), &["2.0-hf2 files hotfix", "2.0-hf2 migrate hotfix"]);
    pair(&host, &hf1, &["--from", "files"], "would undo", Err(7), &[]);
    assert_eq!(host.record()["hotfixes"].as_array().unwrap().len(), 2);
    // --force over the base: said, and the hotfixes go.
    pair(&host, &v2, &["--force"], "DROPS hotfix 2.0-hf1, 2.0-hf2", Ok("reinstall"), &["2.0 files reinstall", "2.0 create reinstall"]);
    assert_eq!(host.record()["hotfixes"], serde_json::json!([]));
    assert_eq!(host.installed_files(), "2.0");
    // Newer: an upgrade; older: refused, then rolled back on purpose (said).
    pair(&host, &hf1, &[], "hotfix 2.0-hf1 on 2.0", Ok("hotfix"), &["2.0-hf1 files hotfix", "2.0-hf1 migrate hotfix"]);
    pair(&host, &v3, &[], "upgrade from 2.0 + 2.0-hf1 to 3.0", Ok("upgrade"), &["3.0 files upgrade", "3.0 migrate upgrade"]);
    pair(&host, &v2, &[], "a downgrade is refused", Err(7), &[]);
    pair(&host, &v1, &["--allow-downgrade"], "ROLLS BACK 3.0", Ok("downgrade"), &["1.0 files downgrade", "1.0 migrate downgrade"]);
    pair(&host, &v3, &[], "upgrade from 1.0 to 3.0", Ok("upgrade"), &["3.0 files upgrade", "3.0 migrate upgrade"]);
    pair(&host, &v1, &["--force"], "ROLLS BACK 3.0", Ok("downgrade"), &["1.0 files downgrade", "1.0 migrate downgrade"]);
    let history: Vec<String> =
        host.record()["history"].as_array().unwrap().iter().map(|h| h["version"].as_str().unwrap().to_string()).collect();
    assert_eq!(history.first().map(String::as_str), Some("2.0"));
    assert_eq!(history.last().map(String::as_str), Some("1.0"));
}

#[test]
fn another_bundle_over_an_unfinished_run_is_refused_and_a_failed_upgrade_resumes_with_its_own() {
    let dir = scratch();
    let v2 = product(dir.path(), "2.0", None, "a");
    let v3 = product(dir.path(), "3.0", None, "a");
    let host = Host::new();
    assert!(host.run(&v2, &["--yes"]).status.success());
    host.ran();
    // The upgrade fails at its migration: the mark is a directory now.
    fs::write(host.config(), format!("mark: {}\n", host.dir.path().join("nowhere/mark").display())).unwrap();
    let failed = host.run(&v3, &["--yes"]);
    assert_eq!(failed.status.code(), Some(6), "{}", stderr(&failed));
    // The installed build over the unfinished upgrade: refused, naming it.
    let refused = host.run(&v2, &["--yes"]);
    assert_eq!(refused.status.code(), Some(7), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("an install of dt 3.0") && stderr(&refused).contains("unfinished"), "{}", stderr(&refused));
    fs::write(host.config(), format!("mark: {}\n", host.mark().display())).unwrap();
    let resumed = host.run(&v3, &["--yes", "--json"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(doc(&resumed)["change"]["kind"], "upgrade");
    assert_eq!(host.record()["version"], "3.0");
}

/// A product with a step per role that lists what it was staged, and members no step of
/// some roles reads: a pack of 3 MiB only the primary's command names, a file of 2 MiB
/// only the secondary's names, and an image member no command names.
fn roles_product(dir: &Path) -> PathBuf {
    let spec = dir.join("spec-roles");
    fs::create_dir_all(spec.join("images")).unwrap();
    fs::write(spec.join("tool.sh"), "#!/bin/sh\nls \"$AIRBIN_STAGING\" | tr '\\n' ' ' > \"$MARK.$AIRBIN_ROLE\"\n").unwrap();
    fs::write(spec.join("big.dat"), random_bytes(3 << 20, 7)).unwrap();
    fs::write(spec.join("medium.dat"), random_bytes(2 << 20, 8)).unwrap();
    image_archive(&spec.join("images/app.tar"), "dt/app:1", &[b"layer"]);
    fs::write(
        spec.join("bundle.yaml"),
        r#"name: roles
version: "1"
members:
  - {name: tool.sh, kind: tool, path: tool.sh}
  - {name: big.dat, kind: file, path: big.dat, compression: none}
  - {name: medium.dat, kind: file, path: medium.dat, compression: none}
  - {name: app-images, kind: image, path: images/app.tar}
config:
  required: [mark]
  management_nodes_key: nodes
  worker_nodes_key: workers
steps:
  - {name: primary part, kind: command, run: [sh, tool.sh, big.dat], env: {MARK: '${config.mark}'}, roles: [single, primary]}
  - {name: secondary part, kind: command, run: [sh, tool.sh, medium.dat], env: {MARK: '${config.mark}'}, roles: [secondary]}
  - {name: worker part, kind: command, run: [sh, tool.sh], env: {MARK: '${config.mark}'}, roles: [worker]}
"#,
    )
    .unwrap();
    build(&spec.join("bundle.yaml"), &dir.join("dist-roles"))
}

#[test]
fn each_role_stages_and_counts_only_what_its_steps_read() {
    let dir = scratch();
    let bin = roles_product(dir.path());
    let host = Host::new();
    fs::write(host.config(), format!("mark: {}\nnodes: [10.9.9.1, 10.9.9.2]\nworkers: [10.9.9.3]\n", host.mark().display())).unwrap();
    let staged = |role: &str| fs::read_to_string(format!("{}.{role}", host.mark().display())).unwrap_or_default();
    for (role, has, lacks) in [
        ("primary", vec!["big.dat", "tool.sh", "config"], vec!["medium.dat", "app-images"]),
        ("secondary", vec!["medium.dat", "tool.sh", "config"], vec!["big.dat", "app-images"]),
        ("worker", vec!["tool.sh", "config"], vec!["big.dat", "medium.dat", "app-images"]),
    ] {
        let out = host.run(&bin, &["install", "--yes", "--role", role]);
        assert!(out.status.success(), "{role}: {}", stderr(&out));
        let listed = staged(role);
        for name in has {
            assert!(listed.contains(name), "{role} was staged {listed}, without {name}");
        }
        for name in lacks {
            assert!(!listed.split(' ').any(|n| n == name), "{role} was staged {listed}, with {name}");
        }
        // Staging never outlives its run.
        assert!(!host.state().join("roles/staging").exists(), "{role}: staging outlived its run");
        fs::remove_dir_all(host.state()).unwrap();
    }
    // Preflight counts only what the role stages: a 4 MiB staging place holds the
    // secondary's 2 MiB and the worker's nothing, each with the 1 MiB margin, but not the
    // primary's 3 MiB and the margin.
    let out = in_mount_namespace(
        dir.path(),
        "mkdir -p /mnt/small && mount -t tmpfs -o size=4m tmpfs /mnt/small || exit 98; \
         for role in worker secondary primary; do sh \"$1\" preflight --role $role --target /mnt/small --config \"$2\"; echo \"exit $role $?\"; done",
        &[&bin, &host.config()],
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("exit worker 0") && text.contains("exit secondary 0"), "{text}");
    assert!(text.contains("exit primary 4"), "{text}");
    assert!(text.contains("plus a 1.00 MiB margin for the file system"), "the margin is said: {text}");
    assert!(text.contains("--target DIR (staging)") || text.contains("another --target DIR (staging)"), "{text}");
}

/// The PIDs of the processes whose environment holds `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes())))
        .collect()
}

#[test]
fn a_grandchild_of_a_step_killed_with_its_runtime_is_stopped_before_the_step_runs_again() {
    let dir = scratch();
    let spec = dir.path().join("spec");
    fs::create_dir_all(&spec).unwrap();
    // The product's install starts a helper in the background, then works a while.
    fs::write(spec.join("tool.sh"), "#!/bin/sh\nsleep 60 &\necho \"started $$\" >> \"$MARK\"\nsleep ${WORK:-30}\necho done >> \"$MARK\"\n")
        .unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        "name: grand\nversion: '1'\nmembers:\n  - {name: tool.sh, kind: tool, path: tool.sh}\nconfig: {required: [mark]}\nsteps:\n  - {name: cadm install, kind: command, run: [sh, tool.sh], env: {MARK: '${config.mark}', MARKER: grandchild-test}}\n",
    )
    .unwrap();
    let bin = build(&spec.join("bundle.yaml"), &dir.path().join("dist"));
    let host = Host::new();
    let child = host.command(&bin, &["--yes"]).stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fs::read_to_string(host.mark()).unwrap_or_default().contains("started") {
        assert!(Instant::now() < deadline, "the step did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // kill -9 of the installer: the runtime (the lock names it), not its shell.
    let lock = fs::read_to_string(host.state().join("grand/lock")).unwrap();
    let pid: i32 = lock.split_whitespace().nth(1).unwrap().parse().unwrap();
    send(pid as u32, nix::sys::signal::Signal::SIGKILL);
    let mut child = child;
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(300));
    let token = "AIRBIN_STEP_TOKEN=";
    let left: Vec<i32> = processes_with("MARKER=grandchild-test").into_iter().filter(|p| processes_with(token).contains(p)).collect();
    assert!(!left.is_empty(), "the background helper outlived the kill (the case under test)");
    let rerun = host.command(&bin, &["--yes"]).env("WORK", "0").output().unwrap();
    assert!(rerun.status.success(), "{}", stderr(&rerun));
    let said = stderr(&rerun);
    assert!(said.contains(&format!("the last run (pid {pid}")) && said.contains("was killed at step 'cadm install'; resuming"), "{said}");
    assert!(said.contains("were still running") && said.contains("stopped before the step runs again"), "{said}");
    // Every process the killed attempt started is gone; the rerun's own helper is the
    // product's business (it started it in the background, on purpose).
    for pid in left {
        let alive = fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
        assert!(!alive, "process {pid} of the killed attempt still runs");
    }
    for pid in processes_with("MARKER=grandchild-test") {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

#[test]
fn a_kill_at_every_write_of_the_state_leaves_nothing_behind_and_the_rerun_finishes() {
    let dir = scratch();
    let v2 = product(dir.path(), "2.0", None, "a");
    let points: Vec<String> = (1..=9)
        .map(|n| format!("journal-append#{n}"))
        .chain((1..=9).map(|n| format!("journal-appended#{n}")))
        .chain(
            ["installed-index.json", "installed.json", "answers.json", "placed.json", "verified", "config"]
                .iter()
                .flat_map(|f| [format!("write:{f}"), format!("written:{f}")]),
        )
        .collect();
    let mut crashed = 0;
    for point in &points {
        let host = Host::new();
        let out = host.command(&v2, &["--yes"]).env("AIRBIN_TEST_CRASH_AT", point).output().unwrap();
        if out.status.success() {
            continue; // the run does not reach this point
        }
        crashed += 1;
        let rerun = host.run(&v2, &["--yes", "--json"]);
        assert!(rerun.status.success(), "after a kill at {point}: {}", stderr(&rerun));
        let state = host.state().join("dt");
        let left: Vec<String> = fs::read_dir(&state).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert!(!left.iter().any(|n| n.contains(".airbin-partial-")), "after a kill at {point}, the rerun left {left:?}");
        assert!(!left.iter().any(|n| n == "staging"), "after a kill at {point}, staging outlived the rerun: {left:?}");
        assert_eq!(host.record()["version"], "2.0", "after a kill at {point}");
        // Every run-finished follows a run-started of its own run.
        let records: Vec<serde_json::Value> =
            fs::read_to_string(state.join("journal.jsonl")).unwrap().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        for finished in records.iter().filter(|r| r["event"] == "run-finished") {
            let started = records.iter().any(|r| r["event"] == "run-started" && r["run"] == finished["run"]);
            assert!(started, "after a kill at {point}: a run-finished without its run-started: {finished}");
        }
        let ran = host.ran();
        assert!(ran.iter().filter(|l| l.contains(" create ")).count() <= 2, "after a kill at {point}: {ran:?}");
        // And once more: nothing to do.
        let again = host.run(&v2, &["--yes", "--json"]);
        assert_eq!(doc(&again)["nothing_to_do"], true, "after a kill at {point}: {}", stderr(&again));
    }
    assert!(crashed >= 12, "the crash points were reached: {crashed} of {}", points.len());
}

#[test]
fn answers_are_remembered_secrets_apart_and_a_rerun_needs_no_set() {
    let dir = scratch();
    let spec = dir.path().join("spec");
    fs::create_dir_all(&spec).unwrap();
    fs::write(spec.join("tool.sh"), "#!/bin/sh\necho \"$AIRBIN_PARAM_SITE $AIRBIN_PARAM_PASSWORD\" >> \"$MARK\"\n").unwrap();
    fs::write(spec.join("config.sample"), "mark: /tmp/mark\nsite: example\n").unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        r#"name: remember
version: "1"
members:
  - {name: tool.sh, kind: tool, path: tool.sh}
  - {name: config.sample, kind: config-sample, path: config.sample}
parameters:
  - {name: site, type: string, required: true}
  - {name: password, type: string, secret: true, required: true}
  - {name: mark, type: path, required: true}
steps:
  - {name: configure, kind: command, run: [sh, tool.sh], env: {MARK: '${config.mark}'}}
"#,
    )
    .unwrap();
    let bin = build(&spec.join("bundle.yaml"), &dir.path().join("dist"));
    let state = dir.path().join("state");
    let mark = dir.path().join("mark");
    let run = |args: &[&str]| {
        Command::new("sh")
            .arg(&bin)
            .args(args)
            .env("AIRBIN_STATE_DIR", &state)
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // No config and nothing given: said plainly, with the sample's exact commands.
    let none = run(&["--yes"]);
    assert_eq!(none.status.code(), Some(2));
    let said = stderr(&none);
    assert!(said.contains("there is no config at") && said.contains("extract config.sample --target"), "{said}");
    assert!(said.contains("--set site=...") && said.contains("--set password=..."), "{said}");
    let mark_set = format!("mark={}", mark.display());
    let first = run(&["--yes", "--set", "site=north", "--set", "password=hunter22", "--set", &mark_set]);
    assert!(first.status.success(), "{}", stderr(&first));
    let answers = fs::read_to_string(state.join("remember/answers.json")).unwrap();
    assert!(answers.contains("north") && !answers.contains("hunter22"), "{answers}");
    let secrets = state.join("remember/secrets.json");
    assert_eq!(fs::metadata(&secrets).unwrap().permissions().mode() & 0o777, 0o600);
    // The record, the log, the journal and support never hold the secret.
    for file in ["installed.json", "journal.jsonl"] {
        assert!(!fs::read_to_string(state.join("remember").join(file)).unwrap().contains("hunter22"), "{file}");
    }
    // A rerun with --force and no --set: the remembered answers.
    let again = run(&["--yes", "--force", "--json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(fs::read_to_string(&mark).unwrap().lines().last(), Some("north hunter22"));
    // plan marks a value that differs from the last install's.
    let plan = run(&["plan", "--set", "site=south"]);
    let text = stdout(&plan);
    assert!(text.contains("site") && text.contains("CHANGED: was north"), "{text}");
    assert!(text.contains("remembered"), "{text}");
    let status = run(&["status"]);
    assert!(stdout(&status).contains("site = north") && !stdout(&status).contains("hunter22"), "{}", stdout(&status));
    // --forget-secrets: the secret is asked for again (here: refused without a terminal).
    let forgot = run(&["--yes", "--force", "--forget-secrets"]);
    assert_eq!(forgot.status.code(), Some(2), "{}", stderr(&forgot));
    assert!(
        stderr(&forgot).contains("this bundle needs password") && stderr(&forgot).contains("--set password=..."),
        "{}",
        stderr(&forgot)
    );
    assert!(!secrets.exists() || !fs::read_to_string(&secrets).unwrap().contains("hunter22"));
}

#[test]
fn a_non_root_preflight_checks_every_place_it_writes_and_advises_what_applies() {
    if !skip::root("a_non_root_preflight") {
        return;
    }
    let dir = scratch();
    let spec = dir.path().join("spec");
    fs::create_dir_all(&spec).unwrap();
    fs::write(spec.join("tool.sh"), "#!/bin/sh\ntrue\n").unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        "name: places\nversion: '1'\nmembers:\n  - {name: tool.sh, kind: tool, path: tool.sh}\nparameters:\n  - {name: tools_dir, type: path, default: /root/airbin-test-tools}\nsteps:\n  - {name: install tool, kind: extract, member: tool.sh, to: '${config.tools_dir}'}\n",
    )
    .unwrap();
    let bin = build(&spec.join("bundle.yaml"), &dir.path().join("dist"));
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    Command::new("chown").args(["nobody"]).arg(&home).status().unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "sh"])
        .arg(&bin)
        .args(["preflight"])
        .env("HOME", &home)
        .env("TMPDIR", &home)
        .current_dir(&home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("/root/airbin-test-tools") && said.contains("is not writable by this user"), "{said}");
    assert!(said.contains("--set tools_dir=DIR"), "the fix that applies: {said}");
    assert!(!said.contains("--target"), "--target moves no extract step: {said}");
}

#[test]
fn a_closed_stdout_ends_every_printing_command_quietly() {
    let dir = scratch();
    let bin = product(dir.path(), "2.0", None, "a");
    let host = Host::new();
    assert!(host.run(&bin, &["--yes"]).status.success());
    let b = bin.display().to_string();
    let state = host.state().display().to_string();
    let airbin = env!("CARGO_BIN_EXE_airbin");
    let key = dir.path().join("k");
    let lines = [
        format!("sh {b} info"),
        format!("sh {b} --info"),
        format!("sh {b} list"),
        format!("sh {b} check"),
        format!("sh {b} --help"),
        format!("sh {b} info --json"),
        format!("sh {b} plan --config {}", host.config().display()),
        format!("sh {b} status"),
        format!("sh {b} status --verify"),
        format!("sh {b} preflight --config {}", host.config().display()),
        format!("{airbin} inspect {b}"),
        format!("{airbin} inspect {b} --json"),
        format!("{airbin} diff {b} {b}"),
        format!("{airbin} verify {b}"),
        format!("{airbin} --help"),
        format!("{airbin} --version"),
        format!("{airbin} keygen --no-password -o {}", key.display()),
    ];
    for line in &lines {
        for reader in ["head -c 1", "true"] {
            let script = format!("set -o pipefail; AIRBIN_STATE_DIR={state} {line} | {reader}");
            let out = Command::new("bash").args(["-c", &script]).output().unwrap();
            let said = stderr(&out);
            assert!(!said.contains("panicked") && !said.contains("Broken pipe"), "{line} | {reader}: {said}");
            assert_eq!(out.status.code(), Some(0), "{line} | {reader}: {said}");
            let _ = fs::remove_file(&key);
            let _ = fs::remove_file(key.with_extension("key"));
            let _ = fs::remove_file(key.with_extension("pub"));
        }
    }
}

/// `command` of the one JSON document `args` print on stdout.
fn envelope_of(program: &mut Command) -> (serde_json::Value, i32) {
    let out = program.output().unwrap();
    let text = stdout(&out);
    let value: serde_json::Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{program:?}: not one document ({e}): {text}\n{}", stderr(&out)));
    for field in ["command", "status", "exit_code", "steps", "error", "log"] {
        assert!(value.get(field).is_some(), "{program:?}: no {field} in {value}");
    }
    assert_eq!(value["exit_code"], out.status.code().unwrap(), "{program:?}");
    (value, out.status.code().unwrap())
}

#[test]
fn every_command_of_both_programs_prints_one_envelope_success_or_failure() {
    let dir = scratch();
    let bin = product(dir.path(), "2.0", None, "a");
    let host = Host::new();
    let config = host.config().display().to_string();
    let state = host.state();
    let bundle = |args: &[&str]| {
        let mut c = Command::new("sh");
        c.arg(&bin).args(args).env("AIRBIN_STATE_DIR", &state).env("TMPDIR", host.dir.path()).stdin(Stdio::null());
        c
    };
    let cases: Vec<(Vec<&str>, &str, bool)> = vec![
        (vec!["info", "--json"], "info", true),
        (vec!["--info", "--json"], "info", true),
        (vec!["list", "--json"], "list", true),
        (vec!["check", "--json"], "check", true),
        (vec!["plan", "--json", "--config", &config], "plan", true),
        (vec!["preflight", "--json", "--config", &config], "preflight", true),
        (vec!["install", "--json", "--yes", "--config", &config], "install", true),
        (vec!["--json", "--yes", "--config", &config], "install", true),
        (vec!["status", "--json"], "status", true),
        (vec!["status", "--verify", "--json"], "status", true),
        (vec!["support", "--json", "-o"], "support", true),
        (vec!["extract", "--json", "--target"], "extract", true),
        (vec!["uninstall", "--dry-run", "--json", "--config", &config], "uninstall", true),
        (vec!["--help", "--json"], "install", true),
        (vec!["status", "--help", "--json"], "status", true),
        (vec!["info", "--json", "--engine", "podman"], "info", false),
        (vec!["status", "--json", "--bogus"], "status", false),
        (vec!["extract", "nope", "--json"], "extract", false),
        (vec!["plan", "--json", "--set", "x=1", "--config", &config], "plan", false),
    ];
    let support_file = dir.path().join("s.tar.gz").display().to_string();
    let target = dir.path().join("x").display().to_string();
    for (args, command, ok) in cases {
        let mut args = args.clone();
        if args.last() == Some(&"-o") {
            args.push(&support_file);
        }
        if args.last() == Some(&"--target") {
            args.push(&target);
        }
        let (doc, code) = envelope_of(&mut bundle(&args));
        assert_eq!(doc["command"], command, "{args:?}: {doc}");
        assert_eq!(code == 0, ok, "{args:?}: {doc}");
        assert_eq!(doc["status"], if ok { "ok" } else { "failed" }, "{args:?}");
    }
    // Launcher failures: a damaged launcher (its own check line), a truncated bundle.
    let mut damaged = fs::read(&bin).unwrap();
    damaged[3000] ^= 0x20;
    let damaged_bin = dir.path().join("damaged.bin");
    fs::write(&damaged_bin, &damaged).unwrap();
    let (doc, code) = envelope_of(Command::new("sh").arg(&damaged_bin).args(["status", "--json"]));
    assert_eq!((doc["command"].as_str(), code), (Some("status"), 3), "{doc}");
    let whole = fs::read(&bin).unwrap();
    let truncated = dir.path().join("truncated.bin");
    fs::write(&truncated, &whole[..whole.len() - 100]).unwrap();
    let (doc, code) = envelope_of(Command::new("sh").arg(&truncated).args(["check", "--json"]));
    assert_eq!((doc["command"].as_str(), code), (Some("check"), 3), "{doc}");
    let (doc, code) = envelope_of(Command::new("sh").arg(&truncated).args(["--json"]));
    assert_eq!((doc["command"].as_str(), code), (Some("install"), 3), "{doc}");
    // The builder's commands.
    let airbin = || Command::new(env!("CARGO_BIN_EXE_airbin"));
    let key = dir.path().join("key");
    let repo = dir.path().join("repo");
    for (args, command, ok) in [
        (vec!["inspect".to_string(), bin.display().to_string(), "--json".into()], "inspect", true),
        (vec!["inspect".into(), "--schema".into(), bin.display().to_string(), "--json".into()], "inspect", true),
        (vec!["verify".into(), bin.display().to_string(), "--json".into()], "verify", true),
        (vec!["verify".into(), truncated.display().to_string(), "--json".into()], "verify", false),
        (vec!["diff".into(), bin.display().to_string(), bin.display().to_string(), "--json".into()], "diff", true),
        (vec!["keygen".into(), "--no-password".into(), "-o".into(), key.display().to_string(), "--json".into()], "keygen", true),
        (vec!["keygen".into(), "--no-password".into(), "-o".into(), key.display().to_string(), "--json".into()], "keygen", false),
        (vec!["repo".into(), "add".into(), repo.display().to_string(), bin.display().to_string(), "--json".into()], "repo add", true),
        (vec!["repo".into(), "verify".into(), repo.display().to_string(), "--json".into()], "repo verify", true),
        (vec!["build".into(), dir.path().join("nope").display().to_string(), "--json".into()], "build", false),
        (vec!["--help".into(), "--json".into()], "airbin", true),
        (vec!["inspect".into(), "--bogus".into(), "--json".into()], "inspect", false),
    ] {
        let (doc, code) = envelope_of(airbin().args(&args));
        assert_eq!(doc["command"], command, "{args:?}: {doc}");
        assert_eq!(code == 0, ok, "{args:?}: {doc}");
    }
}

#[test]
fn flags_a_command_would_do_nothing_with_are_usage_errors() {
    let dir = scratch();
    let bin = product(dir.path(), "2.0", None, "a");
    for args in [
        vec!["info", "--engine", "podman"],
        vec!["info", "--set", "x=1"],
        vec!["list", "--yes"],
        vec!["support", "--target", "/tmp"],
        vec!["status", "--role", "primary"],
        vec!["check", "--config", "c"],
        vec!["--set", "x=1", "info"],
        vec!["install", "--parallel", "2"],
    ] {
        let out = Command::new("sh").arg(&bin).args(&args).env("AIRBIN_STATE_DIR", dir.path().join("s")).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let said = stderr(&out);
        assert!(said.lines().count() == 1 && said.contains("airbin: error:"), "{args:?}: {said}");
    }
}

#[test]
fn an_override_of_the_registry_address_reaches_every_step_that_uses_the_key() {
    let dir = scratch();
    let spec = dir.path().join("spec");
    fs::create_dir_all(&spec).unwrap();
    fs::copy(repo_root().join("samples/compass/registry/registry-pack.tar"), spec.join("pack.tar")).unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        "name: reg\nversion: '1'\nmembers:\n  - {name: pack, kind: registry-pack, path: pack.tar}\nconfig: {required: [registry_address]}\nsteps:\n  - {name: wait, kind: wait-for, http: 'http://${config.registry_address}/v2/'}\n  - {name: restore, kind: restore-registry, member: pack, root: /srv/r, address_from_config: registry_address}\n",
    )
    .unwrap();
    let bin = build(&spec.join("bundle.yaml"), &dir.path().join("dist"));
    let config = dir.path().join("config");
    fs::write(&config, "registry_address: 127.0.0.1:1\n").unwrap();
    let out = Command::new("sh")
        .arg(&bin)
        .args(["plan", "--registry-address", "10.1.2.3:5000", "--config"])
        .arg(&config)
        .env("AIRBIN_STATE_DIR", dir.path().join("s"))
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("http://10.1.2.3:5000/v2/") && !text.contains("127.0.0.1:1"), "{text}");
    assert!(text.contains("check it serves at 10.1.2.3:5000"), "{text}");
}

#[test]
fn ctrl_c_in_a_step_says_what_is_true() {
    let dir = scratch();
    let spec = dir.path().join("spec");
    fs::create_dir_all(&spec).unwrap();
    fs::write(spec.join("tool.sh"), "#!/bin/sh\necho \"$1\" >> \"$MARK\"\n[ \"$1\" = slow ] && sleep 30\ntrue\n").unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        "name: ctrlc\nversion: '1'\nmembers:\n  - {name: tool.sh, kind: tool, path: tool.sh}\nconfig: {required: [mark]}\nsteps:\n  - {name: first, kind: command, run: [sh, tool.sh, first], env: {MARK: '${config.mark}'}}\n  - {name: slow, kind: command, run: [sh, tool.sh, slow], env: {MARK: '${config.mark}'}}\n",
    )
    .unwrap();
    let bin = build(&spec.join("bundle.yaml"), &dir.path().join("dist"));
    let host = Host::new();
    let child = host.command(&bin, &["--yes"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (status, lines) = act_when(child, "step 2/2 slow", Duration::from_millis(500), |pid| {
        let runtime: i32 = fs::read_to_string(host.state().join("ctrlc/lock")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
        let _ = pid;
        send(runtime as u32, nix::sys::signal::Signal::SIGINT);
    });
    assert_eq!(status.code(), Some(130));
    let said = lines.join("\n");
    assert!(said.contains("interrupted in step 'slow'") && said.contains("the 1 step(s) done are not redone"), "{said}");
    assert!(!said.contains("nothing half-done was kept"), "the install says what it keeps: {said}");
}
