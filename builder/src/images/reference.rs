//! An image reference as an image list writes it: `repo[:tag]` or `repo@sha256:...`,
//! relative to the member's `from` (a reference may also name its own registry host,
//! as `docker pull` takes it).

use airbin_format::rules;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Reference {
    /// As the list wrote it: the lock's key, and the tag the image gets in the bundle.
    pub(crate) written: String,
    /// The repository path on its registry (`sample/app`, `library/busybox`).
    pub(crate) repository: String,
    /// The tag, or the digest when the list pins one.
    pub(crate) tag: String,
}

impl Reference {
    /// `text` as a reference, or why it is not one.
    pub(crate) fn parse(text: &str) -> Result<Reference, String> {
        let written = text.trim().to_string();
        if !rules::is_image_reference(&written) && !written.contains('@') {
            return Err(format!("'{}' is not an image reference (repo:tag, or repo@sha256:...)", rules::printable(&written, 200)));
        }
        let (name, tag) = match written.split_once('@') {
            Some((name, digest)) if rules::is_digest(digest) => (name.to_string(), digest.to_string()),
            Some(_) => return Err(format!("'{}' pins no sha256:<64 hex digits> digest", rules::printable(&written, 200))),
            None => match written.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                Some((name, tag)) => (name.to_string(), tag.to_string()),
                None => (written.clone(), "latest".to_string()),
            },
        };
        // A first part with a dot or a port, or `localhost`, is a registry host: the
        // repository is what follows it.
        let repository = match name.split_once('/') {
            Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest.to_string(),
            _ => name.clone(),
        };
        Ok(Reference { written, repository, tag })
    }

    /// Whether the list pins the image by digest.
    pub(crate) fn is_digest(&self) -> bool {
        self.tag.starts_with("sha256:")
    }

    /// The repository as Docker Hub names it (`busybox` is `library/busybox` there).
    pub(crate) fn on_docker_hub(&self) -> String {
        match self.repository.contains('/') {
            true => self.repository.clone(),
            false => format!("library/{}", self.repository),
        }
    }

    /// The name and tag the image is known by in the bundle: the written reference
    /// without a pinned digest (an untagged pin keeps no tag).
    pub(crate) fn bundle_tag(&self) -> Option<String> {
        match self.written.split_once('@') {
            Some(_) => None,
            None if self.written.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/')) => Some(self.written.clone()),
            None => Some(format!("{}:latest", self.written)),
        }
    }
}

/// The references of `images`, then of the lines of `file` (blank lines and `#`
/// comments skipped), each once; or the first that is not one, with its line.
pub(crate) fn read_list(images: &[String], file: Option<&std::path::Path>) -> Result<Vec<Reference>, String> {
    let mut texts: Vec<(String, String)> = images.iter().enumerate().map(|(i, t)| (format!("images[{i}]"), t.clone())).collect();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("images_file {}: {e}; give the file relative to the spec", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.is_empty() {
                texts.push((format!("{}:{}", file.display(), n + 1), line.to_string()));
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    texts
        .into_iter()
        .filter(|(_, t)| seen.insert(t.clone()))
        .map(|(at, t)| Reference::parse(&t).map_err(|why| format!("{at}: {why}")))
        .collect()
}

/// Percent-encodes all but RFC 3986's unreserved characters: for a reference in an
/// engine API's query, and for a purl's segments.
pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_as_docker_writes_them() {
        let r = Reference::parse("sample/app:1.0").unwrap();
        assert_eq!((r.repository.as_str(), r.tag.as_str()), ("sample/app", "1.0"));
        let r = Reference::parse("127.0.0.1:5000/sample/app:1.0").unwrap();
        assert_eq!(r.repository.as_str(), "sample/app");
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (r.tag.as_str(), r.on_docker_hub().as_str(), r.bundle_tag().as_deref()),
            ("latest", "library/busybox", Some("busybox:latest"))
        );
        let pinned = format!("app@sha256:{}", "a".repeat(64));
        let r = Reference::parse(&pinned).unwrap();
        assert!(r.is_digest() && r.bundle_tag().is_none());
        assert!(Reference::parse("Bad Name").is_err());
        assert!(Reference::parse("app@sha256:short").is_err());
    }
}
