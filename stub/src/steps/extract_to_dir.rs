//! `extract`: a member written into a directory of the host (`<to>/<member>`), such
//! as a tool into `/usr/local/bin`, with its mode and owner. Written under a temporary
//! name and renamed into place, like every extraction.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::placed::{Change, PlacedFile};
use super::values as config;
use super::{parse_mode, parse_owner, Inputs, Needs, Place, RunContext};
use crate::unpack;
use airbin_format::error::{Error, IoContext, Result};
use airbin_format::Bundle;

#[derive(Clone, Debug)]
pub(crate) struct Extract {
    pub(crate) member: String,
    pub(crate) to: PathBuf,
    /// The config keys `to` comes from (the way to move it).
    pub(crate) to_from: Vec<String>,
    mode: Option<u32>,
    owner: (Option<u32>, Option<u32>),
}

pub(crate) fn prepare(inputs: &Inputs, member: &str, to: &str, mode: Option<&str>, owner: Option<&str>, step: &str) -> Result<Extract> {
    let raw_to = to;
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
    Ok(Extract { member: member.to_string(), to, to_from: config::referenced_keys(raw_to), mode, owner })
}

impl Extract {
    pub(crate) fn describe(&self) -> String {
        let mut text = format!("write {} to {}", self.member, self.to.join(&self.member).display());
        if let Some(mode) = self.mode {
            text.push_str(&format!(" (mode {mode:04o})"));
        }
        text
    }

    pub(crate) fn needs(&self, bundle: &Bundle, step: &str) -> Needs {
        let bytes = bundle.index.member(&self.member).map_or(0, |m| m.unpacked_bytes);
        let moved_by = self.to_from.first().map(|key| format!("--set {key}=DIR"));
        let place = Place::new(&self.to, bytes, &format!("step '{step}'"), moved_by.as_deref());
        Needs { space: vec![place], writes: vec![self.to.clone()], ..Needs::default() }
    }

    /// Records, before anything is written, the directories the step will make and the
    /// path it writes (and whether the host had something there already).
    fn record_intent(&self, ctx: &RunContext, target: &Path) -> Result<bool> {
        let before = ctx.placed.snapshot();
        let mut missing = Vec::new();
        let mut dir = self.to.clone();
        while std::fs::symlink_metadata(&dir).is_err() {
            missing.push(dir.clone());
            if !dir.pop() {
                break;
            }
        }
        for dir in missing.into_iter().rev() {
            ctx.placed.add(Change::Dir(dir))?;
        }
        let hosts_own = std::fs::symlink_metadata(target).is_ok() && !before.has_file(target);
        let intent =
            PlacedFile { path: target.to_path_buf(), sha256: String::new(), step: ctx.step_name.to_string(), existed_before: hosts_own };
        ctx.placed.add(Change::File(intent))?;
        Ok(hosts_own)
    }

    /// Records what was written: a file with its digest; a tree's files with theirs,
    /// and its directories when the host had none there.
    fn record_written(&self, ctx: &RunContext, member: &airbin_format::Member, path: &Path, hosts_own: bool) -> Result<()> {
        let file = |path: &Path, sha256: String| {
            Change::File(PlacedFile { path: path.to_path_buf(), sha256, step: ctx.step_name.to_string(), existed_before: false })
        };
        if member.layout == airbin_format::Layout::File {
            let placed = PlacedFile {
                path: path.to_path_buf(),
                sha256: member.sha256.clone(),
                step: ctx.step_name.to_string(),
                existed_before: hosts_own,
            };
            return ctx.placed.add(Change::File(placed));
        }
        if !hosts_own {
            ctx.placed.add(Change::Dir(path.to_path_buf()))?;
        }
        for (entry, is_dir) in crate::fsx::walk(path) {
            match is_dir {
                true if !hosts_own => ctx.placed.add(Change::Dir(entry))?,
                true => {}
                false => ctx.placed.add(file(&entry, crate::fsx::file_sha256(&entry)?))?,
            }
        }
        Ok(())
    }

    pub(crate) fn run(&self, ctx: &RunContext) -> Result<String> {
        let member = ctx.bundle.member(&self.member)?;
        let target = self.to.join(&self.member);
        let hosts_own = self.record_intent(ctx, &target)?;
        let written = unpack::extract_members(ctx.bundle, &[member], &self.to, ctx.ui).map_err(|e| self.hint(e))?;
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
        self.record_written(ctx, member, &path, hosts_own)?;
        Ok(format!("wrote {}", path.display()))
    }

    /// Where another place can be chosen for a full or unwritable target: the config
    /// key the directory comes from, else only another user.
    fn hint(&self, e: airbin_format::error::Error) -> airbin_format::error::Error {
        if !e.class.is_about_a_place() {
            return e;
        }
        match self.to_from.first() {
            Some(key) => e.hint(&format!(" (or choose another directory for it: --set {key}=DIR)")),
            None => e,
        }
    }
}
