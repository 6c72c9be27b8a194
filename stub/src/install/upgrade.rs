//! What this bundle is to what the host has installed: a first install, the same
//! version again (nothing to do), an upgrade, a downgrade (refused unless asked for),
//! or a hotfix (only on the version it names). Decided once, before the plan: it picks
//! which steps run (`when: install`, `upgrade`, or both).

use std::cmp::Ordering;

use serde::Serialize;

use super::record::Installed;
use crate::error::{Error, Result};
use crate::format::{rules::compare_versions, BundleMeta, Phase};

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Change {
    /// Nothing of this name is installed.
    Install,
    /// This version is installed already. From this very bundle (`this_build`), the
    /// journal decides (a step whose values changed is redone); from another build of
    /// the version, nothing is done. `phase`: which steps the installed run had.
    Same {
        installed: String,
        since: String,
        this_build: bool,
        phase: Phase,
    },
    /// `--force` over the same version.
    Reinstall {
        installed: String,
    },
    Upgrade {
        from: String,
    },
    /// `--allow-downgrade` over a newer version.
    Downgrade {
        from: String,
    },
    /// A hotfix on the version it names.
    Hotfix {
        on: String,
    },
}

impl Change {
    pub fn as_str(&self) -> &'static str {
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
    pub fn phase(&self) -> Phase {
        match self {
            Change::Same { phase, .. } => *phase,
            Change::Install | Change::Reinstall { .. } => Phase::Install,
            Change::Upgrade { .. } | Change::Downgrade { .. } | Change::Hotfix { .. } => Phase::Upgrade,
        }
    }

    /// The version installed before this run, for the steps' environment.
    pub fn installed_version(&self) -> Option<&str> {
        match self {
            Change::Install => None,
            Change::Same { installed, .. } | Change::Reinstall { installed } => Some(installed),
            Change::Upgrade { from } | Change::Downgrade { from } => Some(from),
            Change::Hotfix { on } => Some(on),
        }
    }

    /// One line for the plan and the log.
    pub fn describe(&self, meta: &BundleMeta) -> String {
        let this = &meta.version;
        match self {
            Change::Install => format!("first install of {this}: the steps for an install run"),
            Change::Same { installed, since, this_build: true, .. } => {
                format!("{installed} is installed already (since {since}), from this bundle (--force reinstalls)")
            }
            Change::Same { installed, since, this_build: false, .. } => {
                format!("{installed} is installed already (since {since}), from another build of it: nothing to do (--force reinstalls)")
            }
            Change::Reinstall { installed } => format!("{installed} again, on purpose (--force): the steps for an install run"),
            Change::Upgrade { from } => format!("upgrade from {from} to {this}: the steps for an upgrade run"),
            Change::Downgrade { from } => format!("downgrade from {from} to {this} (--allow-downgrade): the steps for an upgrade run"),
            Change::Hotfix { on } => format!("hotfix {this} on {on}: its steps for an upgrade run"),
        }
    }
}

/// Decides; refusals (a downgrade not asked for, a hotfix for another version) are exit 7.
pub fn decide(meta: &BundleMeta, sha256: &str, installed: Option<&Installed>, force: bool, allow_downgrade: bool) -> Result<Change> {
    let name = &meta.name;
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
        if let Some(done) = installed.hotfixes.iter().find(|h| h.sha256 == sha256).filter(|_| !force) {
            return Ok(Change::Same { installed: installed.describe(), since: done.at.clone(), this_build: true, phase: Phase::Upgrade });
        }
        return Ok(Change::Hotfix { on: installed.version.clone() });
    }
    let Some(installed) = installed else { return Ok(Change::Install) };
    match compare_versions(&meta.version, &installed.version) {
        Ordering::Equal if force => Ok(Change::Reinstall { installed: installed.version.clone() }),
        Ordering::Equal => Ok(Change::Same {
            installed: installed.describe(),
            since: installed.installed_at.clone(),
            this_build: installed.sha256 == sha256,
            phase: if matches!(installed.how.as_str(), "upgrade" | "downgrade") { Phase::Upgrade } else { Phase::Install },
        }),
        Ordering::Greater => Ok(Change::Upgrade { from: installed.version.clone() }),
        Ordering::Less if allow_downgrade => Ok(Change::Downgrade { from: installed.version.clone() }),
        Ordering::Less => Err(Error::host(format!(
            "{name} {} is installed here, newer than this bundle's {}: a downgrade is refused; give --allow-downgrade to install {} over it on purpose",
            installed.describe(),
            meta.version,
            meta.version
        ))),
    }
}

#[cfg(test)]
mod tests {
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

    fn installed(version: &str) -> Installed {
        Installed {
            name: "p".into(),
            version: version.into(),
            sha256: "aa".into(),
            installed_at: "t".into(),
            how: "install".into(),
            parameters: vec![],
            hotfixes: vec![],
            history: vec![],
        }
    }

    #[test]
    fn each_version_against_the_record() {
        assert_eq!(decide(&meta("1.0", None), "s", None, false, false).unwrap(), Change::Install);
        assert!(matches!(
            decide(&meta("1.0", None), "s", Some(&installed("1.0")), false, false).unwrap(),
            Change::Same { this_build: false, .. }
        ));
        assert!(matches!(
            decide(&meta("1.0", None), "aa", Some(&installed("1.0")), false, false).unwrap(),
            Change::Same { this_build: true, .. }
        ));
        assert!(matches!(decide(&meta("1.0", None), "s", Some(&installed("1.0")), true, false).unwrap(), Change::Reinstall { .. }));
        assert_eq!(decide(&meta("2.0", None), "s", Some(&installed("1.0")), false, false).unwrap(), Change::Upgrade { from: "1.0".into() });
        let refused = decide(&meta("1.0", None), "s", Some(&installed("2.0")), false, false).unwrap_err();
        assert!(refused.message.contains("--allow-downgrade") && refused.class == crate::error::ExitClass::Host, "{}", refused.message);
        assert_eq!(
            decide(&meta("1.0", None), "s", Some(&installed("2.0")), false, true).unwrap(),
            Change::Downgrade { from: "2.0".into() }
        );
    }

    #[test]
    fn a_hotfix_goes_only_on_its_version_and_once() {
        let fix = meta("2.0-hotfix1", Some("2.0"));
        assert_eq!(decide(&fix, "h", Some(&installed("2.0")), false, false).unwrap(), Change::Hotfix { on: "2.0".into() });
        assert!(decide(&fix, "h", Some(&installed("1.0")), false, false).unwrap_err().message.contains("this host has p 1.0"));
        assert!(decide(&fix, "h", None, false, false).unwrap_err().message.contains("no p is installed"));
        let mut on = installed("2.0");
        on.hotfixes.push(super::super::record::Applied {
            version: "2.0-hotfix1".into(),
            sha256: "h".into(),
            at: "t".into(),
            how: "hotfix".into(),
        });
        assert!(matches!(decide(&fix, "h", Some(&on), false, false).unwrap(), Change::Same { .. }));
    }
}
