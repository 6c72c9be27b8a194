//! Bundles that fit the media (`--split-size`): the finished bundle cut into `x.bin`
//! (the launcher, the runtime and the payload's first bytes, so that `sh x.bin` still
//! starts it) and `x.bin.part2`, `x.bin.part3`, …, each with its own `.sha256` that
//! `sha256sum -c` checks and the runtime checks each part against as it reads it.
//! The runtime reads the parts as one file (the format crate's `parts`).

use std::fs::{self, File, Permissions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use airbin_format::digest::HashingWriter;
use airbin_format::error::{Error, IoContext, Result};
use airbin_format::parts::part_name;

/// The smallest part: FAT32's limit is 4 GiB, a DVD's 4.4 GB, a portal's some MB.
pub(crate) const MIN_SPLIT: u64 = 1 << 20;

/// `4G`, `4GiB`, `700M`, `100MB`, `65536`: a size in bytes (powers of 1024).
pub(crate) fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("'{text}' is not a size such as 4G, 700M or 65536"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("'{text}' has an unknown unit; use K, M, G or T (powers of 1024)")),
    };
    let size = number.checked_shl(shift).filter(|s| s >> shift == number).ok_or_else(|| format!("'{text}' is too large"))?;
    if size < MIN_SPLIT {
        return Err(format!("'{text}' is smaller than a part can be (1M)"));
    }
    Ok(size)
}

/// A part written under a temporary name, and its digest.
pub(crate) struct WrittenPart {
    pub(crate) file: NamedTempFile,
    pub(crate) name: String,
    pub(crate) sha256: String,
}

/// Cuts `whole` (`total` bytes) after `size` bytes into parts 2 and on, written beside
/// it in `outdir` under temporary names; `whole` is left holding the first part.
pub(crate) fn cut(whole: &mut File, whole_path: &Path, total: u64, size: u64, outdir: &Path, first: &str) -> Result<Vec<WrittenPart>> {
    let mut parts = Vec::new();
    let mut at = size;
    let mut k = 2;
    while at < total {
        let len = size.min(total - at);
        let name = part_name(first, k);
        let file = tempfile::Builder::new().prefix(&format!(".{name}.")).tempfile_in(outdir).ctx("creating a file in", outdir)?;
        whole.seek(SeekFrom::Start(at)).ctx("reading", whole_path)?;
        let mut hashing = HashingWriter::new(file.as_file());
        io::copy(&mut (&mut *whole).take(len), &mut hashing).ctx("writing", file.path())?;
        let (_, copied, sha256) = hashing.finish();
        if copied != len {
            return Err(Error::internal(format!("{} ended early while cutting it into parts", whole_path.display())));
        }
        file.as_file().sync_all().ctx("writing", file.path())?;
        file.as_file().set_permissions(Permissions::from_mode(0o644)).ctx("setting the mode of", file.path())?;
        parts.push(WrittenPart { file, name, sha256 });
        at += len;
        k += 1;
    }
    whole.set_len(size).ctx("cutting", whole_path)?;
    whole.sync_all().ctx("writing", whole_path)?;
    Ok(parts)
}

/// The SHA-256 of a file, as `sha256sum` gives it.
pub(crate) fn file_sha256(file: &mut File, path: &Path) -> Result<String> {
    file.seek(SeekFrom::Start(0)).ctx("reading", path)?;
    let mut hashing = HashingWriter::new(io::sink());
    io::copy(file, &mut hashing).ctx("reading", path)?;
    Ok(hashing.finish().2)
}

/// Removes parts of an earlier build of the same name beyond `from` (and their
/// `.sha256`): left there, they would read as this bundle's.
pub(crate) fn remove_stale(outdir: &Path, first: &str, from: usize) -> Result<()> {
    for k in from.. {
        let path: PathBuf = outdir.join(part_name(first, k));
        let sidecar = outdir.join(format!("{}.sha256", part_name(first, k)));
        let found = fs::symlink_metadata(&path).is_ok() || fs::symlink_metadata(&sidecar).is_ok();
        if !found {
            return Ok(());
        }
        for stale in [path, sidecar] {
            match fs::remove_file(&stale) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(Error::io(e, "removing the stale", &stale)),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("700M"), Ok(700 << 20));
        assert_eq!(parse_size("2048KiB"), Ok(2 << 20));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("4X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("100K").unwrap_err().contains("smaller"));
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").unwrap_err().contains("too large"));
    }
}
