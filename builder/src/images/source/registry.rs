//! A registry, over the registry API v2: HTTPS with the system's roots and the site's
//! CA (`ca:`), plain HTTP for loopback (or `insecure: true`), basic credentials and
//! Bearer tokens from the realm the registry names, and retries with backoff for what a
//! network or a busy registry does now and then.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airbin_format::error::{Error, Result};

use super::super::manifest::{media_type_of, ACCEPT};
use super::super::reference::Reference;
use super::auth::{basic, bearer_challenge};
use super::{Fetched, ImageSource};

/// Attempts a request gets when the network or the registry fails on it.
const ATTEMPTS: u32 = 4;
/// A manifest larger than this is not one.
const MAX_MANIFEST: u64 = 4 << 20;

pub(crate) struct Registry {
    /// As the spec names it (`127.0.0.1:5000`, `registry.example`).
    host: String,
    /// `https://host` (`http://` for loopback or `insecure`).
    base: String,
    agent: ureq::Agent,
    credentials: Option<(String, String)>,
    /// The `Authorization` a repository's requests carry (a token once one was issued).
    authorization: Mutex<HashMap<String, String>>,
}

fn loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

impl Registry {
    /// `from` is `host[:port]`, or with a scheme to say how to speak to it: HTTPS unless
    /// the host is loopback or `insecure` is set, and always with a `ca`.
    pub(crate) fn new(from: &str, insecure: bool, ca: Option<&Path>, credentials: Option<(String, String)>) -> Result<Registry> {
        let (scheme, host) = match from.split_once("://") {
            Some((scheme @ ("http" | "https"), host)) => (scheme, host),
            Some((other, _)) => return Err(Error::usage(format!("from: {from}: a registry is spoken to over http or https, not {other}"))),
            None if ca.is_some() => ("https", from),
            None if insecure || loopback(from) => ("http", from),
            None => ("https", from),
        };
        let host = host.trim_end_matches('/').to_string();
        let api_host = if host == "docker.io" || host == "index.docker.io" { "registry-1.docker.io".to_string() } else { host.clone() };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(120))
            .tls_config(tls_config(ca)?)
            .build();
        Ok(Registry { host, base: format!("{scheme}://{api_host}"), agent, credentials, authorization: Mutex::new(HashMap::new()) })
    }

    fn repository(&self, reference: &Reference) -> String {
        match self.base.ends_with("registry-1.docker.io") {
            true => reference.on_docker_hub(),
            false => reference.repository.clone(),
        }
    }

    /// A GET on the repository's `path`, authorised (a token fetched on the registry's
    /// challenge), retried on network errors, 429 and 5xx.
    fn get(&self, repository: &str, path: &str, accept: Option<&str>) -> std::result::Result<ureq::Response, String> {
        let url = format!("{}/v2/{repository}/{path}", self.base);
        let mut challenged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.agent.get(&url);
            if let Some(accept) = accept {
                request = request.set("Accept", accept);
            }
            let authorization = self.authorization.lock().expect("no panic holding it").get(repository).cloned();
            let authorization = authorization.or_else(|| self.credentials.as_ref().map(|(u, p)| basic(u, p)));
            if let Some(value) = &authorization {
                request = request.set("Authorization", value);
            }
            match request.call() {
                Ok(response) => return Ok(response),
                Err(ureq::Error::Status(401, response)) if !challenged => {
                    challenged = true;
                    let header = response.header("WWW-Authenticate").unwrap_or_default().to_string();
                    self.answer_challenge(repository, &header)?;
                }
                Err(ureq::Error::Status(401, _)) => {
                    return Err(match &self.credentials {
                        Some(_) => "the registry refused the credentials (401): check username and password (or docker login)".into(),
                        None => "the registry wants credentials (401): docker login to it, or give username and password".into(),
                    })
                }
                Err(ureq::Error::Status(404, _)) => return Err("the registry has no such manifest or blob (404)".into()),
                Err(ureq::Error::Status(code, _)) if (code == 429 || code >= 500) && attempt < ATTEMPTS => backoff(attempt),
                Err(ureq::Error::Status(code, response)) => {
                    let body = response.into_string().unwrap_or_default();
                    return Err(format!("the registry answered {code}: {}", body.chars().take(200).collect::<String>().trim()));
                }
                Err(ureq::Error::Transport(e)) if attempt < ATTEMPTS && !is_tls(&e) => backoff(attempt),
                Err(ureq::Error::Transport(e)) if is_tls(&e) => {
                    return Err(format!("TLS to {} failed ({e}): give the registry's CA certificate with `ca:`", self.host))
                }
                Err(ureq::Error::Transport(e)) => {
                    return Err(format!("cannot reach {} ({e}): check the address in from: and that the registry is up", self.host))
                }
            }
        }
    }

    /// A Bearer challenge: a token from the realm (with the credentials, if any);
    /// a Basic one: the credentials, which must exist.
    fn answer_challenge(&self, repository: &str, header: &str) -> std::result::Result<(), String> {
        let Some(challenge) = bearer_challenge(header) else {
            let (user, password) = self
                .credentials
                .as_ref()
                .ok_or("the registry wants credentials (401): docker login to it, or give username and password")?;
            self.authorization.lock().expect("no panic holding it").insert(repository.to_string(), basic(user, password));
            return Ok(());
        };
        let mut request = self.agent.get(&challenge.realm);
        if let Some(service) = &challenge.service {
            request = request.query("service", service);
        }
        let scope = challenge.scope.clone().unwrap_or_else(|| format!("repository:{repository}:pull"));
        request = request.query("scope", &scope);
        if let Some((user, password)) = &self.credentials {
            request = request.set("Authorization", &basic(user, password));
        }
        let response = request.call().map_err(|e| format!("the token service at {} refused ({e})", challenge.realm))?;
        let body: serde_json::Value =
            serde_json::from_reader(response.into_reader()).map_err(|e| format!("the token service answered no JSON ({e})"))?;
        let token =
            body.get("token").or_else(|| body.get("access_token")).and_then(|t| t.as_str()).ok_or("the token service gave no token")?;
        self.authorization.lock().expect("no panic holding it").insert(repository.to_string(), format!("Bearer {token}"));
        Ok(())
    }
}

fn backoff(attempt: u32) {
    std::thread::sleep(Duration::from_millis(250 << attempt.min(5)));
}

fn is_tls(e: &ureq::Transport) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("certificate") || text.contains("tls") || text.contains("handshake")
}

fn tls_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = ca {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
            .map_err(|e| Error::usage(format!("ca: {} cannot be read as PEM certificates ({e})", ca.display())))?;
        let mut found = 0;
        for cert in certs {
            let cert = cert.map_err(|e| Error::usage(format!("ca: {} holds a bad certificate ({e})", ca.display())))?;
            roots.add(cert).map_err(|e| Error::usage(format!("ca: {} holds a certificate rustls refuses ({e})", ca.display())))?;
            found += 1;
        }
        if found == 0 {
            return Err(Error::usage(format!(
                "ca: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the site CA's certificate file",
                ca.display()
            )));
        }
    }
    // ring: the provider ureq 2 itself is built with.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl ImageSource for Registry {
    fn name(&self) -> String {
        self.host.clone()
    }

    fn manifest(&self, reference: &Reference, at: &str) -> std::result::Result<Fetched, String> {
        let repository = self.repository(reference);
        let response = self.get(&repository, &format!("manifests/{at}"), Some(ACCEPT))?;
        let served = response.content_type().to_string();
        let bytes = super::super::cache::read_capped(&mut response.into_reader(), MAX_MANIFEST)
            .map_err(|e| format!("reading the manifest ({e})"))?;
        Ok(Fetched { media_type: media_type_of(&bytes, &served), bytes })
    }

    fn blob(&self, reference: &Reference, digest: &str, out: &mut dyn Write) -> std::result::Result<(), String> {
        let repository = self.repository(reference);
        let response = self.get(&repository, &format!("blobs/{digest}"), None)?;
        std::io::copy(&mut response.into_reader(), out).map_err(|e| format!("the download of {digest} broke off ({e})"))?;
        Ok(())
    }
}
