//! The `netns` backend: each machine a network namespace with its own address on a
//! bridge, its own mounts (`/var/lib/airbin`, `/var/lib/docker`, `/var/tmp`, `/srv`,
//! `/root/.ssh`), its own Docker Engine, sshd and docker-registry (`ADDRESS:5000`, root
//! `/srv/registry`). It is `hack/qa-nodes.sh`, which airbin carries and runs: one
//! implementation for the lab and for airbin's own multi-node tests. Root only; one
//! kernel, so no power cut.

use std::path::{Path, PathBuf};
use std::process::Command;

use airbin_format::error::{Error, IoContext, Result};

use super::{Backend, Machines};
use crate::lab::machine::{Endpoint, Machine};
use airbin_format::files::on_path;

const QA_NODES: &str = include_str!("../../../../hack/qa-nodes.sh");
const REGISTRY: &str = include_str!("../../../../hack/registry.sh");
/// Clusters from here up are the lab's (airbin's own tests take the low numbers).
const FIRST_CLUSTER: usize = 150;
const LAST_CLUSTER: usize = 200;

pub(crate) struct Netns {
    script: PathBuf,
}

impl Netns {
    pub(crate) fn open(work: &Path) -> Result<Netns> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::usage("--backend netns makes network namespaces and mounts: run the lab as root"));
        }
        for tool in ["ip", "nsenter", "unshare", "dockerd", "docker-registry", "ssh", "ssh-keygen"] {
            if !on_path(tool) {
                return Err(Error::usage(format!(
                    "--backend netns needs {tool} on this host: apt-get install iproute2 util-linux docker.io docker-registry openssh-client openssh-server"
                )));
            }
        }
        let dir = work.join("netns");
        std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
        let script = dir.join("qa-nodes.sh");
        std::fs::write(&script, QA_NODES).ctx("writing", &script)?;
        std::fs::write(dir.join("registry.sh"), REGISTRY).ctx("writing", &dir)?;
        Ok(Netns { script })
    }

    fn qa_nodes(&self, cluster: usize, args: &[&str]) -> Result<String> {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(["-c", &cluster.to_string()])
            .args(args)
            // The nodes' own engines, never one the caller's environment points at.
            .env_remove("DOCKER_HOST")
            .output()
            .map_err(|e| Error::host(format!("cannot run bash ({e})")))?;
        if !out.status.success() {
            return Err(Error::host(format!("the netns machines ({}): {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Backend for Netns {
    fn name(&self) -> &'static str {
        "netns"
    }

    fn describe(&self) -> String {
        "network namespaces on this host, each with its own mounts, Docker Engine, sshd and docker-registry".into()
    }

    fn no_power_cut(&self) -> Option<String> {
        Some("the netns backend shares this host's kernel: a power cut needs --backend qemu or ssh".into())
    }

    fn provision(&self, _slot: usize, count: usize, _dir: &Path) -> Result<Box<dyn Machines + '_>> {
        let (cluster, claim) = claim_cluster()?;
        // Whatever an earlier, interrupted lab left of this cluster goes first.
        self.qa_nodes(cluster, &["down"])?;
        // From here on the cluster is taken down when dropped, also half made.
        let mut owned = Owned { script: self.script.clone(), cluster, machines: Vec::new(), _claim: claim };
        let up = self.qa_nodes(cluster, &["up", &count.to_string()])?;
        let base = PathBuf::from(format!("/tmp/airbin-qa-{cluster}"));
        for (i, line) in up.lines().filter(|l| l.starts_with("node")).enumerate() {
            let address = line.split_whitespace().nth(1).unwrap_or_default().to_string();
            self.qa_nodes(cluster, &["registry", &(i + 1).to_string()])?;
            let ssh = Endpoint {
                host: address.clone(),
                port: 22,
                user: "root".into(),
                identity: base.join("id_ed25519"),
                known_hosts: base.join("known_hosts"),
            };
            owned.machines.push(Machine { name: format!("node{}", i + 1), address, ssh });
        }
        Ok(Box::new(owned))
    }
}

/// A free cluster number, held by a lock on its claim file for as long as the file is
/// open: labs running side by side (or airbin's tests) never share a cluster, and a
/// lab killed outright frees its numbers with its process.
fn claim_cluster() -> Result<(usize, std::fs::File)> {
    for cluster in FIRST_CLUSTER..=LAST_CLUSTER {
        let _ = std::fs::create_dir_all(super::RUN_DIR);
        let path = Path::new(super::RUN_DIR).join(format!("cluster-{cluster}.lock"));
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).ctx("opening", &path)?;
        if file.try_lock().is_ok() {
            return Ok((cluster, file));
        }
    }
    Err(Error::host(format!(
        "every netns cluster ({FIRST_CLUSTER}..{LAST_CLUSTER}) is held by another lab on this host: wait for them, or give fewer --jobs"
    )))
}

/// A provisioned cluster, taken down on drop (then its claim goes).
struct Owned {
    script: PathBuf,
    cluster: usize,
    machines: Vec<Machine>,
    _claim: std::fs::File,
}

impl Machines for Owned {
    fn machines(&self) -> &[Machine] {
        &self.machines
    }

    fn power_cut(&mut self, _: usize) -> Result<()> {
        Err(Error::usage("the netns backend cannot cut a machine's power"))
    }

    fn boot(&mut self, _: usize) -> Result<()> {
        Err(Error::usage("the netns backend cannot boot a machine again"))
    }

    fn keep(&self, _: usize, _: &Path) -> Vec<String> {
        Vec::new()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(&self.script).args(["-c", &self.cluster.to_string(), "down"]).env_remove("DOCKER_HOST").output();
    }
}
