//! The checks a spec goes through before anything is built, in the order they can run:
//! YAML without tabs in its indentation, fields the schema knows (at any depth, with the
//! name meant), values of the right types, names and paths by the rules, and what the
//! steps refer to. `airbin build` stops at the first error and shows the warnings;
//! `airbin lint` shows them all.

pub(crate) mod finding;
pub(crate) mod located;
pub(crate) mod refs;
pub(crate) mod schema;

use std::path::{Path, PathBuf};

use airbin_format::error::Result;

pub(crate) use finding::{Finding, Level};
use located::Located;

use super::spec::{self, Checked};

/// Reads the spec and checks it, finding all it can: YAML it can read (no tabs in the
/// indentation), fields the schema knows, values of the right types, names and
/// references by the rules. Only a file that cannot be read at all is an `Err`.
pub(crate) fn check(arg: &Path, arch: Option<&str>) -> Result<Checked> {
    let file = spec::spec_file(arg);
    let text = spec::read_text(&file)?;
    let failed = |finding: Finding| Ok(Checked { loaded: None, findings: vec![finding] });
    if let Some((line, col)) = spec::tab_in_indentation(&text) {
        let mut finding =
            Finding::error("", format!("column {col} holds a tab"), "YAML indents with spaces only: replace the tab with spaces");
        finding.line = Some(line);
        return failed(finding);
    }
    if let Some(line) = spec::too_deep(&text) {
        let mut finding = Finding::error("", format!("the YAML nests deeper than {} levels", spec::MAX_DEPTH), "a bundle spec nests a few");
        finding.line = Some(line);
        return failed(finding);
    }
    let located = match Located::read(&text) {
        Ok(located) => located,
        Err((line, why)) => {
            let mut finding =
                Finding::error("", format!("this is not YAML ({why})"), "check the indentation and the quotes around this line");
            finding.line = Some(line);
            return failed(finding);
        }
    };
    let value = serde_yaml::from_str::<serde_json::Value>(&text).ok();
    if let Some(value) = &value {
        let unknown = schema::unknown_fields(&schema::spec_schema(), value);
        if !unknown.is_empty() {
            return Ok(Checked { loaded: None, findings: unknown.into_iter().map(|f| f.at(&located)).collect() });
        }
    }
    let mut spec = match spec::parse(&text, &located) {
        Ok(spec) => spec,
        Err(finding) => return failed(finding),
    };
    if std::env::var_os("AIRBIN_SPEC_SCHEMA_CHECK").is_some_and(|v| v == "1") {
        if let Err(why) = value.as_ref().map_or(Ok(()), schema::conforms) {
            return Err(airbin_format::error::Error::internal(format!(
                "{}: the builder takes this spec and its own schema refuses it ({why}): a bug of airbin's schema; report it",
                file.display()
            )));
        }
    }
    spec.arch = match spec::canonical_arch(&spec, arch) {
        Ok(arch) => arch,
        Err(finding) => return failed(finding.at(&located)),
    };
    let base = file.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    // A member made from an image list gets its input at build (`images::prepare`).
    let inputs =
        spec.members.iter().map(|m| m.path.as_ref().map_or_else(|| base.join(".airbin-images").join(&m.name), |p| base.join(p))).collect();
    let loaded = spec::LoadedSpec { file, spec, inputs, located };
    let mut findings = Vec::new();
    if let Err(e) = spec::validate(&loaded) {
        findings.push(Finding::from_error(&e));
    }
    let declared = refs::declared_keys(&loaded);
    findings.extend(refs::placeholders(&loaded, &declared).into_iter().map(|f| f.at(&loaded.located)));
    findings.extend(refs::programs(&loaded).into_iter().map(|f| f.at(&loaded.located)));
    if refs::config_sample(&loaded).is_none() && !loaded.spec.steps.is_empty() {
        findings.push(
            Finding::warning(
                "members",
                "the bundle carries no config sample",
                "add a member of kind config-sample named config.sample: field engineers start their config from it (sh x.bin extract config.sample)",
            )
            .at(&loaded.located),
        );
    }
    Ok(Checked { loaded: Some(loaded), findings })
}
