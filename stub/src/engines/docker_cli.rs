//! The docker command line: where a docker context may point elsewhere than the local socket.

use std::io::Read;

use airbin_format::error::Result;

pub(crate) fn answers() -> bool {
    super::on_path("docker") && super::runs_ok("docker", &["version", "--format", "{{.Server.Version}}"])
}

pub(crate) fn load(content: &mut (dyn Read + Send), size: u64) -> std::result::Result<(), String> {
    super::cli_load("docker", content, size)
}

pub(crate) fn image_id(reference: &str) -> Result<Option<String>> {
    super::cli_image_id("docker", reference)
}
