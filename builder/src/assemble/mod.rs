//! `airbin build`: spec → inspected inputs → one `.bin` plus its `.sha256`, written
//! under temporary names in the output directory and renamed into place only when the
//! whole bundle is complete.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::{Error, IoContext, Result};
use airbin_format::files;
use airbin_format::rules;
use airbin_format::{BuildFacts, BundleMeta, InstallRules, Member, MemberKind, PushImagesAction};

use check::{Finding, Level};
use source::Source;

pub(crate) mod check;
pub(crate) mod compress;
pub(crate) mod delta;
pub(crate) mod member_facts;
pub(crate) mod signing;
pub(crate) mod source;
pub(crate) mod spec;
pub(crate) mod split;
pub(crate) mod stubs;
mod write;

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `airbin build`: the entry point for release engineers; prints the bundle's path
/// (and with `--json` its digest, members and signature).
pub(crate) fn run(args: &crate::cli::BuildArgs, ui: &Ui) -> Result<()> {
    let options = BuildOptions {
        sign: args.sign.clone(),
        record_host: args.record_host,
        arch: args.arch.clone(),
        base: args.base.clone(),
        base_inventory: args.base_inventory.clone(),
        base_key: args.base_key.clone(),
        base_sha256: args.base_sha256.clone(),
        update_lock: args.update_lock,
        sbom: match (args.no_sbom, args.sbom.as_deref()) {
            (true, _) => crate::sbom::Formats::None,
            (false, Some("spdx")) => crate::sbom::Formats::CycloneDxAndSpdx,
            (false, _) => crate::sbom::Formats::CycloneDx,
        },
        split_size: args.split_size,
    };
    let built = build(&args.spec, &args.outdir, &options, ui)?;
    if ui.json {
        print_json(&Envelope::ok("build", &built));
    } else if !ui.quiet {
        out_line(&built.bin.display().to_string());
    }
    Ok(())
}

/// What `airbin build` made, as `--json` gives it.
#[derive(Serialize)]
pub(crate) struct Built {
    #[serde(rename = "bundle")]
    pub(crate) bin: PathBuf,
    pub(crate) sha256_file: PathBuf,
    pub(crate) sha256: String,
    #[serde(rename = "bytes")]
    pub(crate) total_len: u64,
    pub(crate) members: Vec<Member>,
    pub(crate) minisig: Option<PathBuf>,
    pub(crate) key_id: Option<String>,
    /// A split bundle's parts after the first (`--split-size`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) parts: Vec<PathBuf>,
}

fn build_host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "unknown".into(), |h| h.trim().to_string())
}

/// How a build is made beyond its spec.
#[derive(Default)]
pub(crate) struct BuildOptions {
    /// Sign with this minisign secret key.
    pub(crate) sign: Option<PathBuf>,
    /// Record this host's name in the index (left out by default: it would make two
    /// builds of the same inputs differ).
    pub(crate) record_host: bool,
    /// Build for this arch instead of the spec's (`--arch`).
    pub(crate) arch: Option<String>,
    /// A delta against this earlier bundle (`--base`).
    pub(crate) base: Option<PathBuf>,
    /// The public key the base is signed with (`--base-key`).
    pub(crate) base_key: Option<PathBuf>,
    /// A delta for the site this inventory describes (`--base-inventory`).
    pub(crate) base_inventory: Option<PathBuf>,
    /// The base file's SHA-256, as its `.sha256` says (`--base-sha256`).
    pub(crate) base_sha256: Option<String>,
    /// Resolve image lists' tags again (`--update-lock`).
    pub(crate) update_lock: bool,
    /// The SBOM documents to carry (`--sbom`, `--no-sbom`).
    pub(crate) sbom: crate::sbom::Formats,
    /// Cut the bundle into parts of at most this many bytes (`--split-size`).
    pub(crate) split_size: Option<u64>,
}

/// The build time to record: `SOURCE_DATE_EPOCH` (seconds since 1970), or none at all,
/// so that the same inputs always give the same bytes.
pub(crate) fn source_date_epoch() -> Result<Option<u64>> {
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
fn check_push_steps(loaded: &spec::LoadedSpec, images: &std::collections::HashMap<&str, &[airbin_format::ImageRecord]>) -> Result<()> {
    for (i, step) in loaded.spec.steps.iter().enumerate() {
        let at = format!("steps[{i}]");
        let airbin_format::Action::PushImages(PushImagesAction { member, track_tags, .. }) = &step.action else { continue };
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
    let out = files::absolute(outdir);
    let base = files::existing_ancestor(&out);
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

pub(crate) fn build(spec_arg: &Path, outdir: &Path, options: &BuildOptions, ui: &Ui) -> Result<Built> {
    let checked = check::check(spec_arg, options.arch.as_deref())?;
    let file = spec::spec_file(spec_arg);
    if let Some(error) = checked.findings.iter().find(|f| f.level == Level::Error) {
        return Err(error.clone().into_error(&file));
    }
    let mut loaded = checked.loaded.expect("a spec without errors is loaded");
    // Members made from image lists: fetched and written now, into a work directory
    // that lives as long as the build; the lock is written once the bundle is.
    let from_lists = crate::images::prepare(&mut loaded, options.update_lock, ui)?;
    check_outdir_is_no_input(&loaded, outdir)?;
    check_split_size(options.split_size, &loaded.spec.arch)?;
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
    let base = base_blobs(options, signer.as_ref(), &meta, ui)?;
    // Inspect every input before writing anything: a bad input fails in seconds, not
    // after minutes of compression.
    let planned = plan_members(&loaded, &meta, base.as_ref().map(|b| &b.blobs), built_at, ui)?;
    for warning in checked.findings.iter().chain(&warnings(&loaded, &planned)) {
        ui.status(format!("warning: {}", warning.render(&file)));
    }
    let images: std::collections::HashMap<&str, &[airbin_format::ImageRecord]> =
        planned.iter().map(|p| (p.spec.name.as_str(), &p.details.images[..])).collect();
    check_push_steps(&loaded, &images)?;
    drop(images);
    let sbom_images = match options.sbom {
        crate::sbom::Formats::None => Vec::new(),
        _ => {
            let inputs: Vec<crate::sbom::ImageInput> = planned
                .iter()
                .map(|p| crate::sbom::ImageInput {
                    name: &p.spec.name,
                    kind: p.spec.kind,
                    source: &p.source,
                    registry: p.details.registry.as_ref(),
                })
                .collect();
            crate::sbom::images(&inputs, &meta.arch, ui)?
        }
    };
    let facts = BuildFacts {
        builder_version: VERSION.to_string(),
        built_at: built_at.map_or_else(String::new, |secs| {
            humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
        }),
        build_host: if options.record_host { build_host() } else { String::new() },
        delta_of: base.as_ref().and_then(|b| match &b.recorded {
            delta::Recorded::Bundle(recorded) => Some(recorded.clone()),
            delta::Recorded::Site(_) => None,
        }),
        delta_for: base.and_then(|b| match b.recorded {
            delta::Recorded::Site(site) => Some(site),
            delta::Recorded::Bundle(_) => None,
        }),
    };
    let install = InstallRules {
        steps: spec.steps.clone(),
        config: spec.config.clone(),
        requires: spec.requires.clone(),
        parameters: spec.parameters.clone(),
    };
    let sbom = write::Sbom { formats: options.sbom, images: sbom_images };
    let bundle = write::Bundle { meta, facts, install, planned, sbom, split: options.split_size };
    let built = write::write_bundle(bundle, signer.as_ref(), outdir, ui)?;
    from_lists.map_or(Ok(()), |made| made.write_lock(ui))?;
    Ok(built)
}

/// The first part must hold the launcher and the whole runtime, so that `sh x.bin`
/// starts from it alone.
fn check_split_size(split_size: Option<u64>, arch: &str) -> Result<()> {
    let Some(size) = split_size else { return Ok(()) };
    let need = airbin_format::launcher::LAUNCHER_LEN + (stubs::for_arch(arch).bytes.len() as u64).div_ceil(4096) * 4096;
    if size <= need {
        return Err(Error::usage(format!(
            "--split-size {size} is too small: the first part holds the launcher and the runtime ({need} bytes) and some payload; give at least {}M",
            (need + 1).div_ceil(1 << 20)
        )));
    }
    Ok(())
}

/// For a delta (`--base`): the blobs the base carries, once the base is checked.
fn base_blobs(options: &BuildOptions, signer: Option<&signing::SigningKey>, meta: &BundleMeta, ui: &Ui) -> Result<Option<delta::Base>> {
    if let Some(inventory) = &options.base_inventory {
        return Ok(Some(delta::inventory_blobs(inventory, options.base_key.as_deref(), ui)?));
    }
    let Some(base) = options.base.as_deref() else { return Ok(None) };
    let mut keys = Vec::new();
    if let Some(key) = &options.base_key {
        keys.push(airbin_format::signature::TrustedKey::load(key)?);
    }
    if let (Some(signer), Some(path)) = (signer, &options.sign) {
        keys.push(signer.trusted_key(path)?);
    }
    let trust = delta::BaseTrust { keys, sha256: options.base_sha256.clone() };
    Ok(Some(delta::base_blobs(base, meta, &trust, ui)?))
}

/// A member ready to be written: its input, what it holds, and how it is stored.
pub(crate) struct Planned<'a> {
    pub(crate) spec: &'a spec::MemberSpec,
    pub(crate) source: Source,
    pub(crate) scan: source::Scan,
    pub(crate) codec: airbin_format::Codec,
    pub(crate) details: member_facts::Details,
}

/// Every member's input inspected as `build` inspects it (for `airbin lint`).
pub(crate) fn inspect_members<'a>(
    loaded: &'a spec::LoadedSpec,
    base: Option<&std::collections::BTreeSet<String>>,
    ui: &Ui,
) -> Result<Vec<Planned<'a>>> {
    let meta = BundleMeta {
        name: loaded.spec.name.clone(),
        version: loaded.spec.version.clone(),
        arch: loaded.spec.arch.clone(),
        description: String::new(),
        hotfix_of: None,
    };
    plan_members(loaded, &meta, base, None, ui)
}

/// What a site will miss, found in the inputs: images no tag names (a load keeps them
/// by ID only, a push cannot push them).
pub(crate) fn warnings(loaded: &spec::LoadedSpec, planned: &[Planned]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        for image in p.details.images.iter().filter(|image| image.tags.is_empty()) {
            out.push(
                Finding::warning(
                    format!("members[{i}].path"),
                    format!("the image {} of {} has no tag", image.id, p.spec.name),
                    "it loads by ID only and no step can push it: tag it (docker tag) before docker save",
                )
                .at(&loaded.located),
            );
        }
    }
    out
}

/// Every member's input inspected and sampled; a delta's registry packs cut down to
/// what the base does not carry.
fn plan_members<'a>(
    loaded: &'a spec::LoadedSpec,
    meta: &BundleMeta,
    base: Option<&std::collections::BTreeSet<String>>,
    built_at: Option<u64>,
    ui: &Ui,
) -> Result<Vec<Planned<'a>>> {
    let mut planned = Vec::new();
    for (i, (member, input)) in loaded.spec.members.iter().zip(&loaded.inputs).enumerate() {
        // `lint` does not fetch: a member made from an image list is made at build.
        if member.is_listed() && !input.exists() {
            continue;
        }
        // The member's error, at its path in the spec.
        let at = |e: Error| match e.class {
            airbin_format::error::ExitClass::Usage | airbin_format::error::ExitClass::Integrity => {
                spec::field_error(loaded, &format!("members[{i}].path"), e.message)
            }
            _ => e,
        };
        if member.kind == MemberKind::RegistryPack {
            if let Some(root) = member_facts::registry_root_above(input) {
                let field = format!("members[{i}].path");
                let what = format_args!(
                    "{} is inside a registry's storage, not its root; give {} (the directory that holds docker/registry/v2)",
                    input.display(),
                    root.display()
                );
                return Err(spec::field_error(loaded, &field, what));
            }
        }
        let source = Source::for_member(member.kind, input, built_at.unwrap_or(0));
        let scan = source.scan(&member.name, member.kind).map_err(at)?;
        let mut details = member_facts::inspect(member.kind, &member.name, &source, &meta.arch).map_err(at)?;
        let mut source = match details.subset.take() {
            Some(subset) => Source::ImageSubset(input.clone(), subset),
            None => source,
        };
        if let (Some(base), Some(record)) = (base, details.registry.as_mut()) {
            match &mut source {
                Source::Dir { root, omit, .. } => {
                    *omit = delta::omit(root, base)?;
                    record.omitted = omit.iter().map(|hex| format!("sha256:{hex}")).collect();
                    record.blobs -= omit.len() as u64;
                    ui.status(format!("{}: {} blob(s) the base carries left out, {} kept", member.name, omit.len(), record.blobs));
                }
                _ => {
                    return Err(spec::field_error(
                        loaded,
                        &format!("members[{i}].path"),
                        format_args!(
                            "{} is a registry pack given as a tarball, and a delta leaves out what the base carries blob by blob: give the pack as a directory (hack/make-registry-pack.sh --dir), or build without --base",
                            member.name
                        ),
                    ))
                }
            }
        }
        let codec = compress::choose(member.compression, &scan.sample).ctx("sampling", input)?;
        planned.push(Planned { spec: member, source, scan, codec, details });
    }
    Ok(planned)
}
