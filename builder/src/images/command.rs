//! `airbin fetch`: a registry pack or a docker-archive made from an image list, as a
//! build makes a member of one, for an input made apart from a bundle (what
//! `hack/make-registry-pack.sh` wraps). No lock: the tags are resolved as they are now.

use std::path::{Path, PathBuf};

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::{Error, IoContext, Result};

use super::cache::Cache;
use super::lock::Lock;
use super::{fetch_member, report, write_member, Options, Pins};
use crate::assemble::spec::MemberSpec;
use crate::cli::FetchArgs;

pub(crate) fn fetch(args: &FetchArgs, ui: &Ui) -> Result<()> {
    let arch = airbin_format::arch::canonical(&args.arch)
        .ok_or_else(|| Error::usage(format!("--arch {}: give amd64 (x86_64) or arm64 (aarch64)", args.arch)))?;
    let (kind, out) = match (&args.registry_pack, &args.docker_archive) {
        (Some(out), None) => ("registry-pack", out.clone()),
        (None, Some(out)) => ("image", out.clone()),
        _ => return Err(Error::usage("give one of --registry-pack OUT and --docker-archive OUT.tar")),
    };
    if args.all_platforms && kind == "image" {
        return Err(Error::usage("a docker-archive holds one platform: --all-platforms goes with --registry-pack"));
    }
    if args.images.is_empty() && args.images_file.is_none() {
        return Err(Error::usage("name the images: as arguments, or one a line in --images-file FILE"));
    }
    let member: MemberSpec = serde_json::from_value(serde_json::json!({
        "name": "fetched", "kind": kind, "images": args.images, "images_file": args.images_file, "from": args.from,
        "platforms": args.all_platforms.then_some("all"), "ca": args.ca, "insecure": args.insecure,
    }))
    .map_err(|e| Error::usage(format!("{e}")))?;
    let cache = Cache::open()?;
    let options = Options { arch, all: args.all_platforms, member: &member, cache: &cache };
    let none = Lock::default();
    let pins = Pins { lock: &none, member: "fetched", from: &args.from, ignore: true };
    let mut failures = Vec::new();
    let resolved = fetch_member(Path::new("."), &pins, &options, &mut failures, ui)?;
    if !failures.is_empty() {
        return Err(report(&failures, ui));
    }
    let work = tempfile::Builder::new().prefix("work-").tempdir_in(cache.root()).ctx("creating", cache.root())?;
    let tarball = kind == "registry-pack" && out.extension().is_some_and(|e| e == "tar");
    let made = match kind == "image" || tarball {
        true => work.path().join("made"),
        false => refuse_existing(&out)?,
    };
    write_member(&member, &resolved, &cache, &made, work.path(), ui)?;
    if tarball {
        let temp = work.path().join("pack.tar");
        tar_tree(&made, &temp)?;
        place(&temp, &out)?;
    } else if kind == "image" {
        place(&made, &out)?;
    }
    if ui.json {
        print_json(&Envelope::ok("fetch", serde_json::json!({"out": out, "images": resolved.len()})));
    } else if !ui.quiet {
        out_line(&out.display().to_string());
    }
    Ok(())
}

/// A registry tree is written into a new directory only.
fn refuse_existing(out: &Path) -> Result<PathBuf> {
    if out.exists() {
        return Err(Error::usage(format!("{} exists: give a new directory for the registry pack", out.display())));
    }
    Ok(out.to_path_buf())
}

/// Moves a finished file into place (a copy when `out` is on another file system).
fn place(from: &Path, out: &Path) -> Result<()> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).ctx("creating", parent)?;
    }
    if std::fs::rename(from, out).is_err() {
        let temp = out.with_extension("partial");
        std::fs::copy(from, &temp).ctx("writing", &temp)?;
        std::fs::rename(&temp, out).ctx("writing", out)?;
    }
    Ok(())
}

/// The tree as a tarball, entries in name order, stamped at the epoch.
fn tar_tree(dir: &Path, file: &Path) -> Result<()> {
    let mut tar = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(file).ctx("writing", file)?));
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.map_err(|e| Error::internal(format!("walking {}: {e}", dir.display())))?;
        let name = entry.path().strip_prefix(dir).expect("under the tree");
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        if entry.file_type().is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            tar.append_data(&mut header, name, std::io::empty()).ctx("writing", file)?;
        } else {
            let mut data = std::fs::File::open(entry.path()).ctx("reading", entry.path())?;
            header.set_mode(0o644);
            header.set_size(data.metadata().ctx("reading", entry.path())?.len());
            tar.append_data(&mut header, name, &mut data).ctx("writing", file)?;
        }
    }
    super::write::finish_tar(tar, file)
}
