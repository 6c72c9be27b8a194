//! What a lab run reports: every case (passed, failed, skipped) with its nodes, their
//! logs and the timeline of its runs; written as JUnit XML (for Jenkins and GitLab), one
//! self-contained HTML page, and the `--json` document.

mod html;
mod junit;

use std::path::Path;

use serde::Serialize;

use airbin_format::error::Result;

use super::plan::{Case, Skipped};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Passed,
    Failed,
    Skipped,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct LabReport {
    pub(crate) bundle: BundleFacts,
    pub(crate) backend: String,
    pub(crate) machines: String,
    pub(crate) started: String,
    pub(crate) seconds: f64,
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    pub(crate) cases: Vec<CaseReport>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct BundleFacts {
    pub(crate) file: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) previous: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct CaseReport {
    pub(crate) id: String,
    pub(crate) scenario: &'static str,
    pub(crate) what: &'static str,
    pub(crate) status: Status,
    pub(crate) seconds: f64,
    pub(crate) message: String,
    pub(crate) nodes: Vec<NodeReport>,
    pub(crate) runs: Vec<RunReport>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct NodeReport {
    pub(crate) node: String,
    pub(crate) address: String,
    pub(crate) status: Status,
    pub(crate) message: String,
    pub(crate) log_tail: String,
    /// Paths relative to the report's directory.
    pub(crate) files: Vec<String>,
}

/// One run of the bundle (or of the lab's watcher) on a node, with its steps.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RunReport {
    pub(crate) label: String,
    pub(crate) node: String,
    pub(crate) seconds: f64,
    pub(crate) exit_code: Option<i32>,
    pub(crate) steps: Vec<StepTime>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct StepTime {
    pub(crate) name: String,
    pub(crate) state: String,
    pub(crate) seconds: f64,
}

impl CaseReport {
    pub(crate) fn new(case: &Case) -> CaseReport {
        CaseReport {
            id: case.id.clone(),
            scenario: case.kind.name(),
            what: case.kind.what(),
            status: Status::Passed,
            seconds: 0.0,
            message: String::new(),
            nodes: Vec::new(),
            runs: Vec::new(),
        }
    }

    pub(crate) fn skipped(skipped: &Skipped) -> CaseReport {
        CaseReport {
            id: skipped.kind.name().to_string(),
            scenario: skipped.kind.name(),
            what: skipped.kind.what(),
            status: Status::Skipped,
            seconds: 0.0,
            message: skipped.why.clone(),
            nodes: Vec::new(),
            runs: Vec::new(),
        }
    }
}

impl LabReport {
    pub(crate) fn count(&mut self) {
        let count = |status: Status| self.cases.iter().filter(|c| c.status == status).count();
        (self.passed, self.failed, self.skipped) = (count(Status::Passed), count(Status::Failed), count(Status::Skipped));
    }

    /// report.html, junit.xml and report.json into `dir`.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        airbin_format::files::write_atomic(&dir.join("junit.xml"), junit::render(self).as_bytes(), 0o644)?;
        airbin_format::files::write_atomic(&dir.join("report.html"), html::render(self).as_bytes(), 0o644)?;
        let json = serde_json::to_vec_pretty(self).expect("a report serializes");
        airbin_format::files::write_atomic(&dir.join("report.json"), &json, 0o644)
    }
}

/// Text for XML and HTML alike: the five special characters escaped, and control
/// characters (which XML 1.0 cannot carry) dropped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
