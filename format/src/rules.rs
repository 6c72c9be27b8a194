//! The grammar of every name and value a bundle carries. The builder applies these to a
//! spec, the stub to an index before it uses any of it: a name that lands in a path, a
//! reference handed to an engine, a digest sliced for display. One definition, so that a
//! bundle the builder writes always passes, and a forged one never does.

/// Why a text is not a safe name (bundle name, version, member name), if it is not:
/// letters, digits, `.`, `_`, `-`, `+`; not starting with `.` or `-`; at most 100
/// bytes. This rules out empty names, `.`, `..`, `/`, NUL and every control character.
pub fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.len() > 100 {
        return Some("is longer than 100 bytes");
    }
    if name.starts_with(['.', '-']) {
        return Some("starts with '.' or '-'");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')) {
        return Some("has a character other than letters, digits, '.', '_', '-' or '+'");
    }
    None
}

pub const SAFE_NAME: &str = "use letters, digits, '.', '_', '-' or '+', not starting with '.' or '-', at most 100 bytes";

/// Why a step name is unusable, if it is: one printable line of at most 100 bytes, not
/// starting with `-` (it is typed after `--from`), without `/` (never a path part).
pub fn unsafe_step_name(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        return Some("is empty");
    }
    if name.len() > 100 {
        return Some("is longer than 100 bytes");
    }
    if name.starts_with('-') {
        return Some("starts with '-'");
    }
    if name == "." || name == ".." || name.contains('/') {
        return Some("has a '/' or is '.' or '..'");
    }
    if name.chars().any(char::is_control) {
        return Some("has a control character");
    }
    None
}

pub const STEP_NAME: &str = "one printable line of at most 100 bytes, without '/', not starting with '-'";

/// Free text shown to people (a description, build facts): bounded, and no control
/// character but newline and tab, so that it cannot move a terminal's cursor.
pub fn unsafe_text(text: &str, max: usize) -> Option<&'static str> {
    if text.len() > max {
        return Some("is too long");
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Some("has a control character");
    }
    None
}

/// A key of the product's config: words of letters, digits, `_` and `-`, joined by dots.
pub fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 200
        && key.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

/// An environment variable name: a letter or `_`, then letters, digits and `_`.
pub fn is_env_name(key: &str) -> bool {
    key.len() <= 200
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// 64 lowercase hex digits: a SHA-256 as the index writes it.
pub fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `sha256:` and 64 lowercase hex digits: an image ID, a manifest digest.
pub fn is_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(is_sha256_hex)
}

/// One path component of a repository name: `[a-z0-9]+` joined by `.`, `_`, `__` or
/// dashes, as the distribution reference grammar has it.
fn is_path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &part[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A registry domain: host name components or an IPv4 address, optionally `:port`
/// (bracketed IPv6 addresses too).
fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || domain.starts_with('[') => (host, Some(port)),
        _ => (domain, None),
    };
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// A repository name as a registry stores it: path components joined by `/`, at most
/// 255 bytes.
pub fn is_repository_name(name: &str) -> bool {
    name.len() <= 255 && name.split('/').all(is_path_component)
}

/// A tag: a word character, then up to 127 word characters, `.` and `-`.
pub fn is_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty() && b.len() <= 128 && word(b[0]) && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// An image reference of the Docker grammar: `[domain/]path[:tag][@sha256:hex]`, the
/// name at most 255 bytes. What a `docker save` records in `RepoTags`, and all that may
/// reach an engine's command line or API.
pub fn is_image_reference(reference: &str) -> bool {
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if digest.is_some_and(|d| !is_digest(d)) {
        return false;
    }
    // The tag is after the last ':' that follows the last '/' (a port is before it).
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    if tag.is_some_and(|t| !is_tag(t)) || name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut parts = name.split('/');
    let first = parts.next().unwrap_or("");
    // As docker splits it: a first part with '.', ':' or uppercase, or "localhost", is a
    // domain, when more parts follow.
    let looks_like_domain = first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase());
    let has_more = name.contains('/');
    if has_more && looks_like_domain {
        is_domain(first) && parts.all(is_path_component)
    } else {
        name.split('/').all(is_path_component)
    }
}

/// `user[:group]`, by name or number: what `chown` takes.
pub fn is_owner(owner: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.len() <= 32
            && !w.starts_with('-')
            && w.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    match owner.split_once(':') {
        Some((user, group)) => word(user) && word(group),
        None => word(owner),
    }
}

/// Text made safe to print on a terminal: control characters shown as `\u{..}`, and cut
/// to `max` characters.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// `1.4.34` → `1.4`; `v2.7.3-rc1` → `v2.7`; a tag of fewer than three numeric parts has none.
/// The track tag a version tag belongs to, as GCP Marketplace tags images:
pub fn track_of(tag: &str) -> Option<String> {
    let (v, digits) = tag.strip_prefix('v').map_or(("", tag), |d| ("v", d));
    let core = digits.split(['-', '+']).next()?;
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    (parts.len() >= 3 && parts.iter().take(3).all(numeric)).then(|| format!("{v}{}.{}", parts[0], parts[1]))
}

/// Orders two versions as release engineers write them: numeric parts as numbers
/// (`1.10` after `1.9`), a shorter one first (`1.0` before `1.0.1`), and a pre-release
/// (`2.0-rc1`: a `-` then a letter) before its release. Hand-written: `semver` takes
/// only three-part versions, and bundles carry `2.0` and `1.4.34.2` alike.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn split(v: &str) -> (&str, Option<&str>) {
        let v = v.strip_prefix('v').unwrap_or(v);
        match v.find('-').filter(|&at| v[at + 1..].starts_with(|c: char| c.is_ascii_alphabetic())) {
            Some(at) => (&v[..at], Some(&v[at + 1..])),
            None => (v, None),
        }
    }
    fn parts(text: &str) -> Vec<&str> {
        text.split(['.', '-', '+', '_']).collect()
    }
    fn compare_parts(a: &[&str], b: &[&str]) -> Ordering {
        for (x, y) in a.iter().zip(b) {
            let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                (Ok(_), Err(_)) => Ordering::Greater,
                (Err(_), Ok(_)) => Ordering::Less,
                (Err(_), Err(_)) => x.cmp(y),
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        a.len().cmp(&b.len())
    }
    let ((core_a, pre_a), (core_b, pre_b)) = (split(a), split(b));
    compare_parts(&parts(core_a), &parts(core_b)).then_with(|| match (pre_a, pre_b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => compare_parts(&parts(x), &parts(y)),
    })
}

/// Keys whose values are never shown, whatever the bundle declares: passwords, tokens,
/// secrets, keys, credentials.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "passwd", "token", "secret", "key", "credential"].iter().any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_as_release_engineers_mean_them() {
        use std::cmp::Ordering::*;
        for (a, b, order) in [
            ("1.0", "2.0", Less),
            ("1.9", "1.10", Less),
            ("1.0", "1.0.1", Less),
            ("2.0-rc1", "2.0", Less),
            ("2.0-rc1", "2.0-rc2", Less),
            ("v1.4.34", "1.4.34", Equal),
            ("1.4.34", "1.4.4", Greater),
            ("2.0", "2.0", Equal),
        ] {
            assert_eq!(compare_versions(a, b), order, "{a} vs {b}");
        }
    }

    #[test]
    fn track_tags_come_from_version_tags() {
        assert_eq!(track_of("1.4.34").as_deref(), Some("1.4"));
        assert_eq!(track_of("v2.7.3-rc1").as_deref(), Some("v2.7"));
        assert_eq!(track_of("1.4"), None);
        assert_eq!(track_of("latest"), None);
        assert_eq!(track_of("1.x.3"), None);
    }

    #[test]
    fn names() {
        for good in ["compass-component", "v2.7.3+build1", "a"] {
            assert_eq!(unsafe_name(good), None, "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "-rf", "a b", "a\0b", "a\nb", "é", &"x".repeat(101)] {
            assert!(unsafe_name(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn step_names() {
        assert_eq!(unsafe_step_name("cadm install"), None);
        for bad in ["", " ", "-x", "a/b", "..", "a\rb", "a\u{1b}[2J"] {
            assert!(unsafe_step_name(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn references() {
        for good in [
            "busybox",
            "busybox:1.36",
            "compass/api:2.7.3",
            "127.0.0.1:5000/a/b:c",
            "localhost/x",
            "registry.example.com:443/team/app_1__x-y.z:v1.0-rc_1",
            "a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_image_reference(good), "{good}");
        }
        for bad in [
            "",
            ":1",
            "Busybox:1",
            "a:1/json?x",
            "a:1 HTTP/1.1\r\nHost: x",
            "-rm",
            "--help",
            "a//b",
            "a:",
            "a:-x",
            "a/../b",
            "a@sha256:xyz",
            "a b",
            "a:1\n",
        ] {
            assert!(!is_image_reference(bad), "{bad:?}");
        }
    }

    #[test]
    fn repositories_and_tags() {
        assert!(is_repository_name("compass/agent"));
        assert!(!is_repository_name("compass/../etc"));
        assert!(!is_repository_name("Compass"));
        assert!(is_tag("2.7.3") && is_tag("latest") && !is_tag(".x") && !is_tag(&"x".repeat(129)) && !is_tag("a/b"));
    }

    #[test]
    fn digests_and_owners() {
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_digest("sha256:é"));
        assert!(is_owner("docker-registry") && is_owner("0:0") && !is_owner("-x") && !is_owner("a:b:c") && !is_owner(""));
    }

    #[test]
    fn printable_escapes_controls() {
        assert_eq!(printable("a\u{1b}[2Jb", 100), "a\\u{1b}[2Jb");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}
