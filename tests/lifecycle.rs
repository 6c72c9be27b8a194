//! The release lifecycle end to end: parameters (typed, checked, prompted for, secrets
//! masked everywhere), push-images into a real `docker-registry` (with and without
//! basic auth) and `docker pull` of what it pushed, upgrades, hotfixes and downgrades
//! against the install record, delta bundles, `airbin diff`, and a bundle repository.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::registry::Registry;
use support::*;

/// Writes `dir/<version>/bundle.yaml` of the product `life` with `body` (parameters,
/// steps, ...) and a `notes` file member, and builds it into `dir/dist`.
fn life(dir: &Path, version: &str, body: &str) -> PathBuf {
    let spec = dir.join(format!("spec-{version}"));
    fs::create_dir_all(&spec).unwrap();
    fs::write(spec.join("notes.txt"), format!("notes of {version}\n")).unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        format!("name: life\nversion: '{version}'\nmembers:\n  - {{name: notes, kind: file, path: notes.txt}}\n{body}"),
    )
    .unwrap();
    build(&spec, &dir.join("dist"))
}

fn build_error(dir: &Path, body: &str) -> (Option<i32>, String) {
    let spec = dir.join("bad");
    fs::create_dir_all(&spec).unwrap();
    fs::write(spec.join("notes.txt"), "x").unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        format!("name: life\nversion: '1'\nmembers:\n  - {{name: notes, kind: file, path: notes.txt}}\n{body}"),
    )
    .unwrap();
    let out = airbin().arg("build").arg(&spec).arg("-o").arg(dir.join("bad-dist")).output().unwrap();
    (out.status.code(), stderr(&out))
}

fn error_lines(out: &Output) -> Vec<String> {
    stderr(out).lines().filter(|l| l.contains("error")).map(str::to_string).collect()
}

const TYPED: &str = "parameters:
  - {name: port, type: int, key: registry.port, default: 5000}
  - {name: debug, type: bool, default: false}
  - {name: mode, type: enum, values: [single, dual], required: true}
  - {name: addr, type: ip, required: true}
  - {name: registry, type: 'host:port', key: registry.address, required: true}
  - {name: root, type: path, default: /srv/registry}
  - {name: portal, type: url, default: 'http://portal.local/'}
  - {name: cluster, type: string, pattern: '[a-z][a-z0-9-]*', default: demo}
steps:
  - name: record the values
    kind: command
    run: [sh, -c, 'echo \"${config.registry.port} ${config.debug} ${config.mode} ${config.addr} ${config.registry.address} $AIRBIN_PARAM_ROOT ${config.portal} ${config.cluster}\" > \"$OUT\"']
    env: {OUT: '${config.out}'}
config:
  required: [out]
";

#[test]
fn every_bad_or_missing_parameter_is_named_in_one_message_before_anything_runs() {
    let dir = scratch();
    let bin = life(dir.path(), "1.0", TYPED);
    let config = dir.path().join("config.yaml");
    fs::write(
        &config,
        "out: /nonexistent\nregistry:\n  port: five\n  address: nohost\ndebug: maybe\nmode: triple\naddr: 10.0.0\nroot: srv\nportal: 'not a url'\ncluster: ABC\n",
    )
    .unwrap();
    for shell in [Shell::Bash, Shell::Dash, Shell::Busybox] {
        let out = run(shell, &bin, &["install", "--yes", "--config", config.to_str().unwrap(), "--set", "bogus=1"], dir.path());
        assert_eq!(out.status.code(), Some(2), "{shell:?}: {}", stderr(&out));
        let errors = error_lines(&out);
        assert_eq!(errors.len(), 1, "{shell:?}: one error line: {}", stderr(&out));
        for part in [
            "--set bogus: the bundle declares no such parameter",
            "port = 'five' (from config) is not an integer",
            "debug = 'maybe' (from config) is not a bool",
            "mode = 'triple' (from config) is not one of single, dual",
            "addr = '10.0.0' (from config) is not an IP address",
            "registry = 'nohost' (from config) is not host:port",
            "root = 'srv' (from config) is not an absolute path",
            "portal = 'not a url' (from config) is not a URL",
            "cluster = 'ABC' (from config) does not match the pattern",
            "or with --set NAME=VALUE",
        ] {
            assert!(errors[0].contains(part), "{shell:?}: want «{part}» in {}", errors[0]);
        }
        assert!(!dir.path().join("airbin-state").exists(), "{shell:?}: a refused run wrote its state directory");
    }
    // Required and not given at all, without a terminal: named, not asked for.
    fs::write(&config, "out: /nonexistent\n").unwrap();
    let out = run(Shell::Dash, &bin, &["install", "--config", config.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for part in ["mode (enum) is required and not set", "addr (ip) is required and not set", "registry (host:port) is required and not set"]
    {
        assert!(stderr(&out).contains(part), "want «{part}» in {}", stderr(&out));
    }
}

#[test]
fn values_come_from_set_config_and_defaults_and_plan_says_which() {
    let dir = scratch();
    let bin = life(dir.path(), "1.0", TYPED);
    let out_file = dir.path().join("values.txt");
    let config = dir.path().join("config");
    // The shell style of config, as many products keep it.
    fs::write(&config, format!("OUT={}\nmode=single\naddr=10.0.0.5\n", out_file.display())).unwrap();
    let args = |cmd: &'static str| -> Vec<String> {
        [
            cmd,
            "--yes",
            "--config",
            config.to_str().unwrap(),
            "--set",
            "registry=10.0.0.5:5000",
            "--set",
            "registry.port=6000",
            "--set",
            "debug=yes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // The config's key is `OUT` in shell style; the spec asks for `out`: a missing key.
    let plain: Vec<String> = args("plan");
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    let out = run(Shell::Bash, &bin, &plain, dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("out"), "{}", stderr(&out));
    fs::write(&config, format!("out={}\nmode=single\naddr=10.0.0.5\n", out_file.display())).unwrap();

    let out = run(Shell::Bash, &bin, &plain, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "port     = 6000  (--set, int, config key registry.port)",
        "debug    = true  (--set, bool)",
        "mode     = single  (config, enum)",
        "registry = 10.0.0.5:5000  (--set, host:port, config key registry.address)",
        "root     = /srv/registry  (default, path)",
    ] {
        assert!(text.contains(line), "want «{line}» in:\n{text}");
    }
    let json: Vec<String> = args("plan").into_iter().chain(["--json".to_string()]).collect();
    let json: Vec<&str> = json.iter().map(String::as_str).collect();
    let doc: serde_json::Value = serde_json::from_slice(&run(Shell::Dash, &bin, &json, dir.path()).stdout).unwrap();
    let params = doc["plan"]["parameters"].as_array().unwrap();
    let from: Vec<(&str, &str)> = params.iter().map(|p| (p["name"].as_str().unwrap(), p["from"].as_str().unwrap())).collect();
    assert_eq!(
        from,
        [
            ("port", "set"),
            ("debug", "set"),
            ("mode", "config"),
            ("addr", "config"),
            ("registry", "set"),
            ("root", "default"),
            ("portal", "default"),
            ("cluster", "default")
        ]
    );

    let install: Vec<String> = args("install").into_iter().chain(["--keep".to_string()]).collect();
    let install: Vec<&str> = install.iter().map(String::as_str).collect();
    let out = run(Shell::Busybox, &bin, &install, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(&out_file).unwrap().trim(),
        "6000 true single 10.0.0.5 10.0.0.5:5000 /srv/registry http://portal.local/ demo"
    );
    // The staged config is the answers file with every value in it, for root alone.
    let staged = dir.path().join("airbin-state/life/staging/config");
    let text = fs::read_to_string(&staged).unwrap();
    assert!(
        text.contains("registry.address=\"10.0.0.5:5000\"") && text.contains("mode=\"single\"") && text.contains("debug=\"true\""),
        "{text}"
    );
    assert_eq!(fs::metadata(&staged).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn build_refuses_bad_declarations_naming_the_field() {
    let dir = scratch();
    let cases = [
        ("parameters:\n  - {name: port, type: int, default: five}\n", "parameters[0].default: 'five' is not an integer"),
        ("parameters:\n  - {name: mode, type: enum}\n", "parameters[0].values"),
        ("parameters:\n  - {name: pw, type: string, secret: true, default: hunter2}\n", "parameters[0].default: a secret has no default"),
        ("parameters:\n  - {name: a, type: float}\n", "unknown variant `float`"),
        ("parameters:\n  - {name: a, type: string, pattern: '(['}\n", "parameters[0].pattern"),
        ("parameters:\n  - {name: a, type: string}\n  - {name: a, type: int}\n", "parameters[1].name: 'a' names two parameters"),
        (
            "parameters:\n  - {name: pw, type: string, secret: true}\nsteps:\n  - {kind: command, run: [login, '${config.pw}']}\n",
            "steps[0].run: puts the secret `pw` on a command line",
        ),
        ("hotfix_of: '1'\n", "hotfix_of: is the bundle's own version"),
    ];
    for (body, want) in cases {
        let (code, err) = build_error(dir.path(), body);
        assert_eq!(code, Some(2), "{body}: {err}");
        assert!(err.contains(want), "{body}: want «{want}» in {err}");
    }
}

/// Every place a value can show: none shows the secret.
#[test]
fn a_secret_never_shows_in_logs_plan_status_json_support_the_record_or_a_command_line() {
    let dir = scratch();
    let secret = "s3cr3t-Qx7";
    let body = "parameters:
  - {name: db_password, type: string, key: db.pass, secret: true, required: true}
  - {name: db_user, type: string, key: db.user, default: admin}
steps:
  - name: use the secret
    kind: command
    run: [sh, -c, 'echo \"connecting with $PW\"; tr \"\\0\" \" \" < /proc/$PPID/cmdline > \"$AIRBIN_STAGING/parent-cmdline\"; [ \"$PW\" = \"$AIRBIN_PARAM_DB_PASSWORD\" ] && echo \"$PW\" > \"$AIRBIN_STAGING/got\"']
    env: {PW: '${config.db.pass}'}
";
    let bin = life(dir.path(), "1.0", body);
    let config = dir.path().join("config.yaml");
    fs::write(&config, format!("db:\n  pass: {secret}\n")).unwrap();
    let c = config.to_str().unwrap();
    let mut shown = String::new();
    let mut take = |out: &Output| {
        shown.push_str(&stdout(out));
        shown.push_str(&stderr(out));
        out.status.success()
    };
    assert!(take(&run(Shell::Bash, &bin, &["plan", "--config", c], dir.path())));
    assert!(take(&run(Shell::Bash, &bin, &["plan", "--json", "--config", c], dir.path())));
    assert!(take(&run(Shell::Bash, &bin, &["install", "--yes", "--keep", "--config", c], dir.path())));
    assert!(take(&run(Shell::Bash, &bin, &["install", "--yes", "--json", "--force", "--keep", "--config", c], dir.path())));
    assert!(take(&run(Shell::Bash, &bin, &["status"], dir.path())));
    assert!(take(&run(Shell::Bash, &bin, &["status", "--json"], dir.path())));
    let support = dir.path().join("support.tar.gz");
    assert!(take(&run(Shell::Bash, &bin, &["support", "--config", c, "-o", support.to_str().unwrap()], dir.path())));
    assert!(!shown.contains(secret), "the secret shows in output:\n{shown}");
    assert!(shown.contains("********"), "a masked value shows:\n{shown}");

    let state = dir.path().join("airbin-state/life");
    let staging = state.join("staging");
    // The step got it (in its environment), and it was on no command line.
    assert_eq!(fs::read_to_string(staging.join("got")).unwrap().trim(), secret);
    let cmdline = fs::read_to_string(staging.join("parent-cmdline")).unwrap();
    assert!(!cmdline.contains(secret) && cmdline.contains("--config"), "{cmdline}");
    fs::remove_file(staging.join("got")).unwrap();
    // On disk: only the staged config (0600) holds it; not the log, journal or record.
    let unpacked = dir.path().join("support");
    fs::create_dir(&unpacked).unwrap();
    assert!(Command::new("tar").arg("-xzf").arg(&support).arg("-C").arg(&unpacked).status().unwrap().success());
    for root in [&state, &unpacked] {
        for entry in walk(root) {
            // The remembered secrets: a file of their own, for root's eyes only.
            if entry.ends_with("staging/config") || entry.ends_with("secrets.json") {
                assert_eq!(fs::metadata(&entry).unwrap().permissions().mode() & 0o777, 0o600);
                continue;
            }
            let bytes = fs::read(&entry).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(secret), "{} holds the secret", entry.display());
        }
    }
    assert!(unpacked.read_dir().unwrap().flatten().any(|d| d.path().join("installed.json").is_file()), "support carries the record");
    let record = fs::read_to_string(state.join("installed.json")).unwrap();
    assert!(record.contains("\"db_password\"") && record.contains("********"), "{record}");
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}

/// Runs `bin` on a new pseudo-terminal (its controlling terminal) and answers each
/// prompt as it comes: `(prompt text, answer, secret)`. Returns the exit code and
/// everything the terminal showed.
fn on_a_terminal(bin: &Path, args: &[&str], dir: &Path, answers: &[(&str, &str, bool)]) -> (Option<i32>, String) {
    use nix::sys::termios::{tcgetattr, LocalFlags};
    use std::os::unix::process::CommandExt;
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut command = Command::new("bash");
    command.arg(bin).args(args).env("TMPDIR", dir).env("AIRBIN_STATE_DIR", dir.join("airbin-state"));
    let slave = fs::File::from(pty.slave);
    command.stdin(Stdio::from(slave.try_clone().unwrap())).stdout(Stdio::from(slave.try_clone().unwrap())).stderr(Stdio::from(slave));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY as _, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    drop(command);
    let master = fs::File::from(pty.master);
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let (mut master, shown) = (master.try_clone().unwrap(), shown.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let mut writer = master.try_clone().unwrap();
    let mut seen = 0;
    for (prompt, answer, secret) in answers {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = String::from_utf8_lossy(&shown.lock().unwrap()).into_owned();
            if let Some(at) = text[seen.min(text.len())..].find(prompt) {
                seen += at + prompt.len();
                break;
            }
            assert!(Instant::now() < deadline, "no prompt «{prompt}» on the terminal:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // A secret is typed once echo is off, as a person would after the prompt.
        while *secret && tcgetattr(&master).unwrap().local_flags.contains(LocalFlags::ECHO) {
            std::thread::sleep(Duration::from_millis(20));
        }
        writer.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    let status = child.wait().unwrap();
    drop(writer);
    drop(master);
    let _ = reader.join();
    let text = String::from_utf8_lossy(&shown.lock().unwrap()).into_owned();
    (status.code(), text)
}

#[test]
fn a_missing_required_value_is_asked_for_on_a_terminal_and_a_secret_is_not_echoed() {
    let dir = scratch();
    let body = "parameters:
  - {name: addr, type: ip, required: true, description: the management address}
  - {name: admin_password, type: string, secret: true, required: true}
steps:
  - {name: save, kind: command, run: [sh, -c, 'echo \"$A $P\" > \"$OUT\"'], env: {A: '${config.addr}', P: '${config.admin_password}', OUT: '${config.out}'}}
config:
  required: [out]
";
    let bin = life(dir.path(), "1.0", body);
    let out_file = dir.path().join("answers");
    let config = dir.path().join("config.yaml");
    fs::write(&config, format!("out: {}\n", out_file.display())).unwrap();
    let c = config.to_str().unwrap();
    let (code, shown) = on_a_terminal(
        &bin,
        &["install", "--config", c],
        dir.path(),
        &[
            ("addr (the management address) [ip]: ", "not-an-ip", false),
            ("try again", "10.0.0.9", false),
            ("admin_password [string]: ", "pa55-Word", true),
        ],
    );
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("'not-an-ip' is not an IP address; try again"), "{shown}");
    assert!(!shown.contains("pa55-Word"), "the secret was echoed:\n{shown}");
    assert_eq!(fs::read_to_string(&out_file).unwrap().trim(), "10.0.0.9 pa55-Word");
    let record = fs::read_to_string(dir.path().join("airbin-state/life/installed.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["parameters"][0], serde_json::json!({"name": "addr", "value": "10.0.0.9", "from": "prompt"}));
    assert_eq!(record["parameters"][1]["value"], "********");
    // Remembered: a rerun asks for nothing.
    fs::remove_file(&out_file).unwrap();
    let (code, shown) = on_a_terminal(&bin, &["install", "--yes", "--force", "--config", c], dir.path(), &[]);
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(fs::read_to_string(&out_file).unwrap().trim(), "10.0.0.9 pa55-Word");
    // --yes with the secret forgotten: never asked, named instead.
    let (code, shown) = on_a_terminal(&bin, &["install", "--yes", "--force", "--forget-secrets", "--config", c], dir.path(), &[]);
    assert_eq!(code, Some(2), "{shown}");
    assert!(shown.contains("admin_password (string) is required and not set"), "{shown}");
}

/// A bundle `pushy` of two images (sharing a layer) and a push-images step whose
/// registry, user and password are parameters.
fn push_bundle(dir: &Path) -> PathBuf {
    let spec = dir.join("push-spec");
    fs::create_dir_all(&spec).unwrap();
    let shared = random_bytes(300_000, 1);
    let (a, b) = (random_bytes(200_000, 2), random_bytes(200_000, 4));
    image_archive(&spec.join("api.tar"), "vendor.example.com/release/api:1.4.34", &[&shared, &a]);
    image_archive(&spec.join("worker.tar"), "release/worker:1.4.34", &[&shared, &b]);
    fs::write(
        spec.join("bundle.yaml"),
        "name: pushy\nversion: 1.4.34\nparameters:
  - {name: site_registry, type: 'host:port', required: true}
  - {name: site_user, type: string, default: ''}
  - {name: site_password, type: string, secret: true}
  - {name: prefix, type: string, default: oem}
members:
  - {name: api, kind: image, path: api.tar}
  - {name: worker, kind: image, path: worker.tar}
steps:
  - {name: push api, kind: push-images, member: api, registry: '${config.site_registry}', prefix: '${config.prefix}', username: '${config.site_user}', password: '${config.site_password}', track_tags: true}
  - {name: push worker, kind: push-images, member: worker, registry: '${config.site_registry}', prefix: '${config.prefix}', username: '${config.site_user}', password: '${config.site_password}', track_tags: true}
",
    )
    .unwrap();
    build(&spec, &dir.join("dist"))
}

#[test]
fn push_images_publishes_under_version_and_track_tags_and_docker_pulls_them() {
    let test = "push_images_publishes_under_version_and_track_tags_and_docker_pulls_them";
    if !require("docker-registry", test) || !docker_ready(test) {
        return;
    }
    let dir = scratch();
    let bin = push_bundle(dir.path());
    let open = Registry::start(&dir.path().join("open-root"));
    let guarded = Registry::start_with(&dir.path().join("auth-root"), Some(("pusher", "pa55")));
    let docker_config = dir.path().join("docker-config");
    fs::create_dir_all(&docker_config).unwrap();
    let docker = |args: &[&str]| Command::new("docker").args(args).env("DOCKER_CONFIG", &docker_config).output().unwrap();

    for (registry, creds) in [(&open, None), (&guarded, Some(("pusher", "pa55")))] {
        let config = dir.path().join("config.yaml");
        let auth = creds.map(|(u, p)| format!("site_user: {u}\nsite_password: {p}\n")).unwrap_or_default();
        fs::write(&config, format!("site_registry: {}\n{auth}", registry.address)).unwrap();
        let out = run(Shell::Dash, &bin, &["install", "--yes", "--json", "--force", "--config", config.to_str().unwrap()], dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let details: Vec<String> = doc["steps"].as_array().unwrap().iter().map(|s| s["detail"].as_str().unwrap().to_string()).collect();
        assert!(details[0].contains("2 tag(s)") && details[0].contains("oem/release/api:1.4.34, oem/release/api:1.4"), "{details:?}");
        // The layer the worker shares with the api is in the registry already: mounted, not sent.
        assert!(details[1].contains("2 blob(s) sent") && details[1].contains("1 mounted"), "{details:?}");
        if let Some((u, p)) = creds {
            let mut login = Command::new("docker")
                .args(["login", "-u", u, "--password-stdin", &registry.address])
                .env("DOCKER_CONFIG", &docker_config)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            login.stdin.take().unwrap().write_all(p.as_bytes()).unwrap();
            assert!(login.wait().unwrap().success());
        }
        let archive_id = |name: &str| {
            let config =
                Command::new("tar").arg("-xOf").arg(dir.path().join("push-spec").join(name)).arg("manifest.json").output().unwrap();
            let manifest: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
            format!("sha256:{}", manifest[0]["Config"].as_str().unwrap().trim_end_matches(".json"))
        };
        for (reference, archive) in [
            ("oem/release/api:1.4.34", "api.tar"),
            ("oem/release/api:1.4", "api.tar"),
            ("oem/release/worker:1.4.34", "worker.tar"),
            ("oem/release/worker:1.4", "worker.tar"),
        ] {
            let name = format!("{}/{reference}", registry.address);
            let pulled = docker(&["pull", &name]);
            assert!(pulled.status.success(), "docker pull {name}: {}", stderr(&pulled));
            let id = docker(&["image", "inspect", "--format", "{{.Id}}", &name]);
            assert_eq!(stdout(&id).trim(), archive_id(archive), "{name}");
            let _ = docker(&["rmi", "-f", &name]);
        }
        // Again: every blob is there; nothing is sent.
        let out = run(Shell::Bash, &bin, &["install", "--yes", "--json", "--force", "--config", config.to_str().unwrap()], dir.path());
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for step in doc["steps"].as_array().unwrap() {
            assert!(step["detail"].as_str().unwrap().contains("0 blob(s) sent"), "{step}");
        }
    }

    // Wrong or missing credentials: said, with what to do.
    let config = dir.path().join("config.yaml");
    fs::write(&config, format!("site_registry: {}\nsite_user: pusher\nsite_password: wrong\n", guarded.address)).unwrap();
    let out = run(Shell::Bash, &bin, &["install", "--yes", "--force", "--config", config.to_str().unwrap()], dir.path());
    // Credentials are the config's: a bad config, exit 2.
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused the user name and password given (401)") && !stderr(&out).contains("wrong"), "{}", stderr(&out));
    // No credentials (the remembered ones cleared: the user set empty, the secret forgotten).
    fs::write(&config, format!("site_registry: {}\n", guarded.address)).unwrap();
    let args = ["install", "--yes", "--force", "--forget-secrets", "--set", "site_user=", "--config", config.to_str().unwrap()];
    let out = run(Shell::Bash, &bin, &args, dir.path());
    assert!(stderr(&out).contains("asks for credentials (401)"), "{}", stderr(&out));
}

#[test]
fn track_tags_need_version_tags_at_build_time() {
    let dir = scratch();
    let spec = dir.path().join("spec");
    fs::create_dir_all(&spec).unwrap();
    image_archive(&spec.join("app.tar"), "sample/app:latest", &[b"x"]);
    fs::write(
        spec.join("bundle.yaml"),
        "name: t\nversion: '1'\nmembers:\n  - {name: app, kind: image, path: app.tar}\nsteps:\n  - {kind: push-images, member: app, registry: '127.0.0.1:5000', track_tags: true}\n",
    )
    .unwrap();
    let out = airbin().arg("build").arg(&spec).arg("-o").arg(dir.path().join("dist")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("steps[0].track_tags: sample/app:latest has no version tag such as 1.4.34"), "{}", stderr(&out));
}

const V1: &str = "config: {required: [mark]}
steps:
  - {name: create schema, kind: command, run: [sh, -c, 'echo \"create $AIRBIN_INSTALL_KIND [$AIRBIN_INSTALLED_VERSION]\" >> \"$MARK\"'], env: {MARK: '${config.mark}'}, when: install}
  - {name: start, kind: command, run: [sh, -c, 'echo \"start $AIRBIN_BUNDLE_VERSION\" >> \"$MARK\"'], env: {MARK: '${config.mark}'}}
";
const V2: &str = "config: {required: [mark]}
steps:
  - {name: create schema, kind: command, run: [sh, -c, 'echo \"create $AIRBIN_INSTALL_KIND [$AIRBIN_INSTALLED_VERSION]\" >> \"$MARK\"'], env: {MARK: '${config.mark}'}, when: install}
  - {name: migrate, kind: command, run: [sh, -c, 'echo \"migrate $AIRBIN_INSTALL_KIND from $AIRBIN_INSTALLED_VERSION\" >> \"$MARK\"; [ ! -e \"$MARK.fail\" ]'], env: {MARK: '${config.mark}'}, when: upgrade,
     on_failure: [{name: restore backup, kind: command, run: [sh, -c, 'echo restore >> \"$MARK\"'], env: {MARK: '${config.mark}'}}]}
  - {name: start, kind: command, run: [sh, -c, 'echo \"start $AIRBIN_BUNDLE_VERSION\" >> \"$MARK\"'], env: {MARK: '${config.mark}'}}
";

/// 1.0 and 2.0 of `life` (V1, V2), the file their steps note what ran in, and a config naming it.
fn two_versions() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf, PathBuf) {
    let dir = scratch();
    let v1 = life(dir.path(), "1.0", V1);
    let v2 = life(dir.path(), "2.0", V2);
    let mark = dir.path().join("mark");
    let config = dir.path().join("config.yaml");
    fs::write(&config, format!("mark: {}\n", mark.display())).unwrap();
    (dir, v1, v2, mark, config)
}

fn record(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("airbin-state/life/installed.json")).unwrap()).unwrap()
}

fn take_marks(mark: &Path) -> Vec<String> {
    let text = fs::read_to_string(mark).unwrap_or_default();
    let _ = fs::remove_file(mark);
    text.lines().map(str::to_string).collect()
}

#[test]
fn v1_then_v2_upgrades_v1_again_is_refused_and_the_same_version_is_nothing_to_do() {
    let (dir, v1, v2, mark, config) = two_versions();
    let c = config.to_str().unwrap();

    let out = run(Shell::Dash, &v1, &["install", "--yes", "--config", c], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(take_marks(&mark), ["create install []", "start 1.0"]);
    assert_eq!((record(dir.path())["version"].as_str(), record(dir.path())["how"].as_str()), (Some("1.0"), Some("install")));

    // The same version again: nothing runs, exit 0, and it says so.
    let out = run(Shell::Busybox, &v1, &["install", "--yes", "--config", c], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("1.0 is installed already") && stdout(&out).contains("--force reinstalls"), "{}", stdout(&out));
    assert!(take_marks(&mark).is_empty());
    // Another build of 1.0 (its index differs): nothing to do either, and it says why.
    let rebuilt = life(&dir.path().join("rebuild"), "1.0", &format!("{V1}parameters:\n  - {{name: extra, type: string, default: x}}\n"));
    let out = run(Shell::Dash, &rebuilt, &["install", "--yes", "--config", c], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1.0 is installed already") && stdout(&out).contains("from another build of it: nothing to do"),
        "{}",
        stdout(&out)
    );
    assert!(take_marks(&mark).is_empty());

    // plan on the upgrade: the kind, the diff against the installed record, the steps.
    let out = run(Shell::Bash, &v2, &["plan", "--config", c], dir.path());
    let text = stdout(&out);
    for want in [
        "this is: upgrade from 1.0 to 2.0",
        "what changes from the installed 1.0:",
        "+ migrate (command)",
        "~ notes:",
        "[not in this upgrade: the step is for install only]",
    ] {
        assert!(text.contains(want), "want «{want}» in:\n{text}");
    }
    let out = run(Shell::Bash, &v2, &["install", "--yes", "--json", "--config", c], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(take_marks(&mark), ["migrate upgrade from 1.0", "start 2.0"], "only the upgrade's steps run");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["change"]["kind"], "upgrade");
    let r = record(dir.path());
    assert_eq!((r["version"].as_str(), r["how"].as_str()), (Some("2.0"), Some("upgrade")));
    assert_eq!(r["history"].as_array().unwrap().len(), 2);

    // Back to 1.0: refused (exit 7) unless asked for.
    let out = run(Shell::Bash, &v1, &["install", "--yes", "--config", c], dir.path());
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("life 2.0 is installed here, newer than this bundle's 1.0") && stderr(&out).contains("--allow-downgrade"),
        "{}",
        stderr(&out)
    );
    assert!(take_marks(&mark).is_empty());
    let out = run(Shell::Bash, &v1, &["install", "--yes", "--allow-downgrade", "--config", c], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(take_marks(&mark), ["start 1.0"]);
    assert_eq!(record(dir.path())["how"], "downgrade");

    // --force on the same version reinstalls: the install's steps run.
    let out = run(Shell::Bash, &v1, &["install", "--yes", "--force", "--config", c], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(take_marks(&mark), ["create reinstall [1.0]", "start 1.0"]);
}

#[test]
fn a_failed_upgrade_keeps_the_old_record_runs_on_failure_and_resumes() {
    let (dir, v1, v2, mark, config) = two_versions();
    let c = config.to_str().unwrap();
    assert!(run(Shell::Dash, &v1, &["install", "--yes", "--config", c], dir.path()).status.success());
    take_marks(&mark);
    fs::write(format!("{}.fail", mark.display()), "").unwrap();
    let out = run(Shell::Dash, &v2, &["install", "--yes", "--config", c], dir.path());
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stdout(&out).contains("upgrade from 1.0 FAILED at step 'migrate'; 1.0 is still recorded as installed"), "{}", stdout(&out));
    assert_eq!(take_marks(&mark), ["migrate upgrade from 1.0", "restore"]);
    assert_eq!(record(dir.path())["version"], "1.0");
    // Fixed, run again: the upgrade resumes at the failed step.
    fs::remove_file(format!("{}.fail", mark.display())).unwrap();
    let out = run(Shell::Dash, &v2, &["install", "--yes", "--config", c], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(take_marks(&mark), ["migrate upgrade from 1.0", "start 2.0"]);
    assert_eq!(record(dir.path())["version"], "2.0");
}

#[test]
fn a_hotfix_applies_only_on_its_version_and_records_itself_on_top() {
    let dir = scratch();
    let mark = dir.path().join("mark");
    let v1 = life(dir.path(), "1.0", V1);
    let v2 = life(dir.path(), "2.0", V2);
    let fix = life(
        dir.path(),
        "2.0-hotfix1",
        "hotfix_of: '2.0'\nconfig: {required: [mark]}\nsteps:\n  - {name: patch, kind: command, run: [sh, -c, 'echo \"patch $AIRBIN_INSTALL_KIND on $AIRBIN_INSTALLED_VERSION\" >> \"$MARK\"'], env: {MARK: '${config.mark}'}}\n",
    );
    let config = dir.path().join("config.yaml");
    fs::write(&config, format!("mark: {}\n", mark.display())).unwrap();
    let c = config.to_str().unwrap();

    // Nothing installed, then 1.0 installed: refused, with what to do.
    let out = run(Shell::Bash, &fix, &["install", "--yes", "--config", c], dir.path());
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a hotfix for life 2.0, and no life is installed here"), "{}", stderr(&out));
    assert!(run(Shell::Bash, &v1, &["install", "--yes", "--config", c], dir.path()).status.success());
    let out = run(Shell::Bash, &fix, &["install", "--yes", "--config", c], dir.path());
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a hotfix for life 2.0; this host has life 1.0"), "{}", stderr(&out));

    assert!(run(Shell::Bash, &v2, &["install", "--yes", "--config", c], dir.path()).status.success());
    take_marks(&mark);
    let out = run(Shell::Dash, &fix, &["install", "--yes", "--config", c], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(take_marks(&mark), ["patch hotfix on 2.0"]);
    let r = record(dir.path());
    assert_eq!(r["version"], "2.0");
    assert_eq!(r["hotfixes"][0]["version"], "2.0-hotfix1");
    // Applied already: nothing to do; status names it.
    let out = run(Shell::Dash, &fix, &["install", "--yes", "--config", c], dir.path());
    assert!(out.status.success() && stdout(&out).contains("2.0 + 2.0-hotfix1 is installed already"), "{}", stdout(&out));
    assert!(take_marks(&mark).is_empty());
    let out = run(Shell::Dash, &v2, &["status"], dir.path());
    assert!(stdout(&out).contains("installed: life 2.0 + 2.0-hotfix1"), "{}", stdout(&out));
}

#[test]
fn airbin_diff_names_members_images_parameters_and_steps_that_changed() {
    let dir = scratch();
    let v1 = life(
        dir.path(),
        "1.0",
        &format!("parameters:\n  - {{name: port, type: int, default: 5000}}\n  - {{name: gone, type: string}}\n{V1}"),
    );
    let v2 = life(
        dir.path(),
        "2.0",
        &format!(
            "parameters:\n  - {{name: port, type: int, default: 6000}}\n  - {{name: mode, type: enum, values: [a, b], default: a}}\n{V2}"
        ),
    );
    let out = airbin().arg("diff").arg(&v1).arg(&v2).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "life 1.0 -> life 2.0",
        "members:\n  ~ notes: 13 B, content",
        "parameters:\n  + mode (enum, default a)\n  - gone (string)\n  ~ port: int, default 5000 -> int, default 6000",
        "steps:\n  + migrate (command)",
    ] {
        assert!(text.contains(want), "want «{want}» in:\n{text}");
    }
    let out = airbin().args(["--json", "diff"]).arg(&v1).arg(&v2).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["command"], "diff");
    assert_eq!(doc["diff"]["steps"]["added"], serde_json::json!(["migrate (command)"]));
    assert_eq!(doc["diff"]["parameters"]["removed"], serde_json::json!(["gone (string)"]));
    // Images: a tag added, one removed, one retagged to another image.
    let spec = |name: &str, tags: &[(&str, u64)]| {
        let d = dir.path().join(name);
        fs::create_dir_all(&d).unwrap();
        let mut members = String::new();
        for (i, (tag, seed)) in tags.iter().enumerate() {
            image_archive(&d.join(format!("i{i}.tar")), tag, &[&random_bytes(1000, *seed)]);
            members.push_str(&format!("  - {{name: i{i}, kind: image, path: i{i}.tar}}\n"));
        }
        fs::write(d.join("bundle.yaml"), format!("name: img\nversion: '{name}'\nmembers:\n{members}")).unwrap();
        build(&d, &dir.path().join("img-dist"))
    };
    let a = spec("1", &[("app/api:1", 1), ("app/old:1", 2)]);
    let b = spec("2", &[("app/api:1", 3), ("app/new:1", 4)]);
    let doc: serde_json::Value =
        serde_json::from_slice(&airbin().args(["--json", "diff"]).arg(&a).arg(&b).output().unwrap().stdout).unwrap();
    let images = &doc["diff"]["images"];
    assert!(images["added"][0].as_str().unwrap().starts_with("app/new:1"), "{images}");
    assert!(images["removed"][0].as_str().unwrap().starts_with("app/old:1"), "{images}");
    assert!(images["changed"][0].as_str().unwrap().starts_with("app/api:1: retagged"), "{images}");
}

#[test]
fn inspect_schema_is_json_schema_a_portal_renders_a_form_from() {
    let dir = scratch();
    let bin = life(dir.path(), "1.0", TYPED);
    let out = airbin().args(["inspect", "--schema"]).arg(&bin).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(schema["properties"]["port"]["type"], "integer");
    assert_eq!(schema["properties"]["port"]["default"], 5000);
    assert_eq!(schema["properties"]["debug"]["type"], "boolean");
    assert_eq!(schema["properties"]["mode"]["enum"], serde_json::json!(["single", "dual"]));
    assert_eq!(schema["properties"]["registry"]["x-airbin-config-key"], "registry.address");
    assert_eq!(schema["required"], serde_json::json!(["mode", "addr", "registry"]));
}

/// A registry root holding the image `tag` of `layers` (pushed by skopeo), under `root`.
fn push_with_skopeo(dir: &Path, root: &Path, tag: &str, layers: &[&[u8]]) {
    let registry = Registry::start(root);
    let archive = image_archive(&dir.join("push.tar"), tag, layers);
    let out = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--quiet"])
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("docker://{}/{tag}", registry.address))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo: {}", stderr(&out));
}

fn pack_bundle(dir: &Path, version: &str, root: &Path, base: Option<&Path>, out: &str) -> PathBuf {
    let spec = dir.join(format!("pack-spec-{version}"));
    fs::create_dir_all(&spec).unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        format!(
            "name: packs\nversion: '{version}'\nmembers:\n  - {{name: registry, kind: registry-pack, path: {}}}\nsteps:\n  - {{kind: restore-registry, member: registry, root_from_config: registry_root}}\n",
            root.display()
        ),
    )
    .unwrap();
    let mut command = airbin();
    command.arg("build").arg(&spec).arg("-o").arg(dir.join(out));
    if let Some(base) = base {
        // The base's own .sha256 file is what vouches for it on an unsigned line.
        let named = fs::read_to_string(format!("{}.sha256", base.display())).unwrap();
        let sha = named.split_whitespace().next().unwrap().to_string();
        command.arg("--base").arg(base).arg("--base-sha256").arg(sha);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    PathBuf::from(stdout(&output).trim())
}

#[test]
fn a_delta_bundle_installs_over_its_base_and_refuses_a_root_without_it() {
    fn refs(layers: &[Vec<u8>]) -> Vec<&[u8]> {
        layers.iter().map(Vec::as_slice).collect()
    }
    let test = "a_delta_bundle_installs_over_its_base_and_refuses_a_root_without_it";
    if !require("docker-registry", test) || !require("skopeo", test) {
        return;
    }
    let dir = scratch();
    let layers: Vec<Vec<u8>> = (0..6).map(|i| random_bytes(400_000, 100 + i)).collect();
    let v1_root = dir.path().join("v1-root");
    push_with_skopeo(dir.path(), &v1_root, "app/server:1.0", &refs(&layers));
    // 2.0: the same image, and a new one with one layer changed out of six.
    let v2_root = dir.path().join("v2-root");
    Command::new("cp").arg("-a").arg(&v1_root).arg(&v2_root).status().unwrap();
    let mut changed = layers.clone();
    changed[5] = random_bytes(400_000, 999);
    push_with_skopeo(dir.path(), &v2_root, "app/server:2.0", &refs(&changed));

    let v1 = pack_bundle(dir.path(), "1.0", &v1_root, None, "dist");
    let full = pack_bundle(dir.path(), "2.0", &v2_root, None, "dist-full");
    let delta = pack_bundle(dir.path(), "2.0", &v2_root, Some(&v1), "dist-delta");
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    assert!(size(&delta) + 1_500_000 < size(&full), "delta {} vs full {}", size(&delta), size(&full));
    let info = airbin_format::Bundle::open(&delta).unwrap();
    let record = info.index.members[0].registry.clone().unwrap();
    assert_eq!(record.omitted.len(), 6 + 1, "the six layers and the config of 1.0: {:?}", record.omitted);

    // A host with 1.0: the delta installs and serves both tags.
    let site = dir.path().join("site-root");
    let config = dir.path().join("config.yaml");
    fs::write(&config, format!("registry_root: {}\n", site.display())).unwrap();
    let c = config.to_str().unwrap();
    assert!(run(Shell::Dash, &v1, &["install", "--yes", "--config", c], dir.path()).status.success());
    let out = run(Shell::Dash, &delta, &["install", "--yes", "--config", c], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let registry = Registry::start(&site);
    assert_eq!(registry.manifest_status("app/server", "1.0"), 200);
    assert_eq!(registry.manifest_status("app/server", "2.0"), 200);
    drop(registry);

    // A host without 1.0: refused before anything lands, naming the blobs.
    let bare = dir.path().join("bare");
    fs::create_dir_all(&bare).unwrap();
    let bare_root = bare.join("root");
    fs::write(&config, format!("registry_root: {}\n", bare_root.display())).unwrap();
    let out = run(Shell::Bash, &delta, &["install", "--yes", "--config", c], &bare);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("is a delta: it leaves out 7 blob(s) its base bundle carried") && err.contains("lacks 7 of them (sha256:"),
        "{err}"
    );
    assert!(err.contains("install the base version first, or use the full bundle"), "{err}");
    assert!(!bare_root.join("docker").exists(), "the refused delta placed files");
}

#[test]
fn a_repository_of_two_bundles_in_two_versions_verifies_and_finds_what_was_altered() {
    let dir = scratch();
    let repo = dir.path().join("repo");
    let life1 = life(dir.path(), "1.0", "");
    let life2 = life(dir.path(), "2.0", "");
    let other = |version: &str| {
        let spec = dir.path().join(format!("other-{version}"));
        fs::create_dir_all(&spec).unwrap();
        fs::write(spec.join("a.txt"), version).unwrap();
        fs::write(
            spec.join("bundle.yaml"),
            format!("name: other\nversion: '{version}'\ndescription: the other one\nmembers:\n  - {{name: a, kind: file, path: a.txt}}\n"),
        )
        .unwrap();
        build(&spec, &dir.path().join("dist"))
    };
    let (other1, other11) = (other("1.0"), other("1.10"));
    // 1.10 is signed: its detached signature goes into the repository beside it.
    let key = dir.path().join("release");
    assert!(airbin().arg("keygen").arg("-o").arg(&key).arg("--no-password").output().unwrap().status.success());
    let signed = airbin()
        .arg("build")
        .arg(dir.path().join("other-1.10"))
        .arg("-o")
        .arg(dir.path().join("dist"))
        .arg("--sign")
        .arg(key.with_extension("key"))
        .output()
        .unwrap();
    assert!(signed.status.success(), "{}", stderr(&signed));
    let add = |bins: &[&Path], extra: &[&str]| airbin().args(["repo", "add"]).arg(&repo).args(bins).args(extra).output().unwrap();
    let out = add(&[&life1, &other11, &life2, &other1], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let index: serde_json::Value = serde_json::from_slice(&fs::read(repo.join("index.json")).unwrap()).unwrap();
    let versions = |name: &str| -> Vec<String> {
        let entry = index["bundles"].as_array().unwrap().iter().find(|b| b["name"] == name).unwrap();
        entry["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(versions("life"), ["2.0", "1.0"]);
    assert_eq!(versions("other"), ["1.10", "1.0"], "newest first, 1.10 after 1.9");
    let life2_path = repo.join("life/amd64/2.0/life-2.0-amd64.bin");
    assert_eq!(fs::read(&life2_path).unwrap(), fs::read(&life2).unwrap());
    let sums = fs::read_to_string(repo.join("life/amd64/2.0/life-2.0-amd64.bin.sha256")).unwrap();
    let entry = &index["bundles"][0]["versions"][0];
    assert_eq!(sums.split_whitespace().next(), entry["sha256"].as_str());
    assert_eq!(entry["size"].as_u64(), Some(fs::metadata(&life2).unwrap().len()));
    let other_entry = index["bundles"].as_array().unwrap().iter().find(|b| b["name"] == "other").unwrap();
    assert_eq!(other_entry["description"], "the other one");
    let sig = other_entry["versions"][0]["signature"].as_str().unwrap();
    assert_eq!(sig, "other/amd64/1.10/other-1.10-amd64.bin.minisig");
    assert!(repo.join(sig).is_file());
    assert!(other_entry["versions"][1].get("signature").is_none());

    // The same file again changes nothing; another file under the same version is refused.
    let before = fs::read(repo.join("index.json")).unwrap();
    assert!(add(&[&life2], &[]).status.success());
    assert_eq!(fs::read(repo.join("index.json")).unwrap(), before);
    let rebuilt = life(&dir.path().join("again"), "2.0", "steps:\n  - {kind: command, run: ['true']}\n");
    let out = add(&[&rebuilt], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the repository has another file for life 2.0 amd64") && stderr(&out).contains("--replace"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(repo.join("index.json")).unwrap(), before);

    let verify = || airbin().args(["repo", "verify"]).arg(&repo).output().unwrap();
    let out = verify();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("4 bundle(s) (4 released, 0 staging, 0 yanked), every file as the index says"), "{}", stdout(&out));

    // One byte altered, a file gone, a stray file: each named.
    let mut bytes = fs::read(&life2_path).unwrap();
    let last = bytes.len() - 200;
    bytes[last] ^= 1;
    fs::write(&life2_path, bytes).unwrap();
    fs::remove_file(repo.join("other/amd64/1.0/other-1.0-amd64.bin.sha256")).unwrap();
    fs::write(repo.join("other/amd64/stray.bin"), "x").unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("altered: life/amd64/2.0/life-2.0-amd64.bin: SHA-256"), "{text}");
    assert!(text.contains("missing: other/amd64/1.0/other-1.0-amd64.bin.sha256"), "{text}");
    assert!(text.contains("extra: other/amd64/stray.bin"), "{text}");
    assert!(stderr(&out).contains("1 missing, 1 altered, 1 extra"), "{}", stderr(&out));

    // --replace puts the other file in place, and the repository verifies again.
    fs::remove_file(repo.join("other/amd64/stray.bin")).unwrap();
    assert!(add(&[&rebuilt, &other1], &["--replace"]).status.success());
    let out = verify();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}
