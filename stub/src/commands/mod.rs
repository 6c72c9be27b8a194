//! One function per command of the `.bin`; each doc line says what the field engineer
//! gets from it. Every `--json` outcome is one document of one shape (`envelope`).

mod install;
mod status;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::HumanBytes;
use serde_json::json;

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::extract::{self, select_members};
use crate::format::{Bundle, Member, TRAILER_LEN};
use crate::progress::Ui;

pub use install::{install, plan};
pub use status::status;
pub use support::support;

pub struct Context {
    pub bundle_path: PathBuf,
    pub global: Global,
    pub ui: Ui,
}

static PRINTED: AtomicBool = AtomicBool::new(false);

/// Prints a JSON value on stdout, the one thing `--json` puts there.
pub fn print_json(value: &serde_json::Value) {
    PRINTED.store(true, Ordering::SeqCst);
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
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
pub fn check(ctx: &Context) -> Result<()> {
    let bundle = open(ctx)?;
    verify(ctx, &bundle)?;
    if ctx.ui.json {
        print_json(&envelope("check", None, json!({"bundle": bundle.path, "sha256": bundle.sha256(), "bytes": bundle.trailer.total_len})));
    } else if !ctx.global.quiet {
        println!(
            "{}: OK ({} {}, {} bytes, all checksums match)",
            bundle.path.display(),
            bundle.index.bundle.name,
            bundle.index.bundle.version,
            bundle.trailer.total_len
        );
    }
    Ok(())
}

fn verify(ctx: &Context, bundle: &Bundle) -> Result<()> {
    let progress = ctx.ui.progress("check", bundle.trailer.total_len - TRAILER_LEN);
    bundle.verify(&|n| progress.inc(n))?;
    progress.finish();
    Ok(())
}

/// `info`: what the bundle is (name, version, arch, who built it when) and what it
/// carries, members with kinds and sizes, images and registry repositories.
pub fn info(ctx: &Context) -> Result<()> {
    let bundle = open(ctx)?;
    let index = &bundle.index;
    if ctx.ui.json {
        print_json(&envelope(
            "info",
            None,
            json!({
                "bundle": index.bundle,
                "build": index.build,
                "format_version": index.format_version,
                "runtime_version": crate::VERSION,
                "bytes": bundle.trailer.total_len,
                "sha256_of_payload": bundle.sha256(),
                "members": index.members,
                "steps": index.steps,
                "config": index.config,
                "requires": index.requires,
            }),
        ));
        return Ok(());
    }
    let b = &index.bundle;
    println!("name:        {}", b.name);
    println!("version:     {}", b.version);
    println!("arch:        {}", b.arch);
    if !b.description.is_empty() {
        println!("description: {}", b.description);
    }
    println!("built:       {} by airbin {} on {}", index.build.built_at, index.build.builder_version, index.build.build_host);
    println!("format:      {}", index.format_version);
    println!("size:        {} ({} bytes)", HumanBytes(bundle.trailer.total_len), bundle.trailer.total_len);
    println!("members:");
    print_members(&index.members);
    if !index.steps.is_empty() {
        println!("install steps:");
        for (n, step) in index.steps.iter().enumerate() {
            println!("  {}. {} ({})", n + 1, step.name(), step.action.kind());
        }
    }
    Ok(())
}

fn print_members(members: &[Member]) {
    let width = members.iter().map(|m| m.name.len()).max().unwrap_or(4).max(4);
    println!("  {:width$}  {:13}  {:5}  {:>10}  {:>10}", "NAME", "KIND", "CODEC", "SIZE", "STORED");
    for m in members {
        println!(
            "  {:width$}  {:13}  {:5}  {:>10}  {:>10}",
            m.name,
            m.kind.as_str(),
            m.codec.as_str(),
            HumanBytes(m.size).to_string(),
            HumanBytes(m.stored_size).to_string()
        );
        for image in &m.images {
            let tags = if image.tags.is_empty() { "<untagged>".to_string() } else { image.tags.join(", ") };
            println!("  {:width$}    image {tags} ({})", "", short_id(&image.id));
        }
        if let Some(pack) = &m.registry {
            for repo in &pack.repositories {
                let tags: Vec<&str> = repo.tags.iter().map(|t| t.tag.as_str()).collect();
                println!("  {:width$}    repository {}: {}", "", repo.name, tags.join(", "));
            }
        }
    }
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// `list`: the members, one a line: name, kind, size; the images and registry
/// repositories they carry.
pub fn list(ctx: &Context) -> Result<()> {
    let bundle = open(ctx)?;
    if ctx.ui.json {
        print_json(&envelope("list", None, json!({"members": bundle.index.members})));
    } else {
        print_members(&bundle.index.members);
    }
    Ok(())
}

/// `extract`: verifies, then writes the members (all, or those named) into the target,
/// with their mode bits; nothing is written if verification fails.
pub fn extract(ctx: &Context, names: &[String]) -> Result<()> {
    let bundle = open(ctx)?;
    let members = select_members(&bundle, names)?;
    verify(ctx, &bundle)?;
    let target =
        ctx.global.target.clone().unwrap_or_else(|| PathBuf::from(format!("{}-{}", bundle.index.bundle.name, bundle.index.bundle.version)));
    let written = extract::extract_members(&bundle, &members, &target, &ctx.ui)?;
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
    let _ = std::fs::remove_file(dir.join("airbin-stub"));
    let _ = std::fs::remove_dir(dir);
}
