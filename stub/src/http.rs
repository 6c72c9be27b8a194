//! Just enough HTTP/1.1 for two peers on the local host: the Docker Engine API on its
//! unix socket and a registry on a loopback address. Written by hand because the
//! client crates either cannot speak over a unix socket or bring an async runtime and
//! TLS into a static stub that needs neither. One request per connection
//! (`Connection: close`); chunked responses are decoded.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A request body streamed from a reader, of a length known up front.
pub(crate) struct Body<'a> {
    pub(crate) content_type: &'a str,
    pub(crate) length: u64,
    pub(crate) reader: &'a mut dyn Read,
}

/// The largest response body read (a manifest, an API answer): beyond it the peer is
/// not one airbin talks to.
pub(crate) const MAX_BODY: u64 = 16 << 20;
const MAX_LINE: u64 = 8 << 10;
const MAX_HEADERS: usize = 100;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body's bytes count against its deadline at this rate at least: a 1 GiB
/// layer gets about 17 minutes on top of the request's own limit.
const MIN_RATE: u64 = 1 << 20;
/// How long one read or write waits before the deadline and Ctrl-C are looked at again.
const TICK: Duration = Duration::from_secs(1);

/// A socket the deadline can bound, one wait at a time.
trait Timed {
    fn set_timeouts(&self, wait: Duration) -> io::Result<()>;
}

impl Timed for TcpStream {
    fn set_timeouts(&self, wait: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(wait))?;
        self.set_write_timeout(Some(wait))
    }
}

impl Timed for UnixStream {
    fn set_timeouts(&self, wait: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(wait))?;
        self.set_write_timeout(Some(wait))
    }
}

/// A connection with an overall deadline: a peer that answers a byte a second never
/// keeps a request past it, and a Ctrl-C is noticed within a second.
struct Bounded<S> {
    inner: S,
    deadline: Instant,
    limit: Duration,
}

impl<S: Timed> Bounded<S> {
    /// Before each wait: stop on Ctrl-C or past the deadline, else wait at most a tick.
    fn tick(&self) -> io::Result<()> {
        if crate::interrupt::requested() {
            return Err(io::Error::other(airbin_format::error::Error::interrupted()));
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no whole answer within {} (the peer is too slow, or stuck)", humantime::format_duration(self.limit)),
            ));
        }
        self.inner.set_timeouts(left.min(TICK))
    }
}

fn waited(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

impl<S: Read + Timed> Read for Bounded<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.tick()?;
            match self.inner.read(buf) {
                Err(e) if waited(&e) => continue,
                other => return other,
            }
        }
    }
}

impl<S: Write + Timed> Write for Bounded<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            self.tick()?;
            match self.inner.write(buf) {
                Err(e) if waited(&e) => continue,
                other => return other,
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The deadline of a request: its own limit, and its body's bytes at the least rate.
fn bounded<S: Timed>(inner: S, limit: Duration, body: Option<&Body<'_>>) -> Bounded<S> {
    let limit = limit + Duration::from_secs(body.map_or(0, |b| b.length / MIN_RATE));
    Bounded { inner, deadline: Instant::now() + limit, limit }
}

/// Percent-encodes one path segment or query value: everything but RFC 3986's
/// unreserved characters, so that no name from a bundle can add a segment, a query, a
/// space or a line to a request.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A repository name (`a/b/c`) as path segments: each encoded, joined by `/`.
pub(crate) fn encode_path(name: &str) -> String {
    name.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// A request to the Docker Engine API on its unix socket, done within `limit` (and a
/// body's bytes at the least rate), or an error.
pub(crate) fn unix_request(socket: &Path, method: &str, path: &str, body: Option<Body<'_>>, limit: Duration) -> io::Result<Response> {
    let stream = UnixStream::connect(socket)?;
    let stream = bounded(stream, limit, body.as_ref());
    request(stream, "docker", method, path, &[], body)
}

pub(crate) fn tcp_request(address: &str, method: &str, path: &str, headers: &[(&str, &str)], timeout: Duration) -> io::Result<Response> {
    tcp_request_with_body(address, method, path, headers, None, timeout)
}

/// A request to `address` (`host:port`) with a streamed body (a blob, a manifest), done
/// within `timeout` (and the body's bytes at the least rate), or an error.
pub(crate) fn tcp_request_with_body(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Body<'_>>,
    timeout: Duration,
) -> io::Result<Response> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{address} resolves to no address"));
    let mut connected = None;
    for addr in address.to_socket_addrs()? {
        match connect(&addr) {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(e) if e.get_ref().is_some_and(|inner| inner.is::<airbin_format::error::Error>()) => return Err(e),
            Err(e) => last = e,
        }
    }
    let stream = bounded(connected.ok_or(last)?, timeout, body.as_ref());
    request(stream, address, method, path, headers, body)
}

/// Connects within `CONNECT_TIMEOUT`, a second at a time: a Ctrl-C is noticed meanwhile.
fn connect(addr: &std::net::SocketAddr) -> io::Result<TcpStream> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        if crate::interrupt::requested() {
            return Err(io::Error::other(airbin_format::error::Error::interrupted()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match TcpStream::connect_timeout(addr, left.min(TICK).max(Duration::from_millis(1))) {
            Err(e) if waited(&e) && !left.is_zero() => continue,
            other => return other,
        }
    }
}

/// Whether a request-line or header part is one token of visible characters.
fn is_clean(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

fn request<S: Read + Write>(
    mut stream: S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Body<'_>>,
) -> io::Result<Response> {
    // CR, LF or a space can never reach the request line or a header.
    let clean_headers = headers.iter().all(|(n, v)| is_clean(n) && v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
    if !is_clean(method) || !is_clean(path) || !is_clean(host) || !clean_headers {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "refusing a request with a space or a control character in it"));
    }
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
        stream.flush()?;
        // The body's reader is read to its end once every byte is written: a reader that
        // hears of its end then knows the peer has had all of it (`WithheldTail`).
        if body.reader.read(&mut [0u8; 1])? != 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the request body is longer than its Content-Length"));
        }
    }
    stream.flush()?;
    read_response(BufReader::new(stream), method == "HEAD")
}

/// Copies `from` to `to` in writes of up to 1 MiB: fewer wake-ups of the engine on the
/// other end of a pipe or socket, less CPU taken from it on a small host.
pub(crate) fn copy_in_large_writes(from: &mut dyn Read, to: &mut impl Write) -> io::Result<u64> {
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

/// One line of at most `MAX_LINE` bytes.
fn read_line<R: BufRead>(reader: &mut R, line: &mut String) -> io::Result<usize> {
    line.clear();
    let n = reader.by_ref().take(MAX_LINE).read_line(line)?;
    if n as u64 == MAX_LINE && !line.ends_with('\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad HTTP response: a line longer than 8 KiB"));
    }
    Ok(n)
}

fn read_response<R: BufRead>(mut reader: R, head_only: bool) -> io::Result<Response> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad HTTP response: {what}"));
    let too_big = || bad("a body larger than 16 MiB");
    let mut line = String::new();
    if read_line(&mut reader, &mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection without answering"));
    }
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status line"))?;
    let mut headers = Vec::new();
    loop {
        if read_line(&mut reader, &mut line)? == 0 {
            return Err(bad("headers cut short"));
        }
        if headers.len() == MAX_HEADERS {
            return Err(bad("more than 100 headers"));
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
            read_line(&mut reader, &mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                break;
            }
            if response.body.len() as u64 + size > MAX_BODY {
                return Err(too_big());
            }
            let start = response.body.len();
            response.body.resize(start + size as usize, 0);
            reader.read_exact(&mut response.body[start..])?;
            read_line(&mut reader, &mut line)?;
        }
    } else if let Some(length) = response.header("Content-Length").and_then(|v| v.parse::<u64>().ok()) {
        if length > MAX_BODY {
            return Err(too_big());
        }
        reader.take(length).read_to_end(&mut response.body)?;
    } else {
        reader.take(MAX_BODY + 1).read_to_end(&mut response.body)?;
        if response.body.len() as u64 > MAX_BODY {
            return Err(too_big());
        }
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

    #[test]
    fn huge_chunks_and_bodies_are_refused() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n";
        assert!(read_response(&chunked[..], false).unwrap_err().to_string().contains("16 MiB"));
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n";
        assert!(read_response(&sized[..], false).is_err());
        let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(10000));
        assert!(read_response(long.as_bytes(), false).unwrap_err().to_string().contains("8 KiB"));
    }

    #[test]
    fn names_are_encoded_and_requests_stay_one_line() {
        assert_eq!(encode("a:1/json?x HTTP/1.1\r\n"), "a%3A1%2Fjson%3Fx%20HTTP%2F1.1%0D%0A");
        assert_eq!(encode_path("compass/agent"), "compass/agent");
        let err = request(io::Cursor::new(Vec::new()), "docker", "GET", "/a\r\nX: y", &[], None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
