//! End to end: the install as a field engineer and QA run it: product commands with
//! their config and environment, failures, timeouts, retries and `on_failure`, the
//! journal and resume, `plan`, `status`, `support`, signals, and preflight. The
//! product's commands are a real shell script carried as a `tool` member.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// The product's admin tool of these tests. Every call appends `<step> <what>` to
/// $TRACE, so a test sees which steps ran and how often.
const TOOL: &str = r#"#!/bin/sh
set -eu
echo "${AIRBIN_STEP:-?} $*" >> "$TRACE"
case $1 in
ok) echo "hello from $2" ;;
fail) for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "output line $i"; done; exit "$2" ;;
flaky) n=$(cat "$2" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$2"; [ "$n" -ge "$3" ] || { echo "not yet ($n)"; exit 1; } ;;
sleep) sleep 300 & echo $! > "$2"; echo "started"; wait ;;
nap) sleep "$2" ;;
signal) kill -9 $$ ;;
env) env | grep '^AIRBIN_' | sort > "$2"; cp config "$3" ;;
maybe-fail) [ ! -e "$2" ] || { echo "asked to fail"; exit 4; } ;;
esac
"#;

/// Whether a process runs (a zombie that nobody reaped has stopped: PID 1 here may not reap).
fn alive(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()).map(str::to_string));
        match state.as_deref() {
            None | Some("Z") | Some("X") => return false,
            Some(_) if Instant::now() > deadline => return true,
            Some(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

struct Spec {
    dir: PathBuf,
}

/// A bundle named `name` with the tool, a config sample, `extra` members and `steps`
/// (YAML, indented as list items) and `top` (more top-level YAML).
fn bundle(dir: &Path, name: &str, version: &str, top: &str, steps: &str) -> PathBuf {
    let spec = Spec { dir: dir.join(format!("spec-{name}-{version}")) };
    fs::create_dir_all(&spec.dir).unwrap();
    fs::write(spec.dir.join("tool.sh"), TOOL).unwrap();
    fs::write(spec.dir.join("config.sample"), "cluster: sample-cluster\nadmin_password: changeme\nnodes: [10.0.0.1]\n").unwrap();
    fs::write(
        spec.dir.join("bundle.yaml"),
        format!(
            "name: {name}\nversion: '{version}'\nmembers:\n  - {{name: tool, kind: tool, path: tool.sh, mode: '0755'}}\n  - {{name: config.sample, kind: config-sample, path: config.sample}}\n{top}\nsteps:\n{steps}"
        ),
    )
    .unwrap();
    build(&spec.dir.join("bundle.yaml"), &dir.join("dist"))
}

/// A place of one test: its state directory, trace, config.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        Site { dir: scratch() }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn state(&self) -> PathBuf {
        self.path().join("state")
    }
    fn trace(&self) -> Vec<String> {
        fs::read_to_string(self.path().join("trace")).unwrap_or_default().lines().map(str::to_string).collect()
    }
    fn config(&self, text: &str) -> PathBuf {
        let path = self.path().join("site.yaml");
        fs::write(&path, text).unwrap();
        path
    }
    /// `bash BIN ARGS`, as the field engineer runs it, in this site.
    fn command(&self, bin: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("bash");
        c.arg(bin).args(args).env("TMPDIR", self.path()).env("AIRBIN_STATE_DIR", self.state()).env("TRACE", self.path().join("trace"));
        c
    }
    fn run(&self, bin: &Path, args: &[&str]) -> Output {
        self.command(bin, args).output().unwrap()
    }
    fn json(&self, bin: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(bin, &all);
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(&out)));
        (out.status.code(), doc)
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

const CONFIG: &str = "cluster: site-one\nadmin_password: hunter2\nnodes: [10.1.1.1, 10.1.1.2]\nregistry:\n  port: 5000\n";

#[test]
fn a_failing_step_stops_the_install_naming_step_code_last_lines_and_log() {
    let site = Site::new();
    let bin = bundle(
        site.path(),
        "failing",
        "1",
        "",
        "  - {name: first, kind: command, run: [tool, ok, first]}\n  - name: second\n    kind: command\n    run: [tool, fail, '3']\n    on_failure:\n      - {name: collect diagnostics, kind: command, run: [tool, ok, diagnostics]}\n  - {name: third, kind: command, run: [tool, ok, third]}\n",
    );
    let config = site.config(CONFIG);
    let out = site.run(&bin, &["--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    let line = err.lines().find(|l| l.starts_with("airbin: error:")).unwrap();
    assert!(line.contains("step 'second' failed: tool exited with code 3"), "{line}");
    assert!(line.contains(&format!("; log: {}", site.state().join("failing/logs/install-").display())), "{line}");
    assert!(
        err.contains("  | output line 12") && err.contains("  | output line 3") && !err.contains("  | output line 2\n"),
        "the last 10 lines: {err}"
    );
    assert!(err.contains("[second] output line 1"), "output streamed with the step's name: {err}");
    assert_eq!(site.trace(), ["first ok first", "second fail 3", "collect diagnostics ok diagnostics"]);
    let summary = stdout(&out);
    assert!(
        summary.contains("install FAILED at step 'second'")
            && summary.contains("not run")
            && summary.contains("on_failure collect diagnostics: done"),
        "{summary}"
    );

    // The rerun resumes at the failed step: `first` is not run again.
    let (code, doc) = site.json(&bin, &["--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(6));
    assert_eq!((doc["command"].as_str(), doc["status"].as_str(), doc["exit_code"].as_i64()), (Some("install"), Some("failed"), Some(6)));
    assert_eq!(doc["error"]["class"], "step-failed");
    assert_eq!(states(&doc), pairs(&[("first", "already-done"), ("second", "failed"), ("third", "not-run")]));
    assert!(doc["log"].as_str().unwrap().ends_with(".log"));
    assert_eq!(site.trace().iter().filter(|l| l.starts_with("first")).count(), 1);
}

#[test]
fn a_step_past_its_timeout_is_stopped_with_everything_it_started() {
    let site = Site::new();
    let pid_file = site.path().join("child.pid");
    let bin = bundle(
        site.path(),
        "slow",
        "1",
        "",
        &format!("  - {{name: slow, kind: command, run: [tool, sleep, '{}'], timeout: 2s}}\n", pid_file.display()),
    );
    let config = site.config(CONFIG);
    let started = Instant::now();
    let out = site.run(&bin, &["--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(60), "stopped at the timeout, not at the end of the sleep");
    assert!(stderr(&out).contains("step 'slow' failed: tool timed out after 2s and was stopped"), "{}", stderr(&out));
    let child: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(!alive(child), "the step's own child was stopped too");
}

#[test]
fn a_step_that_succeeds_on_a_retry_says_so_and_a_signal_is_named() {
    let site = Site::new();
    let counter = site.path().join("tries");
    let bin = bundle(
        site.path(),
        "flaky",
        "1",
        "",
        &format!(
            "  - {{name: flaky, kind: command, run: [tool, flaky, '{}', '3'], retries: 2, retry_delay: 0s}}\n  - {{name: killed, kind: command, run: [tool, signal]}}\n",
            counter.display()
        ),
    );
    let config = site.config(CONFIG);
    let (code, doc) = site.json(&bin, &["--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(6));
    let flaky = &doc["steps"][0];
    assert_eq!((flaky["state"].as_str(), flaky["attempts"].as_i64()), (Some("done"), Some(3)));
    assert!(flaky["detail"].as_str().unwrap().contains("succeeded on attempt 3 of 3"), "{flaky}");
    assert!(doc["error"]["message"].as_str().unwrap().contains("step 'killed' failed: tool was killed by SIGKILL"), "{doc}");
}

#[test]
fn the_config_is_required_checked_at_once_copied_and_given_to_steps() {
    let site = Site::new();
    let env_out = site.path().join("env.txt");
    let copy = site.path().join("config-seen");
    let bin = bundle(
        site.path(),
        "configured",
        "1",
        "config:\n  required: [cluster, nodes, registry.port, registry.host, owner]\n",
        &format!(
            "  - {{name: show, kind: command, run: [tool, env, '{}', '{}'], env: {{CLUSTER_AGAIN: '${{config.cluster}}'}}}}\n",
            env_out.display(),
            copy.display()
        ),
    );
    let bin_dir = bin.parent().unwrap();

    // No config anywhere: stop before anything lands, saying where the sample is.
    let out = site.run(&bin, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("there is no config at {}", bin_dir.join("config").display())), "{err}");
    let extract = format!("{} extract config.sample --target {}", bin.display(), bin_dir.display());
    assert!(err.contains(&extract) && err.contains("--use-sample"), "{err}");
    assert!(err.contains("--set cluster=...") && err.contains("--set nodes=..."), "{err}");
    assert!(!site.state().exists(), "nothing landed");

    // Every missing or empty key in one message, with the file.
    let config = site.config("cluster: ''\nnodes: [a]\nregistry:\n  port: 5000\n");
    let out = site.run(&bin, &["--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}: keys the bundle needs are missing or empty: cluster, registry.host, owner", config.display())),
        "{}",
        stderr(&out)
    );
    assert!(!site.state().exists(), "nothing landed");

    // Shell-style KEY="value" lines as well, beside the bundle.
    fs::write(bin_dir.join("config"), "cluster=\"east 1\"\nnodes='a b'\nregistry.port=1\nowner=ops\n").unwrap();
    let out = site.run(&bin, &[]);
    assert_eq!(out.status.code(), Some(2), "a dotted key is not a shell name: {}", stderr(&out));
    fs::remove_file(bin_dir.join("config")).unwrap();

    let config = site.config("cluster: site-one\nnodes: [10.1.1.1, 10.1.1.2]\nregistry:\n  port: 5000\n  host: reg.local\nowner: ops\n");
    let out = site.run(&bin, &["--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let env = fs::read_to_string(&env_out).unwrap();
    for expected in [
        "AIRBIN_BUNDLE_NAME=configured",
        "AIRBIN_BUNDLE_VERSION=1",
        "AIRBIN_ROLE=single",
        "AIRBIN_CONFIG_CLUSTER=site-one",
        "AIRBIN_CONFIG_NODES=10.1.1.1 10.1.1.2",
        "AIRBIN_CONFIG_REGISTRY_PORT=5000",
        &format!("AIRBIN_STAGING={}", site.state().join("configured/staging").display()),
        &format!("AIRBIN_CONFIG={}", site.state().join("configured/staging/config").display()),
        "AIRBIN_STEP=show",
    ] {
        assert!(env.lines().any(|l| l == expected), "{expected} not in the step's environment:\n{env}");
    }
    assert_eq!(fs::read_to_string(&copy).unwrap(), fs::read_to_string(&config).unwrap(), "the config, staged as `config`");

    // --use-sample takes the sample as it is, on purpose (it lacks keys: listed).
    let site2 = Site::new();
    let out = site2.run(&bin, &["--use-sample"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("config.sample: keys the bundle needs are missing or empty: registry.port, registry.host, owner"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn shell_style_configs_and_the_sample_work_and_relative_paths_resolve_beside_the_config() {
    let site = Site::new();
    let bin = bundle(
        site.path(),
        "shelly",
        "1",
        "config: {required: [TOOLS, CLUSTER]}",
        "  - {name: put, kind: extract, member: tool, to: '${config.TOOLS}', mode: '0700'}\n  - {name: run, kind: command, run: [tool, ok, '${config.CLUSTER}']}\n",
    );
    fs::create_dir(site.path().join("etc")).unwrap();
    let config = site.path().join("etc/product.conf");
    fs::write(&config, "# product\nCLUSTER=\"east one\"\nTOOLS=tools/bin\n").unwrap();
    let out = site.run(&bin, &["--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let placed = site.path().join("etc/tools/bin/tool");
    assert!(placed.is_file(), "TOOLS=tools/bin resolved against the config's directory");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&placed).unwrap().permissions()) & 0o777, 0o700);
    assert_eq!(site.trace(), ["run ok east one"]);

    // The sample as it is, on purpose: its values reach the steps.
    let site = Site::new();
    let bin = bundle(site.path(), "sampled", "1", "", "  - {name: run, kind: command, run: [tool, ok, '${config.cluster}']}\n");
    let out = site.run(&bin, &["--use-sample"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(site.trace(), ["run ok sample-cluster"]);
}

#[test]
fn plan_shows_each_step_its_values_and_what_is_done_before_and_after() {
    let site = Site::new();
    let bin = bundle(
        site.path(),
        "planned",
        "1",
        "config: {required: [registry.port]}",
        "  - {name: one, kind: command, run: [tool, ok, '${config.cluster}']}\n  - {name: wait, kind: wait-for, tcp: '127.0.0.1:${config.registry.port}', timeout: 1s}\n",
    );
    let config = site.config(CONFIG);
    let out = site.run(&bin, &["plan", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "plan for planned 1 on this host (role: single, the bundle names no node list)",
        "cluster = site-one",
        "registry.port = 5000",
        "1. one   [to do]  run the bundle's tool ok site-one",
        "2. wait  [to do]  wait up to 1s for 127.0.0.1:5000 to accept connections",
    ] {
        assert!(text.contains(expected), "plan lacks {expected:?}:\n{text}");
    }
    assert!(!text.contains("hunter2"));
    assert!(!site.state().exists(), "plan changes nothing");
    let out = site.run(&bin, &["install", "--dry-run", "--config", config.to_str().unwrap()]);
    assert_eq!(stdout(&out), text, "install --dry-run prints the same plan");

    // Port 5000 is closed: `one` is done, `wait` times out.
    let out = site.run(&bin, &["--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("step 'wait' failed: timed out after 1s: 127.0.0.1:5000 did not answer"), "{}", stderr(&out));
    let (code, doc) = site.json(&bin, &["plan", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    let steps = &doc["plan"]["steps"];
    assert_eq!((steps[0]["state"].as_str(), steps[1]["state"].as_str()), (Some("done"), Some("pending")), "{doc}");
    assert_eq!(doc["plan"]["config"]["values"]["admin_password"], serde_json::Value::Null, "only the keys the bundle uses");
}

#[test]
fn a_rerun_does_nothing_and_from_and_force_redo_on_purpose() {
    let site = Site::new();
    let bin = bundle(
        site.path(),
        "rerun",
        "1",
        "",
        "  - {name: a, kind: command, run: [tool, ok, a]}\n  - {name: b, kind: command, run: [tool, ok, b]}\n  - {name: c, kind: command, run: [tool, ok, c]}\n",
    );
    let config = site.config(CONFIG);
    let cfg = config.to_str().unwrap();
    assert!(site.run(&bin, &["--config", cfg]).status.success());
    let out = site.run(&bin, &["--config", cfg]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("nothing to do: all 3 steps were done already"), "{}", stdout(&out));
    assert_eq!(site.trace().len(), 3, "nothing ran again");

    let (code, doc) = site.json(&bin, &["--config", cfg, "--from", "b"]);
    assert_eq!(code, Some(0));
    assert_eq!(states(&doc), pairs(&[("a", "already-done"), ("b", "done"), ("c", "done")]));
    let (_, doc) = site.json(&bin, &["--config", cfg, "--force"]);
    assert_eq!(states(&doc), pairs(&[("a", "done"), ("b", "done"), ("c", "done")]));
    assert_eq!(site.trace().len(), 8);

    let out = site.run(&bin, &["--config", cfg, "--from", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--from nope: the bundle has no step of that name; its steps are: a, b, c"), "{}", stderr(&out));
}

#[test]
fn another_bundle_over_an_unfinished_run_stops_and_says_what_is_unfinished() {
    let site = Site::new();
    let fail_flag = site.path().join("fail-please");
    let steps = format!(
        "  - {{name: a, kind: command, run: [tool, ok, a]}}\n  - {{name: b, kind: command, run: [tool, maybe-fail, '{}']}}\n",
        fail_flag.display()
    );
    let v1 = bundle(site.path(), "product", "1", "", &steps);
    let v2 = bundle(site.path(), "product", "2", "", &steps);
    let config = site.config(CONFIG);
    let cfg = config.to_str().unwrap();
    fs::write(&fail_flag, "").unwrap();
    assert_eq!(site.run(&v1, &["--config", cfg]).status.code(), Some(6));
    let out = site.run(&v2, &["--config", cfg]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("an install of product 1 (another bundle") && stderr(&out).contains("is unfinished here (done: a)"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    fs::remove_file(&fail_flag).unwrap();
    let (code, doc) = site.json(&v2, &["--config", cfg, "--force"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(states(&doc), pairs(&[("a", "done"), ("b", "done")]));
    // A finished install of v2: v1 after it is not refused (downgrades are another matter).
    let (_, status) = site.json(&v2, &["status"]);
    assert_eq!((status["complete"].as_bool(), status["last_run"]["result"].as_str()), (Some(true), Some("finished ok")), "{status}");
    assert_eq!(status["last_run"]["outcome"], "ok");
}

#[test]
fn status_shows_the_last_run_and_follow_follows_a_running_install() {
    let site = Site::new();
    let bin = bundle(
        site.path(),
        "followed",
        "1",
        "",
        "  - {name: nap, kind: command, run: [tool, nap, '2']}\n  - {name: after, kind: command, run: [tool, ok, after]}\n",
    );
    let config = site.config(CONFIG);
    let cfg = config.to_str().unwrap();
    let out = site.run(&bin, &["status"]);
    assert!(stdout(&out).contains("no install of followed has run on this host"), "{}", stdout(&out));

    let mut install = site.command(&bin, &["--config", cfg]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !site.trace().iter().any(|l| l.starts_with("nap")) {
        assert!(Instant::now() < deadline, "the install never reached its first step");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, running) = site.json(&bin, &["status"]);
    assert!(running["last_run"]["result"].as_str().unwrap().starts_with("running (pid "), "{running}");
    // A second run while this one holds the lock: refused, naming the holder.
    let second = site.run(&bin, &["--config", cfg]);
    assert_eq!(second.status.code(), Some(7), "{}", stderr(&second));
    let holder = format!("another run of this bundle is going on (pid {} started 20", install.id());
    assert!(stderr(&second).contains(&holder), "{}", stderr(&second));
    assert_eq!(running["steps"][0]["state"], "running");
    let followed = site.run(&bin, &["status", "--follow"]);
    assert!(install.wait().unwrap().success());
    let text = stdout(&followed);
    assert!(text.contains("step 2/2 after: done") && text.contains("last run started") && text.contains("finished ok"), "{text}");

    let (_, doc) = site.json(&bin, &["status"]);
    assert_eq!(states(&doc), pairs(&[("nap", "done"), ("after", "done")]));
    assert!(doc["steps"][0]["seconds"].as_f64().unwrap() >= 2.0);
    assert!(Path::new(doc["last_run"]["log"].as_str().unwrap()).is_file());
}

#[test]
fn support_writes_one_small_tarball_with_no_secret_in_it() {
    if !require("tar", "support_writes_one_small_tarball") {
        return;
    }
    let site = Site::new();
    // A step that takes a secret on its command line and prints it: masked everywhere.
    let bin = bundle(
        site.path(),
        "supported",
        "1",
        "",
        "  - {name: login, kind: command, run: [tool, ok, '${config.admin_password}']}\n  - {name: a, kind: command, run: [tool, fail, '1']}\n",
    );
    let config = site.config("cluster: site-one\nadmin_password: hunter2\napi:\n  token: s3cr3t-t0ken\nnodes: [a]\n");
    let cfg = config.to_str().unwrap();
    let out = site.run(&bin, &["--config", cfg]);
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(site.trace()[0], "login ok hunter2", "the step got the real value");
    assert!(!stderr(&out).contains("hunter2") && stderr(&out).contains("[login] hello from ********"), "{}", stderr(&out));
    let plan = site.run(&bin, &["plan", "--config", cfg]);
    assert!(!stdout(&plan).contains("hunter2") && stdout(&plan).contains("admin_password = ********"), "{}", stdout(&plan));
    let file = site.path().join("for-vendor.tar.gz");
    let out = site.run(&bin, &["support", "--config", cfg, "-o", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fs::metadata(&file).unwrap().len() < 1 << 20, "small");
    let unpacked = site.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let tar = Command::new("tar").arg("xzf").arg(&file).arg("-C").arg(&unpacked).output().unwrap();
    assert!(tar.status.success(), "{}", stderr(&tar));
    let top = fs::read_dir(&unpacked).unwrap().next().unwrap().unwrap().path();
    let mut names = entries(&top);
    names.retain(|n| n != "engines");
    assert_eq!(names, ["answers.json", "config.masked", "host.txt", "index.json", "journal.jsonl", "logs"]);
    let all = Command::new("grep").args(["-r", "-l", "-e", "hunter2", "-e", "s3cr3t"]).arg(&top).output().unwrap();
    assert!(stdout(&all).is_empty(), "secrets in {}", stdout(&all));
    let masked = fs::read_to_string(top.join("config.masked")).unwrap();
    assert!(
        masked.contains("cluster: site-one") && masked.contains("admin_password: '********'") && masked.contains("token: '********'"),
        "{masked}"
    );
    let host = fs::read_to_string(top.join("host.txt")).unwrap();
    for fact in ["kernel: Linux", "cpu: ", "memory: MemTotal", "disks (free / total):", "engines:"] {
        assert!(host.contains(fact), "host.txt lacks {fact}: {host}");
    }
    let log = fs::read_dir(top.join("logs")).unwrap().next().unwrap().unwrap().path();
    assert!(fs::read_to_string(log).unwrap().contains("[a] output line 12"));
}

/// Waits until the trace shows `step` started.
fn wait_for_trace(site: &Site, step: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !site.trace().iter().any(|l| l.starts_with(step)) {
        assert!(Instant::now() < deadline, "step {step} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_dropped_terminal_does_not_stop_the_install() {
    if !require("script", "a_dropped_terminal") {
        return;
    }
    let site = Site::new();
    let bin = bundle(
        site.path(),
        "hangup",
        "1",
        "",
        "  - {name: nap, kind: command, run: [tool, nap, '2']}\n  - {name: after, kind: command, run: [tool, ok, after]}\n",
    );
    let config = site.config(CONFIG);
    // script(1) gives the install a terminal, as an SSH session does; killing script
    // closes the terminal, and the kernel sends SIGHUP to the install.
    let command = format!("bash '{}' --config '{}'", bin.display(), config.display());
    let mut session = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env("TMPDIR", site.path())
        .env("AIRBIN_STATE_DIR", site.state())
        .env("TRACE", site.path().join("trace"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_trace(&site, "nap");
    session.kill().unwrap();
    session.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, doc) = site.json(&bin, &["status"]);
        if doc["last_run"]["result"] == "finished ok" {
            assert_eq!(states(&doc), pairs(&[("nap", "done"), ("after", "done")]));
            break;
        }
        assert!(Instant::now() < deadline, "the install did not go on after its terminal went away: {doc}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sigterm_and_ctrl_c_stop_a_command_step_cleanly_and_the_rerun_resumes() {
    for signal in ["TERM", "INT"] {
        let site = Site::new();
        let pid_file = site.path().join("child.pid");
        let bin = bundle(
            site.path(),
            "stopped",
            "1",
            "",
            &format!(
                "  - {{name: a, kind: command, run: [tool, ok, a]}}\n  - {{name: long, kind: command, run: [tool, sleep, '{}']}}\n",
                pid_file.display()
            ),
        );
        let config = site.config(CONFIG);
        let install =
            site.command(&bin, &["--config", config.to_str().unwrap()]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        wait_for_trace(&site, "long");
        while !pid_file.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let kill = Command::new("kill").arg(format!("-{signal}")).arg(install.id().to_string()).status().unwrap();
        assert!(kill.success());
        let out = install.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {}", stderr(&out));
        assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
        let child: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        assert!(!alive(child), "SIG{signal}: the step's children were stopped");
        let (_, doc) = site.json(&bin, &["status"]);
        assert_eq!(doc["last_run"]["result"], "interrupted");
        assert_eq!(states(&doc), pairs(&[("a", "done"), ("long", "failed")]));
    }
}

#[test]
fn preflight_reports_every_problem_at_once_before_anything_lands() {
    let site = Site::new();
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let bin = bundle(
        site.path(),
        "preflighted",
        "1",
        &format!("requires:\n  ports: [{port}]\n"),
        "  - {name: host tool, kind: command, run: [no-such-program-airbin, x]}\n",
    );
    let config = site.config(CONFIG);
    let cfg = config.to_str().unwrap();
    let out = site.run(&bin, &["--config", cfg]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("this host is not ready for preflighted 1: 2 problems"), "{err}");
    assert!(err.contains("  - commands: no-such-program-airbin, which a command step runs, is not on PATH: install it"), "{err}");
    assert!(err.contains(&format!("  - ports: port {port} is in use")), "{err}");
    assert!(!site.state().join("preflighted/staging").exists() && site.trace().is_empty(), "nothing staged or run");

    let out = site.run(&bin, &["--config", cfg, "--skip-preflight", "ports", "--skip-preflight", "commands"]);
    assert_eq!(out.status.code(), Some(6), "past preflight, the step itself fails: {}", stderr(&out));
    assert!(stderr(&out).contains("no-such-program-airbin is not on PATH"), "{}", stderr(&out));
    let out = site.run(&bin, &["--config", cfg, "--skip-preflight", "disk"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--skip-preflight disk: no such check"), "{}", stderr(&out));
    drop(held);
}

#[test]
fn noexec_says_no_step_ran() {
    let site = Site::new();
    let bin = bundle(site.path(), "noexec", "1", "", "  - {name: a, kind: command, run: [tool, ok, a]}\n");
    let (code, doc) = site.json(&bin, &["--noexec"]);
    assert_eq!(code, Some(0));
    assert_eq!(states(&doc), pairs(&[("a", "not-run")]));
    assert!(doc["steps"][0]["detail"].as_str().unwrap().contains("--noexec"));
    assert!(site.trace().is_empty());
    let out = site.run(&bin, &["--noexec"]);
    assert!(stdout(&out).contains("staged; no step ran (--noexec)"), "{}", stdout(&out));
}

/// A bundle whose steps are cut off by kill -9: an extract of a large member, two
/// commands. Each journal record is a boundary.
fn killable(_site: &Site) -> PathBuf {
    static BUILT: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, bin) = BUILT.get_or_init(|| {
        let dir = scratch();
        let bin = build_killable(dir.path());
        (dir, bin)
    });
    bin.clone()
}

fn build_killable(dir: &Path) -> PathBuf {
    let spec = dir.join("kill-spec");
    fs::create_dir_all(&spec).unwrap();
    fs::write(spec.join("tool.sh"), TOOL).unwrap();
    fs::write(spec.join("big.bin"), random_bytes(48 << 20, 7)).unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        "name: killed\nversion: '1'\nmembers:\n  - {name: tool, kind: tool, path: tool.sh, mode: '0755'}\n  - {name: big, kind: file, path: big.bin, compression: xz, level: 0}\nconfig: {required: [target]}\nsteps:\n  - {name: put, kind: extract, member: big, to: '${config.target}'}\n  - {name: one, kind: command, run: [tool, nap, '1']}\n  - {name: two, kind: command, run: [tool, ok, two]}\n",
    )
    .unwrap();
    build(&spec.join("bundle.yaml"), &dir.join("dist"))
}

/// The steps the journal records as done.
fn done_steps(site: &Site) -> Vec<String> {
    let text = fs::read_to_string(site.state().join("killed/journal.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["event"] == "step-done")
        .map(|r| r["step"].as_str().unwrap().to_string())
        .collect()
}

fn journal_lines(site: &Site) -> usize {
    fs::read_to_string(site.state().join("killed/journal.jsonl")).map_or(0, |t| t.lines().count())
}

#[test]
fn kill_9_at_every_step_boundary_and_mid_step_then_the_rerun_completes_without_redoing() {
    let reference = Site::new();
    let bin = killable(&reference);
    let config_for = |site: &Site| site.config(&format!("target: {}\ncluster: x\n", site.path().join("out").display()));
    let cfg = config_for(&reference);
    let out = reference.run(&bin, &["--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let full_records = journal_lines(&reference);
    let expected = fs::read(reference.path().join("out/big")).unwrap();

    // Kill after each journal record (a boundary: a step started or ended), and 150 ms
    // into each step (mid-step: the extract is writing, the nap is sleeping).
    let mut points: Vec<(usize, u64)> = (1..full_records).map(|n| (n, 0)).collect();
    points.extend([(2, 150), (5, 150)]);
    for (after, delay_ms) in points {
        let site = Site::new();
        let cfg = config_for(&site);
        let mut install =
            site.command(&bin, &["--config", cfg.to_str().unwrap()]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while journal_lines(&site) < after && install.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = install.kill();
        install.wait().unwrap();
        let before = site.trace();
        let done_before = done_steps(&site);

        let out = site.run(&bin, &["--config", cfg.to_str().unwrap()]);
        let label = format!("killed after record {after} (+{delay_ms} ms)");
        assert!(out.status.success(), "{label}: {}", stderr(&out));
        if (after, delay_ms) == (2, 150) && done_before.is_empty() {
            // Killed while the extract wrote its temporary: the rerun swept it first.
            assert!(stderr(&out).contains("swept 1 leftover(s) of an interrupted run"), "{label}: {}", stderr(&out));
        }
        // No step the killed run had finished ran again; the rest ran to their end.
        let after_trace = site.trace();
        let runs = |trace: &[String], step: &str| trace.iter().filter(|l| l.starts_with(&format!("{step} "))).count();
        for step in &done_before {
            assert_eq!(runs(&after_trace, step), runs(&before, step), "{label}: {step} was done, and ran again: {after_trace:?}");
        }
        for step in ["one", "two"] {
            assert!(runs(&after_trace, step) >= 1, "{label}: {step} never ran: {after_trace:?}");
        }
        assert_eq!(fs::read(site.path().join("out/big")).unwrap(), expected, "{label}: the end state equals an uninterrupted run's");
        let left: Vec<String> = [site.path().join("out"), site.state().join("killed/staging")]
            .iter()
            .flat_map(|d| entries(d))
            .filter(|n| n.contains(".airbin-"))
            .collect();
        assert!(left.is_empty(), "{label}: leftovers {left:?}");
        let (_, status) = site.json(&bin, &["status"]);
        assert_eq!(status["complete"], true, "{label}: {status}");
    }
}

#[test]
fn preflight_finds_too_little_space_per_file_system_before_anything_lands() {
    if !require("unshare", "preflight_finds_too_little_space") {
        return;
    }
    let site = Site::new();
    let bin = killable(&site);
    let config = site.config("target: /mnt/small/out\ncluster: x\n");
    fs::create_dir(site.path().join("small")).unwrap();
    let out = in_mount_namespace(
        site.path(),
        "mount -t tmpfs -o size=4m tmpfs /mnt/small || exit 99; TRACE=/mnt/trace sh \"$1\" --config \"$2\"; echo \"exit $?\"; ls -A /mnt/small",
        &[&bin, &config],
    );
    let text = stdout(&out);
    let err = stderr(&out);
    assert!(text.contains("exit 4"), "{text} {err}");
    assert!(
        err.contains("preflight space: not enough free space on the file system of /mnt/small") && err.contains("/mnt/small/out 48.00 MiB"),
        "{err}"
    );
    assert!(err.contains("needed") && err.contains("available"), "{err}");
    assert_eq!(text.lines().filter(|l| !l.starts_with("exit")).count(), 0, "nothing landed in /mnt/small: {text}");
    assert!(site.trace().is_empty());
}

#[test]
fn a_config_that_is_not_yaml_nor_shell_lines_is_named_with_the_file() {
    let site = Site::new();
    let bin = bundle(site.path(), "badconfig", "1", "", "  - {name: a, kind: command, run: [tool, ok, a]}\n");
    for (text, expected) in [
        ("cluster: [unclosed\n", "not valid YAML"),
        ("just some words\n", "neither a YAML mapping"),
        ("A=\"open\n", "unterminated double quote"),
    ] {
        let config = site.config(text);
        let out = site.run(&bin, &["--config", config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{text}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{}: ", config.display())) && err.contains(expected) && err.contains("fix the config"),
            "{text}: {err}"
        );
    }
    let out = site.run(&bin, &["--config", "/nonexistent/site.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("the product's config /nonexistent/site.yaml cannot be read"), "{}", stderr(&out));
    assert!(!site.state().exists(), "nothing landed");
}

#[test]
fn a_bundle_that_must_be_installed_as_root_says_so_to_anyone_else() {
    if !require("setpriv", "a_bundle_that_must_be_installed_as_root") {
        return;
    }
    let site = Site::new();
    let bin = bundle(site.path(), "rooted", "1", "requires:\n  root: true\n", "  - {name: a, kind: command, run: [tool, ok, a]}\n");
    let tmp = site.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let config = site.config(CONFIG);
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "sh"])
        .arg(&bin)
        .arg("--config")
        .arg(&config)
        .env("TMPDIR", &tmp)
        .env("AIRBIN_STATE_DIR", tmp.join("state"))
        .env("TRACE", tmp.join("trace"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("preflight root: the bundle must be installed as root: run it with sudo"), "{}", stderr(&out));
    assert!(!tmp.join("state").exists() && !tmp.join("trace").exists(), "nothing landed, nothing ran");
    // As root it runs.
    let out = site.run(&bin, &["--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The verdict mark an install leaves in the state directory, with the identity of the
/// bundle as it is now (what only a writer who also rewrites the mark could arrange).
fn mark_as_if_unwritten(site: &Site, name: &str, bin: &Path) {
    use std::os::unix::fs::MetadataExt;
    let path = site.state().join(name).join("verified");
    let mut mark: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let meta = fs::metadata(bin).unwrap();
    mark["identity"] = serde_json::json!({
        "dev": meta.dev(), "ino": meta.ino(), "size": meta.size(),
        "mtime_ns": meta.mtime() * 1_000_000_000 + meta.mtime_nsec(), "ctime_ns": meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    });
    fs::write(&path, serde_json::to_vec(&mark).unwrap()).unwrap();
}

#[test]
fn a_rerun_on_the_file_an_earlier_run_verified_hashes_only_what_it_reads() {
    let site = Site::new();
    let flag = site.path().join("fail-two");
    // A member stored as it is: a flipped byte of it decodes, and only its digest can tell.
    fs::create_dir_all(site.path().join("spec-recall-1")).unwrap();
    fs::write(site.path().join("spec-recall-1/data.txt"), "some data ".repeat(1000)).unwrap();
    let bin = bundle(
        site.path(),
        "recall",
        "1",
        "  - {name: data, kind: file, path: data.txt, compression: none}",
        &format!(
            "  - {{name: put, kind: extract, member: data, to: '{}'}}\n  - {{name: two, kind: command, run: [tool, maybe-fail, '{}']}}\n",
            site.path().join("out").display(),
            flag.display()
        ),
    );
    let config = site.config(CONFIG);
    let config = config.to_str().unwrap();
    let recalled = |out: &Output| stderr(out).contains("verified in full by an earlier run and not written since");
    fs::write(&flag, "").unwrap();

    // The first run hashes every byte, and leaves the mark although a step failed.
    let out = site.run(&bin, &["--config", config]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(!recalled(&out));
    let mark = fs::read(site.state().join("recall/verified")).unwrap();
    // A copy of the file (another inode) is verified in full; refused before it begins, it
    // leaves the state directory, the mark included, as it was.
    let copy = site.path().join("copy.bin");
    fs::copy(&bin, &copy).unwrap();
    let out = site.run(&copy, &["--config", "/nonexistent/site.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(fs::read(site.state().join("recall/verified")).unwrap(), mark);
    // The rerun recalls the verdict.
    let out = site.run(&bin, &["--config", config]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(recalled(&out), "{}", stderr(&out));

    // A mark others could have written is not taken.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(site.state().join("recall"), fs::Permissions::from_mode(0o775)).unwrap();
    let out = site.run(&bin, &["--config", config]);
    assert!(!recalled(&out), "{}", stderr(&out));
    fs::set_permissions(site.state().join("recall"), fs::Permissions::from_mode(0o755)).unwrap();

    // Fixed, the rerun finishes, from the recalled verdict; --force checks every byte again.
    fs::remove_file(&flag).unwrap();
    let out = site.run(&bin, &["--config", config]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(recalled(&out), "{}", stderr(&out));
    let out = site.run(&bin, &["--config", config, "--force"]);
    assert!(out.status.success() && !recalled(&out), "{}", stderr(&out));

    // Any write to the file brings the full check back, even with its times set back.
    let data = airbin_format::Bundle::open(&bin).unwrap().index.member("data").unwrap().clone();
    let flip = |at: u64| {
        use std::os::unix::fs::FileExt;
        let file = fs::OpenOptions::new().read(true).write(true).open(&bin).unwrap();
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, at).unwrap();
        file.write_all_at(&[byte[0] ^ 0x20], at).unwrap();
    };
    let modified = fs::metadata(&bin).unwrap().modified().unwrap();
    flip(data.offset + data.stored_size / 2);
    fs::File::options().write(true).open(&bin).unwrap().set_modified(modified).unwrap();
    let out = site.run(&bin, &["--config", config, "--from", "put"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!recalled(&out) && stderr(&out).contains("is damaged"), "{}", stderr(&out));

    // Were the mark to match the damaged file, the members read are hashed still: the
    // damage is found, and the mark forgotten.
    flip(data.offset + data.stored_size / 2);
    let out = site.run(&bin, &["--config", config, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    flip(data.offset + data.stored_size / 2);
    mark_as_if_unwritten(&site, "recall", &bin);
    let out = site.run(&bin, &["--config", config, "--from", "put"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(recalled(&out) && stderr(&out).contains("member data is damaged"), "{}", stderr(&out));
    assert!(!site.state().join("recall/verified").exists(), "the mark is forgotten");
}
