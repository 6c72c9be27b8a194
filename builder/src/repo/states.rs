//! A version's way through a repository, as app stores and CDN mirrors move one:
//! uploaded to `staging` (`repo add --staging`), `released` (`repo promote`, once its
//! signature holds under the release key), `yanked` (`repo yank --reason`: kept on disk,
//! listed with its reason, never "latest"; `--undo` releases it again). Each change
//! rewrites `index.json` whole, as `add` does.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::{Error, Result};
use airbin_format::{rules, Bundle};

use super::{detached_signature, file_sha256, read_index, write_index, Entry, RepoIndex, Version};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    Staging,
    #[default]
    Released,
    Yanked,
}

impl State {
    pub(crate) fn is_released(&self) -> bool {
        *self == State::Released
    }

    fn name(self) -> &'static str {
        match self {
            State::Staging => "staging",
            State::Released => "released",
            State::Yanked => "yanked",
        }
    }
}

/// The same file listed the same way, whatever its state.
pub(crate) fn same_file(a: &Version, b: &Version) -> bool {
    let strip = |v: &Version| Version { state: State::Released, reason: String::new(), state_at: String::new(), ..v.clone() };
    strip(a) == strip(b)
}

/// By arch, the newest released full bundle: no delta, no hotfix.
pub(crate) fn latest(versions: &[Version]) -> BTreeMap<String, String> {
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    for v in versions.iter().filter(|v| v.state == State::Released && v.delta_of.is_none() && v.hotfix_of.is_none()) {
        let newer = latest.get(&v.arch).is_none_or(|have| rules::compare_versions(&v.version, have) == std::cmp::Ordering::Greater);
        if newer {
            latest.insert(v.arch.clone(), v.version.clone());
        }
    }
    latest
}

/// What `repo verify` holds an entry's states to: a yanked version says why, and
/// `latest` is what the versions make it (format 2 on; format 1 has no `latest`).
pub(crate) fn check(entry: &Entry, format: u32, altered: &mut Vec<String>) {
    for v in entry.versions.iter().filter(|v| v.state == State::Yanked && v.reason.trim().is_empty()) {
        altered.push(format!("{}: yanked without a reason", v.path));
    }
    let want = latest(&entry.versions);
    if format >= 2 && entry.latest != want {
        altered.push(format!("{}: index.json says latest {:?}, its versions make it {:?}", entry.name, entry.latest, want));
    }
}

/// How many versions are in each state.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Counts {
    pub(crate) released: usize,
    pub(crate) staging: usize,
    pub(crate) yanked: usize,
}

impl Counts {
    pub(crate) fn of(index: &RepoIndex) -> Counts {
        let mut counts = Counts::default();
        for v in index.bundles.iter().flat_map(|e| &e.versions) {
            match v.state {
                State::Released => counts.released += 1,
                State::Staging => counts.staging += 1,
                State::Yanked => counts.yanked += 1,
            }
        }
        counts
    }
}

/// Which versions a command names: NAME VERSION, of one arch or all.
pub(crate) struct Named<'a> {
    pub(crate) name: &'a str,
    pub(crate) version: &'a str,
    pub(crate) arch: Option<&'a str>,
}

impl Named<'_> {
    /// The indexes of the matching versions (full bundles and deltas alike).
    fn find(&self, index: &RepoIndex, repo: &Path) -> Result<(usize, Vec<usize>)> {
        let listed = |index: &RepoIndex| -> String {
            let mut all: Vec<String> = Vec::new();
            for e in &index.bundles {
                for v in &e.versions {
                    all.push(format!("{} {} {} ({})", e.name, v.version, v.arch, v.state.name()));
                }
            }
            if all.is_empty() {
                "nothing".into()
            } else {
                all.join(", ")
            }
        };
        let Some(at) = index.bundles.iter().position(|e| e.name == self.name) else {
            return Err(Error::usage(format!("{} holds no bundle named {}; it holds {}", repo.display(), self.name, listed(index))));
        };
        let found: Vec<usize> = index.bundles[at]
            .versions
            .iter()
            .enumerate()
            .filter(|(_, v)| v.version == self.version && self.arch.is_none_or(|a| a == v.arch))
            .map(|(i, _)| i)
            .collect();
        if found.is_empty() {
            return Err(Error::usage(format!(
                "{} holds no {} {}{}; it holds {}",
                repo.display(),
                self.name,
                self.version,
                self.arch.map(|a| format!(" for {a}")).unwrap_or_default(),
                listed(index)
            )));
        }
        Ok((at, found))
    }
}

#[derive(Serialize)]
struct Moved<'a> {
    repository: &'a Path,
    name: &'a str,
    version: &'a str,
    state: State,
    paths: Vec<String>,
    latest: &'a BTreeMap<String, String>,
}

/// `airbin repo promote`: staging to released, once every file of the version holds its
/// digest and its signature holds under `key`.
pub(crate) fn promote(repo: &Path, named: &Named, key: &Path, ui: &Ui) -> Result<()> {
    let mut index = read_index(repo)?;
    let (at, found) = named.find(&index, repo)?;
    let mut paths = Vec::new();
    for &i in &found {
        let v = &index.bundles[at].versions[i];
        if v.state == State::Yanked {
            return Err(Error::usage(format!("{}: yanked ({}); airbin repo yank --undo releases it again", v.path, v.reason)));
        }
        check_signed(repo, v, key)?;
        paths.push(v.path.clone());
    }
    let now = airbin_format::console::timestamp();
    for &i in &found {
        let v = &mut index.bundles[at].versions[i];
        if v.state != State::Released {
            v.state = State::Released;
            v.state_at = now.clone();
        }
    }
    write_index(repo, &mut index)?;
    say(ui, "repo promote", repo, named, State::Released, paths, &index.bundles[at]);
    Ok(())
}

/// The version's file as the index says, signed, and its detached signature good under `key`.
fn check_signed(repo: &Path, v: &Version, key: &Path) -> Result<()> {
    let path = repo.join(&v.path);
    let (sha256, _) = file_sha256(&path)?;
    if sha256 != v.sha256 {
        return Err(Error::integrity(format!(
            "{}: its SHA-256 is not the one the index lists; restore it (airbin repo add --replace) before promoting it",
            path.display()
        )));
    }
    let Some(signature) = &v.signature else {
        return Err(Error::integrity(format!(
            "{}: not signed; only a signed bundle is released (airbin build --sign-key, then airbin repo add --staging)",
            path.display()
        )));
    };
    let bundle = Bundle::open(&path)?;
    detached_signature(&repo.join(signature), &bundle, &path, Some(key))?;
    Ok(())
}

/// `airbin repo yank`: withdrawn with its reason (kept on disk), or released again.
pub(crate) fn yank(repo: &Path, named: &Named, reason: Option<&str>, undo: bool, ui: &Ui) -> Result<()> {
    let reason = reason.map(str::trim).unwrap_or_default();
    if !undo && reason.is_empty() {
        return Err(Error::usage("repo yank needs --reason TEXT: the sites that list it see why it was withdrawn"));
    }
    let mut index = read_index(repo)?;
    let (at, found) = named.find(&index, repo)?;
    let now = airbin_format::console::timestamp();
    let state = if undo { State::Released } else { State::Yanked };
    let mut paths = Vec::new();
    for &i in &found {
        let v = &mut index.bundles[at].versions[i];
        if undo && v.state != State::Yanked {
            continue;
        }
        v.state = state;
        v.reason = if undo { String::new() } else { reason.to_string() };
        v.state_at = now.clone();
        paths.push(v.path.clone());
    }
    write_index(repo, &mut index)?;
    say(ui, "repo yank", repo, named, state, paths, &index.bundles[at]);
    Ok(())
}

fn say(ui: &Ui, command: &'static str, repo: &Path, named: &Named, state: State, paths: Vec<String>, entry: &Entry) {
    if ui.json {
        let body = Moved { repository: repo, name: named.name, version: named.version, state, paths, latest: &entry.latest };
        print_json(&Envelope::ok(command, body));
    } else if !ui.quiet {
        for path in &paths {
            out_line(&format!("{path}: {}", state.name()));
        }
        let latest: Vec<String> = entry.latest.iter().map(|(arch, v)| format!("{v} ({arch})")).collect();
        out_line(&format!("{}: latest {}", entry.name, if latest.is_empty() { "none".into() } else { latest.join(", ") }));
    }
}
