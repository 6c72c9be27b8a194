//! What the end-to-end tests share: running `airbin` and bundles the way people do,
//! under real shells, and the scratch space they work in.
#![allow(dead_code)]

pub mod cluster;
pub mod realm;
pub mod registry;
pub mod skip;
pub mod tls;

#[allow(unused_imports)]
pub use cluster::Cluster;
#[allow(unused_imports)]
pub use skip::{docker_ready, require};

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The compass sample (samples/compass), built once per test binary.
pub fn compass() -> &'static Path {
    static BUILT: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, bin) = BUILT.get_or_init(|| {
        let dir = scratch();
        let bin = build(&repo_root().join("samples/compass"), &dir.path().join("dist"));
        (dir, bin)
    });
    bin
}

/// (name, state) of each step of a `--json` install document.
pub fn states(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["state"].as_str().unwrap().to_string()))
        .collect()
}

/// The minimal sample, built once per test binary.
pub fn minimal() -> &'static Path {
    static BUILT: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, bin) = BUILT.get_or_init(|| {
        let dir = scratch();
        let bin = build(&repo_root().join("samples/minimal"), &dir.path().join("dist"));
        (dir, bin)
    });
    bin
}

pub fn airbin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_airbin"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A scratch directory outside /tmp (tests mount over /tmp), readable by other users.
pub fn scratch() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("e2e-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The ways a field engineer starts a bundle.
#[derive(Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Dash,
    Busybox,
    /// `./x.bin`, through its `#!/bin/sh` line.
    Direct,
}

pub const SHELLS: [Shell; 4] = [Shell::Bash, Shell::Dash, Shell::Busybox, Shell::Direct];

impl Shell {
    pub fn command(self, bundle: &Path) -> Command {
        let mut command = match self {
            Shell::Bash => Command::new("bash"),
            Shell::Dash => Command::new("dash"),
            Shell::Busybox => {
                let mut c = Command::new("busybox");
                c.arg("sh");
                c
            }
            Shell::Direct => return Command::new(bundle),
        };
        command.arg(bundle);
        command
    }
}

/// Runs `bundle` with `args` under `shell`; stdout and stderr captured.
pub fn run(shell: Shell, bundle: &Path, args: &[&str], tmpdir: &Path) -> Output {
    shell.command(bundle).args(args).env("TMPDIR", tmpdir).env("AIRBIN_STATE_DIR", tmpdir.join("airbin-state")).output().unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Builds a spec with `airbin build`, panicking with its stderr if that fails.
pub fn build(spec: &Path, outdir: &Path) -> PathBuf {
    let output = airbin().arg("build").arg(spec).arg("-o").arg(outdir).output().unwrap();
    assert!(output.status.success(), "airbin build {} failed: {}", spec.display(), stderr(&output));
    PathBuf::from(stdout(&output).trim())
}

/// Names of the entries of a directory (empty if it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    names.sort();
    names
}

/// Deterministic bytes that do not compress (xorshift).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs a shell script in a private mount namespace, so that it can mount tmpfs over
/// /tmp or a target without touching the host. `scratch` is bound to /mnt first and the
/// script runs there, with `$1`.. being `args` as seen from /mnt: the scratch space may
/// itself lie under /tmp (a checkout in /tmp), which the script may hide.
pub fn in_mount_namespace(scratch: &Path, script: &str, args: &[&Path]) -> Output {
    let mapped: Vec<PathBuf> =
        args.iter().map(|a| a.strip_prefix(scratch).map_or_else(|_| a.to_path_buf(), |rel| Path::new("/mnt").join(rel))).collect();
    let wrapped =
        format!("mount --bind \"$AIRBIN_SCRATCH\" /mnt || exit 98; cd /mnt || exit 98; export AIRBIN_STATE_DIR=/mnt/state; {script}");
    Command::new("unshare").args(["-m", "sh", "-c", &wrapped, "sh"]).args(&mapped).env("AIRBIN_SCRATCH", scratch).output().unwrap()
}

/// A directory holding only what the launcher needs (dd, cksum, tail, mktemp, chmod,
/// rm, mkdir), to put on PATH for a host that has nothing else.
pub fn launcher_tools_only(dir: &Path) -> PathBuf {
    tools_only(&dir.join("launcher-tools"), &["dd", "cksum", "tail", "mktemp", "chmod", "rm", "mkdir"])
}

/// A directory `bin_dir` holding links to only these of the host's tools, for PATH.
pub fn tools_only(bin_dir: &Path, tools: &[&str]) -> PathBuf {
    fs::create_dir_all(bin_dir).unwrap();
    for tool in tools {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().unwrap();
        let _ = std::os::unix::fs::symlink(String::from_utf8_lossy(&found.stdout).trim(), bin_dir.join(tool));
    }
    bin_dir.to_path_buf()
}

/// Reads `child`'s stderr until a line holding `marker`, waits `delay`, runs `then` (a
/// signal to send, an engine to kill), and collects the rest: the exit status and every
/// line seen.
pub fn act_when(
    mut child: std::process::Child,
    marker: &str,
    delay: std::time::Duration,
    then: impl FnOnce(u32),
) -> (std::process::ExitStatus, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let found = line.contains(marker);
        seen.push(line);
        if found {
            break;
        }
    }
    std::thread::sleep(delay);
    then(child.id());
    seen.extend(lines.map_while(Result::ok));
    (child.wait().unwrap(), seen)
}

/// Sends `signal` to process `pid`.
pub fn send(pid: u32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

/// Rewrites a built bundle the way an attacker with write access to the file would:
/// `edit` changes the index and the members' contents (decompressed, by position), then
/// every member is stored as it is and every offset, size, digest, the launcher's
/// checksum and the trailer are computed again, so the bundle is internally consistent.
/// `after` changes the index once more after that (to make sizes or digests lie).
pub fn forge(
    source: &Path,
    out: &Path,
    edit: impl FnOnce(&mut airbin_format::Index, &mut Vec<Vec<u8>>),
    after: impl FnOnce(&mut airbin_format::Index),
) -> PathBuf {
    forge_signed(source, out, edit, after, None)
}

/// `forge`, keeping a signature block with `signature` (the text of the one the
/// source carried, say) as an attacker who cannot sign would.
pub fn forge_signed(
    source: &Path,
    out: &Path,
    edit: impl FnOnce(&mut airbin_format::Index, &mut Vec<Vec<u8>>),
    after: impl FnOnce(&mut airbin_format::Index),
    signature: Option<String>,
) -> PathBuf {
    use airbin_format::{Bundle, BundleWriter, Codec, InstallRules};
    use std::io::Read;
    let bundle = Bundle::open(source).unwrap();
    let raw = fs::read(source).unwrap();
    let stub = raw[bundle.trailer.stub_offset as usize..(bundle.trailer.stub_offset + bundle.trailer.stub_len) as usize].to_vec();
    let mut index = bundle.index.clone();
    let mut contents: Vec<Vec<u8>> = index
        .members
        .iter()
        .map(|m| {
            let mut content = Vec::new();
            bundle.content_reader(m).unwrap().read_to_end(&mut content).unwrap();
            content
        })
        .collect();
    let launcher_meta = index.bundle.clone();
    edit(&mut index, &mut contents);
    let file = fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(out).unwrap();
    let mut writer = BundleWriter::new(file, &stub, &launcher_meta, &index.build.builder_version).unwrap();
    let mut members = Vec::new();
    for (member, content) in index.members.iter().zip(&contents) {
        let stored = writer.write_stored(|sink| sink.write_all(content)).unwrap();
        let mut member = member.clone();
        member.codec = Codec::None;
        member.offset = stored.offset;
        member.stored_size = stored.stored_size;
        member.stored_sha256 = stored.stored_sha256;
        member.size = content.len() as u64;
        member.sha256 = airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(content));
        members.push(member);
    }
    index.members = members;
    after(&mut index);
    for member in &index.members {
        writer.add_member(member.clone());
    }
    let install = InstallRules {
        steps: index.steps.clone(),
        config: index.config.clone(),
        requires: index.requires.clone(),
        parameters: index.parameters.clone(),
    };
    let keep = signature.map(|text| move |_: &[u8; 32]| Ok(text.clone()));
    let sign = keep.as_ref().map(|f| f as &dyn Fn(&[u8; 32]) -> std::io::Result<String>);
    writer.finish(index.bundle.clone(), index.build.clone(), install, sign).unwrap();
    fs::set_permissions(out, fs::Permissions::from_mode(0o755)).unwrap();
    out.to_path_buf()
}

/// A tar stream of raw entries, written byte by byte as an attacker would (tar-rs's
/// own builder refuses some of them): (path, type, link target, data, mode).
pub type RawEntry<'a> = (&'a str, tar::EntryType, Option<&'a str>, &'a [u8], u32);

pub fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let long = |out: &mut Vec<u8>, kind: tar::EntryType, text: &str| {
        let mut data = text.as_bytes().to_vec();
        data.push(0);
        out.extend(raw_tar(&[("././@LongLink", kind, None, &data, 0o644)]).split_at(512 + data.len().div_ceil(512) * 512).0);
    };
    for (path, kind, link, data, mode) in entries {
        let (path, link) = (*path, *link);
        if path.len() > 100 {
            long(&mut out, tar::EntryType::GNULongName, path);
        }
        if link.is_some_and(|l| l.len() > 100) {
            long(&mut out, tar::EntryType::GNULongLink, link.unwrap());
        }
        let path = &path[..path.len().min(100)];
        let link = link.map(|l| &l[..l.len().min(100)]);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(link) = link {
            let linkname = &mut header.as_old_mut().linkname;
            linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Where the packed runtime (one zstd frame) lies in `bin`, and how long it is.
pub fn packed_runtime(bin: &Path) -> (usize, usize) {
    let bytes = fs::read(bin).unwrap();
    let t = airbin_format::Bundle::open(bin).unwrap().trailer;
    let stub = &bytes[t.stub_offset as usize..(t.stub_offset + t.stub_len) as usize];
    // The decoder's code holds the magic number too; the frame is what decodes whole.
    let frame = (0..stub.len() - 4)
        .filter(|&at| stub[at..at + 4] == [0x28, 0xb5, 0x2f, 0xfd])
        .find_map(|at| {
            let len = zstd::zstd_safe::find_frame_compressed_size(&stub[at..]).ok()?;
            zstd::bulk::decompress(&stub[at..at + len], 16 << 20).ok().filter(|runtime| runtime.starts_with(b"\x7fELF"))?;
            Some((at, len))
        })
        .expect("a zstd frame holding the runtime inside the stub");
    (t.stub_offset as usize + frame.0, frame.1)
}

/// A private podman image store under `dir`, for CONTAINERS_STORAGE_CONF: vfs works on
/// any file system, and nothing touches the host's.
pub fn podman_store(dir: &Path) -> PathBuf {
    let conf = dir.join("storage.conf");
    fs::write(&conf, format!("[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/graph\"\n", dir.display())).unwrap();
    conf
}

/// A tar stream of regular files (name, content), each mode 0644, written into `out`.
pub fn files_tar<W: std::io::Write>(out: W, files: &[(&str, &[u8])]) -> W {
    let mut tar = tar::Builder::new(out);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, *data).unwrap();
    }
    tar.into_inner().unwrap()
}

/// A docker-archive (`docker save` layout) of one image tagged `tag` (none when empty), one layer per
/// entry of `layers` (each layer a tar of one file holding those bytes), written to `path`.
pub fn image_archive(path: &Path, tag: &str, layers: &[&[u8]]) -> PathBuf {
    image_archive_for(path, tag, layers, "amd64")
}

/// The same, for an image of architecture `arch` (`amd64`, `arm64`).
pub fn image_archive_for(path: &Path, tag: &str, layers: &[&[u8]], arch: &str) -> PathBuf {
    let hex = |data: &[u8]| airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(data));
    let tars: Vec<Vec<u8>> =
        layers.iter().enumerate().map(|(i, data)| files_tar(Vec::new(), &[(&format!("layer{i}.dat"), data)])).collect();
    let hexes: Vec<String> = tars.iter().map(|t| hex(t)).collect();
    let diff_ids: Vec<String> = hexes.iter().map(|h| format!("\"sha256:{h}\"")).collect();
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}},"config":{{}}}}"#,
        diff_ids.join(",")
    );
    let config_hex = hex(config.as_bytes());
    let layer_paths: Vec<String> = hexes.iter().map(|h| format!("{h}/layer.tar")).collect();
    // Built as JSON, so that a hostile tag (a quote, a control character) is written as docker would.
    let tags: Vec<&str> = if tag.is_empty() { Vec::new() } else { vec![tag] };
    let manifest = serde_json::json!([{"Config": format!("{config_hex}.json"), "RepoTags": tags, "Layers": layer_paths}]).to_string();
    let config_name = format!("{config_hex}.json");
    let mut files: Vec<(&str, &[u8])> = vec![("manifest.json", manifest.as_bytes()), (&config_name, config.as_bytes())];
    for (p, t) in layer_paths.iter().zip(&tars) {
        files.push((p, t));
    }
    files_tar(fs::File::create(path).unwrap(), &files);
    path.to_path_buf()
}

/// A forged launcher: `from` replaced by `to` (of the same length) in the bundle's
/// launcher, then its own checksum (line 2) and the trailer's digest computed again, as
/// whoever rewrote the file would. The signature block is kept as it was: no forger can
/// sign. Under `sh` the forged launcher runs before anything checks the signature.
pub fn forge_launcher(source: &Path, out: &Path, from: &str, to: &str) -> PathBuf {
    use sha2::Digest;
    assert_eq!(from.len(), to.len(), "a forged launcher keeps its length");
    let mut bytes = fs::read(source).unwrap();
    let launcher = String::from_utf8(bytes[..4096].to_vec()).unwrap();
    let at = launcher.find(from).expect("the text to replace is in the launcher");
    bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
    // Line 2: `tail -c +N` of the block, whose cksum it names as "SUM LEN".
    let line2_start = launcher.find('\n').unwrap() + 1;
    let line2_end = line2_start + launcher[line2_start..].find('\n').unwrap();
    let line2 = &launcher[line2_start..line2_end];
    let start: usize = line2.split("tail -c +").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    let sum = airbin_format::launcher::posix_cksum(&bytes[start - 1..4096]);
    let old_sum = line2.split(" in \"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let new_line2 = line2.replacen(&format!("\"{old_sum}\""), &format!("\"{sum} {}\"", 4096 - (start - 1)), 1);
    let padded = format!("{:<width$}", new_line2.trim_end(), width = line2.len());
    assert_eq!(padded.len(), line2.len(), "the check line keeps its width");
    bytes[line2_start..line2_end].copy_from_slice(padded.as_bytes());
    // The trailer's digest of every byte before the signature block.
    let len = bytes.len();
    let mut raw = [0u8; 160];
    raw.copy_from_slice(&bytes[len - 160..]);
    let mut trailer = airbin_format::Trailer::decode(&raw).unwrap();
    let digested = (trailer.index_offset + trailer.index_len) as usize;
    trailer.file_sha256 = sha2::Sha256::digest(&bytes[..digested]).into();
    bytes[len - 160..].copy_from_slice(&trailer.encode());
    fs::write(out, &bytes).unwrap();
    fs::set_permissions(out, fs::Permissions::from_mode(0o755)).unwrap();
    out.to_path_buf()
}

/// The trusted runner, as a site gets it from the builder it trusts (`airbin runtime`).
pub fn airbin_run(dir: &Path) -> PathBuf {
    let out = dir.join("airbin-run");
    let written = airbin().args(["runtime", "-o"]).arg(&out).output().unwrap();
    assert!(written.status.success(), "airbin runtime: {}", stderr(&written));
    out
}

/// A signing key pair under `dir` (`k.key`, `k.pub`) and the minimal sample built
/// signed with it into `dir/signed`.
pub fn signed_minimal(dir: &Path) -> (PathBuf, PathBuf) {
    let keygen = airbin().args(["keygen", "--no-password", "-o"]).arg(dir.join("k")).output().unwrap();
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    let out = airbin()
        .arg("build")
        .arg(repo_root().join("samples/minimal"))
        .arg("-o")
        .arg(dir.join("signed"))
        .arg("--sign")
        .arg(dir.join("k.key"))
        .env("AIRBIN_KEY_PASSWORD", "")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    (PathBuf::from(stdout(&out).trim()), dir.join("k.pub"))
}

/// Asserts that a damaged bundle was refused and left nothing behind.
pub fn assert_damage_refused(label: &str, output: &std::process::Output, target: &Path, tmp: &Path) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(3), "{label}: want exit 3, got {:?}: {err}", output.status.code());
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("airbin")).collect();
    assert_eq!(lines.len(), 1, "{label}: one clear line, got: {err}");
    assert!(
        ["damaged", "truncated", "unexpected bytes", "format"].iter().any(|w| lines[0].contains(w)),
        "{label}: says what is wrong: {err}"
    );
    assert!(!target.exists(), "{label}: the target was created");
    assert!(entries(tmp).is_empty(), "{label}: left {:?} in TMPDIR", entries(tmp));
}

/// Asserts exit 3 with a one-line error holding `want`, and that `target` was not made.
pub fn assert_refused(what: &str, out: &Output, want: &str, target: &Path) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(3), "{what}: {err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{what}: one error line: {err}");
    assert!(errors[0].contains(want), "{what}: want «{want}» in: {err}");
    assert!(!target.exists(), "{what}: {} was written", target.display());
}

/// A docker-archive with one image tagged `tag` and no layers, in `dir` (named after the tag).
pub fn image_archive_in(dir: &Path, tag: &str) -> PathBuf {
    let name = airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(tag.as_bytes()));
    image_archive(&dir.join(format!("image-{name}.tar")), tag, &[])
}
