//! The docker command line: where a docker context may point elsewhere than the local socket.

use std::io::Read;

use crate::error::Result;

pub fn answers() -> bool {
    super::on_path("docker") && super::runs_ok("docker", &["version", "--format", "{{.Server.Version}}"])
}

pub fn load(content: &mut (dyn Read + Send), size: u64) -> std::result::Result<(), String> {
    super::cli_load("docker", content, size)
}

pub fn image_id(reference: &str) -> Result<Option<String>> {
    super::cli_image_id("docker", reference)
}
