//! JUnit XML as Jenkins, GitLab and junitparser read it: one test suite, one test case
//! per scenario and node (a skipped scenario is one skipped case), a failure's message
//! and its log's tail, the files kept in `system-out`.

use super::{escape, LabReport, Status};

pub(crate) fn render(report: &LabReport) -> String {
    let mut cases = String::new();
    let (mut tests, mut failures, mut skipped) = (0, 0, 0);
    for case in &report.cases {
        let nodes: Vec<(String, Status, String, String, Vec<String>)> = match case.nodes.is_empty() {
            true => vec![(String::new(), case.status, case.message.clone(), String::new(), Vec::new())],
            false => {
                case.nodes.iter().map(|n| (n.node.clone(), n.status, n.message.clone(), n.log_tail.clone(), n.files.clone())).collect()
            }
        };
        for (node, status, own, tail, files) in nodes {
            tests += 1;
            let name = if node.is_empty() { case.id.clone() } else { format!("{} on {node}", case.id) };
            let seconds = case.seconds / case.nodes.len().max(1) as f64;
            cases.push_str(&format!(
                "    <testcase classname=\"airbin.lab.{}\" name=\"{}\" time=\"{seconds:.3}\">\n",
                escape(case.scenario),
                escape(&name)
            ));
            match status {
                Status::Failed => {
                    failures += 1;
                    let message = if own.is_empty() { case.message.clone() } else { own };
                    cases.push_str(&format!("      <failure message=\"{}\">{}</failure>\n", escape(&message), escape(&tail)));
                }
                Status::Skipped => {
                    skipped += 1;
                    cases.push_str(&format!("      <skipped message=\"{}\"/>\n", escape(&case.message)));
                }
                Status::Passed => {}
            }
            let out = format!("{}\n{}", case.message, files.join("\n"));
            cases.push_str(&format!("      <system-out>{}</system-out>\n    </testcase>\n", escape(out.trim())));
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"airbin lab\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\" time=\"{:.3}\">\n  <testsuite name=\"{} {} on {}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\" time=\"{:.3}\" timestamp=\"{}\">\n{cases}  </testsuite>\n</testsuites>\n",
        report.seconds,
        escape(&report.bundle.name),
        escape(&report.bundle.version),
        escape(&report.backend),
        report.seconds,
        escape(report.started.trim_end_matches('Z')),
    )
}
