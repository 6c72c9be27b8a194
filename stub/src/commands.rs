//! One function per command of the `.bin`; each doc line says what the field engineer
//! gets from it.

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::HumanBytes;
use serde_json::json;

use crate::cli::Global;
use crate::error::Result;
use crate::extract::{self, select_members};
use crate::format::{Bundle, Member, TRAILER_LEN};
use crate::progress::Ui;

pub struct Context {
    pub bundle_path: PathBuf,
    pub global: Global,
    pub ui: Ui,
}

/// Prints a JSON value on stdout, the one thing `--json` puts there.
pub fn print_json(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = writeln!(out);
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
        print_json(&json!({"status": "ok", "bundle": bundle.path, "sha256": hex::encode(bundle.trailer.file_sha256), "bytes": bundle.trailer.total_len}));
    } else if !ctx.global.quiet {
        println!("{}: OK ({} {}, {} bytes, all checksums match)", bundle.path.display(), bundle.index.bundle.name, bundle.index.bundle.version, bundle.trailer.total_len);
    }
    Ok(())
}

fn verify(ctx: &Context, bundle: &Bundle) -> Result<()> {
    let progress = ctx.ui.progress("check", bundle.trailer.total_len - TRAILER_LEN);
    bundle.verify(&progress)?;
    progress.finish();
    Ok(())
}

/// `info`: what the bundle is (name, version, arch, who built it when) and what it
/// carries, members with kinds and sizes, images and registry repositories.
pub fn info(ctx: &Context) -> Result<()> {
    let bundle = open(ctx)?;
    let index = &bundle.index;
    if ctx.ui.json {
        print_json(&json!({
            "bundle": index.bundle,
            "build": index.build,
            "format_version": index.format_version,
            "runtime_version": crate::VERSION,
            "bytes": bundle.trailer.total_len,
            "sha256_of_payload": hex::encode(bundle.trailer.file_sha256),
            "members": index.members,
            "steps": index.steps,
        }));
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
            println!("  {}. {}", n + 1, step.describe());
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
        print_json(&serde_json::to_value(&bundle.index.members).expect("members serialize"));
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
    let target = ctx.global.target.clone().unwrap_or_else(|| PathBuf::from(format!("{}-{}", bundle.index.bundle.name, bundle.index.bundle.version)));
    let written = extract::extract_members(&bundle, &members, &target, &ctx.ui)?;
    if ctx.ui.json {
        print_json(&json!({"status": "ok", "target": target, "extracted": written}));
    } else {
        ctx.ui.status(format!("extracted {} member(s) into {}", written.len(), target.display()));
    }
    Ok(())
}

/// Where `install` stages members unless --target says otherwise: a state directory
/// that survives reboots, not /tmp (often small on the hosts this runs on).
pub fn default_staging_dir(name: &str, version: &str) -> PathBuf {
    let base = match std::env::var_os("AIRBIN_STATE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None if nix::unistd::geteuid().is_root() => PathBuf::from("/var/lib/airbin"),
        None => std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from).join(".local/state/airbin"),
    };
    base.join(format!("{name}-{version}"))
}

/// `install` (the default): verifies the bundle, checks free space, stages the members
/// into the staging directory, runs the install steps and says what was done and where.
pub fn install(ctx: &Context) -> Result<()> {
    let bundle = open(ctx)?;
    verify(ctx, &bundle)?;
    let meta = &bundle.index.bundle;
    ctx.ui.status(format!("{} {}: bundle verified", meta.name, meta.version));

    let staging = ctx.global.target.clone().unwrap_or_else(|| default_staging_dir(&meta.name, &meta.version));
    let members: Vec<&Member> = bundle.index.members.iter().collect();
    let written = extract::extract_members(&bundle, &members, &staging, &ctx.ui)?;
    ctx.ui.status(format!("staged {} member(s) into {}", written.len(), staging.display()));

    let steps = &bundle.index.steps;
    if !steps.is_empty() {
        let names: Vec<String> = steps.iter().map(|s| s.describe()).collect();
        ctx.ui.status(format!(
            "{} install step(s) declared ({}); this runtime stages members only: run them from {}",
            steps.len(),
            names.join("; "),
            staging.display()
        ));
    }
    if ctx.ui.json {
        print_json(&json!({"status": "ok", "bundle": meta, "staging": staging, "staged": written}));
    } else if !ctx.global.quiet {
        println!("{} {} staged in {}", meta.name, meta.version, staging.display());
    }
    Ok(())
}

/// Removes the launcher's temporary copy of this runtime: it is running now and the
/// kernel keeps it alive, so the host keeps nothing.
pub fn remove_launcher_copy(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("airbin-stub"));
    let _ = std::fs::remove_dir(dir);
}
