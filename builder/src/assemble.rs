//! `airbin build`: spec → inspected inputs → one `.bin` plus its `.sha256`, written
//! under temporary names in the output directory and renamed into place only when the
//! whole bundle is complete.

use std::fs::{self, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use indicatif::HumanBytes;

use airbin_stub::error::{Error, IoContext, Result};
use airbin_stub::format::digest::HashingWriter;
use airbin_stub::format::parse_mode;
use airbin_stub::format::{BuildFacts, BundleMeta, BundleWriter, InstallRules, Member, MemberKind};
use airbin_stub::fsx::create_dir_guarded;
use airbin_stub::progress::{ProgressWriter, Ui};

use crate::compress::{self, Encoder};
use crate::inspect;
use crate::source::Source;
use crate::spec;

/// The static stub this builder puts at the head of every bundle.
pub static STUB: &[u8] = include_bytes!(env!("AIRBIN_STUB_PATH"));
pub const STUB_TARGET: &str = env!("AIRBIN_STUB_TARGET");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct Built {
    pub bin: PathBuf,
    pub sha256_file: PathBuf,
    pub sha256: String,
    pub total_len: u64,
    pub members: Vec<Member>,
}

fn build_host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "unknown".into(), |h| h.trim().to_string())
}

pub fn build(spec_arg: &Path, outdir: &Path, ui: &Ui) -> Result<Built> {
    let loaded = spec::load(spec_arg)?;
    let spec = &loaded.spec;
    let meta = BundleMeta {
        name: spec.name.clone(),
        version: spec.version.clone(),
        arch: spec.arch.clone(),
        description: spec.description.clone(),
    };
    ui.status(format!("building {} {} from {}", meta.name, meta.version, loaded.file.display()));

    // Inspect every input before writing anything: a bad input fails in seconds, not
    // after minutes of compression.
    let mut planned = Vec::new();
    for (member, input) in spec.members.iter().zip(&loaded.inputs) {
        let source = Source::for_member(member.kind, input);
        let scan = source.scan(&member.name)?;
        let details = inspect::inspect(member.kind, &member.name, &source)?;
        let codec = compress::choose(member.compression, &scan.sample).ctx("sampling", input)?;
        planned.push((member, source, scan, codec, details));
    }

    let created_outdir = create_dir_guarded(outdir)?;
    let stem = meta.file_stem();
    let bin_path = outdir.join(format!("{stem}.bin"));
    let sha_path = outdir.join(format!("{stem}.bin.sha256"));
    let partial = tempfile::Builder::new()
        .prefix(&format!(".{stem}.bin."))
        .suffix(".partial")
        .tempfile_in(outdir)
        .ctx("creating a file in", outdir)?;
    let out = partial.as_file().try_clone().ctx("opening", partial.path())?;
    let mut writer = BundleWriter::new(out, STUB, &meta, VERSION).ctx("writing", partial.path())?;

    let progress = ui.progress("build", planned.iter().map(|p| p.2.content_bytes).sum());
    let mut members = Vec::new();
    for (member_spec, source, scan, codec, details) in planned {
        let mut content_facts = None;
        let stored = writer
            .write_stored(|sink| {
                let encoder = Encoder::new(codec, member_spec.level, sink)?;
                let mut content = HashingWriter::new(ProgressWriter::new(encoder, &progress));
                source.write_content(&mut content)?;
                let (tracked, size, sha256) = content.finish();
                tracked.inner.finish()?;
                content_facts = Some((size, sha256));
                Ok(())
            })
            .ctx("compressing", source.path())?;
        let (size, sha256) = content_facts.expect("set by write_stored");
        let mode = match (&member_spec.mode, &source) {
            (Some(mode), _) => parse_mode(mode).expect("validated"),
            (None, Source::File(path)) => fs::metadata(path).ctx("reading", path)?.permissions().mode() & 0o7777,
            (None, _) => 0o755,
        };
        let mode = if member_spec.kind == MemberKind::Tool { mode | 0o111 } else { mode };
        members.push(Member {
            name: member_spec.name.clone(),
            kind: member_spec.kind,
            layout: source.layout(),
            codec,
            offset: stored.offset,
            stored_size: stored.stored_size,
            stored_sha256: stored.stored_sha256,
            size,
            sha256,
            mode,
            unpacked_bytes: scan.unpacked_bytes,
            images: details.images,
            registry: details.registry,
        });
    }
    progress.finish();
    for member in &members {
        writer.add_member(member.clone());
    }

    let facts = BuildFacts {
        builder_version: VERSION.to_string(),
        built_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        build_host: build_host(),
    };
    let install = InstallRules { steps: spec.steps.clone(), config: spec.config.clone(), requires: spec.requires.clone() };
    let (out, finished) = writer.finish(meta, facts, install).ctx("writing", partial.path())?;
    out.sync_all().ctx("writing", partial.path())?;
    partial.as_file().set_permissions(Permissions::from_mode(0o755)).ctx("setting the mode of", partial.path())?;

    let file_name = bin_path.file_name().expect("has a name").to_string_lossy().into_owned();
    let sha_partial = tempfile::Builder::new().prefix(&format!(".{stem}.sha256.")).tempfile_in(outdir).ctx("creating a file in", outdir)?;
    writeln!(sha_partial.as_file(), "{}  {file_name}", finished.file_sha256).ctx("writing", sha_partial.path())?;
    sha_partial.as_file().set_permissions(Permissions::from_mode(0o644)).ctx("setting the mode of", sha_partial.path())?;
    partial.persist(&bin_path).map_err(|e| Error::io(e.error, "renaming into place", &bin_path))?;
    sha_partial.persist(&sha_path).map_err(|e| Error::io(e.error, "renaming into place", &sha_path))?;
    if let Some(created) = created_outdir {
        created.disarm();
    }
    ui.status(format!(
        "wrote {} ({}, {} members); sha256 {}",
        bin_path.display(),
        HumanBytes(finished.total_len),
        members.len(),
        finished.file_sha256
    ));
    Ok(Built { bin: bin_path, sha256_file: sha_path, sha256: finished.file_sha256, total_len: finished.total_len, members })
}
