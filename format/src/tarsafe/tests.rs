use super::*;

#[test]
fn entry_paths() {
    assert_eq!(unsafe_entry_path(Path::new("a/b")), None);
    assert_eq!(unsafe_entry_path(Path::new("./a")), None);
    assert!(unsafe_entry_path(Path::new("/etc/passwd")).is_some());
    assert!(unsafe_entry_path(Path::new("a/../../x")).is_some());
    assert!(unsafe_entry_path(Path::new("a/..")).is_some());
}

#[test]
fn symlink_targets() {
    assert_eq!(escaping_symlink(Path::new("a/b/link"), Path::new("../c")), None);
    assert_eq!(escaping_symlink(Path::new("a/link"), Path::new("../c")), None);
    assert!(escaping_symlink(Path::new("link"), Path::new("../c")).is_some());
    assert!(escaping_symlink(Path::new("a/link"), Path::new("../../c")).is_some());
    assert!(escaping_symlink(Path::new("a/link"), Path::new("/etc")).is_some());
    assert!(escaping_symlink(Path::new("a/link"), Path::new("x/../../../c")).is_some());
}

fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    build(&mut builder);
    builder.into_inner().unwrap()
}

fn header(kind: EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header
}

/// Writes a raw path into the header, bypassing tar-rs's own checks, as an attacker would.
fn raw_path(header: &mut tar::Header, path: &str) {
    let name = &mut header.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_cksum();
}

fn unpack(tar: Vec<u8>) -> (tempfile::TempDir, Result<()>) {
    let dir = tempfile::tempdir().unwrap();
    let result = unpack_tree("pack", &tar[..], &dir.path().join("out"), &Unpack::default());
    (dir, result)
}

#[test]
fn a_read_only_directory_gets_its_mode_after_its_children_deepest_first() {
    use std::os::unix::fs::PermissionsExt;
    let tar = tar_with(|b| {
        for (dir, mode) in [("ro", 0o555), ("ro/inner", 0o500)] {
            let mut h = header(EntryType::Directory, 0);
            h.set_mode(mode);
            h.set_mtime(1_000_000);
            b.append_data(&mut h, dir, io::empty()).unwrap();
        }
        let mut h = header(EntryType::Regular, 2);
        b.append_data(&mut h, "ro/inner/file", &b"hi"[..]).unwrap();
        let mut h = header(EntryType::Regular, 2);
        b.append_data(&mut h, "ro/later", &b"yo"[..]).unwrap();
    });
    let (dir, result) = unpack(tar);
    result.unwrap();
    let out = dir.path().join("out");
    let mode = |p: &str| fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!((mode("ro"), mode("ro/inner")), (0o555, 0o500));
    assert_eq!(fs::read(out.join("ro/inner/file")).unwrap(), b"hi");
    assert_eq!(fs::read(out.join("ro/later")).unwrap(), b"yo");
    let mtime = fs::metadata(out.join("ro")).unwrap().modified().unwrap();
    assert_eq!(mtime, std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000));
    // The test's tempdir must be able to remove what it made.
    for p in ["ro/inner", "ro"] {
        fs::set_permissions(out.join(p), fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn a_plain_tree_unpacks_with_its_modes() {
    let tar = tar_with(|b| {
        let mut h = header(EntryType::Regular, 3);
        h.set_mode(0o755);
        b.append_data(&mut h, "dir/tool", &b"abc"[..]).unwrap();
        let mut l = header(EntryType::Symlink, 0);
        b.append_link(&mut l, "dir/alias", "tool").unwrap();
    });
    let (dir, result) = unpack(tar);
    result.unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir.path().join("out/dir/tool")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(fs::read(dir.path().join("out/dir/alias")).unwrap(), b"abc");
}

#[test]
fn dot_dot_is_refused_by_name() {
    let tar = tar_with(|b| {
        let mut h = header(EntryType::Regular, 1);
        raw_path(&mut h, "../evil");
        b.append(&h, &b"x"[..]).unwrap();
    });
    let (dir, result) = unpack(tar);
    let err = result.unwrap_err();
    assert_eq!(err.class, crate::error::ExitClass::Integrity);
    assert!(err.message.contains("'../evil'"), "{}", err.message);
    assert!(!dir.path().join("evil").exists());
}

#[test]
fn absolute_paths_are_refused() {
    let tar = tar_with(|b| {
        let mut h = header(EntryType::Regular, 1);
        raw_path(&mut h, "/tmp/evil");
        b.append(&h, &b"x"[..]).unwrap();
    });
    let err = unpack(tar).1.unwrap_err();
    assert!(err.message.contains("'/tmp/evil' is an absolute path"), "{}", err.message);
}

#[test]
fn escaping_symlinks_are_refused_and_not_created() {
    let tar = tar_with(|b| {
        let mut l = header(EntryType::Symlink, 0);
        b.append_link(&mut l, "up", "../..").unwrap();
    });
    let (dir, result) = unpack(tar);
    assert!(result.unwrap_err().message.contains("'up'"));
    assert!(fs::symlink_metadata(dir.path().join("out/up")).is_err());
}

#[test]
fn symlink_chains_that_escape_are_refused() {
    let tar = tar_with(|b| {
        b.append_dir("a", ".").ok();
        let mut l = header(EntryType::Symlink, 0);
        b.append_link(&mut l, "a/d", "..").unwrap();
        let mut l = header(EntryType::Symlink, 0);
        b.append_link(&mut l, "x", "a/d/..").unwrap();
    });
    let err = unpack(tar).1.unwrap_err();
    assert!(err.message.contains("'x' is a symlink that leads outside"), "{}", err.message);
}

#[test]
fn hardlinks_to_outside_are_refused() {
    let tar = tar_with(|b| {
        let mut l = header(EntryType::Link, 0);
        b.append_link(&mut l, "passwd", "/etc/passwd").unwrap();
    });
    let err = unpack(tar).1.unwrap_err();
    assert!(err.message.contains("hard link to outside"), "{}", err.message);
}

#[test]
fn device_files_are_refused() {
    let tar = tar_with(|b| {
        let mut h = header(EntryType::Char, 0);
        b.append_data(&mut h, "dev/null", io::empty()).unwrap();
    });
    assert!(unpack(tar).1.unwrap_err().message.contains("device file"));
}
