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
use airbin_stub::format::{parse_mode, rules};
use airbin_stub::format::{BuildFacts, BundleMeta, BundleWriter, InstallRules, Member, MemberKind};
use airbin_stub::fsx::{self, create_dir_guarded};
use airbin_stub::progress::{ProgressWriter, Ui};

use crate::compress::{self, Encoder};
use crate::delta;
use crate::inspect;
use crate::signing;
use crate::source::Source;
use crate::spec;
use crate::stubs;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct Built {
    pub bin: PathBuf,
    pub sha256_file: PathBuf,
    pub sha256: String,
    pub total_len: u64,
    pub members: Vec<Member>,
    pub minisig: Option<PathBuf>,
    pub key_id: Option<String>,
}

fn build_host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "unknown".into(), |h| h.trim().to_string())
}

/// How a build is made beyond its spec.
#[derive(Default)]
pub struct BuildOptions {
    /// Sign with this minisign secret key.
    pub sign: Option<PathBuf>,
    /// Record this host's name in the index (left out by default: it would make two
    /// builds of the same inputs differ).
    pub record_host: bool,
    /// Build for this arch instead of the spec's (`--arch`).
    pub arch: Option<String>,
    /// A delta against this earlier bundle (`--base`).
    pub base: Option<PathBuf>,
    /// The public key the base is signed with (`--base-key`).
    pub base_key: Option<PathBuf>,
    /// The base file's SHA-256, as its `.sha256` says (`--base-sha256`).
    pub base_sha256: Option<String>,
}

/// The build time to record: `SOURCE_DATE_EPOCH` (seconds since 1970), or none at all,
/// so that the same inputs always give the same bytes.
pub fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(None),
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            Error::usage(format!(
                "SOURCE_DATE_EPOCH is '{text}', not a number of seconds since 1970; set it to `git log -1 --format=%ct` or unset it"
            ))
        }),
    }
}

/// Refuses an output directory inside one of the inputs: the bundle being written
/// would be read back into itself, growing without end.
/// A push-images step needs a tag on every image, and with `track_tags` a version tag
/// (`1.4.34`) on each to take the track (`1.4`) from: refused now, not at the site.
fn check_push_steps(
    loaded: &spec::LoadedSpec,
    images: &std::collections::HashMap<&str, &[airbin_stub::format::ImageRecord]>,
) -> Result<()> {
    for (i, step) in loaded.spec.steps.iter().enumerate() {
        let at = format!("steps[{i}]");
        let airbin_stub::format::Action::PushImages { member, track_tags, .. } = &step.action else { continue };
        for image in images.get(member.as_str()).copied().unwrap_or(&[]) {
            let field = format!("{at}.member");
            if image.tags.is_empty() {
                return Err(spec::field_error(
                    loaded,
                    &field,
                    format_args!("image {} of {member} has no tag to push it under; tag it before docker save", image.id),
                ));
            }
            if let Some(tag) =
                image.tags.iter().find(|t| *track_tags && rules::track_of(t.rsplit_once(':').map_or("", |(_, v)| v)).is_none())
            {
                return Err(spec::field_error(
                    loaded,
                    &format!("{at}.track_tags"),
                    format_args!(
                        "{tag} has no version tag such as 1.4.34 to take a track tag (1.4) from; tag the image with its full version"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_outdir_is_no_input(loaded: &spec::LoadedSpec, outdir: &Path) -> Result<()> {
    let out = fsx::absolute(outdir);
    let base = fsx::existing_ancestor(&out);
    let rest = out.strip_prefix(&base).unwrap_or(Path::new("")).to_path_buf();
    let out = fs::canonicalize(&base).unwrap_or(base).join(rest);
    for (member, input) in loaded.spec.members.iter().zip(&loaded.inputs) {
        let Ok(input) = fs::canonicalize(input) else { continue };
        if input.is_dir() && out.starts_with(&input) {
            return Err(Error::usage(format!(
                "{}: the output directory {} is inside member {}'s input {}: the bundle would pack itself; choose an output directory outside it (-o)",
                loaded.file.display(),
                outdir.display(),
                member.name,
                input.display()
            )));
        }
    }
    Ok(())
}

pub fn build(spec_arg: &Path, outdir: &Path, options: &BuildOptions, ui: &Ui) -> Result<Built> {
    let loaded = spec::load(spec_arg, options.arch.as_deref())?;
    check_outdir_is_no_input(&loaded, outdir)?;
    let signer = options.sign.as_deref().map(signing::SigningKey::load).transpose()?;
    let built_at = source_date_epoch()?;
    let spec = &loaded.spec;
    let meta = BundleMeta {
        name: spec.name.clone(),
        version: spec.version.clone(),
        arch: spec.arch.clone(),
        description: spec.description.clone(),
        hotfix_of: spec.hotfix_of.clone(),
    };
    ui.status(format!("building {} {} from {}", meta.name, meta.version, loaded.file.display()));

    let base_blobs = match options.base.as_deref() {
        None => None,
        Some(base) => {
            let mut keys = Vec::new();
            if let Some(key) = &options.base_key {
                keys.push(airbin_stub::format::signature::TrustedKey::load(key)?);
            }
            if let (Some(signer), Some(path)) = (&signer, &options.sign) {
                keys.push(signer.trusted_key(path)?);
            }
            let trust = delta::BaseTrust { keys, sha256: options.base_sha256.clone() };
            Some(delta::base_blobs(base, &meta, &trust, ui)?)
        }
    };
    // Inspect every input before writing anything: a bad input fails in seconds, not
    // after minutes of compression.
    let mut planned = Vec::new();
    for (member, input) in spec.members.iter().zip(&loaded.inputs) {
        let source = Source::for_member(member.kind, input, built_at.unwrap_or(0));
        let scan = source.scan(&member.name, member.kind)?;
        let mut details = inspect::inspect(member.kind, &member.name, &source, &meta.arch)?;
        let mut source = match details.subset.take() {
            Some(subset) => Source::ImageSubset(input.clone(), subset),
            None => source,
        };
        if let (Some(base), Some(record)) = (&base_blobs, details.registry.as_mut()) {
            match &mut source {
                Source::Dir { root, omit, .. } => {
                    *omit = delta::omit(root, base)?;
                    record.omitted = omit.iter().map(|hex| format!("sha256:{hex}")).collect();
                    record.blobs -= omit.len() as u64;
                    ui.status(format!("{}: {} blob(s) the base carries left out, {} kept", member.name, omit.len(), record.blobs));
                }
                _ => ui.status(format!("{}: a registry pack given as a tarball goes whole; give its directory for a delta", member.name)),
            }
        }
        let codec = compress::choose(member.compression, &scan.sample).ctx("sampling", input)?;
        planned.push((member, source, scan, codec, details));
    }
    let images: std::collections::HashMap<&str, &[airbin_stub::format::ImageRecord]> =
        planned.iter().map(|p| (p.0.name.as_str(), &p.4.images[..])).collect();
    check_push_steps(&loaded, &images)?;
    drop(images);

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
    let mut writer = BundleWriter::new(out, stubs::for_arch(&meta.arch).bytes, &meta, VERSION).ctx("writing", partial.path())?;

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
        // Without the spec's mark, a file's setuid, setgid and sticky bits stay behind.
        let mode = if member_spec.special_bits { mode } else { mode & 0o777 };
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
            special_bits: member_spec.special_bits,
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
        built_at: built_at.map_or_else(String::new, |secs| {
            humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
        }),
        build_host: if options.record_host { build_host() } else { String::new() },
    };
    let install = InstallRules {
        steps: spec.steps.clone(),
        config: spec.config.clone(),
        requires: spec.requires.clone(),
        parameters: spec.parameters.clone(),
    };
    let (name, version) = (meta.name.clone(), meta.version.clone());
    let sign = signer.as_ref().map(|key| move |digest: &[u8; 32]| key.sign_digest(&name, &version, digest));
    let sign_ref = sign.as_ref().map(|f| f as &dyn Fn(&[u8; 32]) -> std::io::Result<String>);
    let (out, finished) = writer.finish(meta, facts, install, sign_ref).ctx("writing", partial.path())?;
    out.sync_all().ctx("writing", partial.path())?;
    partial.as_file().set_permissions(Permissions::from_mode(0o755)).ctx("setting the mode of", partial.path())?;

    let file_name = bin_path.file_name().expect("has a name").to_string_lossy().into_owned();
    let sha_partial = tempfile::Builder::new().prefix(&format!(".{stem}.sha256.")).tempfile_in(outdir).ctx("creating a file in", outdir)?;
    writeln!(sha_partial.as_file(), "{}  {file_name}", finished.file_sha256).ctx("writing", sha_partial.path())?;
    sha_partial.as_file().set_permissions(Permissions::from_mode(0o644)).ctx("setting the mode of", sha_partial.path())?;
    // The detached signature covers the whole file, as `minisign -V` checks it.
    let minisig_path = outdir.join(format!("{stem}.bin.minisig"));
    let minisig_partial = match &signer {
        Some(key) => {
            let file =
                tempfile::Builder::new().prefix(&format!(".{stem}.minisig.")).tempfile_in(outdir).ctx("creating a file in", outdir)?;
            let text = key.sign_file(partial.path(), &file_name, &finished.file_sha256)?;
            fs::write(file.path(), text).ctx("writing", file.path())?;
            file.as_file().set_permissions(Permissions::from_mode(0o644)).ctx("setting the mode of", file.path())?;
            Some(file)
        }
        None => None,
    };
    partial.persist(&bin_path).map_err(|e| Error::io(e.error, "renaming into place", &bin_path))?;
    sha_partial.persist(&sha_path).map_err(|e| Error::io(e.error, "renaming into place", &sha_path))?;
    if let Some(file) = minisig_partial {
        file.persist(&minisig_path).map_err(|e| Error::io(e.error, "renaming into place", &minisig_path))?;
    } else if fs::symlink_metadata(&minisig_path).is_ok() {
        // An older signature would no longer match this file.
        fs::remove_file(&minisig_path).ctx("removing the stale", &minisig_path)?;
    }
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
    let key_id = signer.as_ref().map(|key| key.id.to_string());
    let minisig = signer.is_some().then_some(minisig_path);
    Ok(Built {
        bin: bin_path,
        sha256_file: sha_path,
        sha256: finished.file_sha256,
        total_len: finished.total_len,
        members,
        minisig,
        key_id,
    })
}
