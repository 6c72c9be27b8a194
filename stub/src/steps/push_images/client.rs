//! The registry API (distribution spec) as `push-images` speaks it: one request per
//! connection, every answer checked.

use std::io::Read;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::archive::MANIFEST_TYPE;
use crate::http::{self, Body};
use airbin_format::error::{Error, Result};
use airbin_format::rules;

const TIMEOUT: Duration = Duration::from_secs(120);

/// The registry API, one request per connection.
pub(crate) struct Client<'a> {
    pub(crate) address: &'a str,
    /// The `Authorization` header's value, when credentials are given.
    pub(crate) auth: Option<&'a str>,
}

impl Client<'_> {
    pub(crate) fn headers<'h>(&'h self, extra: &[(&'h str, &'h str)]) -> Vec<(&'h str, &'h str)> {
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(auth) = self.auth {
            headers.push(("Authorization", auth));
        }
        headers
    }

    pub(crate) fn send(&self, method: &str, path: &str, extra: &[(&str, &str)], body: Option<Body<'_>>) -> Result<http::Response> {
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

    pub(crate) fn unexpected(&self, what: &str, response: &http::Response) -> Error {
        let body = String::from_utf8_lossy(&response.body[..response.body.len().min(300)]).into_owned();
        Error::host(format!(
            "the site registry {} answered {} to {what}: {}",
            self.address,
            response.status,
            rules::printable(body.trim(), 300)
        ))
    }

    pub(crate) fn check_access(&self) -> Result<()> {
        let response = self.send("GET", "/v2/", &[], None)?;
        if response.status == 200 {
            return Ok(());
        }
        Err(self.unexpected("GET /v2/ (is it a docker registry?)", &response))
    }

    pub(crate) fn has_blob(&self, repo: &str, digest: &str) -> Result<bool> {
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
    pub(crate) fn mount(&self, repo: &str, digest: &str, from: &str) -> Result<bool> {
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

    pub(crate) fn upload(&self, repo: &str, digest: &str, size: u64, reader: &mut dyn Read) -> Result<()> {
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
            return Err(self.unexpected(&format!("the upload of {}", super::short(digest)), &response));
        }
        Ok(())
    }

    /// A `Location` as a path on this registry: relative, or absolute on the same host.
    pub(crate) fn local_path(&self, location: &str) -> Result<String> {
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

    pub(crate) fn put_manifest(&self, repo: &str, tag: &str, manifest: &[u8]) -> Result<()> {
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
    pub(crate) fn manifest_digest(&self, repo: &str, tag: &str) -> Result<String> {
        let path = format!("/v2/{}/manifests/{}", http::encode_path(repo), http::encode(tag));
        let response = self.send("GET", &path, &[("Accept", MANIFEST_TYPE)], None)?;
        if response.status != 200 {
            return Err(self.unexpected(&format!("GET {path}"), &response));
        }
        Ok(format!("sha256:{}", hex::encode(Sha256::digest(&response.body))))
    }
}
