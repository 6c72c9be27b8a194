//! `extract`: a member written into a directory of the host (`<to>/<member>`), such
//! as a tool into `/usr/local/bin`, with its mode and owner. Written under a temporary
//! name and renamed into place, like every extraction.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::{parse_mode, parse_owner, Inputs, Needs, RunContext};
use crate::error::{Error, IoContext, Result};
use crate::extract;
use crate::format::Bundle;
use crate::install::config;

#[derive(Clone, Debug)]
pub struct Extract {
    pub member: String,
    pub to: PathBuf,
    mode: Option<u32>,
    owner: (Option<u32>, Option<u32>),
}

pub fn prepare(inputs: &Inputs, member: &str, to: &str, mode: Option<&str>, owner: Option<&str>, step: &str) -> Result<Extract> {
    let needed_by = format!("step '{step}'");
    let expanded = config::expand(to, inputs.config, &needed_by)?;
    let to = match inputs.config {
        Some(config) if !config::referenced_keys(to).is_empty() => config.resolve_path(&expanded),
        _ => PathBuf::from(&expanded),
    };
    if !to.is_absolute() {
        return Err(Error::integrity(format!("{needed_by} extracts into '{}', which is not an absolute path", to.display())));
    }
    let mode = mode.map(|m| parse_mode(m).ok_or_else(|| Error::integrity(format!("bad mode {m} in {needed_by}")))).transpose()?;
    let owner = match owner {
        Some(owner) => parse_owner(owner, step)?,
        None => (None, None),
    };
    Ok(Extract { member: member.to_string(), to, mode, owner })
}

impl Extract {
    pub fn describe(&self) -> String {
        let mut text = format!("write {} to {}", self.member, self.to.join(&self.member).display());
        if let Some(mode) = self.mode {
            text.push_str(&format!(" (mode {mode:04o})"));
        }
        text
    }

    pub fn needs(&self, bundle: &Bundle) -> Needs {
        let bytes = bundle.index.member(&self.member).map_or(0, |m| m.unpacked_bytes);
        Needs { space: vec![(self.to.clone(), bytes)], writes: vec![self.to.clone()], ..Needs::default() }
    }

    pub fn run(&self, ctx: &RunContext) -> Result<String> {
        let member = ctx.bundle.member(&self.member)?;
        let written = extract::extract_members(ctx.bundle, &[member], &self.to, ctx.ui)?;
        let path = written.first().cloned().unwrap_or_else(|| self.to.join(&self.member));
        if self.mode.is_some() || self.owner != (None, None) {
            // Through a descriptor opened without following links: whatever another
            // user may put at the path meanwhile, only what was written is changed.
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .open(&path)
                .ctx("opening", &path)?;
            if self.owner != (None, None) {
                std::os::unix::fs::fchown(&file, self.owner.0, self.owner.1).ctx("changing the owner of", &path)?;
            }
            if let Some(mode) = self.mode {
                let mode = if member.special_bits { mode } else { mode & 0o777 };
                file.set_permissions(std::fs::Permissions::from_mode(mode)).ctx("setting the mode of", &path)?;
            }
        }
        Ok(format!("wrote {}", path.display()))
    }
}
