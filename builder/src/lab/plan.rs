//! The matrix: which scenarios run for this bundle on this backend, each a case on
//! fresh machines, and which are skipped and why (a skipped scenario is reported, never
//! dropped silently).

use serde::Serialize;

use airbin_format::error::{Error, Result};

use super::bundles::UnderTest;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Kind {
    Install,
    InstallPair,
    Rerun,
    Kill,
    PowerCut,
    Upgrade,
    Downgrade,
    Tampered,
    SmallDisk,
    Uninstall,
}

pub(crate) const ALL: [Kind; 10] = [
    Kind::Install,
    Kind::InstallPair,
    Kind::Rerun,
    Kind::Kill,
    Kind::PowerCut,
    Kind::Upgrade,
    Kind::Downgrade,
    Kind::Tampered,
    Kind::SmallDisk,
    Kind::Uninstall,
];

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Install => "install",
            Kind::InstallPair => "install-pair",
            Kind::Rerun => "rerun",
            Kind::Kill => "kill",
            Kind::PowerCut => "power-cut",
            Kind::Upgrade => "upgrade",
            Kind::Downgrade => "downgrade",
            Kind::Tampered => "tampered",
            Kind::SmallDisk => "small-disk",
            Kind::Uninstall => "uninstall",
        }
    }

    /// What a pass proves, for the report.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Kind::Install => "a fresh install on one machine completes, and its record says so",
            Kind::InstallPair => "install --all-nodes on a pair completes on both nodes",
            Kind::Rerun => "a second run does nothing: every step already done",
            Kind::Kill => "kill -9 at a journal record; the rerun completes and redoes no done step",
            Kind::PowerCut => "power cut at a journal record; after boot the journal and record are intact and the rerun resumes",
            Kind::Upgrade => "an earlier release installed, then this one over it: the record and status --verify are right",
            Kind::Downgrade => "this release installed, an earlier one refused over it",
            Kind::Tampered => "an altered copy is refused before anything lands",
            Kind::SmallDisk => "a disk too small is refused by preflight, with nothing written",
            Kind::Uninstall => "install then uninstall leaves the machine as it was",
        }
    }
}

/// `--scenarios a,b,...`, or every one.
pub(crate) fn selected(list: Option<&str>) -> Result<Vec<Kind>> {
    let Some(list) = list else { return Ok(ALL.to_vec()) };
    let mut kinds = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let kind = ALL.iter().find(|k| k.name() == word).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|k| k.name()).collect();
            Error::usage(format!("--scenarios: no scenario '{word}'; the scenarios are {}", names.join(", ")))
        })?;
        if !kinds.contains(kind) {
            kinds.push(*kind);
        }
    }
    if kinds.is_empty() {
        return Err(Error::usage("--scenarios names none"));
    }
    Ok(kinds)
}

/// One case of the matrix: a scenario, and for some a point or an earlier release.
#[derive(Clone, Debug)]
pub(crate) struct Case {
    pub(crate) kind: Kind,
    /// Unique in the report: `kill-2`, `upgrade-from-2.7.2`.
    pub(crate) id: String,
    /// The kill or power-cut point (1..=K).
    pub(crate) point: Option<usize>,
    /// The earlier release (an index into the previous ones).
    pub(crate) previous: Option<usize>,
}

/// A scenario that does not apply here, and why.
#[derive(Clone, Debug)]
pub(crate) struct Skipped {
    pub(crate) kind: Kind,
    pub(crate) why: String,
}

/// What the lab knows when it plans.
pub(crate) struct Facts<'a> {
    pub(crate) bundle: &'a UnderTest,
    pub(crate) previous: &'a [UnderTest],
    pub(crate) no_power_cut: Option<String>,
    pub(crate) points: usize,
}

pub(crate) fn cases(kinds: &[Kind], facts: &Facts) -> (Vec<Case>, Vec<Skipped>) {
    let (mut cases, mut skipped) = (Vec::new(), Vec::new());
    let one = |kind: Kind| Case { kind, id: kind.name().to_string(), point: None, previous: None };
    for kind in kinds.iter().copied() {
        let skip = |why: String| Skipped { kind, why };
        match kind {
            Kind::InstallPair if !facts.bundle.roles => {
                skipped.push(skip("the bundle has no node roles (no management-node list in its config)".into()))
            }
            Kind::PowerCut if facts.no_power_cut.is_some() => skipped.push(skip(facts.no_power_cut.clone().unwrap_or_default())),
            Kind::Kill | Kind::PowerCut => {
                for point in 1..=facts.points.max(1) {
                    cases.push(Case { kind, id: format!("{}-{point}", kind.name()), point: Some(point), previous: None });
                }
            }
            Kind::Upgrade | Kind::Downgrade if facts.previous.is_empty() => {
                skipped.push(skip("no earlier release of the product in --previous".into()))
            }
            Kind::Upgrade => {
                for (i, earlier) in facts.previous.iter().enumerate() {
                    cases.push(Case { kind, id: format!("upgrade-from-{}", earlier.version), point: None, previous: Some(i) });
                }
            }
            Kind::Downgrade => {
                let newest = facts.previous.len() - 1;
                let id = format!("downgrade-to-{}", facts.previous[newest].version);
                cases.push(Case { kind, id, point: None, previous: Some(newest) });
            }
            _ => cases.push(one(kind)),
        }
    }
    (cases, skipped)
}
