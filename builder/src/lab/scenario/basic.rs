//! The plain scenarios: a fresh install (alone and as a pair), a rerun that does
//! nothing, and an uninstall that leaves the machine as it was.

use super::{Outcome, Scene, Step};

/// A fresh install completes and its record says so; it is also the lab's reference
/// for where the kill and power-cut points fall.
pub(crate) fn install(s: &mut Scene) -> Step {
    let lab = s.lab;
    let bundle = &lab.bundle;
    s.stage(0, bundle)?;
    let started = std::time::Instant::now();
    let ran = s.bundle_run(0, &bundle.file, "install --yes", "install")?;
    s.expect_ok(&ran, "the install")?;
    let seconds = started.elapsed().as_secs_f64();
    let (complete, version) = s.status(0, &bundle.file)?;
    if !complete || version != bundle.version {
        return Err(format!("after the install, status says complete={complete}, version '{version}' (want {})", bundle.version));
    }
    let records = s.journal(0)?.len();
    lab.keep_reference(records, seconds);
    let steps = ran.json()["steps"].as_array().map_or(0, Vec::len);
    Ok(Outcome::passed(format!("installed {} in {seconds:.1} s: {steps} step(s), {records} journal record(s)", bundle.version)))
}

/// `install --all-nodes` from the first node: both nodes complete, each by its role.
pub(crate) fn install_pair(s: &mut Scene) -> Step {
    let lab = s.lab;
    let bundle = &lab.bundle;
    s.stage(0, bundle)?;
    let ran = s.bundle_run(0, &bundle.file, "install --yes --all-nodes", "install --all-nodes")?;
    s.expect_ok(&ran, "install --all-nodes")?;
    let status = s.bundle_run(0, &bundle.file, "status --all-nodes", "status --all-nodes")?;
    let doc = status.json();
    let nodes = doc["nodes"].as_array().cloned().unwrap_or_default();
    let mut failures = Vec::new();
    for i in 0..2 {
        let node = nodes.get(i).cloned().unwrap_or_default();
        let complete = node["report"]["complete"].as_bool().unwrap_or(false);
        let outcome = node["report"]["last_run"]["outcome"].as_str().unwrap_or("none").to_string();
        if !complete || outcome != "ok" {
            failures.push((i, format!("status on this node: complete={complete}, last run {outcome}")));
        }
    }
    let roles: Vec<String> = nodes.iter().map(|n| n["role"].as_str().unwrap_or("?").to_string()).collect();
    Ok(Outcome { message: format!("installed on both nodes ({})", roles.join(", ")), node_failures: failures })
}

/// A second run finds every step done and runs none.
pub(crate) fn rerun(s: &mut Scene) -> Step {
    let lab = s.lab;
    let bundle = &lab.bundle;
    s.stage(0, bundle)?;
    let first = s.bundle_run(0, &bundle.file, "install --yes", "install")?;
    s.expect_ok(&first, "the first install")?;
    let again = s.bundle_run(0, &bundle.file, "install --yes", "rerun")?;
    s.expect_ok(&again, "the rerun")?;
    let doc = again.json();
    let ran: Vec<String> = doc["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|step| step["state"] != "already-done")
        .map(|step| format!("{} ({})", step["name"].as_str().unwrap_or("?"), step["state"].as_str().unwrap_or("?")))
        .collect();
    if !ran.is_empty() {
        return Err(format!("the rerun did not find every step done: {}", ran.join(", ")));
    }
    let steps = doc["steps"].as_array().map_or(0, Vec::len);
    Ok(Outcome::passed(format!("the rerun ran none of the {steps} step(s) again (nothing_to_do: {})", doc["nothing_to_do"])))
}

/// Install, then uninstall: the watched directories and the engine's images are as
/// they were, and the product's state directory is gone.
pub(crate) fn uninstall(s: &mut Scene) -> Step {
    let lab = s.lab;
    let bundle = &lab.bundle;
    let before = s.snapshot(0)?;
    s.stage(0, bundle)?;
    let installed = s.bundle_run(0, &bundle.file, "install --yes", "install")?;
    s.expect_ok(&installed, "the install")?;
    let removed = s.bundle_run(0, &bundle.file, "uninstall --yes", "uninstall")?;
    s.expect_ok(&removed, "the uninstall")?;
    let after = s.snapshot(0)?;
    let left = differences(&before, &after);
    if !left.is_empty() {
        return Err(format!("the machine is not as it was after uninstall: {}", left.join("; ")));
    }
    let state = bundle.state_dir();
    let gone = s.machine(0).run(&format!("[ ! -e {state} ]"), std::time::Duration::from_secs(30)).map_err(|e| e.message)?;
    if !gone.ok() {
        return Err(format!("{state} is still there after uninstall"));
    }
    Ok(Outcome::passed(format!("uninstall left {} and the engine's images as they were", s.lab.watch.join(", "))))
}

/// What differs between two snapshots, each line marked (at most 12).
pub(crate) fn differences(before: &str, after: &str) -> Vec<String> {
    let (b, a): (std::collections::BTreeSet<&str>, std::collections::BTreeSet<&str>) = (before.lines().collect(), after.lines().collect());
    let mut out: Vec<String> = a.difference(&b).map(|l| format!("new or changed: {l}")).collect();
    out.extend(b.difference(&a).map(|l| format!("gone or changed: {l}")));
    out.truncate(12);
    out
}
