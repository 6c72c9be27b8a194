//! containerd through `ctr`, in a namespace (Kubernetes uses `k8s.io`).

use std::io::Read;
use std::process::Command;

use super::{pipe_into, query};
use airbin_format::error::Result;

pub(crate) fn answers() -> bool {
    super::on_path("ctr") && super::runs_ok("ctr", &["version"])
}

pub(crate) fn load(namespace: &str, content: &mut (dyn Read + Send), size: u64) -> std::result::Result<(), String> {
    let imported = pipe_into(Command::new("ctr").args(["-n", namespace, "images", "import", "--all-platforms", "-"]), content, size);
    if imported.is_err() {
        collect_garbage(namespace);
    }
    imported
}

/// A failed import drops its lease, but the blobs it ingested wait for containerd's next
/// garbage collection, which deletions alone do not start. Deleting a lease of our own
/// with `--sync` runs one now: nothing of the failed import stays in the content store.
fn collect_garbage(namespace: &str) {
    let Ok(Some(created)) = query("ctr", &["-n", namespace, "leases", "create"]) else { return };
    // "Created lease with ID <id>"
    if let Some(id) = created.split_whitespace().last() {
        let _ = query("ctr", &["-n", namespace, "leases", "delete", "--sync", "--", id]);
    }
}

/// `ctr images rm --sync`: the image record, and its content with it (garbage collected
/// at once). None when it went.
pub(crate) fn remove(namespace: &str, reference: &str) -> Result<Option<String>> {
    let name = containerd_name(reference);
    match query("ctr", &["-n", namespace, "images", "rm", "--sync", "--", &name])? {
        Some(_) => {
            collect_garbage(namespace);
            Ok(None)
        }
        None => Ok(Some(format!("ctr could not remove {name}"))),
    }
}

/// ctr lists the manifest digest; the image ID is the config digest inside it.
pub(crate) fn image_id(namespace: &str, reference: &str) -> Result<Option<String>> {
    let name = containerd_name(reference);
    let Some(listing) = query("ctr", &["-n", namespace, "images", "ls", "--", &format!("name=={name}")])? else { return Ok(None) };
    let Some(manifest_digest) = listing.lines().nth(1).and_then(|l| l.split_whitespace().nth(2)) else { return Ok(None) };
    if !airbin_format::rules::is_digest(manifest_digest) {
        return Ok(None);
    }
    let Some(manifest) = query("ctr", &["-n", namespace, "content", "get", "--", manifest_digest])? else { return Ok(None) };
    let value: serde_json::Value = serde_json::from_str(&manifest).unwrap_or_default();
    Ok(value.pointer("/config/digest").and_then(|d| d.as_str()).map(str::to_string))
}

/// containerd keeps fully qualified names: `busybox:1` is `docker.io/library/busybox:1`.
pub(crate) fn containerd_name(reference: &str) -> String {
    if reference.starts_with("sha256:") {
        return reference.to_string();
    }
    let first = reference.split('/').next().unwrap_or("");
    let has_registry = reference.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        reference.to_string()
    } else if reference.contains('/') {
        format!("docker.io/{reference}")
    } else {
        format!("docker.io/library/{reference}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_names_are_qualified() {
        assert_eq!(containerd_name("busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(containerd_name("compass/api:2.7.3"), "docker.io/compass/api:2.7.3");
        assert_eq!(containerd_name("127.0.0.1:5000/a/b:c"), "127.0.0.1:5000/a/b:c");
        assert_eq!(containerd_name("registry.local/a:1"), "registry.local/a:1");
    }
}
