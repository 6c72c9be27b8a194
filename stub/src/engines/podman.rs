//! podman, for hosts without Docker.

use std::io::Read;

use crate::error::Result;

pub fn answers() -> bool {
    super::on_path("podman") && super::runs_ok("podman", &["version"])
}

pub fn load(content: &mut (dyn Read + Send), size: u64) -> std::result::Result<(), String> {
    super::cli_load("podman", content, size)
}

pub fn image_id(reference: &str) -> Result<Option<String>> {
    super::cli_image_id("podman", reference)
}
