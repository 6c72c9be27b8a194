//! Between releases: an upgrade from each earlier release, and a downgrade refused.

use super::{last_line, Outcome, Scene, Step};

/// The earlier release, then this one over it: the record names this version, the
/// install says it was an upgrade, and `status --verify` finds the host as recorded.
pub(crate) fn upgrade(s: &mut Scene) -> Step {
    let lab = s.lab;
    let (new, old) = (&lab.bundle, &lab.previous[s.case.previous.unwrap_or(0)]);
    s.stage(0, old)?;
    let first = s.bundle_run(0, &old.file, "install --yes", &format!("install {}", old.version))?;
    s.expect_ok(&first, &format!("the install of {}", old.version))?;
    s.stage(0, new)?;
    let ran = s.bundle_run(0, &new.file, "install --yes", &format!("upgrade to {}", new.version))?;
    s.expect_ok(&ran, &format!("the upgrade to {}", new.version))?;
    let kind = ran.json()["change"]["kind"].as_str().unwrap_or_default().to_string();
    if kind != "upgrade" {
        return Err(format!("the install over {} says it was '{kind}', not an upgrade", old.version));
    }
    let (complete, version) = s.status(0, &new.file)?;
    if !complete || version != new.version {
        return Err(format!("after the upgrade, status says complete={complete}, version '{version}' (want {})", new.version));
    }
    let verify = s.bundle_run(0, &new.file, "status --verify", "status --verify")?;
    s.expect_ok(&verify, "status --verify after the upgrade")?;
    Ok(Outcome::passed(format!("{} -> {}: recorded, and status --verify finds no drift", old.version, new.version)))
}

/// This release installed, the earlier one refused over it (exit 7) and the record
/// left naming this one.
pub(crate) fn downgrade(s: &mut Scene) -> Step {
    let lab = s.lab;
    let (new, old) = (&lab.bundle, &lab.previous[s.case.previous.unwrap_or(0)]);
    s.stage(0, new)?;
    let first = s.bundle_run(0, &new.file, "install --yes", &format!("install {}", new.version))?;
    s.expect_ok(&first, &format!("the install of {}", new.version))?;
    s.stage(0, old)?;
    let ran = s.bundle_run(0, &old.file, "install --yes", &format!("downgrade to {}", old.version))?;
    if ran.code != Some(7) || !last_line(&ran).contains("downgrade") {
        return Err(format!(
            "{} over {} was not refused as a downgrade: exit {:?}, {}",
            old.version,
            new.version,
            ran.code,
            last_line(&ran)
        ));
    }
    let (_, version) = s.status(0, &new.file)?;
    if version != new.version {
        return Err(format!("after the refused downgrade the record names '{version}', not {}", new.version));
    }
    Ok(Outcome::passed(format!("{} over {} refused (exit 7): {}", old.version, new.version, last_line(&ran))))
}
