//! One self-contained HTML page (no script, no external asset): the summary, a table of
//! every case, then each case's timeline (every run on every node, its steps as bars as
//! long as they took), why it failed, its log's tail and links to each node's files.

use super::{escape, CaseReport, LabReport, RunReport, Status};

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.passed{color:#11772d;font-weight:600}.failed{color:#b3261e;font-weight:600}.skipped{color:#777;font-weight:600}
.summary span{margin-right:18px}.bar{display:flex;height:16px;background:#f4f4f4;border-radius:3px;overflow:hidden;min-width:40px}
.seg{height:16px;border-right:1px solid #fff}.s-done{background:#4c9f70}.s-already-done{background:#b7d7c2}
.s-failed{background:#d0453a}.s-not-run{background:#ccc}.s-other{background:#7aa6d8}
pre{background:#f7f7f7;padding:8px;overflow:auto;max-height:300px;font-size:12px}.muted{color:#666}";

pub(crate) fn render(report: &LabReport) -> String {
    let mut rows = String::new();
    for case in &report.cases {
        rows.push_str(&format!(
            "<tr><td><a href=\"#{id}\">{id}</a></td><td>{what}</td><td class=\"{st}\">{st}</td><td>{secs}</td><td>{msg}</td></tr>\n",
            id = escape(&case.id),
            what = escape(case.what),
            st = status(case.status),
            secs = if case.status == Status::Skipped { String::new() } else { format!("{:.1} s", case.seconds) },
            msg = escape(&case.message),
        ));
    }
    let details: String = report.cases.iter().filter(|c| c.status != Status::Skipped).map(case_section).collect();
    let previous = if report.bundle.previous.is_empty() { "none".to_string() } else { report.bundle.previous.join(", ") };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>airbin lab: {name} {version}</title><style>{STYLE}</style></head><body>\n\
<h1>airbin lab: {name} {version}</h1>\n<p class=\"muted\">{file} on {backend}: {machines}<br>earlier releases: {previous}; started {started}, {secs:.1} s</p>\n\
<p class=\"summary\"><span class=\"passed\">{passed} passed</span><span class=\"{failed_class}\">{failed} failed</span><span class=\"skipped\">{skipped} skipped</span></p>\n\
<table id=\"scenarios\"><thead><tr><th>case</th><th>what it proves</th><th>result</th><th>time</th><th>detail</th></tr></thead><tbody>\n{rows}</tbody></table>\n{details}</body></html>\n",
        name = escape(&report.bundle.name),
        version = escape(&report.bundle.version),
        file = escape(&report.bundle.file),
        backend = escape(&report.backend),
        machines = escape(&report.machines),
        previous = escape(&previous),
        started = escape(&report.started),
        secs = report.seconds,
        passed = report.passed,
        failed = report.failed,
        // Red only where something failed: the page says so at a glance.
        failed_class = if report.failed > 0 { "failed" } else { "skipped" },
        skipped = report.skipped,
    )
}

fn status(status: Status) -> &'static str {
    match status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    }
}

fn case_section(case: &CaseReport) -> String {
    let longest = case.runs.iter().map(|r| r.seconds).fold(0.0_f64, f64::max).max(0.001);
    let runs: String = case.runs.iter().map(|run| timeline_row(run, longest)).collect();
    let mut nodes = String::new();
    for node in &case.nodes {
        let links: Vec<String> =
            node.files.iter().map(|f| format!("<a href=\"{0}\">{1}</a>", escape(f), escape(f.rsplit('/').next().unwrap_or(f)))).collect();
        nodes.push_str(&format!(
            "<h3>{} <span class=\"muted\">{}</span> <span class=\"{}\">{}</span></h3><p>{}</p><p>files: {}</p>",
            escape(&node.node),
            escape(&node.address),
            status(node.status),
            status(node.status),
            escape(&node.message),
            links.join(" · ")
        ));
        if node.status == Status::Failed && !node.log_tail.is_empty() {
            nodes.push_str(&format!("<pre>{}</pre>", escape(&node.log_tail)));
        }
    }
    format!(
        "<h2 id=\"{id}\">{id} <span class=\"{st}\">{st}</span></h2>\n<p>{what}. {msg}</p>\n<table><thead><tr><th>run</th><th>node</th><th>exit</th><th>time</th><th style=\"width:50%\">steps</th></tr></thead><tbody>{runs}</tbody></table>\n{nodes}\n",
        id = escape(&case.id),
        st = status(case.status),
        what = escape(case.what),
        msg = escape(&case.message),
    )
}

fn timeline_row(run: &RunReport, longest: f64) -> String {
    let width = (run.seconds / longest * 100.0).clamp(1.0, 100.0);
    let total: f64 = run.steps.iter().map(|s| s.seconds).sum::<f64>().max(0.001);
    let segments: String = run
        .steps
        .iter()
        .map(|step| {
            let class = match step.state.as_str() {
                "done" | "already-done" | "failed" | "not-run" => step.state.as_str(),
                _ => "other",
            };
            format!(
                "<div class=\"seg s-{class}\" style=\"width:{:.2}%\" title=\"{}: {} {:.2} s\"></div>",
                (step.seconds / total * 100.0).max(0.5),
                escape(&step.name),
                escape(&step.state),
                step.seconds
            )
        })
        .collect();
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2} s</td><td><div class=\"bar\" style=\"width:{width:.1}%\">{segments}</div></td></tr>\n",
        escape(&run.label),
        escape(&run.node),
        // No exit: a run cut off, or machines made or booted (no run at all).
        run.exit_code.map_or_else(|| if run.label.contains("after record") { "cut".to_string() } else { String::new() }, |c| c.to_string()),
        run.seconds
    )
}
