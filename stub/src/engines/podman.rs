//! podman, for hosts without Docker.

use std::io::Read;

use airbin_format::error::Result;

pub(crate) fn answers() -> bool {
    super::on_path("podman") && super::runs_ok("podman", &["version"])
}

pub(crate) fn load(content: &mut (dyn Read + Send), size: u64) -> std::result::Result<(), String> {
    super::cli_load("podman", content, size)
}

pub(crate) fn image_id(reference: &str) -> Result<Option<String>> {
    super::cli_image_id("podman", reference)
}
