//! `support`: one small `.tar.gz` for the vendor. It holds the logs, the journal, the
//! index, the config with secret-looking values masked, and host facts. It stays small
//! (Gravity's report grew to gigabytes): the newest logs only, each cut to its end.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{open, Context};
use crate::cli::SupportArgs;
use crate::fsx::RemoveOnDrop;
use crate::install::config;
use crate::install::journal::{self, History};
use crate::install::state::StateDir;
use crate::ui::{out_line, print_json, Envelope};
use airbin_format::error::{IoContext, Result};

/// What `support --json` says.
#[derive(Serialize)]
struct Written<'a> {
    file: &'a Path,
    bytes: u64,
    contents: Vec<String>,
}

/// The newest logs taken, and how much of the end of each.
const LOGS: usize = 5;
const LOG_TAIL: u64 = 2 << 20;
const ENGINE_LOG_LINES: usize = 200;

/// `support`: writes the vendor's tarball and prints its path.
pub(crate) fn support(ctx: &Context, args: &SupportArgs) -> Result<()> {
    super::options::refuse_fan_out_flags(&args.fan_out, "support")?;
    let output = args.output.as_deref();
    let bundle = open(ctx)?;
    super::trust::verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    let meta = &bundle.index.bundle;
    let state = StateDir::for_bundle(&meta.name);
    state.check()?;
    let stamp = crate::ui::timestamp().replace(':', "");
    let out = output.map_or_else(|| PathBuf::from(format!("airbin-support-{}-{stamp}.tar.gz", meta.name)), Path::to_path_buf);
    let prefix = format!("airbin-support-{}-{stamp}", meta.name);

    let temp = out
        .with_file_name(crate::fsx::temp_name(&format!(".{}", out.file_name().unwrap_or_default().to_string_lossy()), ".airbin-partial-"));
    let elsewhere = |e: airbin_format::error::Error| match e.class.is_about_a_place() {
        true => e.hint(" (or write it elsewhere: support -o FILE)"),
        false => e,
    };
    let file = crate::fsx::create_new_file(&temp).ctx("creating", &temp).map_err(elsewhere)?;
    let guard = RemoveOnDrop::new(temp.clone());
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, data: &[u8]| -> Result<()> {
        super::tarball::append_bytes(&mut tar, &format!("{prefix}/{name}"), data).ctx("writing", &temp)
    };

    let mut contents = Vec::new();
    let journal_path = state.journal();
    if let Ok(raw) = std::fs::read(&journal_path) {
        add("journal.jsonl", &raw)?;
        contents.push("journal.jsonl".to_string());
    }
    for log in newest_logs(&state.logs()) {
        let name = format!("logs/{}", log.file_name().unwrap_or_default().to_string_lossy());
        add(&name, &tail_of(&log, LOG_TAIL))?;
        contents.push(name);
    }
    add("index.json", &serde_json::to_vec_pretty(&bundle.index).expect("the index serializes"))?;
    contents.push("index.json".into());
    // What is installed (parameters masked when it was written).
    if let Some(installed) = crate::install::record::read(&state) {
        add("installed.json", &serde_json::to_vec_pretty(&installed).expect("a record serializes"))?;
        contents.push("installed.json".into());
    }
    // The answers the last run used (secret ones are in a file of their own, left out).
    if let Ok(raw) = crate::fsx::read_small_nofollow(&state.root.join("answers.json"), 1 << 20) {
        add("answers.json", &raw)?;
        contents.push("answers.json".into());
    }
    if let Some(masked) = masked_config(&bundle, args.config.as_deref(), &state) {
        add("config.masked", masked.as_bytes())?;
        contents.push("config.masked".into());
    }
    let history = History::of(&journal::read(&journal_path));
    add("host.txt", host_facts(&state, &history.places).as_bytes())?;
    contents.push("host.txt".into());
    for (name, text) in engine_logs() {
        add(&name, text.as_bytes())?;
        contents.push(name);
    }
    let gz = tar.into_inner().ctx("writing", &temp)?;
    gz.finish().ctx("writing", &temp).map_err(elsewhere)?.sync_all().ctx("writing", &temp).map_err(elsewhere)?;
    std::fs::rename(guard.disarm(), &out).ctx("writing", &out).map_err(elsewhere)?;
    let bytes = std::fs::metadata(&out).map_or(0, |m| m.len());
    if ctx.ui.json {
        print_json(&Envelope::ok("support", Written { file: &out, bytes, contents }));
    } else {
        out_line(&format!("{}", out.display()));
        ctx.ui.status(format!("wrote {} ({bytes} bytes): send it to the vendor", out.display()));
    }
    Ok(())
}

fn newest_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                .filter(|(_, p)| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    logs.into_iter().rev().take(LOGS).map(|(_, p)| p).collect()
}

/// The last `bytes` of a file.
fn tail_of(path: &Path, bytes: u64) -> Vec<u8> {
    use std::io::{Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else { return Vec::new() };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut out = Vec::new();
    let _ = file.take(bytes).read_to_end(&mut out);
    out
}

/// The config the install would use, else the one it staged, with secrets masked.
fn masked_config(bundle: &airbin_format::Bundle, explicit: Option<&Path>, state: &StateDir) -> Option<String> {
    let staged = state.staging().join("config");
    let (path, source) =
        config::locate(explicit, &bundle.path).or_else(|| staged.exists().then_some((staged, config::Source::BesideBundle)))?;
    let mut config = config::load(&path, source).ok()?;
    for param in bundle.index.parameters.iter().filter(|p| p.secret) {
        config.mark_secret(param.key());
    }
    Some(format!(
        "# {} (values of secret parameters and of keys named like password, token, secret or key are masked)\n{}\n",
        path.display(),
        config.masked_text()
    ))
}

fn host_facts(state: &StateDir, places: &[PathBuf]) -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default().trim().to_string();
    let mut facts = String::new();
    let mut line = |text: String| {
        facts.push_str(&text);
        facts.push('\n');
    };
    line(format!("airbin runtime {}", crate::VERSION));
    line(format!("time: {}", crate::ui::timestamp()));
    line(format!("kernel: {} {} {}", read("/proc/sys/kernel/ostype"), read("/proc/sys/kernel/osrelease"), std::env::consts::ARCH));
    line(format!("hostname: {}", read("/proc/sys/kernel/hostname")));
    let os = read("/etc/os-release");
    line(format!("os: {}", os.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).unwrap_or("unknown").trim_matches('"')));
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map_or("unknown", |m| m.trim_start_matches([' ', '\t', ':']));
    let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    line(format!("cpu: {cpus} x {model}"));
    for mem in read("/proc/meminfo").lines().filter(|l| l.starts_with("MemTotal") || l.starts_with("MemAvailable")) {
        line(format!("memory: {mem}"));
    }
    line(format!("euid: {}", nix::unistd::geteuid()));
    line("disks (free / total):".into());
    let mut paths = vec![PathBuf::from("/"), PathBuf::from("/tmp"), state.root.clone()];
    paths.extend(places.iter().cloned());
    paths.dedup();
    for path in paths {
        let at = crate::fsx::existing_ancestor(&path);
        if let Ok(stat) = nix::sys::statvfs::statvfs(&at) {
            let unit = stat.fragment_size();
            line(format!(
                "  {}: {} / {}",
                path.display(),
                indicatif::HumanBytes(stat.blocks_available() * unit),
                indicatif::HumanBytes(stat.blocks() * unit)
            ));
        }
    }
    line("engines:".into());
    for (program, args) in [
        ("docker", &["version", "--format", "client {{.Client.Version}}, server {{.Server.Version}}"][..]),
        ("podman", &["--version"][..]),
        ("ctr", &["version"][..]),
        ("docker-registry", &["--version"][..]),
    ] {
        let text = match run_bounded(program, args) {
            Some(out) => out.lines().take(6).collect::<Vec<_>>().join("; "),
            None => "not found or no answer".into(),
        };
        line(format!("  {program}: {text}"));
    }
    facts
}

/// The last lines of each engine's log, where this host keeps one we can read.
fn engine_logs() -> Vec<(String, String)> {
    let mut logs = Vec::new();
    for unit in ["docker", "containerd", "podman", "docker-registry"] {
        let file = format!("/var/log/{unit}.log");
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => Some(text),
            Err(_) => run_bounded("journalctl", &["-u", unit, "-n", &ENGINE_LOG_LINES.to_string(), "--no-pager", "-q"]),
        };
        if let Some(text) = text.filter(|t| !t.trim().is_empty() && !t.contains("No entries")) {
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(ENGINE_LOG_LINES)..].join("\n");
            logs.push((format!("engines/{unit}.log"), tail));
        }
    }
    logs
}

/// A command's stdout, or None if it is missing, fails or takes more than 5 s (a
/// daemon that does not answer must not stall the report).
fn run_bounded(program: &str, args: &[&str]) -> Option<String> {
    let mut child = Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                child.stdout.take()?.take(1 << 20).read_to_string(&mut out).ok()?;
                return status.success().then_some(out);
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}
