//! Writing a planned bundle: every member compressed into a temporary file beside the
//! output, the index, signature and trailer, then the `.bin`, its `.sha256` (and its
//! `.minisig`) renamed into place together; a failure leaves nothing behind.

use std::fs::{self, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use indicatif::HumanBytes;
use tempfile::NamedTempFile;

use airbin_format::console::{ProgressWriter, Ui};
use airbin_format::digest::HashingWriter;
use airbin_format::error::{Error, IoContext, Result};
use airbin_format::files::create_dir_guarded;
use airbin_format::{parse_mode, BuildFacts, BundleMeta, BundleWriter, Finished, InstallRules, Member, MemberKind};

use super::compress::Encoder;
use super::signing::SigningKey;
use super::source::Source;
use super::{stubs, Built, Planned, VERSION};

/// What goes into the bundle.
pub(crate) struct Bundle<'a> {
    pub(crate) meta: BundleMeta,
    pub(crate) facts: BuildFacts,
    pub(crate) install: InstallRules,
    pub(crate) planned: Vec<Planned<'a>>,
    pub(crate) sbom: Sbom,
    /// Cut into parts of at most this many bytes (`--split-size`).
    pub(crate) split: Option<u64>,
}

/// The SBOM documents to write, and the images they list.
pub(crate) struct Sbom {
    pub(crate) formats: crate::sbom::Formats,
    pub(crate) images: Vec<crate::sbom::ImageFacts>,
}

/// Writes the bundle into `outdir` and says what was written.
pub(crate) fn write_bundle(bundle: Bundle, signer: Option<&SigningKey>, outdir: &Path, ui: &Ui) -> Result<Built> {
    let created_outdir = create_dir_guarded(outdir)?;
    // A delta's name says so, and its base: a repository keeps it beside the full build.
    let stem = match (&bundle.facts.delta_of, &bundle.facts.delta_for) {
        (Some(base), _) => format!("{}.delta-from-{}", bundle.meta.file_stem(), base.version),
        (None, Some(site)) => {
            let host = if airbin_format::rules::unsafe_name(&site.host).is_none() { site.host.as_str() } else { "site" };
            format!("{}.delta-for-{host}", bundle.meta.file_stem())
        }
        (None, None) => bundle.meta.file_stem(),
    };
    let partial = temp_in(outdir, &format!(".{stem}.bin."), ".partial")?;
    let out = partial.as_file().try_clone().ctx("opening", partial.path())?;
    let mut writer =
        BundleWriter::new(out, stubs::for_arch(&bundle.meta.arch).bytes, &bundle.meta, VERSION).ctx("writing", partial.path())?;
    let mut members = write_members(&mut writer, bundle.planned, ui)?;
    let subject = crate::sbom::Subject { meta: &bundle.meta, facts: &bundle.facts, members: &members, images: &bundle.sbom.images };
    let sbom = crate::sbom::write_members(&mut writer, bundle.sbom.formats, &subject)?;
    members.extend(sbom);
    for member in &members {
        writer.add_member(member.clone());
    }
    let (name, version) = (bundle.meta.name.clone(), bundle.meta.version.clone());
    let sign = signer.map(|key| move |digest: &[u8; 32]| key.sign_digest(&name, &version, digest));
    let sign_ref = sign.as_ref().map(|f| f as &dyn Fn(&[u8; 32]) -> std::io::Result<String>);
    let (out, finished) = writer.finish(bundle.meta, bundle.facts, bundle.install, sign_ref).ctx("writing", partial.path())?;
    out.sync_all().ctx("writing", partial.path())?;
    partial.as_file().set_permissions(Permissions::from_mode(0o755)).ctx("setting the mode of", partial.path())?;
    let built = publish(partial, &finished, Publish { signer, outdir, stem: &stem, split: bundle.split })?;
    if let Some(created) = created_outdir {
        created.disarm();
    }
    ui.status(format!(
        "wrote {} ({}, {} members); sha256 {}",
        built.bin.display(),
        HumanBytes(finished.total_len),
        members.len(),
        finished.file_sha256
    ));
    Ok(Built { members, ..built })
}

fn temp_in(dir: &Path, prefix: &str, suffix: &str) -> Result<NamedTempFile> {
    tempfile::Builder::new().prefix(prefix).suffix(suffix).tempfile_in(dir).ctx("creating a file in", dir)
}

/// Each member's content, compressed as planned, hashed before and after.
fn write_members<W: std::io::Read + Write + std::io::Seek>(
    writer: &mut BundleWriter<W>,
    planned: Vec<Planned>,
    ui: &Ui,
) -> Result<Vec<Member>> {
    let progress = ui.progress("build", planned.iter().map(|p| p.scan.content_bytes).sum());
    let mut members = Vec::new();
    for Planned { spec, source, scan, codec, details } in planned {
        let mut content_facts = None;
        let stored = writer
            .write_stored(|sink| {
                let encoder = Encoder::new(codec, spec.level, sink)?;
                let mut content = HashingWriter::new(ProgressWriter::new(encoder, &progress));
                source.write_content(&mut content)?;
                let (tracked, size, sha256) = content.finish();
                tracked.inner.finish()?;
                content_facts = Some((size, sha256));
                Ok(())
            })
            .ctx("compressing", source.path())?;
        let (size, sha256) = content_facts.expect("set by write_stored");
        members.push(Member {
            name: spec.name.clone(),
            kind: spec.kind,
            layout: source.layout(),
            codec,
            offset: stored.offset,
            stored_size: stored.stored_size,
            stored_sha256: stored.stored_sha256,
            size,
            sha256,
            mode: member_mode(spec, &source)?,
            special_bits: spec.special_bits,
            unpacked_bytes: scan.unpacked_bytes,
            images: details.images,
            registry: details.registry,
        });
    }
    progress.finish();
    Ok(members)
}

/// The spec's mode, else the input file's; a tool is executable whatever it said.
fn member_mode(spec: &super::spec::MemberSpec, source: &Source) -> Result<u32> {
    let mode = match (&spec.mode, source) {
        (Some(mode), _) => parse_mode(mode).expect("validated"),
        (None, Source::File(path)) => fs::metadata(path).ctx("reading", path)?.permissions().mode() & 0o7777,
        (None, _) => 0o755,
    };
    // Without the spec's mark, a file's setuid, setgid and sticky bits stay behind.
    let mode = if spec.special_bits { mode } else { mode & 0o777 };
    Ok(if spec.kind == MemberKind::Tool { mode | 0o111 } else { mode })
}

/// Where and how a finished bundle goes into place.
struct Publish<'a> {
    signer: Option<&'a SigningKey>,
    outdir: &'a Path,
    stem: &'a str,
    split: Option<u64>,
}

/// A `.sha256` file in sha256sum's format, under a temporary name.
fn sha256_file(outdir: &Path, sha256: &str, file_name: &str) -> Result<NamedTempFile> {
    let file = temp_in(outdir, &format!(".{file_name}.sha256."), "")?;
    writeln!(file.as_file(), "{sha256}  {file_name}").ctx("writing", file.path())?;
    file.as_file().set_permissions(Permissions::from_mode(0o644)).ctx("setting the mode of", file.path())?;
    Ok(file)
}

/// The `.sha256` (and `.minisig`) written beside the bundle, or the bundle cut into
/// parts each with its `.sha256`; then all renamed into place.
fn publish(mut partial: NamedTempFile, finished: &Finished, how: Publish) -> Result<Built> {
    let Publish { signer, outdir, stem, split } = how;
    let bin_path = outdir.join(format!("{stem}.bin"));
    let sha_path = outdir.join(format!("{stem}.bin.sha256"));
    let file_name = bin_path.file_name().expect("has a name").to_string_lossy().into_owned();
    let parts = match split.filter(|size| finished.total_len > *size) {
        Some(size) => {
            let path = partial.path().to_path_buf();
            super::split::cut(partial.as_file_mut(), &path, finished.total_len, size, outdir, &file_name)?
        }
        None => Vec::new(),
    };
    let first_sha256 = match parts.is_empty() {
        true => finished.file_sha256.clone(),
        false => {
            let path = partial.path().to_path_buf();
            super::split::file_sha256(partial.as_file_mut(), &path)?
        }
    };
    let sha_partial = sha256_file(outdir, &first_sha256, &file_name)?;
    // The detached signature covers the whole file, as `minisign -V` checks it; a split
    // bundle's embedded signature covers every part, and no one file is the whole.
    let minisig_path = outdir.join(format!("{stem}.bin.minisig"));
    let minisig_partial = match signer.filter(|_| parts.is_empty()) {
        Some(key) => {
            let file = temp_in(outdir, &format!(".{stem}.minisig."), "")?;
            let text = key.sign_file(partial.path(), &file_name, &finished.file_sha256)?;
            fs::write(file.path(), text).ctx("writing", file.path())?;
            file.as_file().set_permissions(Permissions::from_mode(0o644)).ctx("setting the mode of", file.path())?;
            Some(file)
        }
        None => None,
    };
    let mut part_paths = Vec::new();
    for part in parts {
        let path = outdir.join(&part.name);
        let sidecar = sha256_file(outdir, &part.sha256, &part.name)?;
        persist(part.file, &path)?;
        persist(sidecar, &outdir.join(format!("{}.sha256", part.name)))?;
        part_paths.push(path);
    }
    super::split::remove_stale(outdir, &file_name, part_paths.len() + 2)?;
    persist(partial, &bin_path)?;
    persist(sha_partial, &sha_path)?;
    match minisig_partial {
        Some(file) => persist(file, &minisig_path)?,
        // An older signature would no longer match this file.
        None if fs::symlink_metadata(&minisig_path).is_ok() => fs::remove_file(&minisig_path).ctx("removing the stale", &minisig_path)?,
        None => {}
    }
    Ok(Built {
        bin: bin_path,
        sha256_file: sha_path,
        sha256: finished.file_sha256.clone(),
        total_len: finished.total_len,
        members: Vec::new(),
        minisig: (signer.is_some() && part_paths.is_empty()).then_some(minisig_path),
        parts: part_paths,
        key_id: signer.map(|key| key.id.to_string()),
    })
}

fn persist(file: NamedTempFile, to: &PathBuf) -> Result<()> {
    file.persist(to).map(drop).map_err(|e| Error::io(e.error, "renaming into place", to))
}
