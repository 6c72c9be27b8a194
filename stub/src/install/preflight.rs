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
use crate::fsx;
use crate::steps::{Needs, Place};
use airbin_format::error::{Error, ExitClass, Result};
use airbin_format::{BundleMeta, Requires};

/// The checks, by the names `--skip-preflight` takes.
pub(crate) const CHECKS: [&str; 9] = ["root", "arch", "space", "writable", "engine", "registry", "commands", "ports", "delta"];

struct Problem {
    check: &'static str,
    class: ExitClass,
    message: String,
}

/// What preflight found that the run uses.
#[derive(Debug)]
pub(crate) struct Ready {
    /// The engine images load into, when a step loads images.
    pub(crate) engine: Option<Engine>,
}

pub(crate) struct Host<'a> {
    pub(crate) bundle: &'a BundleMeta,
    pub(crate) requires: &'a Requires,
    pub(crate) skip: &'a [String],
    pub(crate) containerd_namespace: &'a str,
}

/// The problems found so far, less those the engineer skips by name.
struct Problems<'a> {
    skip: &'a [String],
    found: Vec<Problem>,
}

impl Problems<'_> {
    fn skipped(&self, check: &str) -> bool {
        self.skip.iter().any(|s| s == check)
    }

    fn add(&mut self, check: &'static str, class: ExitClass, message: String) {
        if !self.skipped(check) {
            self.found.push(Problem { check, class, message });
        }
    }
}

/// Checks `needs` (of every step that will run, and of staging) on this host.
pub(crate) fn check(host: &Host, needs: &[Needs]) -> Result<Ready> {
    for name in host.skip {
        if !CHECKS.contains(&name.as_str()) {
            return Err(Error::usage(format!("--skip-preflight {name}: no such check; the checks are {}", CHECKS.join(", "))));
        }
    }
    let mut problems = Problems { skip: host.skip, found: Vec::new() };
    check_root_and_arch(host, &mut problems);
    space_problems(needs).into_iter().for_each(|m| problems.add("space", ExitClass::Space, m));
    write_problems(needs).into_iter().for_each(|m| problems.add("writable", ExitClass::Permission, m));
    needs.iter().flat_map(|n| &n.missing).for_each(|m| problems.add("delta", ExitClass::Host, m.clone()));
    let engine = find_engine(host, needs, &mut problems);
    check_registries(needs, &mut problems);
    check_programs(needs, &mut problems);
    check_ports(host, &mut problems);
    match problems.found.is_empty() {
        true => Ok(Ready { engine }),
        false => Err(report(host, &problems.found)),
    }
}

fn check_root_and_arch(host: &Host, problems: &mut Problems) {
    if host.requires.root && !nix::unistd::geteuid().is_root() {
        let how = format!("the bundle must be installed as root: run it with sudo (sudo {})", crate::shell::bundle());
        problems.add("root", ExitClass::Permission, how);
    }
    // The launcher checks `uname -m` before it copies the stub; this catches a runtime
    // started some other way (`--bundle` by hand, an emulator).
    let native = airbin_format::arch::native();
    if host.bundle.arch != native {
        let (arch, here) = (&host.bundle.arch, std::env::consts::ARCH);
        problems.add(
            "arch",
            ExitClass::Host,
            format!("this bundle is for {arch}; this host is {here}: use the {native} build of this bundle"),
        );
    }
}

/// The engine images load into, when a step loads any.
fn find_engine(host: &Host, needs: &[Needs], problems: &mut Problems) -> Option<Engine> {
    let choice = needs.iter().find_map(|n| n.engine.clone())?;
    match engines::detect(choice.as_deref(), host.containerd_namespace) {
        Ok(found) => Some(found),
        Err(e) if problems.skipped("engine") => {
            crate::ui::runlog::line(&format!("preflight engine skipped: {}", e.message));
            Some(Engine::DockerCli)
        }
        Err(e) => {
            let loads: Vec<&str> = needs.iter().flat_map(|n| &n.loads).map(String::as_str).collect();
            problems.add("engine", e.class, format!("cannot load {}: {}", loads.join(", "), e.message));
            None
        }
    }
}

fn check_registries(needs: &[Needs], problems: &mut Problems) {
    let mut registries: Vec<&String> = needs.iter().filter_map(|n| n.registry.as_ref()).collect();
    registries.dedup();
    for address in registries {
        if let Err(why) = answers(address) {
            problems.add(
                "registry",
                ExitClass::Host,
                format!("the registry at {address} does not answer ({why}): start it before the install, or fix the address in the config"),
            );
        }
    }
}

fn check_programs(needs: &[Needs], problems: &mut Problems) {
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
            problems.add("commands", ExitClass::Host, format!("{program}, which a command step runs, is not on PATH: install it"));
        }
    }
}

fn check_ports(host: &Host, problems: &mut Problems) {
    for port in &host.requires.ports {
        if let Err(e) = TcpListener::bind(("0.0.0.0", *port)) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                problems.add("ports", ExitClass::Host, format!("port {port} is in use: stop what listens on it (ss -ltnp | grep :{port})"));
            }
        }
    }
}

/// Every problem in one error: one line for one, a list for more.
fn report(host: &Host, problems: &[Problem]) -> Error {
    let class = match problems.iter().all(|p| p.class == problems[0].class) {
        true => problems[0].class,
        false => ExitClass::Host,
    };
    if let [p] = problems {
        return Error::new(class, format!("preflight {}: {} (skip this check with --skip-preflight {})", p.check, p.message, p.check));
    }
    let mut message = format!(
        "this host is not ready for {} {}: {} problems; fix them and run again (a check you know better: --skip-preflight NAME)",
        host.bundle.name,
        host.bundle.version,
        problems.len()
    );
    for p in problems {
        message.push_str(&format!("\n  - {}: {}", p.check, p.message));
    }
    Error::new(class, message)
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

/// Preflight: whether this host can run the steps still to do, every problem in one
/// report. Runs before anything lands (the lock and the log included).
pub(crate) fn check_host(prepared: &super::Prepared, options: &super::Options) -> Result<Ready> {
    let bundle = prepared.bundle;
    let mut needs: Vec<Needs> = prepared.plan.to_run().map(|s| s.prepared.needs(bundle, &s.name)).collect();
    let staging_bytes: u64 = super::staging::members_to_stage(bundle, &prepared.plan, options).iter().map(|m| m.unpacked_bytes).sum();
    let moved_by = if options.target.is_some() { "another --target DIR" } else { "--target DIR" };
    needs.push(Needs {
        space: vec![crate::steps::Place::new(&prepared.plan.staging, staging_bytes, "staging", Some(moved_by))],
        ..Needs::default()
    });
    needs.push(Needs {
        space: vec![crate::steps::Place::new(&prepared.state.root, 0, "the state directory", Some("AIRBIN_STATE_DIR=DIR"))],
        ..Needs::default()
    });
    let host = Host {
        bundle: &bundle.index.bundle,
        requires: &bundle.index.requires,
        skip: &options.skip_preflight,
        containerd_namespace: &options.containerd_namespace,
    };
    check(&host, &needs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host<'a>(bundle: &'a BundleMeta, requires: &'a Requires, skip: &'a [String]) -> Host<'a> {
        Host { bundle, requires, skip, containerd_namespace: "k8s.io" }
    }

    fn meta() -> BundleMeta {
        BundleMeta {
            name: "p".into(),
            version: "1".into(),
            arch: airbin_format::arch::native().into(),
            description: String::new(),
            hotfix_of: None,
        }
    }

    /// Needs no host can meet: a program nowhere, more bytes than any disk has.
    fn impossible(dir: &std::path::Path) -> Needs {
        Needs {
            space: vec![Place::new(&dir.join("x"), u64::MAX / 4, "step 'huge'", Some("--set dir=DIR"))],
            programs: vec!["airbin-no-such-program".into()],
            ..Needs::default()
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let (meta, requires) = (meta(), Requires::default());
        let err = check(&host(&meta, &requires, &[]), &[impossible(dir.path())]).expect_err("refused");
        assert_eq!(err.class, ExitClass::Host, "a space and a command problem: the host is not ready");
        assert!(err.message.contains("2 problems"), "{}", err.message);
        assert!(
            err.message.contains("- space: not enough free space") && err.message.contains("--set dir=DIR (step 'huge')"),
            "{}",
            err.message
        );
        assert!(err.message.contains("- commands: airbin-no-such-program, which a command step runs, is not on PATH"), "{}", err.message);
    }

    #[test]
    fn a_check_skipped_by_name_is_not_made_and_an_unknown_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (meta, requires) = (meta(), Requires::default());
        let skip = ["space".to_string()];
        let err = check(&host(&meta, &requires, &skip), &[impossible(dir.path())]).expect_err("refused");
        assert!(err.message.starts_with("preflight commands:") && err.message.contains("--skip-preflight commands"), "{}", err.message);
        let skip = ["space".to_string(), "commands".to_string()];
        assert!(check(&host(&meta, &requires, &skip), &[impossible(dir.path())]).is_ok());
        let skip = ["disk".to_string()];
        let err = check(&host(&meta, &requires, &skip), &[]).expect_err("refused");
        assert_eq!(err.class, ExitClass::Usage);
        assert!(err.message.contains("--skip-preflight disk: no such check; the checks are root, arch, space"), "{}", err.message);
    }

    #[test]
    fn a_place_another_user_could_steer_is_a_permission_problem() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let needs = Needs { space: vec![Place::new(&open.join("staging"), 1, "staging", Some("--target DIR"))], ..Needs::default() };
        let (meta, requires) = (meta(), Requires::default());
        let err = check(&host(&meta, &requires, &[]), &[needs]).expect_err("refused");
        assert_eq!(err.class, ExitClass::Permission, "{}", err.message);
        assert!(err.message.contains("preflight writable:") && err.message.contains("another user could steer"), "{}", err.message);
    }
}
