//! What this bundle is to what the host has installed, decided once, before the plan,
//! from the install record (version, build, hotfixes on top) and the journal (which
//! bundle's run came last, and whether it finished). docs/STATE.md has the whole table:
//!
//! | installed \ run      | same build | another build | its hotfix | base of a hotfix | newer   | older          |
//! |----------------------|------------|---------------|------------|------------------|---------|----------------|
//! | nothing              | install    | install       | refused    | -                | install | install        |
//! | V (this journal)     | journal    | nothing       | hotfix     | -                | upgrade | refused/--allow-downgrade |
//! | V + H (H's journal)  | nothing*   | nothing*      | journal (H), hotfix (another) | nothing* | upgrade | refused/--allow-downgrade |
//!
//! (*) `--force` reinstalls V and drops H, which `plan` says. Nothing is ever undone
//! silently: a reinstall over hotfixes and a downgrade say what they drop and need a
//! flag; a run of another bundle over an unfinished one is refused unless `--force`.

use std::cmp::Ordering;

use serde::Serialize;

use super::record::Installed;
use airbin_format::error::{Error, Result};
use airbin_format::{rules::compare_versions, BundleMeta, Phase};

/// What this bundle is to the version installed, when it is that version.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Same {
    /// The very build installed, whose run the journal holds: the journal says what is done.
    ThisBuild,
    /// The very build installed, whose run the journal no longer holds: every step is done.
    Recorded,
    /// Another build of the installed version: nothing to do.
    AnotherBuild,
    /// The base of the hotfixes on top: nothing to do (running it would undo them).
    Base,
    /// A hotfix applied already, whose run the journal holds.
    AppliedHotfix,
    /// A hotfix applied already (another build of it, or with a later hotfix on top).
    AppliedEarlier,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Change {
    /// Nothing of this name is installed.
    Install,
    /// This version is installed already.
    Same {
        installed: String,
        since: String,
        /// The journal of this very bundle decides what is done (a changed value redoes
        /// a step, `--from` redoes on purpose); otherwise every step counts as done.
        this_build: bool,
        is: Same,
        /// Which steps the installed run had.
        phase: Phase,
    },
    /// `--force` over the same version: its hotfixes, if any, are dropped.
    Reinstall {
        installed: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        drops: Vec<String>,
    },
    Upgrade {
        from: String,
        /// Hotfixes of the old version, which the new one supersedes.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        supersedes: Vec<String>,
    },
    /// An older version over a newer one, on purpose (`--allow-downgrade` or `--force`).
    Downgrade {
        from: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        drops: Vec<String>,
    },
    /// A hotfix on the version it names.
    Hotfix { on: String },
}

impl Change {
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Change::Install => "install",
            Change::Same { .. } => "same",
            Change::Reinstall { .. } => "reinstall",
            Change::Upgrade { .. } => "upgrade",
            Change::Downgrade { .. } => "downgrade",
            Change::Hotfix { .. } => "hotfix",
        }
    }

    /// Which steps run: a first install's, or an upgrade's (downgrades and hotfixes too).
    pub(crate) fn phase(&self) -> Phase {
        match self {
            Change::Same { phase, .. } => *phase,
            Change::Install | Change::Reinstall { .. } => Phase::Install,
            Change::Upgrade { .. } | Change::Downgrade { .. } | Change::Hotfix { .. } => Phase::Upgrade,
        }
    }

    /// Nothing runs: the version is installed, and this bundle's journal does not say
    /// otherwise (`--from` still redoes on purpose).
    pub(crate) fn nothing_to_do(&self) -> bool {
        matches!(self, Change::Same { this_build: false, .. })
    }

    /// The version installed before this run, for the steps' environment.
    pub(crate) fn installed_version(&self) -> Option<&str> {
        match self {
            Change::Install => None,
            Change::Same { installed, .. } | Change::Reinstall { installed, .. } => Some(installed),
            Change::Upgrade { from, .. } | Change::Downgrade { from, .. } => Some(from),
            Change::Hotfix { on } => Some(on),
        }
    }

    /// One line for the plan and the log.
    pub(crate) fn describe(&self, meta: &BundleMeta) -> String {
        let this = &meta.version;
        let dropping = |drops: &[String]| match drops.len() {
            0 => String::new(),
            _ => format!("; this DROPS hotfix {}", drops.join(", ")),
        };
        match self {
            Change::Install => format!("first install of {this}: the steps for an install run"),
            Change::Same { installed, since, is, .. } => match is {
                Same::ThisBuild => format!("{installed} is installed already (since {since}), from this bundle: its journal says what is done (--force reinstalls)"),
                Same::Recorded => format!("{installed} is installed already (since {since}), from this bundle: nothing to do (--from STEP redoes on purpose, --force reinstalls)"),
                Same::AnotherBuild => format!("{installed} is installed already (since {since}), from another build of it: nothing to do (--force reinstalls)"),
                Same::Base => format!(
                    "{installed} is installed (since {since}); this bundle is {this}, the base of the hotfixes on top: nothing to do (--force reinstalls {this} and drops the hotfixes)"
                ),
                Same::AppliedHotfix => {
                    format!("{installed} is installed already; hotfix {this} is applied already (since {since}): its journal says what is done")
                }
                Same::AppliedEarlier => {
                    format!("{installed} is installed already; hotfix {this} is applied already: nothing to do (--force applies it again)")
                }
            },
            Change::Reinstall { installed, drops } => {
                format!("{installed} again, on purpose (--force): the steps for an install run{}", dropping(drops))
            }
            Change::Upgrade { from, supersedes } => {
                let over = if supersedes.is_empty() { String::new() } else { format!(" ({} superseded)", supersedes.join(", ")) };
                format!("upgrade from {from} to {this}: the steps for an upgrade run{over}")
            }
            Change::Downgrade { from, drops } => {
                format!("downgrade from {from} to {this}, on purpose: ROLLS BACK {from}; the steps for an upgrade run{}", dropping(drops))
            }
            Change::Hotfix { on } => format!("hotfix {this} on {on}: its steps for an upgrade run"),
        }
    }
}

/// The journal's latest run, as far as the decision needs it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LastRun<'a> {
    pub(crate) bundle_sha256: Option<&'a str>,
}

/// What was asked for on the command line.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Asked {
    pub(crate) force: bool,
    pub(crate) allow_downgrade: bool,
    /// `--from STEP`: redo from a step on.
    pub(crate) from: bool,
}

/// Decides; refusals (a downgrade not asked for, a hotfix for another version, steps
/// redone over hotfixes) are exit 7.
pub(crate) fn decide(meta: &BundleMeta, sha256: &str, installed: Option<&Installed>, last: LastRun, asked: Asked) -> Result<Change> {
    let name = &meta.name;
    let journal_is_ours = last.bundle_sha256 == Some(sha256);
    if let Some(base) = &meta.hotfix_of {
        let Some(installed) = installed else {
            return Err(Error::host(format!(
                "{} {} is a hotfix for {name} {base}, and no {name} is installed here: install {name} {base} first, then this hotfix",
                name, meta.version
            )));
        };
        if installed.version != *base {
            return Err(Error::host(format!(
                "{} {} is a hotfix for {name} {base}; this host has {name} {}: get the hotfix made for {}, or install {base} first",
                name,
                meta.version,
                installed.describe(),
                installed.version
            )));
        }
        let applied = installed.hotfixes.iter().position(|h| h.sha256 == sha256 || h.version == meta.version);
        return Ok(match applied {
            Some(_) if asked.force => Change::Hotfix { on: installed.describe() },
            Some(at) => {
                let latest = at + 1 == installed.hotfixes.len() && installed.hotfixes[at].sha256 == sha256;
                let this_build = latest && journal_is_ours;
                if asked.from && !latest {
                    return Err(redo_over_hotfixes(meta, installed));
                }
                Change::Same {
                    installed: installed.describe(),
                    since: installed.hotfixes[at].at.clone(),
                    this_build,
                    is: if this_build { Same::AppliedHotfix } else { Same::AppliedEarlier },
                    phase: Phase::Upgrade,
                }
            }
            None => Change::Hotfix { on: installed.describe() },
        });
    }
    let Some(installed) = installed else { return Ok(Change::Install) };
    let hotfixes: Vec<String> = installed.hotfixes.iter().map(|h| h.version.clone()).collect();
    match compare_versions(&meta.version, &installed.version) {
        Ordering::Equal if asked.force => Ok(Change::Reinstall { installed: installed.describe(), drops: hotfixes }),
        Ordering::Equal => {
            let is = match (installed.sha256 == sha256, hotfixes.is_empty(), journal_is_ours) {
                (_, false, _) => Same::Base,
                (true, true, true) => Same::ThisBuild,
                (true, true, false) => Same::Recorded,
                (false, true, _) => Same::AnotherBuild,
            };
            if is == Same::Base && asked.from {
                return Err(redo_over_hotfixes(meta, installed));
            }
            Ok(Change::Same {
                installed: installed.describe(),
                since: installed.installed_at.clone(),
                this_build: is == Same::ThisBuild,
                is,
                phase: if matches!(installed.how.as_str(), "upgrade" | "downgrade") { Phase::Upgrade } else { Phase::Install },
            })
        }
        Ordering::Greater => Ok(Change::Upgrade { from: installed.describe(), supersedes: hotfixes }),
        Ordering::Less if asked.allow_downgrade || asked.force => Ok(Change::Downgrade { from: installed.describe(), drops: hotfixes }),
        Ordering::Less => Err(Error::host(format!(
            "{name} {} is installed here, newer than this bundle's {}: a downgrade is refused; give --allow-downgrade (or --force) to roll back to {} on purpose",
            installed.describe(),
            meta.version,
            meta.version
        ))),
    }
}

fn redo_over_hotfixes(meta: &BundleMeta, installed: &Installed) -> Error {
    let latest = installed.hotfixes.last().map_or("", |h| h.version.as_str());
    Error::host(format!(
        "{} {} is installed; redoing steps of {} would undo what the hotfixes after it changed: run the bundle of {latest} with --from STEP, or give --force to reinstall {} and drop the hotfixes",
        meta.name,
        installed.describe(),
        meta.version,
        meta.version
    ))
}

#[cfg(test)]
mod tests {
    use super::super::record::Applied;
    use super::*;

    fn meta(version: &str, hotfix_of: Option<&str>) -> BundleMeta {
        BundleMeta {
            name: "p".into(),
            version: version.into(),
            arch: "amd64".into(),
            description: String::new(),
            hotfix_of: hotfix_of.map(Into::into),
        }
    }

    fn installed(version: &str, sha: &str, hotfixes: &[(&str, &str)]) -> Installed {
        Installed {
            name: "p".into(),
            version: version.into(),
            sha256: sha.into(),
            installed_at: "t".into(),
            how: "install".into(),
            parameters: vec![],
            hotfixes: hotfixes
                .iter()
                .map(|(v, s)| Applied { version: v.to_string(), sha256: s.to_string(), at: "t2".into(), how: "hotfix".into() })
                .collect(),
            history: vec![],
        }
    }

    /// The outcome of one pair of the table, as a short word.
    fn outcome(bundle: (&str, &str, Option<&str>), record: Option<&Installed>, journal: Option<&str>, asked: Asked) -> String {
        let (version, sha, hotfix_of) = bundle;
        let last = LastRun { bundle_sha256: journal };
        match decide(&meta(version, hotfix_of), sha, record, last, asked) {
            Err(e) => format!("refused({})", e.class.code()),
            Ok(Change::Same { is, .. }) => format!("same:{}", serde_json::to_value(is).unwrap().as_str().unwrap()),
            Ok(Change::Reinstall { drops, .. }) => format!("reinstall{}", if drops.is_empty() { "" } else { "+drops" }),
            Ok(Change::Downgrade { drops, .. }) => format!("downgrade{}", if drops.is_empty() { "" } else { "+drops" }),
            Ok(other) => other.as_str().to_string(),
        }
    }

    /// Every pair of (what is installed, whose journal) × (the bundle run): docs/STATE.md.
    #[test]
    fn the_install_kind_table_pair_by_pair() {
        let plain = Asked::default();
        let force = Asked { force: true, ..Asked::default() };
        let from = Asked { from: true, ..Asked::default() };
        let down = Asked { allow_downgrade: true, ..Asked::default() };
        let v = installed("2.0", "X", &[]);
        let vh = installed("2.0", "X", &[("2.0-hf1", "H1")]);
        let vhh = installed("2.0", "X", &[("2.0-hf1", "H1"), ("2.0-hf2", "H2")]);
        let same = ("2.0", "X", None);
        let other_build = ("2.0", "X2", None);
        let hf1 = ("2.0-hf1", "H1", Some("2.0"));
        let hf1_rebuilt = ("2.0-hf1", "H1b", Some("2.0"));
        let hf2 = ("2.0-hf2", "H2", Some("2.0"));
        let foreign_hf = ("1.0-hf1", "F", Some("1.0"));
        let newer = ("3.0", "W", None);
        let older = ("1.0", "U", None);
        type Bundle<'a> = (&'a str, &'a str, Option<&'a str>);
        type Pair<'a> = (&'a str, Bundle<'a>, Option<&'a Installed>, Option<&'a str>, Asked, &'a str);
        let table: Vec<Pair> = vec![
            // Nothing installed.
            ("nothing", same, None, None, plain, "install"),
            ("nothing, own unfinished run", same, None, Some("X"), plain, "install"),
            ("nothing", hf1, None, None, plain, "refused(7)"),
            // V from this build, its journal.
            ("V", same, Some(&v), Some("X"), plain, "same:this-build"),
            ("V, journal gone", same, Some(&v), None, plain, "same:recorded"),
            ("V", same, Some(&v), Some("X"), force, "reinstall"),
            ("V", other_build, Some(&v), Some("X"), plain, "same:another-build"),
            ("V", other_build, Some(&v), Some("X"), force, "reinstall"),
            ("V", hf1, Some(&v), Some("X"), plain, "hotfix"),
            ("V", foreign_hf, Some(&v), Some("X"), plain, "refused(7)"),
            ("V", newer, Some(&v), Some("X"), plain, "upgrade"),
            ("V", older, Some(&v), Some("X"), plain, "refused(7)"),
            ("V", older, Some(&v), Some("X"), down, "downgrade"),
            ("V", older, Some(&v), Some("X"), force, "downgrade"),
            // V + H1, H1's journal.
            ("V+H1", hf1, Some(&vh), Some("H1"), plain, "same:applied-hotfix"),
            ("V+H1", hf1_rebuilt, Some(&vh), Some("H1"), plain, "same:applied-earlier"),
            ("V+H1", hf1, Some(&vh), Some("H1"), force, "hotfix"),
            ("V+H1", same, Some(&vh), Some("H1"), plain, "same:base"),
            ("V+H1", same, Some(&vh), Some("H1"), from, "refused(7)"),
            ("V+H1", same, Some(&vh), Some("H1"), force, "reinstall+drops"),
            ("V+H1", other_build, Some(&vh), Some("H1"), plain, "same:base"),
            ("V+H1", hf2, Some(&vh), Some("H1"), plain, "hotfix"),
            ("V+H1", foreign_hf, Some(&vh), Some("H1"), plain, "refused(7)"),
            ("V+H1", newer, Some(&vh), Some("H1"), plain, "upgrade"),
            ("V+H1", older, Some(&vh), Some("H1"), plain, "refused(7)"),
            ("V+H1", older, Some(&vh), Some("H1"), down, "downgrade+drops"),
            // V + H1 + H2, H2's journal: H1 again is applied earlier.
            ("V+H1+H2", hf1, Some(&vhh), Some("H2"), plain, "same:applied-earlier"),
            ("V+H1+H2", hf1, Some(&vhh), Some("H2"), from, "refused(7)"),
            ("V+H1+H2", hf2, Some(&vhh), Some("H2"), plain, "same:applied-hotfix"),
            ("V+H1+H2", hf2, Some(&vhh), Some("H2"), from, "same:applied-hotfix"),
        ];
        for (installed, bundle, record, journal, asked, want) in table {
            assert_eq!(outcome(bundle, record, journal, asked), want, "installed {installed}, bundle {bundle:?}, {asked:?}");
        }
    }

    #[test]
    fn what_a_change_drops_is_said() {
        let m = meta("2.0", None);
        let drop = Change::Reinstall { installed: "2.0 + 2.0-hf1".into(), drops: vec!["2.0-hf1".into()] };
        assert!(drop.describe(&m).contains("DROPS hotfix 2.0-hf1"), "{}", drop.describe(&m));
        let down = Change::Downgrade { from: "3.0".into(), drops: vec![] };
        assert!(down.describe(&m).contains("ROLLS BACK 3.0"));
        let base =
            Change::Same { installed: "2.0 + 2.0-hf1".into(), since: "t".into(), this_build: false, is: Same::Base, phase: Phase::Install };
        assert!(base.nothing_to_do() && base.describe(&m).contains("nothing to do"));
    }
}
