//! Container engines: which one this host has, loading an image member into it
//! streamed straight from the bundle (no extracted copy of the image tarball on disk),
//! and checking that every recorded reference is there with the recorded image ID. One
//! file per engine: the Docker Engine API, the docker CLI, podman, containerd.

mod containerd;
mod docker_api;
mod docker_cli;
mod podman;
mod withheld;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::http;
use crate::ui::{ProgressReader, Ui};
use airbin_format::error::{Error, Result};
use airbin_format::files::on_path;
pub(crate) use airbin_format::ImageRecord;
use airbin_format::{Bundle, Member};

/// Every reference of every image an image member carries.
pub(crate) fn member_references(member: &Member) -> Vec<&str> {
    member.images.iter().flat_map(ImageRecord::references).collect()
}

/// The engines images can be loaded into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
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
    pub(crate) fn name(&self) -> String {
        match self {
            Engine::DockerCli => "docker".into(),
            Engine::DockerApi { socket } => format!("the Docker Engine API at {}", socket.display()),
            Engine::Podman => "podman".into(),
            Engine::Containerd { namespace } => format!("containerd (namespace {namespace})"),
        }
    }
}

/// How long a question to an engine's CLI may take (a daemon that hangs is named).
const QUERY_LIMIT: Duration = Duration::from_secs(60);
/// A load may take this long, and its bytes at the least rate on top.
const LOAD_LIMIT: Duration = Duration::from_secs(3600);
const LOAD_RATE: u64 = 1 << 20;

fn runs_ok(program: &str, args: &[&str]) -> bool {
    crate::child::output(Command::new(program).args(args), Duration::from_secs(15)).is_ok_and(|o| o.status.success())
}

/// The Docker daemon's socket: DOCKER_HOST when it names a unix socket, else the default.
pub(crate) fn docker_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
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
pub(crate) fn detect(choice: Option<&str>, containerd_namespace: &str) -> Result<Engine> {
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
                "permission denied on the Docker socket {}: run the bundle as root (sudo {}), or as a user in the docker group",
                socket.display(),
                crate::shell::bundle()
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
            "permission denied on the Docker socket {}: run the bundle as root (sudo {}), or as a user in the docker group",
            socket.display(),
            crate::shell::bundle()
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
pub(crate) fn answers(engine: &Engine) -> bool {
    match engine {
        Engine::DockerCli => docker_cli::answers(),
        Engine::DockerApi { socket } => docker_api::answers(socket),
        Engine::Podman => podman::answers(),
        Engine::Containerd { .. } => containerd::answers(),
    }
}

/// Loads the images of `member` into `engine`, streaming the decompressed archive into
/// it, then checks every recorded image. Returns the references loaded. The bundle may
/// still be being verified: the end of the stream waits for its verdict
/// (`withheld`), and a failed one stops the load before the engine commits anything.
/// `handed_over` hears when the engine has had all of it: it commits it on its own then,
/// whatever becomes of this process.
pub(crate) fn load(engine: &Engine, bundle: &Bundle, member: &Member, ui: &Ui, handed_over: &(dyn Fn() + Sync)) -> Result<Vec<String>> {
    let progress = ui.progress("load", member.size);
    let content = ProgressReader::new(bundle.content_reader_held_back(member)?, &progress);
    let refs = member_references(member);
    // Decoded on a thread of its own: the next chunk is ready when the engine wants it.
    let (streamed, ours) = crate::readahead::read_ahead(content, |decoded| {
        let mut content = withheld::WithheldTail::new(decoded, bundle, member.size, handed_over);
        let streamed = match engine {
            Engine::DockerCli => docker_cli::load(&mut content, member.size),
            Engine::Podman => podman::load(&mut content, member.size),
            Engine::Containerd { namespace } => containerd::load(namespace, &mut content, member.size),
            Engine::DockerApi { socket } => docker_api::load(socket, &mut content, member.size),
        };
        (streamed, content.failure.take())
    });
    if let Err(detail) = streamed {
        // Damage explains whatever the engine made of a cut-off stream; so does a bundle
        // that fails its verdict while the engine was complaining about something else.
        if let Some(error) = ours.filter(|e| e.class != airbin_format::error::ExitClass::Interrupted) {
            return Err(error);
        }
        bundle.await_verified()?;
        // The engine saw the same Ctrl-C (one process group): report the interrupt.
        if crate::interrupt::requested() {
            return Err(Error::interrupted());
        }
        return Err(Error::step(format!(
            "loading the images of {} ({}) into {} failed: {detail}; fix the engine and run the bundle again",
            member.name,
            refs.join(", "),
            engine.name()
        )));
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

/// Runs `command` with `content` streamed into its stdin; its stderr's last line is the
/// error when it fails.
fn pipe_into(command: &mut Command, content: &mut (dyn Read + Send), size: u64) -> std::result::Result<(), String> {
    let limit = LOAD_LIMIT + Duration::from_secs(size / LOAD_RATE);
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
    let (mut out, mut err) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let fed = std::thread::scope(|scope| {
        let feeder = scope.spawn(move || -> io::Result<u64> {
            let copied = http::copy_in_large_writes(content, &mut stdin);
            drop(stdin); // EOF for the engine, also after an error
            copied
        });
        let drained = scope.spawn(move || {
            let _ = io::copy(&mut out, &mut io::sink());
        });
        let stderr = scope.spawn(move || {
            let mut text = Vec::new();
            let _ = err.by_ref().take(1 << 20).read_to_end(&mut text);
            text
        });
        // Bounded, and stopped on Ctrl-C: the engine killed, the feeder's pipe breaks.
        let status = crate::child::wait(&mut child, limit, &program);
        let _ = drained.join();
        (feeder.join().expect("feeder panicked"), status, stderr.join().unwrap_or_default())
    });
    let (copied, status, stderr) = fed;
    let status = status.map_err(|e| e.message)?;
    let output = std::process::Output { status, stdout: Vec::new(), stderr };
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
pub(crate) fn verify(engine: &Engine, images: &[ImageRecord]) -> Result<Vec<String>> {
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
pub(crate) fn image_id(engine: &Engine, reference: &str) -> Result<Option<String>> {
    match engine {
        Engine::DockerCli => docker_cli::image_id(reference),
        Engine::Podman => podman::image_id(reference),
        Engine::DockerApi { socket } => docker_api::image_id(socket, reference),
        Engine::Containerd { namespace } => containerd::image_id(namespace, reference),
    }
}

/// What became of an image reference an uninstall removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Removed {
    /// Gone (the image with it, unless another reference keeps it).
    Yes,
    /// It was not there.
    NotThere,
    /// The engine refused: a container uses it (its words).
    InUse(String),
}

/// Removes `reference` from the engine: the reference goes, and the image with it when
/// no other reference or container holds it (the engine's own rule).
pub(crate) fn remove_image(engine: &Engine, reference: &str) -> Result<Removed> {
    if image_id(engine, reference)?.is_none() {
        return Ok(Removed::NotThere);
    }
    let refused = match engine {
        Engine::DockerCli => cli_remove("docker", reference)?,
        Engine::Podman => cli_remove("podman", reference)?,
        Engine::DockerApi { socket } => docker_api::remove(socket, reference)?,
        Engine::Containerd { namespace } => containerd::remove(namespace, reference)?,
    };
    Ok(match refused {
        None => Removed::Yes,
        Some(why) => Removed::InUse(why),
    })
}

/// `PROGRAM rmi -- REF`: None when it went, else the engine's complaint.
fn cli_remove(program: &str, reference: &str) -> Result<Option<String>> {
    let output = crate::child::output(Command::new(program).args(["rmi", "--", reference]), QUERY_LIMIT)?;
    if output.status.success() {
        return Ok(None);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Ok(Some(stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim().to_string()))
}

/// The trimmed stdout of a query command, `None` when it fails (the image is not there).
fn query(program: &str, args: &[&str]) -> Result<Option<String>> {
    let output = crate::child::output(Command::new(program).args(args), QUERY_LIMIT)?;
    Ok(output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string()))
}

/// `docker`-style CLIs (docker, podman): `PROGRAM load` from stdin, `PROGRAM image inspect`.
fn cli_load(program: &str, content: &mut (dyn Read + Send), size: u64) -> std::result::Result<(), String> {
    pipe_into(Command::new(program).arg("load"), content, size)
}

fn cli_image_id(program: &str, reference: &str) -> Result<Option<String>> {
    // `--`: a reference is never read as an option (the index was checked, and still).
    query(program, &["image", "inspect", "--format", "{{.Id}}", "--", reference])
}
