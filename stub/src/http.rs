//! Just enough HTTP/1.1 for two peers on the local host: the Docker Engine API on its
//! unix socket and a registry on a loopback address. Written by hand because the
//! client crates either cannot speak over a unix socket or bring an async runtime and
//! TLS into a static stub that needs neither. One request per connection
//! (`Connection: close`); chunked responses are decoded.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A request body streamed from a reader, of a length known up front.
pub struct Body<'a> {
    pub content_type: &'a str,
    pub length: u64,
    pub reader: &'a mut dyn Read,
}

pub fn unix_request(socket: &Path, method: &str, path: &str, body: Option<Body<'_>>, timeout: Duration) -> io::Result<Response> {
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(timeout))?;
    request(stream, "docker", method, path, &[], body)
}

pub fn tcp_request(address: &str, method: &str, path: &str, headers: &[(&str, &str)], timeout: Duration) -> io::Result<Response> {
    let stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    request(stream, address, method, path, headers, None)
}

fn request<S: Read + Write>(
    mut stream: S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Body<'_>>,
) -> io::Result<Response> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: airbin/{}\r\nConnection: close\r\n", crate::VERSION);
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &body {
        Some(body) => head.push_str(&format!("Content-Type: {}\r\nContent-Length: {}\r\n\r\n", body.content_type, body.length)),
        None => head.push_str("\r\n"),
    }
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        let sent = copy_in_large_writes(&mut body.reader.take(body.length), &mut stream)?;
        if sent != body.length {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the request body ended early"));
        }
    }
    stream.flush()?;
    read_response(BufReader::new(stream), method == "HEAD")
}

/// Copies `from` to `to` in writes of up to 1 MiB: fewer wake-ups of the engine on the
/// other end of a pipe or socket, less CPU taken from it on a small host.
pub fn copy_in_large_writes(from: &mut dyn Read, to: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    loop {
        // Fill the buffer (decoders return small pieces) before each write.
        let mut filled = 0;
        while filled < buf.len() {
            match from.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted && !crate::interrupt::requested() => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..filled])?;
        total += filled as u64;
    }
}

fn read_response<R: BufRead>(mut reader: R, head_only: bool) -> io::Result<Response> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad HTTP response: {what}"));
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection without answering"));
    }
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status line"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("headers cut short"));
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let mut response = Response { status, headers, body: Vec::new() };
    if head_only {
        return Ok(response);
    }
    if response.header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                break;
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            reader.read_exact(&mut response.body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(length) = response.header("Content-Length").and_then(|v| v.parse::<u64>().ok()) {
        reader.take(length).read_to_end(&mut response.body)?;
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chunked_and_sized_bodies() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let r = read_response(&chunked[..], false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
        let sized = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nDocker-Content-Digest: sha256:ab\r\n\r\nabcdef";
        let r = read_response(&sized[..], false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abc"[..]));
        assert_eq!(r.header("docker-content-digest"), Some("sha256:ab"));
    }
}
