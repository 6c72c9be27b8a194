//! Which node this is: `single`, `primary`, `secondary` or `worker`. From `--role`, or
//! found by matching this host's own addresses (and host name) against the node lists
//! in the product's config, under the keys the spec names: of the management nodes, one
//! alone is `single`; of more, the first is the `primary` and the others `secondary`;
//! every node of the worker list is a `worker`.

use std::net::{IpAddr, ToSocketAddrs};

use serde::Serialize;

use super::config::ProductConfig;
use airbin_format::error::{Error, Result};
use airbin_format::{ConfigRules, Role};

/// A node as the config lists it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Node {
    /// The entry as written: `[user@]host`.
    pub(crate) listed: String,
    pub(crate) user: Option<String>,
    pub(crate) host: String,
    pub(crate) role: Role,
}

impl Node {
    /// What `ssh` is given: `user@host`, or `host`.
    pub(crate) fn ssh_target(&self) -> &str {
        &self.listed
    }

    /// `primary 10.0.0.1`: what a node's lines are prefixed with.
    pub(crate) fn label(&self) -> String {
        format!("{} {}", self.role, self.host)
    }
}

/// Every node the config lists, management nodes first.
#[derive(Clone, Debug)]
pub(crate) struct NodeList {
    pub(crate) management_key: String,
    pub(crate) workers_key: Option<String>,
    pub(crate) nodes: Vec<Node>,
}

impl NodeList {
    /// "management_nodes lists 10.0.0.1, 10.0.0.2; worker_nodes lists ...".
    pub(crate) fn describe(&self) -> String {
        let of = |role: fn(Role) -> bool| self.nodes.iter().filter(|n| role(n.role)).map(|n| n.listed.as_str()).collect::<Vec<_>>();
        let mut text = format!("{} lists {}", self.management_key, of(|r| r != Role::Worker).join(", "));
        if let Some(key) = &self.workers_key {
            let workers = of(|r| r == Role::Worker);
            text.push_str(&format!("; {key} lists {}", if workers.is_empty() { "none".into() } else { workers.join(", ") }));
        }
        text
    }
}

/// The nodes the config lists, or None when the bundle names no node list.
pub(crate) fn node_list(rules: &ConfigRules, config: Option<&ProductConfig>) -> Result<Option<NodeList>> {
    let Some(key) = &rules.management_nodes_key else { return Ok(None) };
    // The entries become ssh's arguments and host names: never a secret's value.
    for list_key in std::iter::once(key).chain(&rules.worker_nodes_key) {
        if config.is_some_and(|c| c.is_secret(list_key)) {
            return Err(Error::integrity(format!(
                "the bundle's node list key `{list_key}` holds a secret, whose value would become ssh's arguments: refusing it"
            )));
        }
    }
    let config = config.ok_or_else(|| {
        Error::usage(format!("this bundle finds each node's role in the product's config (`{key}`), and there is none; give --config FILE"))
    })?;
    let path = config.path.display();
    let management = config.list(key).unwrap_or_default();
    if management.is_empty() {
        return Err(Error::usage(format!(
            "{path}: `{key}` lists no management node; list this host's address there (two addresses for a dual pair, the primary first)"
        )));
    }
    let workers = match &rules.worker_nodes_key {
        Some(key) => config.list(key).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut nodes = Vec::new();
    let pair = management.len() > 1;
    for (i, entry) in management.iter().enumerate() {
        let role = match (pair, i) {
            (false, _) => Role::Single,
            (true, 0) => Role::Primary,
            (true, _) => Role::Secondary,
        };
        nodes.push(parse_node(entry, role, key, &path.to_string())?);
    }
    for entry in &workers {
        nodes.push(parse_node(entry, Role::Worker, rules.worker_nodes_key.as_deref().unwrap_or(""), &path.to_string())?);
    }
    for (i, node) in nodes.iter().enumerate() {
        if nodes[..i].iter().any(|n| n.host == node.host) {
            return Err(Error::usage(format!("{path}: {} is listed twice among the nodes; list each node once", node.host)));
        }
        let loopback = node.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) || node.host == "localhost";
        if loopback && nodes.len() > 1 {
            return Err(Error::usage(format!(
                "{path}: {} is a loopback address, which every node has; list each node by an address the others reach it at",
                node.host
            )));
        }
    }
    Ok(Some(NodeList { management_key: key.clone(), workers_key: rules.worker_nodes_key.clone(), nodes }))
}

fn parse_node(entry: &str, role: Role, key: &str, path: &str) -> Result<Node> {
    let (user, host) = match entry.split_once('@') {
        Some((user, host)) => (Some(user.to_string()), host.to_string()),
        None => (None, entry.to_string()),
    };
    let user_ok = user.as_deref().is_none_or(|u| {
        u.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && u.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    });
    // No leading '-': the host goes to ssh as an argument, never as an option.
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with(['-', '.'])
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !user_ok || !host_ok {
        return Err(Error::usage(format!(
            "{path}: `{key}` lists '{}', which is not [user@]address or [user@]host name; fix the list",
            airbin_format::rules::printable(entry, 100)
        )));
    }
    Ok(Node { listed: entry.to_string(), user, host, role })
}

/// Why this node has its role.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub(crate) enum Why {
    /// `--role`.
    Flag,
    /// This host's address (or name) matched an entry of a node list.
    Matched { key: String, entry: String, by: String },
    /// The bundle names no node list: every host is a single node.
    NoNodeList,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct NodeRole {
    pub(crate) role: Role,
    pub(crate) why: Why,
}

impl NodeRole {
    pub(crate) fn single() -> NodeRole {
        NodeRole { role: Role::Single, why: Why::NoNodeList }
    }

    pub(crate) fn explain(&self) -> String {
        match &self.why {
            Why::Flag => "given with --role".into(),
            Why::Matched { key, entry, by } => format!("{by} is {entry} of {key}"),
            Why::NoNodeList => "the bundle names no node list".into(),
        }
    }
}

/// This host as the node lists may name it.
#[derive(Clone, Debug)]
pub(crate) struct ThisHost {
    pub(crate) addresses: Vec<IpAddr>,
    pub(crate) hostname: String,
}

impl ThisHost {
    pub(crate) fn detect() -> ThisHost {
        let mut addresses: Vec<IpAddr> = nix::ifaddrs::getifaddrs()
            .map(|all| {
                all.filter_map(|ifa| {
                    let address = ifa.address?;
                    address.as_sockaddr_in().map(|a| IpAddr::V4(a.ip())).or_else(|| address.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
                })
                .collect()
            })
            .unwrap_or_default();
        addresses.sort();
        addresses.dedup();
        let hostname = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
        ThisHost { addresses, hostname }
    }

    /// How `node` is this host, if it is: "this host's address 10.0.0.1".
    fn is(&self, node: &Node) -> Option<String> {
        if let Ok(ip) = node.host.parse::<IpAddr>() {
            return self.addresses.contains(&ip).then(|| format!("this host's address {ip}"));
        }
        let short = self.hostname.split('.').next().unwrap_or("");
        if !self.hostname.is_empty() && (node.host.eq_ignore_ascii_case(&self.hostname) || node.host.eq_ignore_ascii_case(short)) {
            return Some(format!("this host's name {}", self.hostname));
        }
        let resolved = (node.host.as_str(), 0).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect::<Vec<_>>()).unwrap_or_default();
        resolved.iter().find(|ip| self.addresses.contains(ip)).map(|ip| format!("this host's address {ip} ({})", node.host))
    }

    /// The node of `list` this host is, if any.
    pub(crate) fn find<'a>(&self, list: &'a NodeList) -> Result<Option<(&'a Node, String)>> {
        let matches: Vec<(&Node, String)> = list.nodes.iter().filter_map(|n| self.is(n).map(|by| (n, by))).collect();
        if matches.len() > 1 {
            let names: Vec<&str> = matches.iter().map(|(n, _)| n.listed.as_str()).collect();
            return Err(Error::usage(format!(
                "this host is several of the nodes the config lists ({}); list each node once, or give --role",
                names.join(", ")
            )));
        }
        Ok(matches.into_iter().next())
    }

    fn describe(&self) -> String {
        let addresses: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
        format!(
            "its addresses are {} (host name {})",
            addresses.join(", "),
            if self.hostname.is_empty() { "unknown" } else { &self.hostname }
        )
    }
}

/// This node's role: `--role`, else this host's entry in the node lists, else `single`
/// when the bundle names no list. A host the lists do not name stops here.
pub(crate) fn resolve(flag: Option<Role>, list: Option<&NodeList>, host: &ThisHost, config_path: &str) -> Result<NodeRole> {
    if let Some(role) = flag {
        return Ok(NodeRole { role, why: Why::Flag });
    }
    let Some(list) = list else { return Ok(NodeRole::single()) };
    match host.find(list)? {
        Some((node, by)) => {
            let key = if node.role == Role::Worker { list.workers_key.clone().unwrap_or_default() } else { list.management_key.clone() };
            let position = list.nodes.iter().filter(|n| (n.role == Role::Worker) == (node.role == Role::Worker)).position(|n| n == node);
            let mut entry = match (node.role, position) {
                (Role::Primary, _) => "the first entry".to_string(),
                (Role::Single, _) => "the only entry".to_string(),
                (_, Some(i)) => format!("entry {}", i + 1),
                (_, None) => "an entry".to_string(),
            };
            if !by.contains(&node.listed) {
                entry.push_str(&format!(" ({})", node.listed));
            }
            Ok(NodeRole { role: node.role, why: Why::Matched { key, entry, by } })
        }
        None => Err(Error::host(format!(
            "this host is not among the nodes the config lists: {}; {config_path}: {}; run the bundle on a listed node, \
             add this host's address to the list, or give --role single|primary|secondary|worker",
            host.describe(),
            list.describe()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::config::{parse, Source};
    use std::path::PathBuf;

    fn list(yaml: &str) -> Result<Option<NodeList>> {
        let config = parse(PathBuf::from("/c/config"), Source::Flag, PathBuf::from("/c"), yaml.to_string()).unwrap();
        let rules = ConfigRules {
            required: vec![],
            management_nodes_key: Some("management_nodes".into()),
            worker_nodes_key: Some("workers".into()),
        };
        node_list(&rules, Some(&config))
    }

    fn host(addresses: &[&str]) -> ThisHost {
        ThisHost { addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(), hostname: "node7.example".into() }
    }

    #[test]
    fn one_node_is_single_two_are_a_pair_and_workers_are_workers() {
        let one = list("management_nodes: [10.0.0.1]\n").unwrap().unwrap();
        assert_eq!(one.nodes[0].role, Role::Single);
        let fleet = list("management_nodes: [10.0.0.1, admin@10.0.0.2]\nworkers: 10.0.0.5 10.0.0.6\n").unwrap().unwrap();
        let roles: Vec<Role> = fleet.nodes.iter().map(|n| n.role).collect();
        assert_eq!(roles, [Role::Primary, Role::Secondary, Role::Worker, Role::Worker]);
        assert_eq!((fleet.nodes[1].user.as_deref(), fleet.nodes[1].host.as_str()), (Some("admin"), "10.0.0.2"));
    }

    #[test]
    fn the_role_comes_from_the_matching_address_or_name() {
        let fleet = list("management_nodes: [10.0.0.1, 10.0.0.2]\nworkers: [node7, 10.0.0.9]\n").unwrap().unwrap();
        let secondary = ThisHost { hostname: "other".into(), ..host(&["127.0.0.1", "10.0.0.2"]) };
        let role = resolve(None, Some(&fleet), &secondary, "c").unwrap();
        assert_eq!(role.role, Role::Secondary);
        assert_eq!(role.explain(), "this host's address 10.0.0.2 is entry 2 of management_nodes");
        assert_eq!(resolve(None, Some(&fleet), &host(&["10.0.0.77"]), "c").unwrap().role, Role::Worker);
        assert_eq!(resolve(Some(Role::Primary), Some(&fleet), &host(&[]), "c").unwrap().why, Why::Flag);
        assert_eq!(resolve(None, None, &host(&[]), "c").unwrap().role, Role::Single);
    }

    #[test]
    fn a_host_not_listed_says_what_it_has_and_what_is_listed() {
        let fleet = list("management_nodes: [10.0.0.1, 10.0.0.2]\n").unwrap().unwrap();
        let err = resolve(None, Some(&fleet), &host(&["127.0.0.1", "10.0.0.3"]), "/c/config").unwrap_err();
        assert_eq!(err.class, airbin_format::error::ExitClass::Host);
        assert!(err.message.contains("its addresses are 127.0.0.1, 10.0.0.3 (host name node7.example)"), "{}", err.message);
        assert!(err.message.contains("management_nodes lists 10.0.0.1, 10.0.0.2"), "{}", err.message);
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(list("management_nodes: []\n").unwrap_err().message.contains("lists no management node"));
        assert!(list("management_nodes: [10.0.0.1, 10.0.0.1]\n").unwrap_err().message.contains("listed twice"));
        assert!(list("management_nodes: [127.0.0.1, 10.0.0.1]\n").unwrap_err().message.contains("loopback"));
        assert!(list("management_nodes: ['-oProxyCommand=x']\n").unwrap_err().message.contains("not [user@]address"));
        assert!(list("management_nodes: ['a@b@c']\n").is_err());
        assert_eq!(list("management_nodes: [127.0.0.1]\n").unwrap().unwrap().nodes[0].role, Role::Single);
    }
}
