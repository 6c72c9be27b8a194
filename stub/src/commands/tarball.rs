//! The support tarball's entries: files made here, not copied from disk.

/// Adds `data` to a support tarball as a file at `path`, mode 0644, stamped now.
pub(crate) fn append_bytes<W: std::io::Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    header.set_cksum();
    tar.append_data(&mut header, path, data)
}
