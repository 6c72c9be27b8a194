//! `wait-for`: waits until a TCP port accepts connections or an HTTP URL answers with
//! 2xx or 3xx, within the step's timeout: what a step that needs a service waits on.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::values as config;
use super::{Inputs, RunContext};
use crate::http;
use crate::interrupt;
use airbin_format::error::{Error, Result};
use airbin_format::Seconds;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub(crate) enum Target {
    Tcp(String),
    /// `host:port` and the path of an `http://` URL.
    Http {
        address: String,
        path: String,
        url: String,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct WaitFor {
    pub(crate) target: Target,
    timeout: Duration,
}

pub(crate) fn prepare(inputs: &Inputs, tcp: Option<&str>, url: Option<&str>, timeout: Option<Seconds>, step: &str) -> Result<WaitFor> {
    let needed_by = format!("step '{step}'");
    let target = match (tcp, url) {
        (Some(tcp), None) => {
            let address = config::expand(tcp, inputs.config, &needed_by)?;
            if address.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()) {
                return Err(Error::usage(format!("{needed_by} waits for '{address}', which is not host:port")));
            }
            Target::Tcp(address)
        }
        (None, Some(url)) => {
            let url = config::expand(url, inputs.config, &needed_by)?;
            let rest = url
                .strip_prefix("http://")
                .ok_or_else(|| Error::usage(format!("{needed_by} waits for '{url}': only http:// URLs are supported")))?;
            let (address, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
            let address = if address.contains(':') { address.to_string() } else { format!("{address}:80") };
            Target::Http { address, path, url: url.clone() }
        }
        _ => return Err(Error::integrity(format!("{needed_by} must name exactly one of tcp or http"))),
    };
    Ok(WaitFor { target, timeout: timeout.map_or(DEFAULT_TIMEOUT, Seconds::duration) })
}

impl WaitFor {
    pub(crate) fn describe(&self) -> String {
        match &self.target {
            Target::Tcp(address) => format!("wait up to {} for {address} to accept connections", humantime::format_duration(self.timeout)),
            Target::Http { url, .. } => format!("wait up to {} for {url} to answer", humantime::format_duration(self.timeout)),
        }
    }

    pub(crate) fn run(&self, ctx: &RunContext) -> Result<String> {
        let timeout = ctx.timeout.unwrap_or(self.timeout);
        let started = Instant::now();
        loop {
            interrupt::check()?;
            let last = match self.probe() {
                Ok(()) => return Ok(format!("answered after {:.1}s", started.elapsed().as_secs_f64())),
                Err(why) => why,
            };
            if started.elapsed() >= timeout {
                let what = match &self.target {
                    Target::Tcp(address) => address.clone(),
                    Target::Http { url, .. } => url.clone(),
                };
                return Err(Error::step(format!(
                    "timed out after {}: {what} did not answer ({last}); start the service it names, or raise the step's timeout",
                    humantime::format_duration(timeout)
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    fn probe(&self) -> std::result::Result<(), String> {
        match &self.target {
            Target::Tcp(address) => connect(address).map(drop),
            Target::Http { address, path, .. } => {
                let response = http::tcp_request(address, "GET", path, &[], Duration::from_secs(5)).map_err(|e| e.to_string())?;
                match response.status {
                    200..=399 => Ok(()),
                    status => Err(format!("HTTP {status}")),
                }
            }
        }
    }
}

fn connect(address: &str) -> std::result::Result<TcpStream, String> {
    let addr = address.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or_else(|| format!("{address} resolves to nothing"))?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())
}
