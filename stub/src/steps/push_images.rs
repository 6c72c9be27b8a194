//! `push-images`: an image member's images published into the site's registry over the
//! registry API (distribution spec), straight from the bundle: no engine, no copy on
//! disk. Two passes over the member's stream: the first reads the archive's
//! `manifest.json` and configs and digests every layer; the registry is asked which
//! blobs it has; the second sends only the others. Each image's manifest (OCI, layers
//! as they are in the archive) goes under its tag, and with `track_tags` under its
//! track tag too (`1.4.34` and `1.4`); each tag is then fetched back and its digest
//! compared. A rerun sends nothing the registry already has.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::time::Duration;

use ct_codecs::{Base64, Encoder};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Inputs, Needs, RunContext};
use crate::error::{Error, Result};
use crate::format::rules::{self, track_of};
use crate::format::Action;
use crate::http::{self, Body};
use crate::install::config;

const TIMEOUT: Duration = Duration::from_secs(120);
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// A docker save archive's layers are tar streams: compressed or not, as they are.
const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// A config or a manifest.json larger than this is not one.
const MAX_JSON: u64 = 4 << 20;
/// At most this much of the archive is held in memory as candidate configs: the JSON
/// files (`<id>.json`, or `blobs/sha256/...` of Docker's newer layout) up to `MAX_JSON`.
const MAX_KEPT: u64 = 64 << 20;

#[derive(Clone, Debug)]
pub struct PushImages {
    pub member: String,
    /// `host:port`.
    pub registry: String,
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

/// `action` is the step's `PushImages`; `member` its member, checked to be an image one.
pub fn prepare(inputs: &Inputs, member: &str, action: &Action, step: &str) -> Result<PushImages> {
    let Action::PushImages { registry, prefix, username, password, track_tags, .. } = action else {
        return Err(Error::internal("push_images::prepare takes a push-images step"));
    };
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
        let Action::PushImages { member: other, .. } = &step.action else { continue };
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

    pub fn describe(&self) -> String {
        let auth = match &self.user {
            Some(user) => format!(" as {user}"),
            None => String::new(),
        };
        let track = if self.track_tags { ", with track tags" } else { "" };
        let prefix = self.prefix.as_deref().map(|p| format!(" under {p}/")).unwrap_or_default();
        format!("push the images of {} to {}{auth}{prefix}{track}: {}", self.member, self.registry, self.destinations().join(", "))
    }

    pub fn needs(&self) -> Needs {
        Needs { registry: Some(self.registry.clone()), ..Needs::default() }
    }

    pub fn run(&self, ctx: &RunContext) -> Result<String> {
        let member = ctx.bundle.member(&self.member)?;
        let archive = read_archive(ctx.bundle.content_reader(member)?, &self.member)?;
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

fn entry_path<R: Read>(entry: &tar::Entry<R>) -> String {
    let path = entry.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    path.trim_start_matches("./").to_string()
}

/// A `docker save` archive as push-images needs it: each image's config (in memory)
/// and layers (digest and size; the bytes stay in the stream).
struct Archive {
    images: Vec<ArchiveImage>,
    /// Archive path → (digest, size) of every layer file.
    layers: HashMap<String, (String, u64)>,
}

struct ArchiveImage {
    id: String,
    config: Vec<u8>,
    layers: Vec<Blob>,
}

struct Blob {
    digest: String,
    size: u64,
    media_type: &'static str,
    /// Where the bytes are in the archive; None for the config (held in memory).
    path: Option<String>,
}

impl ArchiveImage {
    fn config_blob(&self) -> Blob {
        Blob { digest: self.id.clone(), size: self.config.len() as u64, media_type: CONFIG_TYPE, path: None }
    }

    /// Every blob of the image, the config first.
    fn blobs(&self) -> impl Iterator<Item = Blob> + '_ {
        std::iter::once(self.config_blob()).chain(self.layers.iter().map(|b| Blob {
            digest: b.digest.clone(),
            size: b.size,
            media_type: b.media_type,
            path: b.path.clone(),
        }))
    }

    /// The OCI image manifest naming the config and the layers as the archive has them.
    fn manifest(&self) -> Vec<u8> {
        let descriptor = |b: &Blob| serde_json::json!({"mediaType": b.media_type, "digest": b.digest, "size": b.size});
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": descriptor(&self.config_blob()),
            "layers": self.layers.iter().map(descriptor).collect::<Vec<_>>(),
        });
        serde_json::to_vec(&manifest).expect("a manifest serializes")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    config: String,
    layers: Vec<String>,
}

/// The first pass: `manifest.json`, the configs, and a digest of every other file
/// (layers are recognised once `manifest.json` names them, which may come last).
fn read_archive(reader: impl Read, member: &str) -> Result<Archive> {
    let mut tar = tar::Archive::new(reader);
    let mut manifest: Option<Vec<SavedImage>> = None;
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let mut digests: HashMap<String, (String, u64, &'static str)> = HashMap::new();
    let mut kept_total = 0u64;
    for entry in tar.entries().map_err(|e| bad_archive(member, e))? {
        crate::interrupt::check()?;
        let mut entry = entry.map_err(|e| bad_archive(member, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry_path(&entry);
        let size = entry.size();
        if path == "manifest.json" {
            let mut text = Vec::new();
            (&mut entry).take(MAX_JSON).read_to_end(&mut text).map_err(|e| bad_archive(member, e))?;
            manifest = Some(serde_json::from_slice(&text).map_err(|e| bad_archive(member, format!("manifest.json: {e}")))?);
            continue;
        }
        let mut hasher = Sha256::new();
        let mut head = [0u8; 4];
        // Only what may be a config is kept: a layer is hashed and let go.
        let keep = size <= MAX_JSON && kept_total + size <= MAX_KEPT && (path.ends_with(".json") || path.starts_with("blobs/"));
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut first = true;
        loop {
            let n = entry.read(&mut buf).map_err(|e| bad_archive(member, e))?;
            if n == 0 {
                break;
            }
            if first {
                head[..n.min(4)].copy_from_slice(&buf[..n.min(4)]);
                first = false;
            }
            hasher.update(&buf[..n]);
            if keep {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        let media_type = match head {
            [0x1f, 0x8b, _, _] => LAYER_GZIP,
            [0x28, 0xb5, 0x2f, 0xfd] => LAYER_ZSTD,
            _ => LAYER_TAR,
        };
        digests.insert(path.clone(), (format!("sha256:{}", hex::encode(hasher.finalize())), size, media_type));
        if keep {
            kept_total += size;
            small.insert(path, kept);
        }
    }
    let manifest = manifest.ok_or_else(|| {
        Error::usage(format!(
            "push-images reads docker save archives (with manifest.json); member {member} has none: build it from `docker save`"
        ))
    })?;
    let mut images = Vec::new();
    let mut layers = HashMap::new();
    for saved in manifest {
        let config = small.get(&saved.config).cloned().ok_or_else(|| bad_archive(member, format!("no config {}", saved.config)))?;
        let id = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
        let mut blobs = Vec::new();
        for layer in &saved.layers {
            let (digest, size, media_type) = digests.get(layer).cloned().ok_or_else(|| bad_archive(member, format!("no layer {layer}")))?;
            layers.insert(layer.clone(), (digest.clone(), size));
            blobs.push(Blob { digest, size, media_type, path: Some(layer.clone()) });
        }
        images.push(ArchiveImage { id, config, layers: blobs });
    }
    Ok(Archive { images, layers })
}

/// The registry API, one request per connection.
struct Client<'a> {
    address: &'a str,
    auth: Option<&'a str>,
}

impl Client<'_> {
    fn headers<'h>(&'h self, extra: &[(&'h str, &'h str)]) -> Vec<(&'h str, &'h str)> {
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(auth) = self.auth {
            headers.push(("Authorization", auth));
        }
        headers
    }

    fn send(&self, method: &str, path: &str, extra: &[(&str, &str)], body: Option<Body<'_>>) -> Result<http::Response> {
        let response = http::tcp_request_with_body(self.address, method, path, &self.headers(extra), body, TIMEOUT).map_err(|e| {
            Error::host(format!(
                "the site registry {} did not answer {method} {path} ({e}); check that it runs and this host reaches it",
                self.address
            ))
        })?;
        match response.status {
            401 if self.auth.is_some() => Err(Error::usage(format!(
                "the site registry {} refused the user name and password given (401); check the credentials in the config",
                self.address
            ))),
            401 => Err(Error::usage(format!(
                "the site registry {} asks for credentials (401); set the user name and password this step takes in the config",
                self.address
            ))),
            403 => {
                Err(Error::usage(format!("the site registry {} refused {method} {path} (403): the user may not push there", self.address)))
            }
            _ => Ok(response),
        }
    }

    fn unexpected(&self, what: &str, response: &http::Response) -> Error {
        let body = String::from_utf8_lossy(&response.body[..response.body.len().min(300)]).into_owned();
        Error::host(format!(
            "the site registry {} answered {} to {what}: {}",
            self.address,
            response.status,
            rules::printable(body.trim(), 300)
        ))
    }

    fn check_access(&self) -> Result<()> {
        let response = self.send("GET", "/v2/", &[], None)?;
        if response.status == 200 {
            return Ok(());
        }
        Err(self.unexpected("GET /v2/ (is it a docker registry?)", &response))
    }

    fn has_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        let path = format!("/v2/{}/blobs/{}", http::encode_path(repo), http::encode(digest));
        let response = self.send("HEAD", &path, &[], None)?;
        match response.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.unexpected(&format!("HEAD {path}"), &response)),
        }
    }

    /// Mounts a blob `from` another repository; false when the registry would rather
    /// have it sent (it answers 202 and opens an upload, left to expire).
    fn mount(&self, repo: &str, digest: &str, from: &str) -> Result<bool> {
        let path = format!("/v2/{}/blobs/uploads/?mount={}&from={}", http::encode_path(repo), http::encode(digest), http::encode(from));
        let response = self.send(
            "POST",
            &path,
            &[],
            Some(Body { content_type: "application/octet-stream", length: 0, reader: &mut std::io::empty() }),
        )?;
        match response.status {
            201 => Ok(true),
            202 => Ok(false),
            _ => Err(self.unexpected(&format!("POST {path}"), &response)),
        }
    }

    fn upload(&self, repo: &str, digest: &str, size: u64, reader: &mut dyn Read) -> Result<()> {
        let start = format!("/v2/{}/blobs/uploads/", http::encode_path(repo));
        let response = self.send(
            "POST",
            &start,
            &[],
            Some(Body { content_type: "application/octet-stream", length: 0, reader: &mut std::io::empty() }),
        )?;
        if response.status != 202 {
            return Err(self.unexpected(&format!("POST {start}"), &response));
        }
        let location = response.header("Location").ok_or_else(|| self.unexpected("an upload without a Location", &response))?;
        let location = self.local_path(location)?;
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={}", http::encode(digest));
        let response = self.send("PUT", &put, &[], Some(Body { content_type: "application/octet-stream", length: size, reader }))?;
        if response.status != 201 {
            return Err(self.unexpected(&format!("the upload of {}", short(digest)), &response));
        }
        Ok(())
    }

    /// A `Location` as a path on this registry: relative, or absolute on the same host.
    fn local_path(&self, location: &str) -> Result<String> {
        let path = match location.strip_prefix("http://") {
            Some(rest) => rest.find('/').map(|at| &rest[at..]).unwrap_or("/"),
            None if location.starts_with('/') => location,
            None => {
                return Err(Error::host(format!(
                    "the site registry {} sends uploads to {}, which this client cannot follow (only plain http on the same address)",
                    self.address,
                    rules::printable(location, 200)
                )))
            }
        };
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::host(format!("the site registry {} answered with an upload location that is not one", self.address)));
        }
        Ok(path.to_string())
    }

    fn put_manifest(&self, repo: &str, tag: &str, manifest: &[u8]) -> Result<()> {
        let path = format!("/v2/{}/manifests/{}", http::encode_path(repo), http::encode(tag));
        let response = self.send(
            "PUT",
            &path,
            &[],
            Some(Body { content_type: MANIFEST_TYPE, length: manifest.len() as u64, reader: &mut &manifest[..] }),
        )?;
        if response.status != 201 {
            return Err(self.unexpected(&format!("PUT {path}"), &response));
        }
        Ok(())
    }

    /// The digest of the manifest `repo:tag` names, from the bytes the registry sends.
    fn manifest_digest(&self, repo: &str, tag: &str) -> Result<String> {
        let path = format!("/v2/{}/manifests/{}", http::encode_path(repo), http::encode(tag));
        let response = self.send("GET", &path, &[("Accept", MANIFEST_TYPE)], None)?;
        if response.status != 200 {
            return Err(self.unexpected(&format!("GET {path}"), &response));
        }
        Ok(format!("sha256:{}", hex::encode(Sha256::digest(&response.body))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, name, *data).unwrap();
        }
        tar.into_inner().unwrap()
    }

    fn hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[test]
    fn both_docker_save_layouts_give_configs_and_layer_digests() {
        let layer = tar_of(&[("a", b"layer bytes")]);
        let gz = [&[0x1f, 0x8b][..], b"not really gzip"].concat();
        let config = br#"{"rootfs":{"diff_ids":[]}}"#;
        // Docker before 25: <id>.json and <id>/layer.tar.
        let legacy = tar_of(&[
            (
                "manifest.json",
                format!(r#"[{{"Config":"{}.json","RepoTags":["a:1"],"Layers":["l/layer.tar","g/layer.tar"]}}]"#, hex(config)).as_bytes(),
            ),
            (&format!("{}.json", hex(config)), config),
            ("l/layer.tar", &layer),
            ("g/layer.tar", &gz),
        ]);
        // Docker 25 and later: an OCI layout, with manifest.json naming its blobs.
        let (c, l) = (hex(config), hex(&layer));
        let oci = tar_of(&[
            (&format!("blobs/sha256/{l}"), &layer),
            (&format!("blobs/sha256/{c}"), config),
            ("manifest.json", format!(r#"[{{"Config":"blobs/sha256/{c}","RepoTags":["a:1"],"Layers":["blobs/sha256/{l}"]}}]"#).as_bytes()),
        ]);
        for (what, archive, layers) in [("legacy", legacy, 2), ("oci", oci, 1)] {
            let read = read_archive(&archive[..], "m").unwrap();
            let image = &read.images[0];
            assert_eq!(image.id, format!("sha256:{c}"), "{what}");
            assert_eq!(image.layers.len(), layers, "{what}");
            assert_eq!(image.layers[0].digest, format!("sha256:{l}"), "{what}");
            assert_eq!(image.layers[0].media_type, LAYER_TAR, "{what}");
            if layers == 2 {
                assert_eq!(image.layers[1].media_type, LAYER_GZIP);
            }
            let manifest: serde_json::Value = serde_json::from_slice(&image.manifest()).unwrap();
            assert_eq!(manifest["config"]["digest"], format!("sha256:{c}"), "{what}");
        }
        let no_manifest = tar_of(&[("index.json", b"{}")]);
        let err = read_archive(&no_manifest[..], "m").err().unwrap();
        assert!(err.message.contains("push-images reads docker save archives (with manifest.json)"), "{}", err.message);
    }

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
