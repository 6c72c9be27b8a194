//! `airbin lint`: the checks `airbin build` makes before anything else (`assemble::check`),
//! all of them, errors and warnings, each one line with the file, the line, the field,
//! the problem and the fix; and `airbin schema`, the spec's JSON Schema.

use std::path::Path;

use serde::Serialize;

use airbin_format::console::{err_line, out_line, print_json, Envelope, Ui};
use airbin_format::error::{Error, Result};

use crate::assemble::check::{self, Finding, Level};
use crate::assemble::{self, spec};

#[derive(Serialize)]
struct Linted<'a> {
    spec: &'a Path,
    errors: usize,
    warnings: usize,
    findings: Vec<Rendered>,
}

#[derive(Serialize)]
struct Rendered {
    #[serde(flatten)]
    finding: Finding,
    text: String,
}

/// `airbin lint SPEC`: every finding, errors and warnings, each on its line; exit 2 if
/// there is an error. The inputs are inspected as `build` inspects them.
pub(crate) fn run(spec_arg: &Path, arch: Option<&str>, ui: &Ui) -> Result<()> {
    let file = spec::spec_file(spec_arg);
    let findings = lint(spec_arg, arch, ui)?;
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    let warnings = findings.len() - errors;
    let outcome = (errors > 0)
        .then(|| Error::usage(format!("{}: {errors} error(s), {warnings} warning(s); fix the errors, then lint again", file.display())));
    if ui.json {
        let findings = findings.into_iter().map(|f| Rendered { text: f.render(&file), finding: f }).collect();
        print_json(&Envelope::ended("lint", outcome.as_ref(), Linted { spec: &file, errors, warnings, findings }));
    } else {
        for finding in &findings {
            let line = format!("{}: {}", if finding.level == Level::Error { "error" } else { "warning" }, finding.render(&file));
            match finding.level {
                Level::Error => err_line(&line),
                Level::Warning => out_line(&line),
            }
        }
        if errors == 0 && !ui.quiet {
            out_line(&format!("{}: no errors, {warnings} warning(s)", file.display()));
        }
    }
    outcome.map_or(Ok(()), Err)
}

/// Every finding about the spec and its inputs.
pub(crate) fn lint(spec_arg: &Path, arch: Option<&str>, ui: &Ui) -> Result<Vec<Finding>> {
    let checked = check::check(spec_arg, arch)?;
    let mut findings = checked.findings;
    let Some(loaded) = checked.loaded else { return Ok(findings) };
    if findings.iter().any(|f| f.level == Level::Error) {
        return Ok(findings);
    }
    match assemble::inspect_members(&loaded, None, ui) {
        Ok(planned) => findings.extend(assemble::warnings(&loaded, &planned)),
        Err(e) => findings.push(Finding::from_error(&e)),
    }
    Ok(findings)
}

/// `airbin schema`: the JSON Schema of `bundle.yaml`, generated from the types `build`
/// parses (so it cannot drift from them); an editor reads it from the spec's first line
/// (`# yaml-language-server: $schema=bundle.schema.json`).
pub(crate) fn schema(out: Option<&Path>, ui: &Ui) -> Result<()> {
    let schema = crate::assemble::check::schema::spec_schema();
    match out {
        Some(path) => {
            let text = serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n";
            airbin_format::files::write_atomic(path, text.as_bytes(), 0o644)?;
            match ui.json {
                true => print_json(&Envelope::ok("schema", serde_json::json!({"written": path}))),
                false if !ui.quiet => out_line(&path.display().to_string()),
                false => {}
            }
        }
        None if ui.json => print_json(&Envelope::ok("schema", serde_json::json!({"schema": schema}))),
        None => print_json(&schema),
    }
    Ok(())
}
