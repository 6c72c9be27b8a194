//! `push-images`: an image member's images published into the site's registry over the
//! registry API (distribution spec), straight from the bundle: no engine, no copy on
//! disk. Two passes over the member's stream: the first reads the archive's
//! `manifest.json` and configs and digests every layer; the registry is asked which
//! blobs it has; the second sends only the others. Each image's manifest (OCI, layers
//! as they are in the archive) goes under its tag, and with `track_tags` under its
//! track tag too (`1.4.34` and `1.4`); each tag is then fetched back and its digest
//! compared. A rerun sends nothing the registry already has.

use airbin_format::PushImagesAction;
use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use ct_codecs::{Base64, Encoder};
use sha2::{Digest, Sha256};

mod archive;
mod client;

use super::values as config;
use super::{Inputs, Needs, RunContext};
use airbin_format::error::{Error, Result};
use airbin_format::rules::{self, track_of};
use airbin_format::Action;
use archive::{entry_path, Archive};
use client::Client;

#[derive(Clone, Debug)]
pub(crate) struct PushImages {
    pub(crate) member: String,
    /// `host:port`.
    pub(crate) registry: String,
    prefix: Option<String>,
    /// The `Authorization` header's value, when credentials are given.
    auth: Option<String>,
    user: Option<String>,
    track_tags: bool,
    /// Each image: (its tags in the archive, where each goes: `repo`, `[tags]`).
    targets: Vec<Target>,
    /// The repositories the bundle's other push-images steps fill (with this prefix).
    neighbours: Vec<String>,
}

#[derive(Clone, Debug)]
struct Target {
    /// The image's ID (its config's digest).
    id: String,
    /// `(repository, tag)` pairs it is pushed under.
    names: Vec<(String, String)>,
}

/// `member` is the step's member, checked to be an image one.
pub(crate) fn prepare(inputs: &Inputs, member: &str, action: &PushImagesAction, step: &str) -> Result<PushImages> {
    let PushImagesAction { registry, prefix, username, password, track_tags, .. } = action;
    let (prefix, username, password, track_tags) = (prefix.as_deref(), username.as_deref(), password.as_deref(), *track_tags);
    let needed_by = format!("step '{step}'");
    let expand = |text: &str| config::expand(text, inputs.config, &needed_by);
    let registry = expand(registry)?;
    if registry.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) || registry.contains('/') {
        return Err(Error::usage(format!("{needed_by} pushes to '{registry}', which is not host:port; set the site registry's address")));
    }
    let prefix = prefix.map(expand).transpose()?.map(|p| p.trim_matches('/').to_string()).filter(|p| !p.is_empty());
    if let Some(p) = prefix.as_deref().filter(|p| !rules::is_repository_name(p)) {
        return Err(Error::usage(format!(
            "{needed_by}: the repository prefix '{}' is not a path such as release or oem/release",
            rules::printable(p, 100)
        )));
    }
    let user = username.map(expand).transpose()?.filter(|u| !u.is_empty());
    let password = password.map(expand).transpose()?.unwrap_or_default();
    let auth = user.as_ref().map(|u| {
        let pair = format!("{u}:{password}");
        format!("Basic {}", Base64::encode_to_string(pair.as_bytes()).expect("base64 of a short string"))
    });
    if user.as_deref().is_some_and(|u| u.contains(':')) {
        return Err(Error::usage(format!("{needed_by}: a registry user name cannot have ':' in it")));
    }
    // Where an archive's repository goes on the site's registry.
    let under = |repo: &str| prefix.as_ref().map_or_else(|| repo.to_string(), |p| format!("{p}/{repo}"));
    let record = inputs.bundle.index.member(member).expect("prepare checked the member");
    let mut targets = Vec::new();
    for image in &record.images {
        let mut names = Vec::new();
        for tag in &image.tags {
            let (repo, version) = split_reference(tag).ok_or_else(|| {
                Error::integrity(format!("image {} of member {member} has a tag that is not repo:tag", rules::printable(tag, 200)))
            })?;
            let repo = under(repo);
            if !rules::is_repository_name(&repo) {
                return Err(Error::usage(format!("{needed_by}: '{repo}' is not a repository name a registry takes")));
            }
            names.push((repo.clone(), version.to_string()));
            if track_tags {
                let track = track_of(version).ok_or_else(|| {
                    Error::usage(format!(
                        "{needed_by} pushes track tags, and {tag} has no version tag such as 1.4.34 to take the track 1.4 from"
                    ))
                })?;
                names.push((repo, track));
            }
        }
        if names.is_empty() {
            return Err(Error::usage(format!("{needed_by}: image {} of {member} has no tag to push it under", image.id)));
        }
        targets.push(Target { id: image.id.clone(), names });
    }
    let own: Vec<&String> = targets.iter().flat_map(|t| t.names.iter().map(|(r, _)| r)).collect();
    let mut neighbours: Vec<String> = Vec::new();
    for step in &inputs.bundle.index.steps {
        let Action::PushImages(PushImagesAction { member: other, .. }) = &step.action else { continue };
        let images = inputs.bundle.index.member(other).map(|m| &m.images[..]).unwrap_or(&[]);
        for (repo, _) in images.iter().flat_map(|i| &i.tags).filter_map(|t| split_reference(t)) {
            let repo = under(repo);
            if !own.contains(&&repo) && !neighbours.contains(&repo) {
                neighbours.push(repo);
            }
        }
    }
    Ok(PushImages { member: member.to_string(), registry, prefix, auth, user, track_tags, targets, neighbours })
}

/// `registry.example:5000/sample/app:1.0` → (`sample/app`, `1.0`): the archive's own
/// registry host goes; the site's takes its place.
fn split_reference(reference: &str) -> Option<(&str, &str)> {
    let (name, tag) = reference.rsplit_once(':').filter(|(n, t)| !n.is_empty() && !t.contains('/'))?;
    let name = match name.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => name,
    };
    let name = name.strip_prefix("library/").unwrap_or(name);
    Some((name, tag))
}

impl PushImages {
    /// A repository of the bundle's other pushes that holds `digest` already: the
    /// registry API asks per repository, and a layer two products share is sent once.
    fn neighbour_with(&self, client: &Client, digest: &str) -> Result<Option<String>> {
        for repo in &self.neighbours {
            if client.has_blob(repo, digest)? {
                return Ok(Some(repo.clone()));
            }
        }
        Ok(None)
    }

    fn destinations(&self) -> Vec<String> {
        self.targets.iter().flat_map(|t| t.names.iter().map(|(r, tag)| format!("{}/{r}:{tag}", self.registry))).collect()
    }

    pub(crate) fn describe(&self) -> String {
        let auth = match &self.user {
            Some(user) => format!(" as {user}"),
            None => String::new(),
        };
        let track = if self.track_tags { ", with track tags" } else { "" };
        let prefix = self.prefix.as_deref().map(|p| format!(" under {p}/")).unwrap_or_default();
        format!("push the images of {} to {}{auth}{prefix}{track}: {}", self.member, self.registry, self.destinations().join(", "))
    }

    pub(crate) fn needs(&self) -> Needs {
        Needs { registry: Some(self.registry.clone()), ..Needs::default() }
    }

    pub(crate) fn run(&self, ctx: &RunContext) -> Result<String> {
        let member = ctx.bundle.member(&self.member)?;
        let archive = archive::read(ctx.bundle.content_reader(member)?, &self.member, &ctx.bundle.index.bundle.arch)?;
        let client = Client { address: &self.registry, auth: self.auth.as_deref() };
        client.check_access()?;
        let mut tally = Tally::default();
        let (manifests, to_send) = self.send_what_is_small(&client, &archive, &mut tally)?;
        if !to_send.is_empty() {
            let stream = ctx.bundle.content_reader(member)?;
            self.send_layers(ctx, &client, stream, &archive, &to_send, &mut tally)?;
        }
        let tags = self.tag(&client, &manifests)?;
        let Tally { sent, sent_bytes, mounted, already } = tally;
        Ok(format!(
            "{} tag(s) on {} ({}), each fetched back with its digest; {sent} blob(s) sent ({}), {mounted} mounted, {already} there already",
            tags.len(),
            self.registry,
            tags.join(", "),
            indicatif::HumanBytes(sent_bytes),
        ))
    }

    /// The first pass's decisions, per image and repository: a blob there already is
    /// left; one this push or another of the bundle put elsewhere is mounted; a config is
    /// sent now (it is in memory); a layer is queued for the second pass. Returns each
    /// image's manifest, and the queue: archive path → the repositories that need it.
    fn send_what_is_small<'t>(&'t self, client: &Client, archive: &Archive, tally: &mut Tally) -> Result<(Vec<Tagged<'t>>, Queue)> {
        let mut have: HashMap<String, String> = HashMap::new(); // digest -> a repo holding it
        let mut to_send = Queue::new();
        let mut manifests = Vec::new();
        for target in &self.targets {
            let image = archive.images.iter().find(|i| i.id == target.id).ok_or_else(|| {
                Error::integrity(format!("{}: image {} is in the index and not in the archive's manifest.json", self.member, target.id))
            })?;
            let mut repos: Vec<&str> = target.names.iter().map(|(r, _)| r.as_str()).collect();
            repos.dedup();
            for repo in &repos {
                for blob in image.blobs() {
                    if client.has_blob(repo, &blob.digest)? {
                        tally.already += 1;
                        have.entry(blob.digest.clone()).or_insert_with(|| repo.to_string());
                        continue;
                    }
                    // Queued for another repository: mounted from there once sent.
                    if let Some(repos) = blob.path.as_ref().and_then(|p| to_send.get_mut(p)) {
                        repos.push(repo.to_string());
                        continue;
                    }
                    let from = match have.get(&blob.digest) {
                        Some(from) => Some(from.clone()),
                        None => self.neighbour_with(client, &blob.digest)?,
                    };
                    if let Some(from) = from.filter(|from| from.as_str() != *repo) {
                        if client.mount(repo, &blob.digest, &from)? {
                            tally.mounted += 1;
                            have.entry(blob.digest.clone()).or_insert(from);
                            continue;
                        }
                    }
                    match &blob.path {
                        Some(path) => to_send.entry(path.clone()).or_default().push(repo.to_string()),
                        None => {
                            client.upload(repo, &blob.digest, blob.size, &mut image.config.as_slice())?;
                            tally.sent += 1;
                            tally.sent_bytes += blob.size;
                            have.entry(blob.digest.clone()).or_insert_with(|| repo.to_string());
                        }
                    }
                }
            }
            manifests.push((target, image.manifest()));
        }
        Ok((manifests, to_send))
    }

    /// The second pass: each queued layer sent as the member's stream goes by, to its
    /// first repository, then mounted into the others.
    fn send_layers(
        &self,
        ctx: &RunContext,
        client: &Client,
        stream: impl Read,
        archive: &Archive,
        to_send: &Queue,
        tally: &mut Tally,
    ) -> Result<()> {
        let mut tar = tar::Archive::new(stream);
        for entry in tar.entries().map_err(|e| bad_archive(&self.member, e))? {
            crate::interrupt::check()?;
            let mut entry = entry.map_err(|e| bad_archive(&self.member, e))?;
            let path = entry_path(&entry);
            let (Some(repos), Some((digest, size))) = (to_send.get(&path), archive.layers.get(&path)) else { continue };
            let (first, others) = repos.split_first().expect("a queued blob is for a repository");
            ctx.ui.status(format!("sending {} ({}) to {}/{first}", short(digest), indicatif::HumanBytes(*size), self.registry));
            client.upload(first, digest, *size, &mut entry)?;
            tally.sent += 1;
            tally.sent_bytes += size;
            for repo in others {
                if !client.mount(repo, digest, first)? {
                    return Err(Error::host(format!(
                        "{} did not mount {} from {first} into {repo}; check the registry's log",
                        self.registry,
                        short(digest)
                    )));
                }
                tally.mounted += 1;
            }
        }
        Ok(())
    }

    /// Puts each image's manifest under each of its tags, and fetches each tag back to
    /// compare its digest with what was put.
    fn tag(&self, client: &Client, manifests: &[Tagged]) -> Result<Vec<String>> {
        let mut tags = Vec::new();
        for (target, manifest) in manifests {
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(manifest)));
            for (repo, tag) in &target.names {
                client.put_manifest(repo, tag, manifest)?;
                let found = client.manifest_digest(repo, tag)?;
                if found != digest {
                    return Err(Error::host(format!(
                        "{}/{repo}:{tag} answers with manifest {found}, not the {digest} just pushed; another push may be racing this one: run the bundle again",
                        self.registry
                    )));
                }
                tags.push(format!("{repo}:{tag}"));
            }
        }
        Ok(tags)
    }
}

/// An image's manifest, and where it goes.
type Tagged<'t> = (&'t Target, Vec<u8>);

/// The layers the second pass sends: archive path → the repositories that need it.
type Queue = BTreeMap<String, Vec<String>>;

/// What a push did, for its summary.
#[derive(Default)]
struct Tally {
    sent: usize,
    sent_bytes: u64,
    mounted: usize,
    already: usize,
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

fn bad_archive(member: &str, e: impl std::fmt::Display) -> Error {
    Error::integrity(format!("member {member} is not a readable docker save archive ({e}); get the bundle again"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archives_registry_host_gives_way_to_the_sites() {
        assert_eq!(split_reference("sample/app:1.0"), Some(("sample/app", "1.0")));
        assert_eq!(split_reference("cargo.caicloud.xyz/release/api:v2"), Some(("release/api", "v2")));
        assert_eq!(split_reference("localhost:5000/a:1"), Some(("a", "1")));
        assert_eq!(split_reference("library/busybox:1"), Some(("busybox", "1")));
        assert_eq!(split_reference("nohost/a/b:1"), Some(("nohost/a/b", "1")));
        assert_eq!(split_reference("noversion"), None);
    }
}
