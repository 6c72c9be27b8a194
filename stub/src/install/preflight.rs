//! Preflight: everything the steps about to run need of this host, checked before
//! anything lands, and every problem reported at once with what to do about it. A
//! field engineer who knows better skips a check by name (`--skip-preflight NAME`).

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::HumanBytes;

use crate::engines::{self, Engine};
use crate::error::{Error, ExitClass, Result};
use crate::format::{BundleMeta, Requires};
use crate::fsx;
use crate::steps::{Needs, Place};

/// The checks, by the names `--skip-preflight` takes.
pub const CHECKS: [&str; 9] = ["root", "arch", "space", "writable", "engine", "registry", "commands", "ports", "delta"];

struct Problem {
    check: &'static str,
    class: ExitClass,
    message: String,
}

/// What preflight found that the run uses.
pub struct Ready {
    /// The engine images load into, when a step loads images.
    pub engine: Option<Engine>,
}

pub struct Host<'a> {
    pub bundle: &'a BundleMeta,
    pub requires: &'a Requires,
    pub skip: &'a [String],
    pub containerd_namespace: &'a str,
}

/// Checks `needs` (of every step that will run, and of staging) on this host.
pub fn check(host: &Host, needs: &[Needs]) -> Result<Ready> {
    for name in host.skip {
        if !CHECKS.contains(&name.as_str()) {
            return Err(Error::usage(format!("--skip-preflight {name}: no such check; the checks are {}", CHECKS.join(", "))));
        }
    }
    let skipped = |check: &str| host.skip.iter().any(|s| s == check);
    let mut problems = Vec::new();
    let mut add = |check: &'static str, class: ExitClass, message: String| {
        if !skipped(check) {
            problems.push(Problem { check, class, message });
        }
    };

    if host.requires.root && !nix::unistd::geteuid().is_root() {
        add(
            "root",
            ExitClass::Permission,
            format!("the bundle must be installed as root: run it with sudo ({} {})", "sudo", crate::shell::bundle()),
        );
    }
    // The launcher checks `uname -m` before it copies the stub; this catches a runtime
    // started some other way (`--bundle` by hand, an emulator).
    let native = crate::format::arch::native();
    if host.bundle.arch != native {
        add(
            "arch",
            ExitClass::Host,
            format!(
                "this bundle is for {}; this host is {}: use the {native} build of this bundle",
                host.bundle.arch,
                std::env::consts::ARCH
            ),
        );
    }
    for message in space_problems(needs) {
        add("space", ExitClass::Space, message);
    }
    for message in write_problems(needs) {
        add("writable", ExitClass::Permission, message);
    }
    for message in needs.iter().flat_map(|n| &n.missing) {
        add("delta", ExitClass::Host, message.clone());
    }

    let mut engine = None;
    if let Some(choice) = needs.iter().find_map(|n| n.engine.clone()) {
        match engines::detect(choice.as_deref(), host.containerd_namespace) {
            Ok(found) => engine = Some(found),
            Err(e) if skipped("engine") => {
                crate::runlog::line(&format!("preflight engine skipped: {}", e.message));
                engine = Some(Engine::DockerCli);
            }
            Err(e) => {
                let loads: Vec<&String> = needs.iter().flat_map(|n| &n.loads).collect();
                let loads: Vec<&str> = loads.iter().map(|s| s.as_str()).collect();
                add("engine", e.class, format!("cannot load {}: {}", loads.join(", "), e.message))
            }
        }
    }
    let mut registries: Vec<&String> = needs.iter().filter_map(|n| n.registry.as_ref()).collect();
    registries.dedup();
    for address in registries {
        if let Err(why) = answers(address) {
            add(
                "registry",
                ExitClass::Host,
                format!("the registry at {address} does not answer ({why}): start it before the install, or fix the address in the config"),
            );
        }
    }
    let mut programs: Vec<&String> = needs.iter().flat_map(|n| &n.programs).collect();
    programs.sort();
    programs.dedup();
    for program in programs {
        let found = if program.contains('/') {
            std::path::Path::new(program).exists() || !std::path::Path::new(program).is_absolute()
        } else {
            crate::steps::find_on_path(program, None).is_some()
        };
        if !found {
            add("commands", ExitClass::Host, format!("{program}, which a command step runs, is not on PATH: install it"));
        }
    }
    for port in &host.requires.ports {
        if let Err(e) = TcpListener::bind(("0.0.0.0", *port)) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                add("ports", ExitClass::Host, format!("port {port} is in use: stop what listens on it (ss -ltnp | grep :{port})"));
            }
        }
    }

    if problems.is_empty() {
        return Ok(Ready { engine });
    }
    let class = match problems.iter().all(|p| p.class == problems[0].class) {
        true => problems[0].class,
        false => ExitClass::Host,
    };
    if problems.len() == 1 {
        let p = &problems[0];
        return Err(Error::new(class, format!("preflight {}: {} (skip this check with --skip-preflight {})", p.check, p.message, p.check)));
    }
    let mut message = format!(
        "this host is not ready for {} {}: {} problems; fix them and run again (a check you know better: --skip-preflight NAME)",
        host.bundle.name,
        host.bundle.version,
        problems.len()
    );
    for p in &problems {
        message.push_str(&format!("\n  - {}: {}", p.check, p.message));
    }
    Err(Error::new(class, message))
}

/// Free space, per file system: everything that lands on one file system must fit there
/// together, with the margin kept for the file system's own overhead.
fn space_problems(needs: &[Needs]) -> Vec<String> {
    let mut by_fs: BTreeMap<u64, (PathBuf, u64, Vec<&Place>)> = BTreeMap::new();
    for place in needs.iter().flat_map(|n| &n.space).filter(|p| p.bytes > 0) {
        let at = fsx::existing_ancestor(&place.path);
        let device = std::fs::metadata(&at).map_or(0, |m| m.dev());
        let entry = by_fs.entry(device).or_insert_with(|| (at.clone(), 0, Vec::new()));
        entry.1 += place.bytes;
        entry.2.push(place);
    }
    let mut problems = Vec::new();
    for (at, needed, places) in by_fs.into_values() {
        let available = fsx::available_bytes(&at).unwrap_or(u64::MAX);
        if needed.saturating_add(fsx::SPACE_MARGIN) > available {
            let parts: Vec<String> =
                places.iter().map(|p| format!("{} {} for {}", p.path.display(), HumanBytes(p.bytes), p.what)).collect();
            problems.push(format!(
                "not enough free space on the file system of {}: {} ({needed} bytes) needed ({}) plus a {} margin for the file system, {} ({available} bytes) available; free space there{}",
                at.display(),
                HumanBytes(needed),
                parts.join(", "),
                HumanBytes(fsx::SPACE_MARGIN),
                HumanBytes(available),
                elsewhere(&places),
            ));
        }
    }
    problems
}

/// ", or choose another place: --target DIR (staging), --set tools_dir=DIR (step 'x')".
fn elsewhere(places: &[&Place]) -> String {
    let ways: Vec<String> = places.iter().filter_map(|p| p.moved_by.as_ref().map(|m| format!("{m} ({})", p.what))).collect();
    match ways.is_empty() {
        true => String::new(),
        false => format!(", or choose another place: {}", ways.join(", ")),
    }
}

/// Every place a step writes must be writable by this user: the place itself when it
/// exists, else the directory it would be made in.
fn write_problems(needs: &[Needs]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    for place in needs.iter().flat_map(|n| &n.space) {
        let at = fsx::existing_ancestor(&place.path);
        if !seen.insert((at.clone(), place.what.clone())) {
            continue;
        }
        if let Some(why) = fsx::unsafe_place(&place.path) {
            problems.push(format!(
                "{}, where {} writes: {why}, so another user could steer what is written there; choose a directory of your own",
                place.path.display(),
                place.what
            ));
            continue;
        }
        let flags = nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK;
        let why = match nix::unistd::access(&at, flags) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EROFS) => "is on a read-only file system",
            Err(_) => "is not writable by this user",
        };
        let shown = if at == place.path {
            format!("{}", place.path.display())
        } else {
            format!("{} (to be made in {})", place.path.display(), at.display())
        };
        let user = if nix::unistd::geteuid().is_root() {
            String::new()
        } else {
            format!("; run as a user who may write there (root: sudo {})", crate::shell::bundle())
        };
        let other = place.moved_by.as_ref().map(|m| format!(", or choose another place: {m}")).unwrap_or_default();
        problems.push(format!("{shown}, where {} writes, {why}{user}{other}", place.what));
    }
    problems
}

/// Whether a registry answers HTTP at `address` (any status: it may want a login).
fn answers(address: &str) -> std::result::Result<(), String> {
    let addr = address.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    crate::http::tcp_request(address, "GET", "/v2/", &[], Duration::from_secs(10)).map(drop).map_err(|e| e.to_string())
}
