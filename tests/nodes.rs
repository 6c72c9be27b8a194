//! Dual management nodes and fleets, on test nodes real enough to trust
//! (`hack/qa-nodes.sh`): each node a network namespace with its own address, its own
//! mount namespace (its own /var/lib/airbin, /var/lib/docker, /srv), its own Docker
//! Engine and Debian's sshd. Everything on a node is done over SSH, as a field engineer
//! or the fan-out does it; what a test puts on a node goes under its own /srv (the rest
//! of the file system, /root included, is the host's). Each test has its own cluster (`-c N`), so they run side by side.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const BIN: &str = "compass-component-v2.7.3-amd64.bin";

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{text}"))
}

#[test]
fn a_dual_pair_run_separately_on_each_node_does_each_nodes_part() {
    let Some(c) = Cluster::up(31, 2, "a_dual_pair_run_separately") else { return };
    let config = c.compass_config(&[1, 2], &[]);
    for k in [1, 2] {
        c.put(k, compass(), &format!("/srv/dist/{BIN}"));
        c.put_text(k, &config, "/srv/dist/config");
    }
    // plan says which node this is and why, and which steps the role runs.
    let plan = c.ssh_ok(2, &format!("sh /srv/dist/{BIN} plan"));
    assert!(plan.contains(&format!("role: secondary, this host's address {} is entry 2", c.addr(2))), "{plan}");
    assert!(plan.contains("[not on a secondary node: runs on single, primary]") && plan.contains("restore registry pack"), "{plan}");
    let plan = json(&c.ssh_ok(1, &format!("sh /srv/dist/{BIN} plan --json")));
    assert_eq!(plan["plan"]["role"], "primary");
    assert_eq!(plan["plan"]["role_from"]["from"], "matched");

    // The secondary first: it waits for the primary's registry, which is not up yet.
    let secondary = c.spawn(2, &format!("CADM_INSTALL_MARK=/srv/joined sh /srv/dist/{BIN} --yes --json"));
    std::thread::sleep(Duration::from_secs(2));
    let status = json(&c.ssh_ok(2, &format!("sh /srv/dist/{BIN} status --json")));
    assert_eq!(status["last_run"]["outcome"], "running", "{status}");
    assert_eq!(status["steps"][0]["state"], "running", "the secondary waits for the registry: {status}");

    c.registry(1);
    let primary = c.ssh(1, &format!("CADM_INSTALL_MARK=/srv/installed sh /srv/dist/{BIN} --yes --json"));
    assert!(primary.status.success(), "primary: {}", stderr(&primary));
    let primary = json(&stdout(&primary));
    assert_eq!(primary["role"], "primary");
    let names: Vec<String> = states(&primary).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["wait for the registry", "load release images", "restore registry pack", "install cadm", "cadm check-config", "cadm install"]
    );
    assert!(states(&primary).iter().all(|(_, s)| s == "done"));

    let secondary = secondary.wait_with_output().unwrap();
    assert!(secondary.status.success(), "secondary: {}", stderr(&secondary));
    let secondary = json(&stdout(&secondary));
    assert_eq!(secondary["role"], "secondary");
    let names: Vec<String> = states(&secondary).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["wait for the registry", "load release images", "install cadm", "cadm check-config", "cadm join"]);

    // What each node's part left: the pack and cadm install on the primary only; the
    // release images on both; the secondary pulls from the primary's registry.
    assert!(c.ssh_ok(1, "cat /srv/installed").contains("compass 2.7.3 cluster=qa-31"));
    assert!(c.ssh_ok(2, "cat /srv/joined").contains("role=secondary"));
    assert!(!c.ssh(2, "test -e /srv/registry/docker").status.success(), "the secondary restored no pack");
    for k in [1, 2] {
        let images = c.ssh_ok(k, "docker images --format '{{.Repository}}:{{.Tag}}'");
        assert!(images.contains("compass/api:2.7.3") && images.contains("compass/worker:2.7.3"), "node{k}: {images}");
    }
    c.ssh_ok(2, &format!("docker pull -q {}:5000/compass/agent:2.7.3", c.addr(1)));

    // A node whose address the config does not list stops before anything lands.
    let other = c.compass_config(&[1], &[]).replace(&format!("[{}]", c.addr(1)), "[10.201.31.99, 10.201.31.98]");
    c.put_text(2, &other, "/srv/other/config");
    c.ssh_ok(2, &format!("cp /srv/dist/{BIN} /srv/other/ && cp -a /var/lib/airbin /srv/state-before"));
    let out = c.ssh(2, &format!("sh /srv/other/{BIN} --yes"));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("this host is not among the nodes the config lists: its addresses are 10.201.31.12, 127.0.0.1"), "{err}");
    assert!(err.contains("management_nodes lists 10.201.31.99, 10.201.31.98") && err.contains("give --role"), "{err}");
    c.ssh_ok(2, "diff -r /srv/state-before /var/lib/airbin");
}

/// A bundle whose middle step blocks until /srv/go exists, for the kill test, and whose
/// last step fails on the primary while /srv/fail exists.
fn blocking_bundle(dir: &Path) -> PathBuf {
    let spec = dir.join("spec");
    std::fs::create_dir_all(&spec).unwrap();
    std::fs::write(spec.join("notes.txt"), "notes\n").unwrap();
    std::fs::write(
        spec.join("bundle.yaml"),
        "name: blocker\nversion: '1.0'\nmembers:\n  - {name: notes.txt, kind: file, path: notes.txt}\n\
         config:\n  management_nodes_key: nodes\n\
         steps:\n  - {name: one, kind: command, run: [sh, -c, 'echo one >> /srv/ran']}\n\
         \x20 - {name: block, kind: command, run: [sh, -c, 'touch /srv/blocking; while [ ! -f /srv/go ]; do sleep 0.1; done; echo block >> /srv/ran']}\n\
         \x20 - {name: three, kind: command, run: [sh, -c, 'echo three >> /srv/ran']}\n\
         \x20 - {name: gate, kind: command, run: [sh, -c, 'test ! -f /srv/fail'], roles: [primary]}\n",
    )
    .unwrap();
    build(&spec, &dir.join("dist"))
}

#[test]
fn one_command_on_the_secondary_installs_the_pair_and_resumes_after_a_kill() {
    let Some(c) = Cluster::up(32, 2, "one_command_on_the_secondary") else { return };
    c.put(2, compass(), &format!("/srv/dist/{BIN}"));

    // The other node unreachable at preflight: nothing lands anywhere.
    let unreachable = c.compass_config(&[1, 2], &[]).replace(&format!("[{}, ", c.addr(1)), "[10.201.32.19, ");
    c.put_text(2, &unreachable, "/srv/dist/config");
    let out = c.ssh(2, &format!("sh /srv/dist/{BIN} install --all-nodes"));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("1 of 2 nodes cannot be reached") && err.contains("10.201.32.19 is unreachable over SSH"), "{err}");
    assert!(err.contains("nothing was copied or installed anywhere") && err.contains("authorized_keys"), "{err}");
    for k in [1, 2] {
        assert_eq!(c.ssh_ok(k, "find /var/lib/airbin /var/tmp -mindepth 1").trim(), "", "node{k} has nothing new");
    }

    // The real pair, from the secondary: copy, preflight, both parts, one summary.
    c.put_text(2, &c.compass_config(&[1, 2], &[]), "/srv/dist/config");
    c.registry(1);
    let out = c.ssh(2, &format!("sh /srv/dist/{BIN} install --all-nodes"));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("[primary {}] ", c.addr(1))) && err.contains(&format!("[secondary {}] ", c.addr(2))), "{err}");
    assert!(
        err.contains("copying the bundle to /var/tmp/airbin/compass-component/") && err.contains("preflight passed on all 2 node(s)"),
        "{err}"
    );
    let summary = stdout(&out);
    assert!(summary.contains("install finished on every node"), "{summary}");
    let line = |label: String| summary.lines().find(|l| l.trim_start().starts_with(&label)).unwrap_or("").to_string();
    assert!(
        line(format!("primary {} ", c.addr(1))).contains(" ok ") && line(format!("primary {} ", c.addr(1))).contains("6 step(s) done"),
        "{summary}"
    );
    assert!(line(format!("secondary {} ", c.addr(2))).contains("5 step(s) done"), "{summary}");
    c.ssh_ok(2, &format!("docker pull -q {}:5000/compass/agent:2.7.3", c.addr(1)));

    // Again: the identical copy is not sent, and nothing is redone on either node.
    let out = c.ssh(2, &format!("sh /srv/dist/{BIN} install --all-nodes --json"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("an identical copy of the bundle is there already: not sent again"), "{}", stderr(&out));
    let doc = json(&stdout(&out));
    assert_eq!(doc["status"], "ok");
    for node in doc["nodes"].as_array().unwrap() {
        assert_eq!(node["report"]["nothing_to_do"], true, "{node}");
    }

    // Every node's journal and logs, from either node.
    let status = json(&c.ssh_ok(1, &format!("sh /var/tmp/airbin/compass-component/{BIN} status --all-nodes --json")));
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for node in nodes {
        assert_eq!(node["report"]["last_run"]["outcome"], "ok", "{node}");
    }
    assert_eq!(nodes[1]["role"], "secondary");
    let out =
        c.ssh_ok(2, &format!("cd /srv && sh /srv/dist/{BIN} support --all-nodes -o /srv/all.tar.gz >/dev/null && tar tzf /srv/all.tar.gz"));
    assert!(
        out.contains(&format!("primary-{}/support.tar.gz", c.addr(1))) && out.contains(&format!("secondary-{}/support.tar.gz", c.addr(2))),
        "{out}"
    );
    assert!(out.contains("nodes.json"), "{out}");

    // Killed mid-step on both nodes: the rerun resumes on both from their own journals.
    let dir = scratch();
    let blocker = blocking_bundle(dir.path());
    c.put(2, &blocker, "/srv/b/blocker-1.0-amd64.bin");
    c.put_text(2, &format!("nodes: [{}, {}]\n", c.addr(1), c.addr(2)), "/srv/b/config");
    let mut run = c.spawn(2, "sh /srv/b/blocker-1.0-amd64.bin install --all-nodes");
    let started = Instant::now();
    while !(c.ssh(1, "test -f /srv/blocking").status.success() && c.ssh(2, "test -f /srv/blocking").status.success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "the block step never started on both nodes");
        std::thread::sleep(Duration::from_millis(200));
    }
    for k in [1, 2] {
        c.ssh_ok(k, "kill -9 $(sed -n 's/^pid \\([0-9]*\\).*/\\1/p' /var/lib/airbin/blocker/lock)");
    }
    let _ = run.kill();
    let _ = run.wait();
    let status = json(&c.ssh_ok(2, "sh /srv/b/blocker-1.0-amd64.bin status --all-nodes --json"));
    for node in status["nodes"].as_array().unwrap() {
        assert_eq!(node["report"]["last_run"]["outcome"], "killed", "{node}");
    }
    for k in [1, 2] {
        c.ssh_ok(k, "touch /srv/go");
    }
    let out = c.ssh(2, "sh /srv/b/blocker-1.0-amd64.bin install --all-nodes --json");
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&stdout(&out));
    let pair: Vec<(String, String)> =
        [("one", "already-done"), ("block", "done"), ("three", "done")].map(|(a, b)| (a.into(), b.into())).to_vec();
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(states(&nodes[0]["report"])[..3], pair[..], "primary: {}", nodes[0]);
    assert_eq!(states(&nodes[1]["report"]), pair, "secondary: {}", nodes[1]);
    for k in [1, 2] {
        assert_eq!(c.ssh_ok(k, "cat /srv/ran"), "one\nblock\nthree\n", "node{k} ran each step once");
    }

    // Ctrl-C on the command stops every node's run, the other node's included.
    for k in [1, 2] {
        c.ssh_ok(k, "rm -f /srv/go /srv/blocking");
    }
    let run = c.spawn(2, "sh /srv/b/blocker-1.0-amd64.bin install --all-nodes --force");
    let started = Instant::now();
    while !(c.ssh(1, "test -f /srv/blocking").status.success() && c.ssh(2, "test -f /srv/blocking").status.success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "the block step never started on both nodes");
        std::thread::sleep(Duration::from_millis(200));
    }
    c.ssh_ok(2, "pkill -INT -f -- '--bundle /srv/b/blocker-1.0-amd64.bin --launcher-tmp [^ ]* install --all-nodes'");
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let status = json(&c.ssh_ok(2, "sh /srv/b/blocker-1.0-amd64.bin status --all-nodes --json"));
    for node in status["nodes"].as_array().unwrap() {
        assert_eq!(node["report"]["last_run"]["outcome"], "interrupted", "{node}");
    }

    // The primary fails, one node at a time: the secondary, which depends on it, is not
    // started; once fixed, a rerun resumes both.
    for k in [1, 2] {
        c.ssh_ok(k, "touch /srv/go");
    }
    c.ssh_ok(1, "touch /srv/fail");
    let out = c.ssh(2, "sh /srv/b/blocker-1.0-amd64.bin install --all-nodes --parallel 1 --json");
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let doc = json(&stdout(&out));
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!((&nodes[0]["status"], &nodes[1]["status"]), (&"failed".into(), &"not-run".into()), "{doc}");
    assert!(nodes[0]["summary"].as_str().unwrap().contains("FAILED at step 'gate'"), "{doc}");
    assert!(nodes[1]["summary"].as_str().unwrap().contains("the node it depends on (the primary) failed"), "{doc}");
    c.ssh_ok(1, "rm /srv/fail");
    let out = c.ssh(2, "sh /srv/b/blocker-1.0-amd64.bin install --all-nodes --parallel 1 --json");
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&stdout(&out));
    let nodes = doc["nodes"].as_array().unwrap();
    let primary: Vec<String> = states(&nodes[0]["report"]).into_iter().map(|(_, s)| s).collect();
    assert_eq!(primary, ["already-done", "already-done", "already-done", "done"], "{doc}");
    let secondary: Vec<String> = states(&nodes[1]["report"]).into_iter().map(|(_, s)| s).collect();
    assert_eq!(secondary, ["already-done", "done", "done"], "{doc}");
}

#[test]
fn a_fleet_of_three_workers_installs_two_at_a_time() {
    let Some(c) = Cluster::up(33, 4, "a_fleet_of_three_workers") else { return };
    c.put(1, compass(), &format!("/srv/dist/{BIN}"));
    c.registry(1);

    // Every problem at once, before anything is copied: a worker with no room for the
    // bundle, and a worker that does not answer.
    let out = c.qa(&["exec", "3", "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", "/var/tmp"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let extra = c.compass_config(&[1], &[2, 3, 4]).replace("worker_nodes: [", "worker_nodes: [10.201.33.19, ");
    c.put_text(1, &extra, "/srv/dist/config");
    let out = c.ssh(1, &format!("sh /srv/dist/{BIN} install --all-nodes"));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("2 of 5 nodes cannot be reached or have no room"), "{err}");
    assert!(err.contains("10.201.33.19 is unreachable over SSH"), "{err}");
    assert!(err.contains("10.201.33.13: only") && err.contains("free for the bundle in /var/tmp/airbin/compass-component"), "{err}");
    assert!(c.qa(&["exec", "3", "umount", "/var/tmp"]).status.success());
    for k in 2..=4 {
        assert_eq!(c.ssh_ok(k, "find /var/lib/airbin /var/tmp -mindepth 1").trim(), "", "node{k} has nothing new");
    }

    // A node whose engine is down fails preflight: nothing is installed on any node.
    c.put_text(1, &c.compass_config(&[1], &[2, 3, 4]), "/srv/dist/config");
    assert!(c.qa(&["engine", "1", "stop"]).status.success());
    let out = c.ssh(1, &format!("sh /srv/dist/{BIN} install --all-nodes"));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("preflight failed on 1 of 4 nodes; nothing was installed anywhere") && err.contains("[single 10.201.33.11]"),
        "{err}"
    );
    for k in 1..=4 {
        assert_eq!(c.ssh_ok(k, "find /var/lib/airbin -mindepth 1").trim(), "", "node{k} installed nothing");
    }
    assert!(c.qa(&["engine", "1", "start"]).status.success());

    let out = c.ssh(1, &format!("sh /srv/dist/{BIN} install --all-nodes --parallel 2 --json"));
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&stdout(&out));
    let nodes = doc["nodes"].as_array().unwrap();
    let roles: Vec<&str> = nodes.iter().map(|n| n["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["single", "worker", "worker", "worker"]);
    for node in &nodes[1..] {
        let names: Vec<String> = states(&node["report"]).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["wait for the registry", "install cadm", "cadm check-config", "cadm join", "pull the agent image"], "{node}");
    }
    for k in 2..=4 {
        let images = c.ssh_ok(k, "docker images --format '{{.Repository}}:{{.Tag}}'");
        assert!(
            images.contains(&format!("{}:5000/compass/agent:2.7.3", c.addr(1))) && !images.contains("compass/api"),
            "node{k}: {images}"
        );
    }
}

#[test]
fn roles_and_the_fan_out_refuse_what_cannot_work_before_anything_lands() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let config = dir.path().join("config");
    let usage = |bundle: &Path, args: &[&str], expected: &str| {
        let out = run(Shell::Dash, bundle, args, &tmp);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    };
    usage(compass(), &["plan", "--role", "boss"], "'boss' is not a role: single, primary, secondary or worker");
    usage(compass(), &["install", "--all-nodes", "--role", "primary"], "leave out --role");
    usage(minimal(), &["install", "--all-nodes"], "this bundle names no node list");
    std::fs::write(&config, "cluster_name: x\nregistry_address: 192.0.2.1:5000\nregistry_root: /srv/r\ntools_dir: /srv/t\n").unwrap();
    let config = config.to_str().unwrap();
    usage(compass(), &["plan", "--config", config], "`management_nodes` lists no management node");
    usage(compass(), &["install", "--all-nodes", "--config", config], "`management_nodes` lists no management node");
    std::fs::write(
        dir.path().join("config"),
        "cluster_name: x\nmanagement_nodes: [192.0.2.1, '-oProxyCommand=touch /tmp/x']\nregistry_address: 192.0.2.1:5000\nregistry_root: /srv/r\ntools_dir: /srv/t\n",
    )
    .unwrap();
    usage(compass(), &["install", "--all-nodes", "--config", config], "is not [user@]address or [user@]host name");
    // Given, the role needs no list: this host is the secondary of a pair it is not listed in.
    let out = run(Shell::Dash, compass(), &["plan", "--role", "secondary", "--use-sample", "--json"], &tmp);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&plan["plan"]["role"], &plan["plan"]["role_from"]["from"]), (&"secondary".into(), &"flag".into()));
    // Not given, the sample's list (192.0.2.10) does not name this host: it stops, exit 7.
    let out = run(Shell::Dash, compass(), &["plan", "--use-sample"], &tmp);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("management_nodes lists 192.0.2.10"), "{}", stderr(&out));
}

#[test]
fn a_dropped_ssh_connection_is_followed_to_the_nodes_real_result() {
    let Some(c) = Cluster::up(36, 2, "a_dropped_ssh_connection") else { return };
    let dir = scratch();
    let blocker = blocking_bundle(dir.path());
    c.put(2, &blocker, "/srv/b/blocker-1.0-amd64.bin");
    c.put_text(2, &format!("nodes: [{}, {}]\n", c.addr(1), c.addr(2)), "/srv/b/config");
    let run = c.spawn(2, "sh /srv/b/blocker-1.0-amd64.bin install --all-nodes --json");
    let started = Instant::now();
    while !c.ssh(1, "test -f /srv/blocking").status.success() {
        assert!(started.elapsed() < Duration::from_secs(60), "the block step never started on the primary");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The coordinator's connection to the primary drops (its sshd session killed); the
    // primary's run goes on, and finishes once released.
    // Only node1's sessions: the nodes share this host's processes, not its network
    // namespaces.
    let script = format!(
        "n=0; for p in $(ip netns pids airbin-qa{}-n1); do case $(tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null) in 'sshd: root'*) kill $p && n=$((n+1));; esac; done; [ $n -gt 0 ]",
        c.id
    );
    let killed = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(killed.status.success(), "no SSH session to kill on node1: {}", stderr(&killed));
    std::thread::sleep(Duration::from_secs(1));
    for k in [1, 2] {
        assert!(c.qa(&["exec", &k.to_string(), "touch", "/srv/go"]).status.success());
    }
    let out = run.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}\n{}", stdout(&out));
    assert!(err.contains("the SSH connection dropped during its run") && err.contains("reconnecting"), "{err}");
    let doc = json(&stdout(&out));
    let primary = &doc["nodes"][0];
    assert_eq!(primary["status"], "ok", "{doc}");
    assert!(primary["summary"].as_str().unwrap().contains("reconnected and followed it: finished ok"), "{doc}");
    assert!(!primary["summary"].as_str().unwrap().contains("authorized_keys"), "{doc}");
    assert_eq!(c.ssh_ok(1, "cat /srv/ran"), "one\nblock\nthree\n", "the primary's run went on, each step once");
}
