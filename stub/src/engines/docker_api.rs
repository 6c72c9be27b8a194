//! The Docker Engine API on its unix socket: the image streams straight into the
//! daemon, one copy fewer than through the docker CLI.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::classify_stream_error;
use crate::http;
use airbin_format::error::{Error, Result};

pub(crate) fn answers(socket: &Path) -> bool {
    http::unix_request(socket, "GET", "/_ping", None, Duration::from_secs(10)).is_ok_and(|r| r.status == 200)
}

pub(crate) fn load(socket: &Path, content: &mut (dyn Read + Send), length: u64) -> std::result::Result<(), String> {
    let body = http::Body { content_type: "application/x-tar", length, reader: content };
    let response =
        http::unix_request(socket, "POST", "/images/load?quiet=1", Some(body), Duration::from_secs(3600)).map_err(classify_stream_error)?;
    // The API answers 200 even when the load fails: the error is in the JSON stream.
    let text = String::from_utf8_lossy(&response.body);
    if response.status != 200 {
        return Err(format!("HTTP {}: {}", response.status, text.trim()));
    }
    match api_stream_error(&text) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

pub(crate) fn image_id(socket: &Path, reference: &str) -> Result<Option<String>> {
    let response =
        http::unix_request(socket, "GET", &format!("/images/{}/json", http::encode_path(reference)), None, Duration::from_secs(30))
            .map_err(|e| Error::host(format!("the Docker Engine API at {} stopped answering: {e}", socket.display())))?;
    if response.status == 404 {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    Ok(value.get("Id").and_then(|id| id.as_str()).map(str::to_string))
}

/// `DELETE /images/REF`: None when it went, else the daemon's complaint (a container uses it).
pub(crate) fn remove(socket: &Path, reference: &str) -> Result<Option<String>> {
    let response =
        http::unix_request(socket, "DELETE", &format!("/images/{}", http::encode_path(reference)), None, Duration::from_secs(60))
            .map_err(|e| Error::host(format!("the Docker Engine API at {} stopped answering: {e}", socket.display())))?;
    match response.status {
        200 | 404 => Ok(None),
        _ => {
            let value: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
            let message = value.get("message").and_then(|m| m.as_str()).unwrap_or("no message");
            Ok(Some(format!("HTTP {}: {message}", response.status)))
        }
    }
}

/// The first `error` of a Docker API JSON message stream, if any.
fn api_stream_error(text: &str) -> Option<String> {
    serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>().flatten().find_map(|message| {
        message
            .get("error")
            .and_then(|e| e.as_str())
            .map(str::to_string)
            .or_else(|| message.get("errorDetail").and_then(|d| d.get("message")).and_then(|m| m.as_str()).map(str::to_string))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_inside_a_200_stream_are_found() {
        let ok = "{\"stream\":\"Loaded image: a:1\\n\"}\n";
        assert_eq!(api_stream_error(ok), None);
        let bad = "{\"stream\":\"x\"}\n{\"errorDetail\":{\"message\":\"unexpected EOF\"},\"error\":\"unexpected EOF\"}\n";
        assert_eq!(api_stream_error(bad).as_deref(), Some("unexpected EOF"));
    }
}
