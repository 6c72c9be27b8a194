//! Registry packs on the host: restored into a registry's storage root (`restore`),
//! then checked online against the registry that serves it (`online`). What a pack is
//! and the check that it serves from its files are in `format::registry_pack`.

mod online;
mod restore;

pub(crate) use airbin_format::registry_pack::{check_pack, DirStorage};
pub(crate) use online::verify_online;
pub(crate) use restore::{restore, Intent};

use airbin_format::error::{Error, Result};

/// How restored files are owned and their mode.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ownership {
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) file_mode: Option<u32>,
}

/// `user[:group]`, by name or number.
pub(crate) fn parse_owner(owner: &str) -> Result<(Option<u32>, Option<u32>)> {
    let missing = |what: &str, name: &str| {
        Error::host(format!("the registry owner {what} '{name}' does not exist on this host; create it or fix the step's owner"))
    };
    let (user, group) = owner.split_once(':').map_or((owner, None), |(u, g)| (u, Some(g)));
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => nix::unistd::User::from_name(user).ok().flatten().ok_or_else(|| missing("user", user))?.uid.as_raw(),
    };
    let gid = match group.map(|g| (g, g.parse::<u32>())) {
        None => None,
        Some((_, Ok(n))) => Some(n),
        Some((g, Err(_))) => Some(nix::unistd::Group::from_name(g).ok().flatten().ok_or_else(|| missing("group", g))?.gid.as_raw()),
    };
    Ok((Some(uid), gid))
}
