//! Test nodes on this machine (`hack/qa-nodes.sh`): each node a network namespace with
//! its own address, mounts, Docker Engine and sshd; everything on a node is done over SSH.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::*;

/// A cluster of test nodes, taken down when dropped.
pub struct Cluster {
    pub id: u32,
}

impl Cluster {
    /// `n` nodes, or None (skipped, loudly) where test nodes cannot be made outside CI.
    pub fn up(id: u32, n: usize, test: &str) -> Option<Cluster> {
        for tool in ["ip", "nsenter", "/usr/sbin/sshd", "ssh", "dockerd", "docker-registry"] {
            if !require(tool, test) {
                return None;
            }
        }
        if !skip::root(test) {
            return None;
        }
        let cluster = Cluster { id };
        let _ = cluster.qa(&["down"]);
        let out = cluster.qa(&["up", &n.to_string()]);
        assert!(out.status.success(), "{test}: qa-nodes up {n} failed: {}", stderr(&out));
        Some(cluster)
    }

    pub fn qa(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(repo_root().join("hack/qa-nodes.sh"))
            .args(["-c", &self.id.to_string()])
            .args(args)
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap()
    }

    pub fn addr(&self, k: usize) -> String {
        format!("10.201.{}.{}", self.id, 10 + k)
    }

    /// A shell script on node `k`, over SSH (a clean login environment, as on a real node).
    pub fn ssh(&self, k: usize, script: &str) -> Output {
        self.qa(&["ssh", &k.to_string(), script])
    }

    pub fn ssh_ok(&self, k: usize, script: &str) -> String {
        let out = self.ssh(k, script);
        assert!(out.status.success(), "node{k}: {script}: exit {:?}\n{}\n{}", out.status.code(), stdout(&out), stderr(&out));
        stdout(&out)
    }

    /// Starts a command on node `k` over SSH, in the background.
    pub fn spawn(&self, k: usize, script: &str) -> std::process::Child {
        Command::new("bash")
            .arg(repo_root().join("hack/qa-nodes.sh"))
            .args(["-c", &self.id.to_string(), "ssh", &k.to_string(), script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Copies a local file to `to` on node `k`.
    pub fn put(&self, k: usize, from: &Path, to: &str) {
        let mut child = Command::new("bash")
            .arg(repo_root().join("hack/qa-nodes.sh"))
            .args(["-c", &self.id.to_string(), "ssh", &k.to_string(), &format!("mkdir -p $(dirname {to}) && cat > {to}")])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&std::fs::read(from).unwrap()).unwrap();
        assert!(child.wait().unwrap().success(), "copying {} to node{k}:{to}", from.display());
    }

    pub fn put_text(&self, k: usize, text: &str, to: &str) {
        let dir = scratch();
        let path = dir.path().join("f");
        std::fs::write(&path, text).unwrap();
        self.put(k, &path, to);
    }

    pub fn registry(&self, k: usize) -> String {
        let out = self.qa(&["registry", &k.to_string()]);
        assert!(out.status.success(), "registry on node{k}: {}", stderr(&out));
        stdout(&out).trim().to_string()
    }

    /// The compass config for these nodes: the management pair (or one node), workers, and
    /// the primary's registry.
    pub fn compass_config(&self, management: &[usize], workers: &[usize]) -> String {
        let list = |ks: &[usize]| ks.iter().map(|k| self.addr(*k)).collect::<Vec<_>>().join(", ");
        format!(
            "cluster_name: qa-{}\nmanagement_nodes: [{}]\nworker_nodes: [{}]\nregistry_address: {}:5000\nregistry_root: /srv/registry\ntools_dir: /srv/compass/bin\n",
            self.id,
            list(management),
            list(workers),
            self.addr(management[0])
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.qa(&["down"]);
    }
}
