//! `airbin lab`: QA's matrix of scenarios on throwaway machines, as a QA engineer runs
//! it: every scenario of the compass sample on the `netns` backend with an earlier
//! release to upgrade from; a failing scenario that says why and keeps its machines'
//! logs; Ctrl-C; the `ssh` backend on machines of an inventory it resets (and never one
//! it does not list); the `qemu` backend's image, power cuts and resume under TCG; and
//! the reports read back by real consumers: JUnit by junitparser, the HTML page by
//! headless Chromium, whose screenshot must show the scenario table.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Whether the host can make the `netns` backend's machines.
fn netns_ready(test: &str) -> bool {
    ["ip", "nsenter", "unshare", "/usr/sbin/sshd", "ssh", "dockerd", "docker-registry"].iter().all(|tool| require(tool, test))
        && skip::root(test)
}

fn lab_run(bundle: &Path, out: &Path, args: &[&str]) -> Output {
    airbin().args(["lab", "run"]).arg(bundle).arg("-o").arg(out).args(args).output().unwrap()
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(out.join("report.json")).unwrap()).unwrap()
}

fn case<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["cases"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no case {id} in {report:#}"))
}

/// Debian's python3, where python3-junitparser lands (a pyenv shim may come first on PATH).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// (tests, failures, skipped) of a JUnit file, as junitparser (a real consumer) reads it.
fn junit_counts(file: &Path, test: &str) -> Option<(u64, u64, u64)> {
    let has = Command::new(DEBIAN_PYTHON).args(["-c", "import junitparser"]).status().is_ok_and(|s| s.success());
    if !skip::needs(test, "junitparser", has, "apt-get install python3-junitparser (bash hack/setup-host.sh)") {
        return None;
    }
    let script = "import sys\nfrom junitparser import JUnitXml, Failure, Skipped\nxml = JUnitXml.fromfile(sys.argv[1])\n\
                  t = f = s = 0\nfor suite in xml:\n    for case in suite:\n        t += 1\n\
                  \x20       f += any(isinstance(r, Failure) for r in case.result)\n\
                  \x20       s += any(isinstance(r, Skipped) for r in case.result)\nprint(t, f, s, xml.tests, xml.failures, xml.skipped)\n";
    let out = Command::new(DEBIAN_PYTHON).arg("-c").arg(script).arg(file).output().unwrap();
    assert!(out.status.success(), "junitparser cannot read {}: {}", file.display(), stderr(&out));
    let n: Vec<u64> = stdout(&out).split_whitespace().map(|w| w.parse().unwrap()).collect();
    assert_eq!(n[..3], n[3..], "the suite's counts disagree with its cases: {}", stdout(&out));
    Some((n[0], n[1], n[2]))
}

/// The report page as headless Chromium shows it: (pixels of the "passed" green, of
/// the "failed" red), counted in its screenshot.
fn screenshot(out: &Path, test: &str) -> Option<(usize, usize)> {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new("sh").arg("-c").arg(format!("command -v {c}")).output().is_ok_and(|o| o.status.success()));
    if !skip::needs(test, "chromium", chromium.is_some(), "apt-get install chromium (bash hack/setup-host.sh)") {
        return None;
    }
    let png = out.join("screenshot.png");
    let shot = Command::new(chromium.unwrap())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1400"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", out.join("report.html").display()))
        .output()
        .unwrap();
    assert!(png.is_file(), "chromium wrote no screenshot: {}", stderr(&shot));
    let decoder = png::Decoder::new(fs::File::open(&png).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let near = |p: &[u8], c: (i32, i32, i32)| {
        (i32::from(p[0]) - c.0).abs() < 24 && (i32::from(p[1]) - c.1).abs() < 24 && (i32::from(p[2]) - c.2).abs() < 24
    };
    let (mut green, mut red) = (0, 0);
    for p in pixels[..info.buffer_size()].chunks(channels) {
        // The result column's words: .passed #11772d, .failed #b3261e.
        green += usize::from(near(p, (0x11, 0x77, 0x2d)));
        red += usize::from(near(p, (0xb3, 0x26, 0x1e)));
    }
    Some((green, red))
}

/// The scenario table's rows in the page: one per case.
fn table_rows(out: &Path) -> usize {
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    let table = &html[html.find("<table id=\"scenarios\"").expect("the scenario table")..];
    let table = &table[..table.find("</table>").unwrap()];
    table.matches("<tr").count() - 1
}

/// An earlier release of compass, built from a copy of its spec.
fn earlier_compass(dir: &Path) -> PathBuf {
    let spec = dir.join("compass-v2.7.2");
    let cp = Command::new("cp").arg("-r").arg(repo_root().join("samples/compass")).arg(&spec).status().unwrap();
    assert!(cp.success());
    let text = fs::read_to_string(spec.join("bundle.yaml")).unwrap();
    assert!(text.contains("version: v2.7.3"), "the compass sample's version moved: update this test");
    fs::write(spec.join("bundle.yaml"), text.replace("version: v2.7.3", "version: v2.7.2")).unwrap();
    build(&spec, &dir.join("built"))
}

#[test]
fn every_scenario_passes_on_netns_for_compass_upgrading_from_a_repository() {
    let test = "every_scenario_passes_on_netns_for_compass_upgrading_from_a_repository";
    if !netns_ready(test) {
        return;
    }
    let dir = scratch();
    // The earlier release as a site keeps it: in an airbin repository.
    let earlier = earlier_compass(dir.path());
    let repo = dir.path().join("repo");
    let added = airbin().args(["repo", "add"]).arg(&repo).arg(&earlier).output().unwrap();
    assert!(added.status.success(), "{}", stderr(&added));
    let out = dir.path().join("report");
    let config = repo_root().join("samples/compass/lab-config.yaml");
    let ran = lab_run(compass(), &out, &["--previous", repo.to_str().unwrap(), "--config", config.to_str().unwrap(), "--jobs", "2"]);
    assert!(ran.status.success(), "{}\n{}", stderr(&ran), stdout(&ran));
    let doc = report(&out);
    let ids: Vec<&str> = doc["cases"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "install",
            "install-pair",
            "rerun",
            "kill-1",
            "kill-2",
            "kill-3",
            "upgrade-from-v2.7.2",
            "downgrade-to-v2.7.2",
            "tampered",
            "small-disk",
            "uninstall",
            "power-cut"
        ],
        "{doc:#}"
    );
    assert_eq!((doc["passed"].as_u64(), doc["failed"].as_u64(), doc["skipped"].as_u64()), (Some(11), Some(0), Some(1)), "{doc:#}");
    assert!(case(&doc, "power-cut")["message"].as_str().unwrap().contains("--backend qemu or ssh"), "{doc:#}");
    // Each case says what it saw, and keeps each node's files.
    assert!(case(&doc, "upgrade-from-v2.7.2")["message"].as_str().unwrap().contains("v2.7.2 -> v2.7.3"), "{doc:#}");
    assert!(case(&doc, "downgrade-to-v2.7.2")["message"].as_str().unwrap().contains("exit 7"), "{doc:#}");
    assert!(case(&doc, "tampered")["message"].as_str().unwrap().contains("exit 3"), "{doc:#}");
    assert!(case(&doc, "small-disk")["message"].as_str().unwrap().contains("exit 4"), "{doc:#}");
    for kill in ["kill-1", "kill-2", "kill-3"] {
        assert!(case(&doc, kill)["message"].as_str().unwrap().contains("the rerun finished the rest"), "{doc:#}");
    }
    let pair = case(&doc, "install-pair");
    assert_eq!(pair["nodes"].as_array().unwrap().len(), 2, "{pair:#}");
    for node in pair["nodes"].as_array().unwrap() {
        for file in node["files"].as_array().unwrap() {
            assert!(out.join(file.as_str().unwrap()).is_file(), "{file} is not in the report");
        }
        assert!(node["files"].as_array().unwrap().iter().any(|f| f.as_str().unwrap().ends_with("support.tar.gz")), "{node:#}");
    }
    // JUnit: one case per scenario and node, as junitparser reads it.
    if let Some(counts) = junit_counts(&out.join("junit.xml"), test) {
        assert_eq!(counts, (13, 0, 1));
    }
    assert_eq!(table_rows(&out), 12);
    if let Some((green, red)) = screenshot(&out, test) {
        assert!(green > 300, "the screenshot shows no \"passed\" column ({green} green pixels)");
        assert_eq!(red, 0, "the screenshot shows red where nothing failed");
    }
}

/// A bundle whose product command fails on every machine.
fn failing_bundle(dir: &Path) -> PathBuf {
    let spec = dir.join("failing");
    fs::create_dir_all(&spec).unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        "name: failing\nversion: '1.0'\narch: amd64\nmembers:\n  - {name: notes, kind: file, path: notes.txt}\n\
         steps:\n  - {name: install notes, kind: extract, member: notes, to: /srv/notes}\n\
         \x20 - {name: start service, kind: command, run: [sh, -c, 'echo the disk is on fire >&2; exit 3']}\n",
    )
    .unwrap();
    fs::write(spec.join("notes.txt"), "notes\n").unwrap();
    // As a field engineer may have named the copy: a space and a quote, which every
    // remote command line the lab makes must carry as one word.
    let built = build(&spec, &dir.join("dist"));
    let renamed = dir.join("dist/failing 1.0 (ops' copy).bin");
    fs::rename(&built, &renamed).unwrap();
    renamed
}

#[test]
fn a_failing_scenario_says_why_and_keeps_its_machines_logs() {
    let test = "a_failing_scenario_says_why_and_keeps_its_machines_logs";
    if !netns_ready(test) {
        return;
    }
    let dir = scratch();
    let bundle = failing_bundle(dir.path());
    let out = dir.path().join("report");
    let ran = lab_run(&bundle, &out, &["--scenarios", "install,tampered", "--json"]);
    assert_eq!(ran.status.code(), Some(1), "{}", stderr(&ran));
    let envelope: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(envelope["command"], "lab run");
    assert_eq!(envelope["exit_code"], 1);
    assert!(envelope["error"]["message"].as_str().unwrap().contains("1 of 2 case(s) failed"), "{envelope:#}");
    let doc = report(&out);
    let install = case(&doc, "install");
    assert_eq!(install["status"], "failed");
    let why = install["message"].as_str().unwrap();
    assert!(why.contains("start service") && why.contains("exit 6"), "the failure says which step and how: {why}");
    let node = &install["nodes"][0];
    assert!(node["log_tail"].as_str().unwrap().contains("the disk is on fire"), "{node:#}");
    // The machine's logs are in the report: the run's output and its support tarball.
    let files: Vec<&str> = node["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(files.iter().any(|f| f.ends_with("support.tar.gz")), "{files:?}");
    let errs: String =
        files.iter().filter(|f| f.ends_with(".out") || f.ends_with(".err")).map(|f| fs::read_to_string(out.join(f)).unwrap()).collect();
    assert!(errs.contains("the disk is on fire"), "the kept run output lacks the product's words");
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("the disk is on fire") && html.contains("support.tar.gz"), "the page shows why and links the logs");
    assert_eq!(case(&doc, "tampered")["status"], "passed");
    if let Some(counts) = junit_counts(&out.join("junit.xml"), test) {
        assert_eq!(counts, (2, 1, 0));
    }
    let junit = fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure message=\"") && junit.contains("the disk is on fire"), "{junit}");
    if let Some((green, red)) = screenshot(&out, test) {
        assert!(red > 100 && green > 100, "the screenshot shows one failed and one passed case ({red} red, {green} green)");
    }
}

#[test]
fn ctrl_c_stops_the_lab_and_every_machine_it_started() {
    let test = "ctrl_c_stops_the_lab_and_every_machine_it_started";
    if !netns_ready(test) {
        return;
    }
    let dir = scratch();
    let out = dir.path().join("report");
    let mut lab = airbin()
        .args(["lab", "run"])
        .arg(minimal())
        .arg("-o")
        .arg(&out)
        .args(["--scenarios", "install,rerun,uninstall"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut said = String::new();
    let mut lines = BufReader::new(lab.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.contains("rerun: starting") {
            break;
        }
    }
    // In the middle of the rerun case: its machines are up, its install running.
    std::thread::sleep(Duration::from_secs(4));
    send(lab.id(), nix::sys::signal::Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = lab.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the lab did not stop within 120 s of Ctrl-C");
        std::thread::sleep(Duration::from_millis(200));
    };
    let rest: Vec<String> = lines.map_while(std::result::Result::ok).collect();
    said.push_str(&rest.join("\n"));
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(said.contains("interrupted: every machine the lab started is gone"), "{said}");
    let doc = report(&out);
    assert_eq!(case(&doc, "install")["status"], "passed", "{doc:#}");
    // Every machine any case had is gone: its namespace and its processes.
    let namespaces = String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    for c in doc["cases"].as_array().unwrap() {
        for node in c["nodes"].as_array().unwrap() {
            let address = node["address"].as_str().unwrap();
            let cluster = address.split('.').nth(2).unwrap();
            assert!(!namespaces.contains(&format!("airbin-qa{cluster}-")), "{address} is still there: {namespaces}");
            assert!(!Path::new(&format!("/tmp/airbin-qa-{cluster}")).exists(), "cluster {cluster}'s files are left");
        }
    }
}

#[test]
fn the_ssh_backend_resets_inventory_machines_and_touches_no_other() {
    let test = "the_ssh_backend_resets_inventory_machines_and_touches_no_other";
    if !netns_ready(test) {
        return;
    }
    // The site's machines: two netns nodes; the inventory lists only node1.
    let qa = |args: &[&str]| {
        Command::new("bash")
            .arg(repo_root().join("hack/qa-nodes.sh"))
            .args(["-c", "38"])
            .args(args)
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap()
    };
    let _ = qa(&["down"]);
    let up = qa(&["up", "2"]);
    assert!(up.status.success(), "{}", stderr(&up));
    struct Down<F: Fn(&[&str]) -> Output>(F);
    impl<F: Fn(&[&str]) -> Output> Drop for Down<F> {
        fn drop(&mut self) {
            (self.0)(&["down"]);
        }
    }
    let qa = Down(qa);
    // Left-overs of someone's work on node1, which its reset must wipe.
    let dirty = qa.0(&["ssh", "1", "mkdir -p /srv/left-over && touch /srv/left-over/file"]);
    assert!(dirty.status.success(), "{}", stderr(&dirty));
    let dir = scratch();
    let inventory = dir.path().join("inventory.yaml");
    fs::write(
        &inventory,
        format!(
            "identity: /tmp/airbin-qa-38/id_ed25519\nmachines:\n  - {{name: node1, address: 10.201.38.11}}\nreset: bash {} -c 38 reset {{name}}\n",
            repo_root().join("hack/qa-nodes.sh").display()
        ),
    )
    .unwrap();
    let out = dir.path().join("report");
    let ran = lab_run(
        minimal(),
        &out,
        &["--backend", "ssh", "--inventory", inventory.to_str().unwrap(), "--scenarios", "install,rerun,power-cut,uninstall"],
    );
    assert!(ran.status.success(), "{}\n{}", stderr(&ran), stdout(&ran));
    let doc = report(&out);
    assert_eq!((doc["passed"].as_u64(), doc["skipped"].as_u64()), (Some(3), Some(1)), "{doc:#}");
    assert!(case(&doc, "power-cut")["message"].as_str().unwrap().contains("power_cut"), "{doc:#}");
    assert_eq!(case(&doc, "install")["nodes"][0]["address"], "10.201.38.11");
    // The reset ran: what was left on node1 is gone; node2, not listed, was never touched.
    let gone = qa.0(&["ssh", "1", "test ! -e /srv/left-over"]);
    assert!(gone.status.success(), "node1 was not reset");
    let untouched = qa.0(&["ssh", "2", "test ! -e /var/tmp/airbin-lab && test -z \"$(ls /var/lib/airbin)\""]);
    assert!(untouched.status.success(), "the lab touched node2, which the inventory does not list");
}

/// The qemu backend's base image, built once per target directory (`airbin lab image`:
/// mmdebstrap from the host's apt sources, about 2 minutes).
fn lab_image(test: &str) -> Option<PathBuf> {
    for tool in ["qemu-system-x86_64", "qemu-img", "mmdebstrap", "mkfs.ext4"] {
        if !require(tool, test) {
            return None;
        }
    }
    if !skip::root(test) {
        return None;
    }
    let image = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-image");
    let lock = fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-image.lock")).unwrap();
    lock.lock().unwrap();
    if !image.join("image.json").is_file() {
        let built = airbin().args(["lab", "image", "-o"]).arg(&image).output().unwrap();
        assert!(built.status.success(), "airbin lab image: {}", stderr(&built));
    }
    Some(image)
}

#[test]
fn qemu_vms_survive_power_cuts_at_three_points_and_resume() {
    let test = "qemu_vms_survive_power_cuts_at_three_points_and_resume";
    let Some(image) = lab_image(test) else { return };
    let dir = scratch();
    let out = dir.path().join("report");
    let ran = lab_run(
        minimal(),
        &out,
        &[
            "--backend",
            "qemu",
            "--image",
            image.to_str().unwrap(),
            "--scenarios",
            "install,power-cut,rerun",
            "--points",
            "3",
            "--jobs",
            "2",
        ],
    );
    assert!(ran.status.success(), "{}\n{}", stderr(&ran), stdout(&ran));
    // Where KVM hangs (nested), the lab says it fell back to TCG and what that costs.
    let said = stderr(&ran);
    assert!(said.contains("KVM") || said.contains("TCG"), "the lab names its accelerator: {said}");
    let doc = report(&out);
    assert_eq!((doc["passed"].as_u64(), doc["failed"].as_u64()), (Some(5), Some(0)), "{doc:#}");
    for point in ["power-cut-1", "power-cut-2", "power-cut-3"] {
        let cut = case(&doc, point);
        assert!(cut["message"].as_str().unwrap().starts_with("power cut after record"), "{cut:#}");
        // The VM's serial console is kept, and shows both boots.
        let console = cut["nodes"][0]["files"].as_array().unwrap().iter().find(|f| f.as_str().unwrap().contains("console")).unwrap();
        let text = fs::read_to_string(out.join(console.as_str().unwrap())).unwrap();
        assert!(text.matches("airbin-lab: node1 is up").count() >= 2, "one boot before the cut and one after: {text}");
    }
}

#[test]
fn usage_mistakes_exit_2_before_any_machine_starts() {
    let dir = scratch();
    let out = dir.path().join("report");
    let bundle = minimal().to_str().unwrap().to_string();
    let inventory = dir.path().join("empty.yaml");
    fs::write(&inventory, "identity: nokey\nmachines: []\nreset: 'true'\n").unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["lab", "run", "/nonexistent/x.bin"], "/nonexistent/x.bin"),
        (&["lab", "run", &bundle, "--backend", "docker"], "give netns, qemu or ssh"),
        (&["lab", "run", &bundle, "--scenarios", "install,reboot"], "reboot"),
        (&["lab", "run", &bundle, "--backend", "qemu"], "--image DIR"),
        (&["lab", "run", &bundle, "--backend", "qemu", "--image", "/nonexistent"], "/nonexistent"),
        (&["lab", "run", &bundle, "--backend", "ssh"], "--inventory FILE"),
        (&["lab", "run", &bundle, "--backend", "ssh", "--inventory", inventory.to_str().unwrap()], "empty.yaml"),
        (&["lab", "run", &bundle, "--previous", "/nonexistent"], "--previous /nonexistent"),
        (&["lab", "run", &bundle, "--jobs", "0"], "--jobs"),
        (&["lab", "run", &bundle, "--config", "/nonexistent/config.yaml"], "--config"),
    ];
    for (args, want) in cases {
        let out = airbin().args(*args).arg("-o").arg(&out).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let last = stderr(&out).lines().last().unwrap_or_default().to_string();
        assert!(last.contains(want), "{args:?}: want «{want}» in {last}");
    }
    // Nothing started: no report was written.
    assert!(!out.join("report.json").exists());
}
