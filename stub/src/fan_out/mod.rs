//! The fan-out: one command on one node runs every node's part (`--all-nodes`). The
//! nodes come from the config's node lists; each other node is reached with the
//! system's OpenSSH (key-based, `BatchMode`: nothing is ever asked), and this node runs
//! its part as a child process like the others, so every node is driven the same way:
//!
//! 1. reach: every other node over SSH, with the free space where the bundle goes and
//!    whether an identical copy is there already; every problem reported at once, and
//!    nothing is copied anywhere unless every node answers;
//! 2. copy: the `.bin` (unless an identical copy is there) and the config, each into a
//!    temporary name renamed into place; each node's run verifies its own copy;
//! 3. preflight: every node checks itself for its role (`preflight`), each as soon as
//!    its copy is there; all problems at once (failed copies included), and no node
//!    installs unless every node is ready;
//! 4. run: every node's part with its role, at most `--parallel` at a time, management
//!    nodes first, each line of every node's output with the node in front. A node that
//!    fails stops only what depends on it: the primary (or a single management node)
//!    serves the others, so when it fails the nodes not started yet are not started; a
//!    secondary or a worker stops nothing else. A rerun resumes every node from its own
//!    journal.

mod docs;
mod remote;
mod runs;
mod stages;
mod targets;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use airbin_format::Role;
pub(crate) use docs::NodeDoc;
pub(crate) use remote::fetch;
pub(crate) use runs::{gather, run};
pub(crate) use stages::{copy_and_check, reach};
pub(crate) use targets::{no_node_list, targets, Connections, Target};

/// How the fan-out reaches and drives the nodes, typed at the command line's edge.
#[derive(Clone, Debug, Default)]
pub(crate) struct FanOut {
    /// At most this many nodes at a time (0: all at once).
    pub(crate) parallel: usize,
    /// Extra `ssh -o` options.
    pub(crate) ssh_options: Vec<String>,
    /// Where the bundle and config go on the other nodes (default `/var/tmp/airbin/<name>`).
    pub(crate) remote_dir: Option<String>,
    /// Flags every node's run is given as they are (`--engine docker`, `--force`...).
    pub(crate) pass: Vec<String>,
    /// Where the SSH connections to the nodes are shared (`Connections`), when they are.
    pub(crate) control_dir: Option<std::path::PathBuf>,
    /// This fan-out's tag, which each node's run records in its journal: how a node's
    /// run is found again after its SSH connection dropped.
    pub(crate) tag: String,
    /// The public keys this host pins (the bundle passed them here): copied to every
    /// node, and given to each node's run, which checks its own copy against them.
    pub(crate) keys: Vec<std::path::PathBuf>,
}

/// What became of one node.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct NodeOutcome {
    pub(crate) node: String,
    pub(crate) role: Role,
    pub(crate) exit_code: i32,
    pub(crate) status: NodeStatus,
    /// One line: what it did or why it stopped.
    pub(crate) summary: String,
    /// The node's own `--json` document, as it gave it.
    pub(crate) report: Option<serde_json::Value>,
    /// The same, read.
    #[serde(skip)]
    pub(crate) doc: Option<NodeDoc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum NodeStatus {
    Ok,
    Failed,
    Interrupted,
    NotRun,
    Unreachable,
    ConnectionLost,
}

impl NodeStatus {
    /// Of a node's own exit code.
    fn of_exit(code: i32) -> NodeStatus {
        match code {
            0 => NodeStatus::Ok,
            130 => NodeStatus::Interrupted,
            _ => NodeStatus::Failed,
        }
    }

    /// How a summary shows it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            NodeStatus::Ok => "ok",
            NodeStatus::Interrupted => "INTERRUPTED",
            NodeStatus::NotRun => "not run",
            NodeStatus::Unreachable => "UNREACHABLE",
            NodeStatus::Failed | NodeStatus::ConnectionLost => "FAILED",
        }
    }
}

/// Runs `work` for each item, at most `parallel` at once (0: all), results in order.
fn each<T: Sync, R: Send>(items: &[T], parallel: usize, work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let lanes = if parallel == 0 { items.len() } else { parallel.min(items.len()) };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..lanes {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let result = work(item);
                results.lock().expect("no lane panics holding it")[i] = Some(result);
            });
        }
    });
    results.into_inner().expect("no lane panics holding it").into_iter().map(|r| r.expect("every item ran")).collect()
}

/// The worst exit code of the nodes: any failure beats success, the highest code wins.
pub(crate) fn worst(outcomes: &[NodeOutcome]) -> i32 {
    outcomes.iter().map(|o| o.exit_code).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_in_lanes_and_keeps_its_order() {
        let items: Vec<u32> = (0..7).collect();
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let out = each(&items, 2, |n| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            running.fetch_sub(1, Ordering::SeqCst);
            n * 10
        });
        assert_eq!(out, [0, 10, 20, 30, 40, 50, 60]);
        assert!(most.load(Ordering::SeqCst) <= 2);
    }
}
