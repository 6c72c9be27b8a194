//! One case of the matrix, run on its own fresh machines: the scenario's moves (copy,
//! install, kill, cut, boot, rerun, check), every run's report kept for the timeline,
//! and at the end each machine's state, `support` tarball and console collected into
//! the report, pass or fail.

mod basic;
mod interrupt;
mod refusals;
mod versions;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::backend::Machines;
use super::bundles::UnderTest;
use super::machine::{save, shell_quote, Machine, Ran};
use super::plan::{Case, Kind};
use super::report::{CaseReport, NodeReport, RunReport, Status, StepTime};
use super::Lab;

/// Where the lab puts bundles and configs on a machine.
pub(crate) const STAGE: &str = "/var/tmp/airbin-lab";
/// How long one run of a bundle may take on a machine.
const RUN_LIMIT: Duration = Duration::from_secs(1800);

/// A scenario's outcome: what it showed, or why it failed; a pair may fail on one node.
pub(crate) struct Outcome {
    pub(crate) message: String,
    /// Nodes (by index) that failed, each with why.
    pub(crate) node_failures: Vec<(usize, String)>,
}

impl Outcome {
    fn passed(message: impl Into<String>) -> Outcome {
        Outcome { message: message.into(), node_failures: Vec::new() }
    }
}

type Step = std::result::Result<Outcome, String>;

/// A case in progress: its machines and what it has seen so far.
pub(crate) struct Scene<'a> {
    pub(crate) lab: &'a Lab,
    pub(crate) case: &'a Case,
    slot: usize,
    machines: Box<dyn Machines + 'a>,
    nodes: usize,
    /// The report's directory for this case (`cases/ID`), and the path from the report.
    dir: PathBuf,
    rel: String,
    runs: Vec<RunReport>,
    /// (machine, file) already copied there.
    staged: Vec<(usize, String)>,
    /// The last run's output tail on each machine, for a failure's report.
    tails: Vec<String>,
    files: Vec<Vec<String>>,
}

/// Runs one case on fresh machines from `slot`; never fails: a failure is its report.
pub(crate) fn run(lab: &Lab, case: &Case, slot: usize) -> CaseReport {
    let started = Instant::now();
    let nodes = if case.kind == Kind::InstallPair { 2 } else { 1 };
    let rel = format!("cases/{}", case.id);
    let dir = lab.out.join(&rel);
    let _ = std::fs::create_dir_all(&dir);
    let work = lab.work.join(format!("slot-{slot}"));
    let _ = std::fs::create_dir_all(&work);
    let mut report = CaseReport::new(case);
    let up = Instant::now();
    let machines = match lab.backend.provision(slot, nodes, &work) {
        Ok(machines) => machines,
        Err(e) => {
            report.status = Status::Failed;
            report.message = format!("no machines: {}", e.message);
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        }
    };
    let mut scene = Scene {
        lab,
        case,
        slot,
        machines,
        nodes,
        dir,
        rel,
        runs: Vec::new(),
        staged: Vec::new(),
        tails: vec![String::new(); nodes],
        files: vec![Vec::new(); nodes],
    };
    scene.keep_time("machines up", up.elapsed().as_secs_f64());
    let outcome = match airbin_format::cancel::requested() {
        true => Err("interrupted (Ctrl-C)".to_string()),
        false => play(&mut scene),
    };
    scene.collect();
    finish(&mut report, outcome, &scene);
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// The case's report from its outcome: failed when it or one of its nodes failed.
fn finish(report: &mut CaseReport, outcome: Step, scene: &Scene) {
    let (failed, message, node_failures) = match outcome {
        Ok(o) => (!o.node_failures.is_empty(), o.message, o.node_failures),
        Err(why) => (true, why, Vec::new()),
    };
    report.status = if failed { Status::Failed } else { Status::Passed };
    report.message = message;
    report.nodes = scene.node_reports(&node_failures, failed);
    report.runs = scene.runs().to_vec();
}

fn play(scene: &mut Scene) -> Step {
    match scene.case.kind {
        Kind::Install => basic::install(scene),
        Kind::InstallPair => basic::install_pair(scene),
        Kind::Rerun => basic::rerun(scene),
        Kind::Uninstall => basic::uninstall(scene),
        Kind::Kill => interrupt::interrupted(scene, false),
        Kind::PowerCut => interrupt::interrupted(scene, true),
        Kind::Upgrade => versions::upgrade(scene),
        Kind::Downgrade => versions::downgrade(scene),
        Kind::Tampered => refusals::tampered(scene),
        Kind::SmallDisk => refusals::small_disk(scene),
    }
}

impl<'a> Scene<'a> {
    pub(crate) fn machine(&self, i: usize) -> &Machine {
        &self.machines.machines()[i]
    }

    /// Fresh machines in place of these (after a reference run).
    pub(crate) fn fresh(&mut self) -> std::result::Result<(), String> {
        self.collect();
        let work = self.lab.work.join(format!("slot-{}", self.slot));
        // The old ones go first: the slot is theirs.
        self.machines = Box::new(NoMachines);
        let up = Instant::now();
        self.machines =
            self.lab.backend.provision(self.slot, self.nodes, &work).map_err(|e| format!("no fresh machines: {}", e.message))?;
        self.keep_time("fresh machines up", up.elapsed().as_secs_f64());
        self.staged.clear();
        Ok(())
    }

    pub(crate) fn power_cut(&mut self, i: usize) -> std::result::Result<(), String> {
        self.machines.power_cut(i).map_err(|e| e.message)
    }

    pub(crate) fn boot(&mut self, i: usize) -> std::result::Result<(), String> {
        let up = Instant::now();
        self.machines.boot(i).map_err(|e| e.message)?;
        self.keep_time("boot after the cut", up.elapsed().as_secs_f64());
        Ok(())
    }

    /// A stretch of the scenario that is not a run of the bundle (machines made or
    /// booted), on the timeline with its time.
    fn keep_time(&mut self, label: &str, seconds: f64) {
        let node = self.machines.machines().iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
        self.runs.push(RunReport { label: label.to_string(), node, seconds, exit_code: None, steps: Vec::new() });
    }

    /// Copies `bundle` to machine `i` (once), and the config for the scenario's nodes.
    pub(crate) fn stage(&mut self, i: usize, bundle: &UnderTest) -> std::result::Result<String, String> {
        self.stage_file(i, &bundle.path, &bundle.file)
    }

    pub(crate) fn stage_file(&mut self, i: usize, file: &Path, as_name: &str) -> std::result::Result<String, String> {
        let remote = format!("{STAGE}/{as_name}");
        let key = (i, format!("{}>{as_name}", file.display()));
        if !self.staged.iter().any(|s| *s == (key.0, key.1.clone())) {
            self.machine(i).put(file, &remote).map_err(|e| e.message)?;
            self.staged.retain(|(m, name)| !(*m == i && name.ends_with(&format!(">{as_name}"))));
            self.staged.push(key);
        }
        if let Some(config) = self.lab.config_for(&self.machines.machines()[..self.nodes]) {
            self.machine(i).write(&config, &format!("{STAGE}/config"), &self.lab.work).map_err(|e| e.message)?;
        }
        Ok(remote)
    }

    /// `sh BUNDLE COMMAND --json ...` on machine `i`, its report kept for the timeline.
    pub(crate) fn bundle_run(&mut self, i: usize, file: &str, command: &str, label: &str) -> std::result::Result<Ran, String> {
        // `status` takes a config only to find the nodes (`--all-nodes`).
        let wants_config = command.starts_with("install") || command.starts_with("uninstall") || command.contains("--all-nodes");
        let config = if self.lab.template.is_some() && wants_config { " --config ./config" } else { "" };
        let bundle = shell_quote(&format!("./{file}"));
        let script = format!("cd {STAGE} && sh {bundle} {command} --json{config}");
        self.run_labelled(i, &script, label)
    }

    /// Runs `script` on machine `i` and keeps its output under `label`.
    pub(crate) fn run_labelled(&mut self, i: usize, script: &str, label: &str) -> std::result::Result<Ran, String> {
        let started = Instant::now();
        let ran = self.machine(i).run(script, RUN_LIMIT).map_err(|e| e.message)?;
        self.keep_run(i, label, &ran, started.elapsed().as_secs_f64());
        Ok(ran)
    }

    pub(crate) fn keep_run(&mut self, i: usize, label: &str, ran: &Ran, seconds: f64) {
        let node = self.machine(i).name.clone();
        let base = format!("{}-{}", self.runs.len() + 1, label.replace([' ', '/'], "-"));
        let node_dir = self.dir.join(&node);
        let _ = std::fs::create_dir_all(&node_dir);
        let _ = save(&node_dir.join(format!("{base}.out")), &ran.stdout);
        let _ = save(&node_dir.join(format!("{base}.err")), &ran.stderr);
        self.files[i].push(format!("{}/{node}/{base}.out", self.rel));
        self.files[i].push(format!("{}/{node}/{base}.err", self.rel));
        self.tails[i] = ran.tail();
        let doc = ran.json();
        let steps = doc["steps"].as_array().cloned().unwrap_or_default();
        let steps = steps
            .iter()
            .map(|s| StepTime {
                name: s["name"].as_str().unwrap_or_default().to_string(),
                state: s["state"].as_str().unwrap_or_default().to_string(),
                seconds: s["seconds"].as_f64().unwrap_or(0.0),
            })
            .collect();
        self.runs.push(RunReport { label: label.to_string(), node, seconds, exit_code: ran.code, steps });
    }

    /// `Err` naming `what` and the run's end unless it exited 0.
    pub(crate) fn expect_ok(&self, ran: &Ran, what: &str) -> std::result::Result<(), String> {
        match ran.ok() {
            // Every run the lab makes asks for --json: exit 0 with no document is no run
            // (an empty or cut bundle file runs as an empty script).
            true if ran.json().is_null() => Err(format!("{what} exited 0 but printed no JSON document: {}", last_line(ran))),
            true => Ok(()),
            false => Err(format!("{what} failed (exit {}): {}", code(ran), last_line(ran))),
        }
    }

    /// What `status --json` says on machine `i`: (complete, installed version).
    pub(crate) fn status(&mut self, i: usize, file: &str) -> std::result::Result<(bool, String), String> {
        let ran = self.bundle_run(i, file, "status", "status")?;
        let doc = ran.json();
        Ok((doc["complete"].as_bool().unwrap_or(false), doc["installed"]["version"].as_str().unwrap_or_default().to_string()))
    }

    /// The watched directories' files (with their digests; a link by its target, never
    /// through it: /etc/mtab is the mount table) and the engine's images: what "the
    /// machine as it was" is compared by.
    pub(crate) fn snapshot(&self, i: usize) -> std::result::Result<String, String> {
        let dirs = self.lab.watch.join(" ");
        let script = format!(
            "for d in {dirs}; do [ -d \"$d\" ] || continue; find \"$d\" -xdev -type d | sort; find \"$d\" -xdev \\( -type f -o -type l \\) -print | sort | while IFS= read -r f; do if [ -L \"$f\" ]; then echo \"link $f -> $(readlink \"$f\")\"; else sha256sum \"$f\"; fi; done; done; docker image ls -q --no-trunc 2>/dev/null | sort"
        );
        let ran = self.machine(i).run(&script, Duration::from_secs(300)).map_err(|e| e.message)?;
        match ran.ok() {
            true => Ok(ran.stdout),
            false => Err(format!("could not list {} on {}: {}", dirs, self.machine(i).name, ran.tail())),
        }
    }

    /// The journal's lines on machine `i` (none when there is no journal).
    pub(crate) fn journal(&self, i: usize) -> std::result::Result<Vec<String>, String> {
        let path = format!("{}/journal.jsonl", self.lab.bundle.state_dir());
        let ran = self.machine(i).run(&format!("[ ! -f {path} ] || cat {path}"), Duration::from_secs(60)).map_err(|e| e.message)?;
        Ok(ran.stdout.lines().map(str::to_string).collect())
    }

    /// Each machine's state directory, `support` tarball and console, into the report.
    fn collect(&mut self) {
        for i in 0..self.machines.machines().len().min(self.nodes) {
            let node = self.machine(i).name.clone();
            let dir = self.dir.join(&node);
            let _ = std::fs::create_dir_all(&dir);
            let machine = self.machine(i).clone();
            let mut kept = Vec::new();
            if machine.fetch("/var/lib/airbin", &dir.join("state.tgz")).unwrap_or(false) {
                kept.push("state.tgz".to_string());
            }
            // The bundle itself writes the tarball: staged where the case never put it (a
            // pair's secondary got its copy from the fan-out), and over an altered copy.
            let lab = self.lab;
            let staged = self.stage(i, &lab.bundle).is_ok();
            let bundle = shell_quote(&format!("./{}", lab.bundle.file));
            let support = format!("cd {STAGE} && sh {bundle} support -o {STAGE}/support.tar.gz >/dev/null 2>&1");
            if staged
                && machine.run(&support, Duration::from_secs(120)).is_ok_and(|r| r.ok())
                && machine.fetch(&format!("{STAGE}/support.tar.gz"), &dir.join("support.tar.gz")).unwrap_or(false)
            {
                kept.push("support.tar.gz".to_string());
            }
            kept.extend(self.machines.keep(i, &dir));
            for name in kept {
                let rel = format!("{}/{node}/{name}", self.rel);
                if !self.files[i].contains(&rel) {
                    self.files[i].push(rel);
                }
            }
        }
    }

    pub(crate) fn node_reports(&self, failures: &[(usize, String)], failed: bool) -> Vec<NodeReport> {
        (0..self.nodes)
            .map(|i| {
                let (name, address) = self
                    .machines
                    .machines()
                    .get(i)
                    .map_or_else(|| (format!("node{}", i + 1), String::new()), |m| (m.name.clone(), m.address.clone()));
                let own = failures.iter().find(|(n, _)| *n == i).map(|(_, why)| why.clone());
                let status = if own.is_some() || (failed && failures.is_empty()) { Status::Failed } else { Status::Passed };
                NodeReport {
                    node: name,
                    address,
                    status,
                    message: own.unwrap_or_default(),
                    log_tail: self.tails[i].clone(),
                    files: self.files[i].clone(),
                }
            })
            .collect()
    }

    pub(crate) fn runs(&self) -> &[RunReport] {
        &self.runs
    }
}

/// What stands in for machines between throwing old ones away and getting new ones.
struct NoMachines;

impl Machines for NoMachines {
    fn machines(&self) -> &[Machine] {
        &[]
    }
    fn power_cut(&mut self, _: usize) -> airbin_format::error::Result<()> {
        Ok(())
    }
    fn boot(&mut self, _: usize) -> airbin_format::error::Result<()> {
        Ok(())
    }
    fn keep(&self, _: usize, _: &Path) -> Vec<String> {
        Vec::new()
    }
}

pub(crate) fn code(ran: &Ran) -> String {
    ran.code.map_or_else(|| "none: killed or disconnected".into(), |c| c.to_string())
}

/// The run's error line (its JSON error, else its last stderr line).
pub(crate) fn last_line(ran: &Ran) -> String {
    let doc = ran.json();
    if let Some(message) = doc["error"]["message"].as_str() {
        return message.lines().next().unwrap_or_default().to_string();
    }
    ran.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").to_string()
}
