//! One function per command of the `.bin`; each doc line says what the field engineer
//! gets from it. Every `--json` outcome is one document of one shape (`envelope`).

mod install;
mod nodes;
mod runtime;
mod status;
mod support;
mod uninstall;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::HumanBytes;
use serde_json::json;

use crate::cli::{ExtractArgs, TrustArgs};
use crate::error::{Error, Result};
use crate::extract::{self, select_members};
use crate::format::rules::printable;
use crate::format::signature::{self, Signer, TrustedKey, TRUSTED_KEYS_DIR};
use crate::format::{Bundle, Member};
use crate::progress::{out_line, Ui};

pub use install::{install, plan, preflight};
pub use runtime::runtime;
pub use status::status;
pub use support::support;
pub use uninstall::uninstall;

pub struct Context {
    pub bundle_path: PathBuf,
    pub ui: Ui,
}

static PRINTED: AtomicBool = AtomicBool::new(false);
static TRUSTED_RUNNER: AtomicBool = AtomicBool::new(false);

/// This is `airbin-run`: every command verifies the bundle against the pinned keys first.
pub fn set_trusted_runner() {
    TRUSTED_RUNNER.store(true, Ordering::SeqCst);
}

pub fn is_trusted_runner() -> bool {
    TRUSTED_RUNNER.load(Ordering::SeqCst)
}
static COMMAND: std::sync::Mutex<&'static str> = std::sync::Mutex::new("install");

/// Names the command being run, for its JSON document (failures included).
pub fn set_command(name: &'static str) {
    *COMMAND.lock().unwrap_or_else(|e| e.into_inner()) = name;
}

/// The command being run.
pub fn command() -> &'static str {
    *COMMAND.lock().unwrap_or_else(|e| e.into_inner())
}

/// A command line clap refused, as one usage line that says what to do.
pub fn usage_error(e: &clap::Error) -> Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let bin = crate::shell::bundle();
    let command = command();
    if e.kind() == ErrorKind::UnknownArgument {
        if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
            return Error::usage(format!("{arg} is not an option of `{command}`; see {bin} {command} --help"));
        }
    }
    let first = e.to_string();
    let line = first.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ").to_string();
    Error::usage(format!("{line}; see {bin} --help"))
}

/// Prints a JSON value on stdout, the one thing `--json` puts there.
pub fn print_json(value: &serde_json::Value) {
    PRINTED.store(true, Ordering::SeqCst);
    let text = serde_json::to_string_pretty(value).expect("a document serializes");
    // Every text that leaves the process goes through the masker, errors included.
    let _ = writeln!(std::io::stdout().lock(), "{}", crate::runlog::mask(&text));
}

/// Whether a command printed its JSON document already (so `main` prints none).
pub fn json_printed() -> bool {
    PRINTED.load(Ordering::SeqCst)
}

/// The one shape of every `--json` outcome: `command`, `status` (ok, failed,
/// interrupted), `exit_code`, `steps`, `error` (null on success), `log`, and the
/// command's own fields in `extra`.
pub fn envelope(command: &str, error: Option<&Error>, extra: serde_json::Value) -> serde_json::Value {
    let status = match error.map(|e| e.class) {
        None => "ok",
        Some(crate::error::ExitClass::Interrupted) => "interrupted",
        Some(_) => "failed",
    };
    let mut doc = json!({
        "command": command,
        "status": status,
        "exit_code": error.map_or(0, |e| e.class.code()),
        "steps": [],
        "error": error.map(|e| json!({"class": e.class.name(), "message": e.message})),
        "log": crate::runlog::path(),
    });
    if let (Some(doc), serde_json::Value::Object(extra)) = (doc.as_object_mut(), extra) {
        doc.extend(extra);
    }
    doc
}

fn open(ctx: &Context) -> Result<Bundle> {
    Bundle::open(&ctx.bundle_path)
}

/// `check`: the length, then the SHA-256 of every byte; says the bundle is intact or
/// exactly what is wrong with it.
pub fn check(ctx: &Context, trust: &TrustArgs) -> Result<()> {
    let bundle = open(ctx)?;
    let signer = verify(ctx, &bundle, trust)?;
    if ctx.ui.json {
        print_json(&envelope(
            command(),
            None,
            json!({"bundle": bundle.path, "sha256": bundle.sha256(), "bytes": bundle.trailer.total_len, "signature": signer_json(&signer)}),
        ));
    } else if !ctx.ui.quiet {
        out_line(&format!(
            "{}: OK ({} {}, {} bytes, all checksums match; {signer})",
            bundle.path.display(),
            bundle.index.bundle.name,
            bundle.index.bundle.version,
            bundle.trailer.total_len
        ));
    }
    Ok(())
}

/// Damage explains whatever else went wrong: when the bundle's verdict (being reached
/// on another thread) fails, its error wins over `error`.
fn damage_first(bundle: &Bundle, error: Error) -> Error {
    match bundle.await_verified() {
        Err(damage) if damage.class != crate::error::ExitClass::Interrupted => damage,
        _ => error,
    }
}

/// The keys this host pins: `--trusted-key` files and `/etc/airbin/trusted-keys/*.pub`
/// (`AIRBIN_TRUSTED_KEYS_DIR` stands in for that directory). The trusted runner runs
/// only bundles signed by one of them: it refuses to run without any.
pub fn trusted_keys(trust: &TrustArgs) -> Result<Vec<TrustedKey>> {
    let dir = std::env::var_os("AIRBIN_TRUSTED_KEYS_DIR").map_or_else(|| PathBuf::from(TRUSTED_KEYS_DIR), PathBuf::from);
    let keys = signature::trusted_keys(&trust.trusted_key, &dir)?;
    if keys.is_empty() && is_trusted_runner() {
        return Err(Error::usage(format!(
            "airbin-run runs only bundles signed by a key this host pins, and none is pinned: copy the maker's public key into {} (or give --trusted-key FILE)",
            dir.display()
        )));
    }
    Ok(keys)
}

/// Where keys are pinned, the bundle is verified (every byte, then the signature)
/// before anything else: before a node, the engine, the network or the disk is touched.
/// Returns the keys, for what verifies again as it goes (it takes this verdict).
pub fn verified_first_where_pinned(ctx: &Context, bundle: &Bundle, trust: &TrustArgs) -> Result<Vec<TrustedKey>> {
    let keys = trusted_keys(trust)?;
    if !keys.is_empty() && !bundle.verified_whole() {
        let progress = ctx.ui.progress("check", bundle.digested_len());
        bundle.verify(&keys, &|n| progress.inc(n))?;
        progress.finish();
    }
    Ok(keys)
}

/// The digest of every byte, then the signature against the pinned keys: nothing on
/// the host changes before both pass.
fn verify(ctx: &Context, bundle: &Bundle, trust: &TrustArgs) -> Result<Signer> {
    let keys = trusted_keys(trust)?;
    if bundle.verified_whole() {
        return bundle.signer(&keys);
    }
    let progress = ctx.ui.progress("check", bundle.digested_len());
    let signer = bundle.verify(&keys, &|n| progress.inc(n))?;
    progress.finish();
    Ok(signer)
}

/// `info`: what the bundle is (name, version, arch, who built it when) and what it
/// carries, members with kinds and sizes, images and registry repositories.
pub fn info(ctx: &Context, trust: &TrustArgs) -> Result<()> {
    let bundle = open(ctx)?;
    verified_first_where_pinned(ctx, &bundle, trust)?;
    let index = &bundle.index;
    if ctx.ui.json {
        print_json(&envelope(
            command(),
            None,
            json!({
                "bundle": index.bundle,
                "build": index.build,
                "format_version": index.format_version,
                "runtime_version": crate::VERSION,
                "bytes": bundle.trailer.total_len,
                "sha256_of_payload": bundle.sha256(),
                "signature": bundle.signer_key().map_or(json!({"signed": false}), |id| json!({"signed": true, "key_id": id.to_string()})),
                "members": index.members,
                "steps": index.steps,
                "config": index.config,
                "requires": index.requires,
            }),
        ));
        return Ok(());
    }
    let b = &index.bundle;
    let mut lines = vec![format!("name:        {}", b.name), format!("version:     {}", b.version), format!("arch:        {}", b.arch)];
    if !b.description.is_empty() {
        lines.push(format!("description: {}", printable(&b.description, 4096)));
    }
    if let Some(base) = &b.hotfix_of {
        lines.push(format!("hotfix of:   {base}"));
    }
    let build = &index.build;
    let when = if build.built_at.is_empty() { "(time not recorded)".to_string() } else { build.built_at.clone() };
    let host = if build.build_host.is_empty() { String::new() } else { format!(" on {}", build.build_host) };
    lines.push(format!("built:       {when} by airbin {}{host}", build.builder_version));
    lines.push(match bundle.signer_key() {
        Some(id) => format!("signed by:   key {id} (check and install verify it against the keys this host pins)"),
        None => "signed by:   nobody (unsigned)".to_string(),
    });
    lines.push(format!("format:      {}", index.format_version));
    lines.push(format!("size:        {} ({} bytes)", HumanBytes(bundle.trailer.total_len), bundle.trailer.total_len));
    lines.push("members:".to_string());
    lines.extend(member_lines(&index.members));
    if !index.steps.is_empty() {
        lines.push("steps:".to_string());
        for (n, step) in index.steps.iter().enumerate() {
            let roles: Vec<&str> = step.roles.iter().map(|r| r.as_str()).collect();
            let on = if roles.is_empty() { String::new() } else { format!("; on {}", roles.join(", ")) };
            let when = if step.when == crate::format::Phase::Both { String::new() } else { format!("; {} only", step.when.as_str()) };
            lines.push(format!("  {}. {} ({}{on}{when})", n + 1, step.name(), step.action.kind()));
        }
    }
    lines.iter().for_each(|l| out_line(l));
    Ok(())
}

fn signer_json(signer: &Signer) -> serde_json::Value {
    match signer {
        Signer::Unsigned => json!({"signed": false}),
        Signer::Unchecked(id) => json!({"signed": true, "key_id": id.to_string(), "trusted": false}),
        Signer::Trusted { id, file } => json!({"signed": true, "key_id": id.to_string(), "trusted": true, "trusted_key": file}),
    }
}

fn member_lines(members: &[Member]) -> Vec<String> {
    let width = members.iter().map(|m| m.name.len()).max().unwrap_or(4).max(4);
    let mut lines = vec![format!("  {:width$}  {:13}  {:5}  {:>10}  {:>10}", "NAME", "KIND", "CODEC", "SIZE", "STORED")];
    for m in members {
        lines.push(format!(
            "  {:width$}  {:13}  {:5}  {:>10}  {:>10}",
            m.name,
            m.kind.as_str(),
            m.codec.as_str(),
            HumanBytes(m.size).to_string(),
            HumanBytes(m.stored_size).to_string()
        ));
        for image in &m.images {
            let tags = if image.tags.is_empty() { "<untagged>".to_string() } else { image.tags.join(", ") };
            lines.push(format!("  {:width$}    image {tags} ({})", "", short_id(&image.id)));
        }
        if let Some(pack) = &m.registry {
            for repo in &pack.repositories {
                let tags: Vec<&str> = repo.tags.iter().map(|t| t.tag.as_str()).collect();
                lines.push(format!("  {:width$}    repository {}: {}", "", repo.name, tags.join(", ")));
            }
        }
    }
    lines
}

/// The first 12 hex digits of an image ID, as docker shows it; the index was checked
/// to hold `sha256:` and 64 hex digits.
fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// `list`: the members, one a line: name, kind, size; the images and registry
/// repositories they carry.
pub fn list(ctx: &Context, trust: &TrustArgs) -> Result<()> {
    let bundle = open(ctx)?;
    verified_first_where_pinned(ctx, &bundle, trust)?;
    if ctx.ui.json {
        print_json(&envelope("list", None, json!({"members": bundle.index.members})));
    } else {
        member_lines(&bundle.index.members).iter().for_each(|l| out_line(l));
    }
    Ok(())
}

/// `extract`: writes the members (all, or those named) into the target, with their mode
/// bits, while every byte is verified on another thread; nothing is left in the target
/// if verification fails (members go into place only after it passed).
pub fn extract(ctx: &Context, args: &ExtractArgs) -> Result<()> {
    let bundle = open(ctx)?;
    let members = select_members(&bundle, &args.members)?;
    let keys = verified_first_where_pinned(ctx, &bundle, &args.trust)?;
    let target =
        args.target.clone().unwrap_or_else(|| PathBuf::from(format!("{}-{}", bundle.index.bundle.name, bundle.index.bundle.version)));
    let written = std::thread::scope(|scope| {
        let verifier = bundle.verify_in_background(scope, &keys);
        // Members go into place only after the verdict: an Ok is a verified one.
        let written = extract::extract_members(&bundle, &members, &target, &ctx.ui).map_err(|e| damage_first(&bundle, e));
        let _ = verifier.join().expect("the verifier panicked");
        written
    })
    .map_err(|e| match e.class.is_about_a_place() {
        true => e.hint(" (or extract elsewhere: --target DIR)"),
        false => e,
    })?;
    if ctx.ui.json {
        print_json(&envelope("extract", None, json!({"target": target, "extracted": written})));
    } else {
        ctx.ui.status(format!("extracted {} member(s) into {}", written.len(), target.display()));
    }
    Ok(())
}

/// Removes the launcher's temporary copy of this runtime: it is running now and the
/// kernel keeps it alive, so the host keeps nothing.
pub fn remove_launcher_copy(dir: &Path) {
    // The loader's copy, and the runtime where it could not run from memory.
    let _ = std::fs::remove_file(dir.join("airbin-stub"));
    let _ = std::fs::remove_file(dir.join("airbin-runtime"));
    let _ = std::fs::remove_dir(dir);
}
