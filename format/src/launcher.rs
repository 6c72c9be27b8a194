//! The launcher: the POSIX sh text at the start of every bundle.
//!
//! It needs only `sh`, `dd`, `chmod` and `mkdir` (all in busybox), plus `cksum`, `head`
//! and `uname` when the host has them. A chroot without /dev is refused first: it would
//! give every redirection a confusing error. Then a host of another architecture (by
//! `uname -m`), before anything is copied: the stub is a native program, which would
//! fail there with a bare "Exec format error". Failures look like the runtime's: one
//! line on stderr, and with --json one document on stdout. It copies the stub out of the
//! bundle into the first directory where a program may run ($TMPDIR, /tmp, /var/tmp, /dev/shm, $HOME, the bundle's directory,
//! the working directory: a `noexec` or full /tmp is passed over), checks the copy and
//! runs it with `--bundle "$0"`. The stub removes its own copy as soon as it starts.
//!
//! The launcher fills whole 4 KiB blocks, so that `dd bs=4096 skip=1` finds the stub
//! without GNU-only flags. Its numeric fields have a fixed width, so the builder can
//! write the total length in place once it is known.
//!
//! A shell runs a script as it reads it, so a damaged launcher could run damaged code
//! before the stub ever checks the bundle. Line 2 therefore checks the rest of the block
//! with `cksum` before the shell parses another line: one flipped byte anywhere after it
//! stops the run with a clear message. (A flip in line 2 itself at worst disables that
//! check; the stub's whole-file digest then catches it.)

use super::arch::ARCHES;

pub const BLOCK: u64 = 4096;
/// The launcher takes exactly one block; the stub starts at this offset.
pub const LAUNCHER_LEN: u64 = BLOCK;
const FIELD_WIDTH: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LauncherFields {
    pub format_version: u32,
    pub builder_version: String,
    pub name: String,
    pub version: String,
    /// The bundle's arch (`amd64`, `arm64`): the stub's machine.
    pub arch: String,
    /// How many 4 KiB blocks the stub takes (zero-padded at its end).
    pub stub_blocks: u64,
    /// POSIX `cksum` of those blocks, checked by the launcher where `cksum` exists.
    pub stub_cksum: u32,
    pub total_len: u64,
}

/// Line 2, padded with spaces to `CHECK_LINE_LEN` so that the body's offset is fixed.
/// It has no redirection on the path a good bundle takes: a damaged byte in this one
/// line, which cannot check itself, must not turn `>/dev/null` into a new file.
/// Hosts without `cksum` or `head` skip the check (the stub's digest still runs).
const CHECK_LINE: &str = r#"[ -n "$(command -v cksum)" ] && [ -n "$(command -v head)" ] && [ -r "$0" ] && case $(head -c 4096 "$0" | tail -c +@START@ | cksum) in "@SUM@") ;; *) echo "airbin: $0 is damaged: its launcher fails its checksum; copy the bundle again and compare it with its .sha256 file" >&2; case " $* " in *" --json "*) c=install;for a;do case $a in info|list|check|extract|plan|preflight|status|support|uninstall) c=$a;break;;esac;done;echo '{"command":"'$c'","status":"failed","exit_code":3,"steps":[],"error":{"class":"integrity","message":"the bundle is damaged: its launcher fails its checksum"},"log":null}';; esac; exit 3;; esac"#;
const SHEBANG: &str = "#!/bin/sh\n";
const CHECK_LINE_LEN: usize = 632;

const TEMPLATE: &str = r#"# airbin offline installer bundle (POSIX sh launcher, static runtime, payload).
# Run: sh THIS_FILE --help
# Bundle: @NAME@ @VERSION@, made by airbin @BUILDER@, format @FORMAT@.
AIRBIN_FORMAT=@FORMAT@
AIRBIN_STUB_BLOCKS=@STUB_BLOCKS@
AIRBIN_STUB_CKSUM=@STUB_CKSUM@
AIRBIN_TOTAL_LEN=@TOTAL_LEN@
AIRBIN_ARCH=@ARCH@
airbin_json= airbin_cmd=
for airbin_arg; do case $airbin_arg in
--json) airbin_json=1;;
install|info|list|check|extract|plan|preflight|status|support|uninstall) : "${airbin_cmd:=$airbin_arg}";;
--info|--list|--check) : "${airbin_cmd:=${airbin_arg#--}}";;
esac; done
airbin_fail() {
 echo "airbin: $3" >&2
 [ -z "$airbin_json" ] || echo "{\"command\":\"${airbin_cmd:-install}\",\"status\":\"failed\",\"exit_code\":$1,\"steps\":[],\"error\":{\"class\":\"$2\",\"message\":\"$4\"},\"log\":null}"
 exit "$1"
}
[ -c /dev/null ] || airbin_fail 7 host-not-ready "this host has no /dev/null (a chroot without /dev?): mount /dev, or create it: mknod -m 666 /dev/null c 1 3" "this host has no /dev/null"
airbin_m=$(uname -m 2>/dev/null)
case $AIRBIN_ARCH:$airbin_m in *:|@ARCH_PAIRS@) ;; *) airbin_fail 7 host-not-ready "this bundle is for $AIRBIN_ARCH; this host is $airbin_m: run it on an $AIRBIN_ARCH host, or get this bundle's build for $airbin_m" "this bundle is for $AIRBIN_ARCH; this host is $airbin_m";; esac
airbin_missing=
for airbin_tool in dd chmod mkdir rm; do command -v "$airbin_tool" >/dev/null 2>&1 || airbin_missing="$airbin_missing $airbin_tool"; done
[ -z "$airbin_missing" ] || airbin_fail 7 host-not-ready "this host lacks$airbin_missing: the launcher needs sh, dd, chmod, mkdir and rm; install them" "this host lacks$airbin_missing"
self=$0
case $self in */*) ;; *) [ -f "$self" ] || self=$(command -v -- "$self") ;; esac
[ -r "$self" ] || airbin_fail 5 permission "cannot read the bundle file '$self'; run it as: sh /path/to/the.bin" "cannot read the bundle file"
case $self in */*) self_dir=${self%/*} ;; *) self_dir=. ;; esac
airbin_damaged=
airbin_try() {
 [ -n "$1" ] && [ -d "$1" ] && [ -w "$1" ] || return 1
 airbin_dir=$(mktemp -d "$1/airbin.XXXXXX" 2>/dev/null) || {
  airbin_dir="$1/airbin.$$"
  mkdir -m 700 "$airbin_dir" 2>/dev/null || return 1
 }
 airbin_stub="$airbin_dir/airbin-stub"
 if dd if="$self" of="$airbin_stub" bs=4096 skip=1 count="$AIRBIN_STUB_BLOCKS" 2>/dev/null; then
  if command -v cksum >/dev/null 2>&1; then
   set -- $(cksum < "$airbin_stub")
   if [ "$1" != "$AIRBIN_STUB_CKSUM" ]; then
    airbin_damaged=1
    rm -rf "$airbin_dir"
    return 1
   fi
  fi
  if chmod 700 "$airbin_stub" 2>/dev/null && "$airbin_stub" --launcher-probe >/dev/null 2>&1; then
   return 0
  fi
 fi
 rm -rf "$airbin_dir"
 return 1
}
for airbin_base in "${TMPDIR:-}" /tmp /var/tmp /dev/shm "${HOME:-}" "$self_dir" "$(pwd)"; do
 if airbin_try "$airbin_base"; then
  exec "$airbin_stub" --bundle "$self" --launcher-tmp "$airbin_dir" "$@"
 fi
 [ -z "$airbin_damaged" ] || airbin_fail 3 integrity "$self is damaged: its runtime fails its checksum; copy the bundle again and compare it with its .sha256 file" "the bundle is damaged: its runtime fails its checksum"
done
airbin_fail 7 host-not-ready "found no writable directory where programs may run (tried \$TMPDIR, /tmp, /var/tmp, /dev/shm, \$HOME, the bundle's and the working directory); point TMPDIR at one, e.g.: TMPDIR=/root sh $self" "found no writable directory where programs may run; point TMPDIR at one"
"#;

/// The `bundle:machine` patterns of a host that runs the bundle's stub (`uname -m` on
/// Linux names the machine: `x86_64`, `aarch64`).
fn arch_pairs() -> String {
    ARCHES.iter().map(|arch| format!("{}:{}", arch.name, arch.machine)).collect::<Vec<_>>().join("|")
}

fn padded(value: impl ToString) -> String {
    format!("{:<width$}", value.to_string(), width = FIELD_WIDTH)
}

/// Keeps what goes into the launcher's comment line to plain printable ASCII, and short:
/// the block has room for the longest names and versions (100 bytes) only cut to 20
/// characters (the index holds them whole).
fn comment_safe(text: &str) -> String {
    text.chars().take(20).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

/// Renders the launcher, exactly `LAUNCHER_LEN` bytes.
pub fn render(fields: &LauncherFields) -> Vec<u8> {
    let text = TEMPLATE
        .replace("@NAME@", &comment_safe(&fields.name))
        .replace("@VERSION@", &comment_safe(&fields.version))
        .replace("@BUILDER@", &comment_safe(&fields.builder_version))
        .replace("@FORMAT@", &fields.format_version.to_string())
        .replace("@ARCH@", &comment_safe(&fields.arch))
        .replace("@ARCH_PAIRS@", &arch_pairs())
        .replace("@STUB_BLOCKS@", &padded(fields.stub_blocks))
        .replace("@STUB_CKSUM@", &padded(fields.stub_cksum))
        .replace("@TOTAL_LEN@", &padded(fields.total_len));
    let body_start = SHEBANG.len() + CHECK_LINE_LEN + 1;
    let mut body = text.into_bytes();
    assert!(body_start + body.len() < LAUNCHER_LEN as usize - 2, "launcher text outgrew its block");
    // The shell never reads past `exit`; the rest of the block is a comment anyway.
    body.push(b'#');
    body.resize(LAUNCHER_LEN as usize - body_start - 1, b' ');
    body.push(b'\n');

    let check =
        CHECK_LINE.replace("@START@", &(body_start + 1).to_string()).replace("@SUM@", &format!("{} {}", posix_cksum(&body), body.len()));
    assert!(check.len() <= CHECK_LINE_LEN, "the check line outgrew its width");
    let mut out = Vec::with_capacity(LAUNCHER_LEN as usize);
    out.extend_from_slice(SHEBANG.as_bytes());
    out.extend_from_slice(format!("{check:<CHECK_LINE_LEN$}\n").as_bytes());
    out.extend_from_slice(&body);
    debug_assert_eq!(out.len() as u64, LAUNCHER_LEN);
    out
}

/// POSIX `cksum` (CRC-32 over the data, then over its length), as the launcher computes it.
pub fn posix_cksum(data: &[u8]) -> u32 {
    const CKSUM: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_CKSUM);
    let mut digest = CKSUM.digest();
    digest.update(data);
    let mut len = data.len() as u64;
    while len > 0 {
        digest.update(&[(len & 0xff) as u8]);
        len >>= 8;
    }
    digest.finalize()
}

/// Reads the fields back from the first block of a file; `None` if it is no launcher.
pub fn parse(head: &[u8]) -> Option<LauncherFields> {
    let text = std::str::from_utf8(head.get(..LAUNCHER_LEN as usize)?).ok()?;
    if !text.starts_with(SHEBANG) {
        return None;
    }
    let field = |key: &str| -> Option<&str> { text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix('=')).map(str::trim) };
    let comment = text.lines().find_map(|l| l.strip_prefix("# Bundle: "))?;
    let (name_version, rest) = comment.split_once(", made by airbin ")?;
    let (name, version) = name_version.rsplit_once(' ')?;
    let builder_version = rest.split_once(',')?.0.to_string();
    // Launchers before arm64 bundles existed have no AIRBIN_ARCH: theirs were amd64.
    let arch = field("AIRBIN_ARCH").unwrap_or("amd64").to_string();
    Some(LauncherFields {
        format_version: field("AIRBIN_FORMAT")?.parse().ok()?,
        builder_version,
        name: name.to_string(),
        version: version.to_string(),
        arch,
        stub_blocks: field("AIRBIN_STUB_BLOCKS")?.parse().ok()?,
        stub_cksum: field("AIRBIN_STUB_CKSUM")?.parse().ok()?,
        total_len: field("AIRBIN_TOTAL_LEN")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(total_len: u64) -> LauncherFields {
        LauncherFields {
            format_version: 1,
            builder_version: "0.1.0".into(),
            name: "compass-component".into(),
            version: "v2.7.3".into(),
            arch: "arm64".into(),
            stub_blocks: 270,
            stub_cksum: 4_000_000_000,
            total_len,
        }
    }

    #[test]
    fn fills_one_block_and_parses_back() {
        for total in [0, 1, u64::MAX] {
            let text = render(&fields(total));
            assert_eq!(text.len() as u64, LAUNCHER_LEN);
            assert_eq!(parse(&text), Some(fields(total)));
        }
    }

    #[test]
    fn the_longest_names_fit_the_block() {
        let long =
            LauncherFields { name: "n".repeat(100), version: "v".repeat(100), builder_version: "10.20.30-rc.1".into(), ..fields(u64::MAX) };
        let text = render(&long);
        assert_eq!(text.len() as u64, LAUNCHER_LEN);
        assert_eq!(parse(&text).map(|f| f.total_len), Some(u64::MAX));
    }

    #[test]
    fn the_total_length_can_be_patched_in_place() {
        let before = render(&fields(0));
        let after = render(&fields(123_456_789_012));
        assert_eq!(before.len(), after.len());
        // Line 2 carries the check sum (of varying width, padded); the body changes only
        // in the length's digits.
        let line2 = SHEBANG.len()..SHEBANG.len() + CHECK_LINE_LEN + 1;
        let differing = (0..before.len()).filter(|i| !line2.contains(i) && before[*i] != after[*i]).count();
        assert!(differing <= 12, "only the digits of the length change");
        assert_eq!(before[line2.end - 1], b'\n');
    }

    #[test]
    fn cksum_matches_the_posix_tool() {
        // Values printed by `printf ... | cksum` (GNU coreutils and busybox agree).
        assert_eq!(posix_cksum(b""), 4294967295);
        assert_eq!(posix_cksum(b"abc"), 1219131554);
    }

    #[test]
    fn other_files_are_no_launcher() {
        assert_eq!(parse(b"\x7fELF"), None);
        assert_eq!(parse(&[b'#'; 4096]), None);
    }
}
