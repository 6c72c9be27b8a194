//! One function per command of the `.bin`; each doc line says what the field engineer
//! gets from it.

use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::HumanBytes;
use serde_json::json;

use crate::cli::Global;
use crate::config;
use crate::error::{Error, IoContext, Result};
use crate::extract::{self, select_members};
use crate::format::{Bundle, Member, TRAILER_LEN};
use crate::images;
use crate::progress::Ui;
use crate::steps::{self, Step};

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
        print_json(
            &json!({"status": "ok", "bundle": bundle.path, "sha256": hex::encode(bundle.trailer.file_sha256), "bytes": bundle.trailer.total_len}),
        );
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
    let target =
        ctx.global.target.clone().unwrap_or_else(|| PathBuf::from(format!("{}-{}", bundle.index.bundle.name, bundle.index.bundle.version)));
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

/// `install` (the default): verifies the bundle, checks the host (free space, the
/// container engine), stages the members the steps do not consume, runs the install
/// steps and says what was done, where, and what to do next.
pub fn install(ctx: &Context) -> Result<()> {
    let bundle = open(ctx)?;
    verify(ctx, &bundle)?;
    let meta = &bundle.index.bundle;
    ctx.ui.status(format!("{} {}: bundle verified", meta.name, meta.version));
    let options = &ctx.global;
    let steps = if options.noexec { &[][..] } else { &bundle.index.steps[..] };

    // Preflight: the engine answers before any member is read into it.
    let engine = if steps.iter().any(|s| matches!(s, Step::LoadImages { .. })) {
        let choice = options.engine.clone().or_else(|| {
            steps.iter().find_map(|s| match s {
                Step::LoadImages { engine, .. } => engine.clone(),
                _ => None,
            })
        });
        let detected = images::detect(choice.as_deref(), &options.containerd_namespace);
        Some(detected.map_err(|e| Error::new(e.class, format!("cannot load {}: {}", images_to_load(&bundle, steps), e.message)))?)
    } else {
        None
    };

    // Preflight: the product's config, and every value the steps take from it.
    let config = match steps.iter().any(|s| steps::needs_config(s, options)) {
        true => Some(config::load(&config::locate(options.config.as_deref(), &bundle.path), "the restore-registry step")?),
        false => None,
    };
    for step in steps.iter().filter(|s| matches!(s, Step::RestoreRegistry { .. })) {
        steps::registry_target(step, options, config.as_ref())?;
    }

    let _lock = lock_install(&meta.name, &meta.version, options.target.as_deref())?;
    let consumed: Vec<&str> = steps.iter().filter_map(steps::consumed_member).collect();
    let to_stage: Vec<&Member> = bundle.index.members.iter().filter(|m| !consumed.contains(&m.name.as_str())).collect();
    let staging = options.target.clone().unwrap_or_else(|| default_staging_dir(&meta.name, &meta.version));
    let staged = if to_stage.is_empty() { Vec::new() } else { extract::extract_members(&bundle, &to_stage, &staging, &ctx.ui)? };
    if !staged.is_empty() {
        ctx.ui.status(format!("staged {} member(s) into {}", staged.len(), staging.display()));
    }

    let mut reports = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        ctx.ui.status(format!("step {}/{}: {}", n + 1, steps.len(), step.describe()));
        let report = steps::run_builtin(step, &bundle, engine.as_ref(), config.as_ref(), options, &ctx.ui)?;
        ctx.ui.status(format!("step {}/{} {}: {}", n + 1, steps.len(), report.status, report.detail));
        reports.push(report);
    }

    // makeself's rule: the staging directory goes once the steps are done, unless asked
    // to keep it (--keep, --target, --noexec) or something is left for the engineer.
    let all_done = !steps.is_empty() && reports.iter().all(|r| r.status == "done");
    let keep = options.keep || options.target.is_some() || options.noexec || !all_done;
    if !keep && !staged.is_empty() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    let staging_kept = keep && !staged.is_empty();
    if ctx.ui.json {
        print_json(&json!({
            "status": "ok", "bundle": meta, "staging": staging_kept.then_some(&staging), "staged": staged, "steps": reports,
        }));
    } else if !ctx.global.quiet {
        println!("{} {}: install finished", meta.name, meta.version);
        for report in &reports {
            println!("  {:7}  {}: {}", report.status, report.step, report.detail);
        }
        if staging_kept {
            println!("  staged in {}", staging.display());
        }
        if reports.iter().any(|r| r.status == "skipped") {
            match staging_kept {
                true => println!("next: run the skipped steps from {}", staging.display()),
                false => println!("next: run the skipped steps by hand"),
            }
        }
    }
    Ok(())
}

/// "release-images (compass/api:2.7.3, compass/worker:2.7.3)": what the load steps would load.
fn images_to_load(bundle: &Bundle, steps: &[Step]) -> String {
    let described: Vec<String> = steps
        .iter()
        .filter_map(|step| match step {
            Step::LoadImages { member, .. } => bundle.index.member(member),
            _ => None,
        })
        .map(|member| format!("{} ({})", member.name, images::member_references(member).join(", ")))
        .collect();
    described.join(", ")
}

/// Holds the lock that keeps two installs of one bundle from overlapping, until dropped.
fn lock_install(name: &str, version: &str, target: Option<&Path>) -> Result<std::fs::File> {
    let staging = target.map_or_else(|| default_staging_dir(name, version), Path::to_path_buf);
    let dir = staging.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
    let path = dir.join(format!(".{name}-{version}.airbin-lock"));
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).ctx("creating the lock", &path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::host(format!(
            "another install of {name} {version} is running (it holds {}); wait for it to finish, then run this one again",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(e, "locking", &path)),
    }
}

/// Removes the launcher's temporary copy of this runtime: it is running now and the
/// kernel keeps it alive, so the host keeps nothing.
pub fn remove_launcher_copy(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("airbin-stub"));
    let _ = std::fs::remove_dir(dir);
}
