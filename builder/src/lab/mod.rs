//! `airbin lab`: QA's matrix of scenarios for a bundle (install alone and as a pair,
//! rerun, kill -9 and power cuts at points over the journal, upgrades from earlier
//! releases, a refused downgrade, an altered copy, a disk too small, uninstall), each
//! on fresh throwaway machines from a backend (`netns`, `qemu`, `ssh`), reported as
//! JUnit XML, one HTML page and `--json`. Exit 0 when every case passes, 1 when one
//! fails, 2 for a usage error; Ctrl-C throws away every machine the lab started.

mod backend;
mod bundles;
pub(crate) mod image;
mod machine;
mod plan;
mod report;
mod scenario;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::{Error, ExitClass, IoContext, Result};

use backend::Backend;
use bundles::UnderTest;
use plan::{Case, Facts};
use report::{BundleFacts, CaseReport, LabReport};

use crate::cli::LabRunArgs;

/// What every case of one lab run shares.
pub(crate) struct Lab {
    pub(crate) bundle: UnderTest,
    pub(crate) previous: Vec<UnderTest>,
    pub(crate) backend: Box<dyn Backend>,
    /// The config template, with `{primary}`, `{secondary}`, `{nodes}`, `{nodeN}`.
    pub(crate) template: Option<String>,
    pub(crate) points: usize,
    /// The report's directory.
    pub(crate) out: PathBuf,
    /// Scratch space of this run (removed at its end).
    pub(crate) work: PathBuf,
    /// The directories "as it was" compares (besides the engine's images).
    pub(crate) watch: Vec<&'static str>,
    /// The first full install's journal records and seconds: where cut points fall.
    /// Held while one case measures it, so that cases running at once measure it once.
    reference: Mutex<Option<(usize, f64)>>,
    tampered: OnceLock<PathBuf>,
}

impl Lab {
    /// The reference, measured by `measure` unless a case has measured it already.
    pub(crate) fn reference_or(
        &self,
        measure: impl FnOnce() -> std::result::Result<(usize, f64), String>,
    ) -> std::result::Result<(usize, f64), String> {
        let mut reference = self.reference.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = *reference {
            return Ok(known);
        }
        let measured = measure()?;
        *reference = Some(measured);
        Ok(measured)
    }

    pub(crate) fn keep_reference(&self, records: usize, seconds: f64) {
        let mut reference = self.reference.lock().unwrap_or_else(|e| e.into_inner());
        reference.get_or_insert((records, seconds));
    }

    /// The product's config for these machines: the template filled in.
    pub(crate) fn config_for(&self, machines: &[machine::Machine]) -> Option<String> {
        let template = self.template.as_ref()?;
        let addresses: Vec<&str> = machines.iter().map(|m| m.address.as_str()).collect();
        let mut text = template
            .replace("{nodes}", &format!("[{}]", addresses.join(", ")))
            .replace("{primary}", addresses.first().copied().unwrap_or(""))
            .replace("{secondary}", addresses.get(1).copied().unwrap_or(""));
        for (i, address) in addresses.iter().enumerate() {
            text = text.replace(&format!("{{node{}}}", i + 1), address);
        }
        Some(text)
    }

    /// A copy of the bundle with one byte of its payload changed (made once).
    pub(crate) fn tampered(&self) -> Result<PathBuf> {
        if let Some(path) = self.tampered.get() {
            return Ok(path.clone());
        }
        let path = self.work.join(format!("altered-{}", self.bundle.file));
        let mut bytes = std::fs::read(&self.bundle.path).ctx("reading", &self.bundle.path)?;
        // Two thirds in: past the launcher and the stub, inside the members.
        let at = bytes.len() * 2 / 3;
        bytes[at] ^= 0x55;
        std::fs::write(&path, bytes).ctx("writing", &path)?;
        Ok(self.tampered.get_or_init(|| path).clone())
    }
}

/// `airbin lab run`.
pub(crate) fn run(args: &LabRunArgs, ui: &Ui) -> Result<()> {
    let started = Instant::now();
    let started_at = airbin_format::console::timestamp();
    let kinds = plan::selected(args.scenarios.as_deref())?;
    for (flag, value) in [("--jobs", args.jobs), ("--points", args.points)] {
        if value == 0 {
            return Err(Error::usage(format!("{flag} 0: give 1 or more")));
        }
    }
    let lab = prepare(args)?;
    let facts = Facts { bundle: &lab.bundle, previous: &lab.previous, no_power_cut: lab.backend.no_power_cut(), points: lab.points };
    let (cases, skipped) = plan::cases(&kinds, &facts);
    ui.status(format!(
        "lab: {} {} on {}: {} case(s), {} skipped; {}",
        lab.bundle.name,
        lab.bundle.version,
        lab.backend.name(),
        cases.len(),
        skipped.len(),
        lab.backend.describe()
    ));
    let mut reports = run_cases(&lab, &cases, args.jobs, ui);
    reports.extend(skipped.iter().map(CaseReport::skipped));
    let mut report = LabReport {
        bundle: BundleFacts {
            file: lab.bundle.file.clone(),
            name: lab.bundle.name.clone(),
            version: lab.bundle.version.clone(),
            previous: lab.previous.iter().map(|p| p.version.clone()).collect(),
        },
        backend: lab.backend.name().to_string(),
        machines: lab.backend.describe(),
        started: started_at,
        seconds: started.elapsed().as_secs_f64(),
        passed: 0,
        failed: 0,
        skipped: 0,
        cases: reports,
    };
    report.count();
    report.write(&lab.out)?;
    let _ = std::fs::remove_dir_all(&lab.work);
    finish(&report, &lab.out, ui)
}

/// The bundle, the earlier releases, the backend and the report's directory, each
/// checked before any machine starts.
fn prepare(args: &LabRunArgs) -> Result<Lab> {
    let bundle = UnderTest::open(&args.bundle)?;
    let previous = match &args.previous {
        Some(dir) => bundles::previous(dir, &bundle)?,
        None => Vec::new(),
    };
    let template = match &args.config {
        Some(file) => Some(std::fs::read_to_string(file).map_err(|e| Error::usage(format!("--config {}: {e}", file.display())))?),
        None if bundle.needs_config => {
            return Err(Error::usage(format!(
                "{} needs a config: give --config TEMPLATE, the product's config with {{primary}}, {{secondary}}, {{nodes}} or {{nodeN}} where the machines' addresses go",
                bundle.file
            )))
        }
        None => None,
    };
    let work = tempfile::Builder::new().prefix("airbin-lab-").tempdir().map_err(|e| Error::io(e, "creating", Path::new("/tmp")))?;
    let backend = backend::open(args, work.path())?;
    std::fs::create_dir_all(&args.out).ctx("creating the report directory", &args.out)?;
    let out = airbin_format::files::absolute(&args.out);
    let _ = std::fs::remove_dir_all(out.join("cases"));
    // From here the run removes it itself, after its machines are gone.
    let work = work.keep();
    // A netns machine shares /etc and /usr with this host: only its own /srv is its.
    let watch = match backend.name() {
        "netns" => vec!["/srv"],
        _ => vec!["/srv", "/opt", "/usr/local", "/etc"],
    };
    Ok(Lab {
        bundle,
        previous,
        backend,
        template,
        points: args.points,
        out,
        work,
        watch,
        reference: Mutex::new(None),
        tampered: OnceLock::new(),
    })
}

/// Every case, `jobs` at a time, each on its own machines (slot = its worker).
fn run_cases(lab: &Lab, cases: &[Case], jobs: usize, ui: &Ui) -> Vec<CaseReport> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    let progress = Progress::start(ui, cases.len());
    std::thread::scope(|scope| {
        for slot in 0..jobs.min(cases.len()) {
            let (next, done, progress) = (&next, &done, &progress);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                if airbin_format::cancel::requested() {
                    break;
                }
                progress.started(&case.id);
                let report = scenario::run(lab, case, slot);
                progress.finished(&report);
                done.lock().expect("no panic holding it").push((i, report));
            });
        }
    });
    progress.end();
    let mut reports = done.into_inner().expect("no panic holding it");
    reports.sort_by_key(|(i, _)| *i);
    reports.into_iter().map(|(_, r)| r).collect()
}

/// Cases done of the total: a bar on a terminal, a timestamped line a case otherwise.
struct Progress<'a> {
    ui: &'a Ui,
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    finished: AtomicUsize,
}

impl<'a> Progress<'a> {
    fn start(ui: &'a Ui, total: usize) -> Progress<'a> {
        let bar = (ui.is_terminal() && !ui.quiet).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("lab [{bar:30}] {pos}/{len} case(s) {elapsed} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Progress { ui, bar, total, finished: AtomicUsize::new(0) }
    }

    fn started(&self, id: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(id.to_string()),
            None => self.ui.status(format!("lab: {id}: starting")),
        }
    }

    fn finished(&self, report: &CaseReport) {
        let n = self.finished.fetch_add(1, Ordering::SeqCst) + 1;
        let word = match report.status {
            report::Status::Passed => "passed",
            report::Status::Failed => "FAILED",
            report::Status::Skipped => "skipped",
        };
        let line = format!("lab: [{n}/{}] {}: {word} in {:.1} s: {}", self.total, report.id, report.seconds, report.message);
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
            }
            None => self.ui.status(line),
        }
    }

    fn end(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The summary (or the `--json` document) and the exit: 1 when a case failed.
fn finish(report: &LabReport, out: &Path, ui: &Ui) -> Result<()> {
    let error = if airbin_format::cancel::requested() {
        Some(Error::new(
            ExitClass::Interrupted,
            format!(
                "interrupted: every machine the lab started is gone; the cases run so far are in {}; run the lab again for the rest",
                out.join("report.html").display()
            ),
        ))
    } else {
        (report.failed > 0).then(|| Error {
            class: ExitClass::Internal,
            message: format!(
                "{} of {} case(s) failed: see {} (each case's logs are linked there)",
                report.failed,
                report.cases.len() - report.skipped,
                out.join("report.html").display()
            ),
            kind: Default::default(),
        })
    };
    if ui.json {
        print_json(&Envelope::ended("lab run", error.as_ref(), serde_json::json!({ "report": out, "lab": report })));
    } else if !ui.quiet {
        out_line(&format!(
            "lab: {} passed, {} failed, {} skipped in {:.0} s: {}",
            report.passed,
            report.failed,
            report.skipped,
            report.seconds,
            out.join("report.html").display()
        ));
    }
    error.map_or(Ok(()), Err)
}
