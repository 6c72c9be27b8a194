//! Container images: what an image member holds (recorded at build time), and loading
//! it into the engine on the host, streamed straight from the bundle (no extracted copy
//! of the image tarball on disk), then checking that every recorded reference is there
//! with the recorded image ID.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::{Bundle, Member};
use crate::http;
use crate::progress::{ProgressReader, Ui};

/// One image of a `docker save` archive: its ID (the config digest) and its tags.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    /// `sha256:<hex>` of the image config: what `docker image inspect` calls the Id.
    pub id: String,
    /// `repo:tag` references; empty for an untagged image.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl ImageRecord {
    /// How the engine knows this image: its tags, or its ID when it has none.
    pub fn references(&self) -> Vec<&str> {
        match self.tags.is_empty() {
            true => vec![self.id.as_str()],
            false => self.tags.iter().map(String::as_str).collect(),
        }
    }
}

/// Every reference of every image an image member carries.
pub fn member_references(member: &Member) -> Vec<&str> {
    member.images.iter().flat_map(ImageRecord::references).collect()
}

/// The engines images can be loaded into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The `docker` command line.
    DockerCli,
    /// The Docker Engine API on its unix socket, for hosts with a daemon but no CLI.
    DockerApi {
        socket: PathBuf,
    },
    Podman,
    /// containerd through `ctr`, in a namespace (Kubernetes uses `k8s.io`).
    Containerd {
        namespace: String,
    },
}

impl Engine {
    pub fn name(&self) -> String {
        match self {
            Engine::DockerCli => "docker".into(),
            Engine::DockerApi { socket } => format!("the Docker Engine API at {}", socket.display()),
            Engine::Podman => "podman".into(),
            Engine::Containerd { namespace } => format!("containerd (namespace {namespace})"),
        }
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn runs_ok(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The Docker daemon's socket: DOCKER_HOST when it names a unix socket, else the default.
pub fn docker_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

fn docker_api_answers(socket: &Path) -> bool {
    http::unix_request(socket, "GET", "/_ping", None, Duration::from_secs(10)).is_ok_and(|r| r.status == 200)
}

/// Whether the docker CLI talks to another daemon than the default socket: a context
/// chosen by DOCKER_CONTEXT or by `docker context use`.
fn cli_uses_a_context() -> bool {
    if std::env::var_os("DOCKER_CONTEXT").is_some() {
        return true;
    }
    let config = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))
        .map(|dir| dir.join("config.json"));
    let current = config
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
        .and_then(|value| value.get("currentContext").and_then(|c| c.as_str()).map(str::to_string));
    current.is_some_and(|name| !name.is_empty() && name != "default")
}

/// Picks the engine: `choice` (from --engine) if given; else Docker where it is
/// installed (its Engine API on the local socket, else its CLI), else podman, else
/// containerd.
pub fn detect(choice: Option<&str>, containerd_namespace: &str) -> Result<Engine> {
    let containerd = || Engine::Containerd { namespace: containerd_namespace.to_string() };
    let socket = docker_socket();
    let named = match choice {
        Some("docker") => Some(Engine::DockerCli),
        Some("docker-api") => Some(Engine::DockerApi { socket: socket.clone() }),
        Some("podman") => Some(Engine::Podman),
        Some("containerd") => Some(containerd()),
        Some("auto") | None => None,
        Some(other) => {
            return Err(Error::usage(format!("unknown engine '{other}'; use --engine auto, docker, docker-api, podman or containerd")))
        }
    };
    // An engine named on the command line must answer too, before any image is read.
    if let Some(engine) = named {
        let docker = matches!(engine, Engine::DockerCli | Engine::DockerApi { .. });
        if !answers(&engine) && docker && socket_forbidden(&socket) {
            return Err(Error::permission(format!(
                "permission denied on the Docker socket {}: run the bundle as root (sudo sh THIS.bin), or as a user in the docker group",
                socket.display()
            )));
        }
        if !answers(&engine) {
            return Err(Error::host(format!("{} does not answer: install or start it, or choose another with --engine", engine.name())));
        }
        return Ok(engine);
    }
    // Docker installed means Docker is the engine the host intends: a stopped daemon is
    // reported, not passed over for another engine. Its Engine API on the local socket
    // comes first: the image then streams straight into the daemon, without a copy
    // through the docker CLI. The CLI where it may point elsewhere (a docker context).
    let docker_installed = on_path("docker") || std::env::var_os("DOCKER_HOST").is_some() || socket.exists();
    let candidates = match docker_installed {
        true if cli_uses_a_context() => vec![Engine::DockerCli],
        true => vec![Engine::DockerApi { socket: socket.clone() }, Engine::DockerCli],
        false => vec![Engine::Podman, containerd()],
    };
    candidates.into_iter().find(answers).ok_or_else(|| match docker_installed {
        // A daemon that runs but whose socket this user may not open is a permission
        // problem, not a stopped daemon.
        true if socket_forbidden(&socket) => Error::permission(format!(
            "permission denied on the Docker socket {}: run the bundle as root (sudo sh THIS.bin), or as a user in the docker group",
            socket.display()
        )),
        true => Error::host(format!(
            "docker is installed but its daemon does not answer at {}: start it (systemctl start docker) and run the bundle again, or choose another engine with --engine",
            socket.display()
        )),
        false => Error::host("no container engine found (docker, podman or containerd's ctr): install and start one, or name it with --engine"),
    })
}

fn socket_forbidden(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_err_and(|e| e.kind() == io::ErrorKind::PermissionDenied)
}

/// Whether `engine` is installed and its daemon (if it has one) answers.
fn answers(engine: &Engine) -> bool {
    match engine {
        Engine::DockerCli => on_path("docker") && runs_ok("docker", &["version", "--format", "{{.Server.Version}}"]),
        Engine::DockerApi { socket } => docker_api_answers(socket),
        Engine::Podman => on_path("podman") && runs_ok("podman", &["version"]),
        Engine::Containerd { .. } => on_path("ctr") && runs_ok("ctr", &["version"]),
    }
}

/// Loads the images of `member` into `engine`, streaming the decompressed archive into
/// it, then checks every recorded image. Returns the references loaded.
pub fn load(engine: &Engine, bundle: &Bundle, member: &Member, ui: &Ui) -> Result<Vec<String>> {
    let progress = ui.progress("load", member.size);
    let mut content = ProgressReader::new(bundle.content_reader(member)?, &progress);
    let refs = member_references(member);
    let fail = |detail: String| {
        // The engine saw the same Ctrl-C (one process group): report the interrupt.
        if crate::interrupt::requested() {
            return Error::interrupted();
        }
        Error::step(format!(
            "loading the images of {} ({}) into {} failed: {detail}; fix the engine and run the bundle again",
            member.name,
            refs.join(", "),
            engine.name()
        ))
    };
    match engine {
        Engine::DockerCli => pipe_into(Command::new("docker").arg("load"), &mut content).map_err(fail)?,
        Engine::Podman => pipe_into(Command::new("podman").arg("load"), &mut content).map_err(fail)?,
        Engine::Containerd { namespace } => {
            pipe_into(Command::new("ctr").args(["-n", namespace, "images", "import", "--all-platforms", "-"]), &mut content)
                .map_err(fail)?
        }
        Engine::DockerApi { socket } => {
            let body = http::Body { content_type: "application/x-tar", length: member.size, reader: &mut content };
            let response = http::unix_request(socket, "POST", "/images/load?quiet=1", Some(body), Duration::from_secs(3600))
                .map_err(|e| fail(classify_stream_error(e)))?;
            // The API answers 200 even when the load fails: the error is in the JSON stream.
            let text = String::from_utf8_lossy(&response.body);
            if response.status != 200 {
                return Err(fail(format!("HTTP {}: {}", response.status, text.trim())));
            }
            if let Some(error) = api_stream_error(&text) {
                return Err(fail(error));
            }
        }
    }
    progress.finish();
    verify(engine, &member.images).map_err(|e| Error::step(format!("after loading {}: {}", member.name, e.message)))
}

/// Keeps our own errors (a digest mismatch, an interrupt) as they are, and says so
/// plainly when the engine hung up in the middle.
fn classify_stream_error(e: io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(inner) => inner.message.clone(),
        None if went_away(&e) => format!(
            "the engine went away in the middle of the load ({e}): check that its daemon still runs (its log, systemctl status docker)"
        ),
        None => e.to_string(),
    }
}

fn went_away(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
    )
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

/// Runs `command` with `content` streamed into its stdin; its stderr's last line is the
/// error when it fails.
fn pipe_into(command: &mut Command, content: &mut (dyn Read + Send)) -> std::result::Result<(), String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    // A larger pipe and large writes: fewer wake-ups of the engine's reader, less CPU
    // taken from the engine on a small host.
    let _ = nix::fcntl::fcntl(&stdin, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    let fed = std::thread::scope(|scope| {
        let feeder = scope.spawn(move || -> io::Result<u64> {
            let copied = http::copy_in_large_writes(content, &mut stdin);
            drop(stdin); // EOF for the engine, also after an error
            copied
        });
        let output = child.wait_with_output();
        (feeder.join().expect("feeder panicked"), output)
    });
    let (copied, output) = fed;
    let output = output.map_err(|e| format!("waiting for {program}: {e}"))?;
    // Our own read errors (damage, Ctrl-C) say more than the engine's complaint about a
    // cut-off stream.
    if let Err(e) = &copied {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Err(classify_stream_error(copied.unwrap_err()));
        }
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim().to_string();
        return Err(format!("{program} exited with {}: {last}", output.status));
    }
    copied.map_err(|e| format!("streaming into {program}: {e}"))?;
    Ok(())
}

/// Checks that every recorded reference is in the engine with the recorded ID.
pub fn verify(engine: &Engine, images: &[ImageRecord]) -> Result<Vec<String>> {
    let mut checked = Vec::new();
    for image in images {
        for reference in image.references() {
            let found = image_id(engine, reference)?;
            match found {
                None => return Err(Error::step(format!("{reference} is not in {} after the load", engine.name()))),
                Some(id) if strip_sha(&id) != strip_sha(&image.id) => {
                    return Err(Error::step(format!(
                        "{reference} in {} has the ID {id}, not the {} the bundle carries",
                        engine.name(),
                        image.id
                    )))
                }
                Some(_) => checked.push(reference.to_string()),
            }
        }
    }
    Ok(checked)
}

fn strip_sha(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// The image ID of `reference` in the engine, `None` when it is not there.
fn image_id(engine: &Engine, reference: &str) -> Result<Option<String>> {
    let query = |program: &str, args: &[&str]| -> Result<Option<String>> {
        let output = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::host(format!("cannot run {program}: {e}")))?;
        Ok(output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string()))
    };
    match engine {
        Engine::DockerCli => query("docker", &["image", "inspect", "--format", "{{.Id}}", reference]),
        Engine::Podman => query("podman", &["image", "inspect", "--format", "{{.Id}}", reference]),
        Engine::DockerApi { socket } => {
            let response = http::unix_request(socket, "GET", &format!("/images/{reference}/json"), None, Duration::from_secs(30))
                .map_err(|e| Error::host(format!("the Docker Engine API at {} stopped answering: {e}", socket.display())))?;
            if response.status == 404 {
                return Ok(None);
            }
            let value: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
            Ok(value.get("Id").and_then(|id| id.as_str()).map(str::to_string))
        }
        Engine::Containerd { namespace } => {
            // ctr lists the manifest digest; the image ID is the config digest inside it.
            let name = containerd_name(reference);
            let Some(listing) = query("ctr", &["-n", namespace, "images", "ls", &format!("name=={name}")])? else { return Ok(None) };
            let Some(manifest_digest) = listing.lines().nth(1).and_then(|l| l.split_whitespace().nth(2)) else { return Ok(None) };
            let Some(manifest) = query("ctr", &["-n", namespace, "content", "get", manifest_digest])? else { return Ok(None) };
            let value: serde_json::Value = serde_json::from_str(&manifest).unwrap_or_default();
            Ok(value.pointer("/config/digest").and_then(|d| d.as_str()).map(str::to_string))
        }
    }
}

/// containerd keeps fully qualified names: `busybox:1` is `docker.io/library/busybox:1`.
pub fn containerd_name(reference: &str) -> String {
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
    fn api_errors_inside_a_200_stream_are_found() {
        let ok = "{\"stream\":\"Loaded image: a:1\\n\"}\n";
        assert_eq!(api_stream_error(ok), None);
        let bad = "{\"stream\":\"x\"}\n{\"errorDetail\":{\"message\":\"unexpected EOF\"},\"error\":\"unexpected EOF\"}\n";
        assert_eq!(api_stream_error(bad).as_deref(), Some("unexpected EOF"));
    }

    #[test]
    fn containerd_names_are_qualified() {
        assert_eq!(containerd_name("busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(containerd_name("compass/api:2.7.3"), "docker.io/compass/api:2.7.3");
        assert_eq!(containerd_name("127.0.0.1:5000/a/b:c"), "127.0.0.1:5000/a/b:c");
        assert_eq!(containerd_name("registry.local/a:1"), "registry.local/a:1");
    }
}
