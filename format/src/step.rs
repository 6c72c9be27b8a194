//! Install steps as data: what the spec declares and the index carries. What each kind
//! does on the host lives in `crate::steps`; this module only fixes the shape both the
//! builder and the stub agree on.
//!
//! A step is its common fields (name, timeout, retries, environment, what to run when
//! it finally fails) plus one `Action`, the kind, flattened into the same mapping:
//!
//! ```yaml
//! - name: cadm install
//!   kind: command
//!   run: [cadm, install, --config, config]
//!   timeout: 10m
//!   retries: 2
//!   retry_delay: 5s
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Step {
    /// Shown everywhere (plan, log, journal, `--from`); unique in a bundle. Empty means
    /// the name `default_name` derives from the action.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(flatten)]
    pub action: Action,
    /// How long one attempt may take (`10m`, `90s`, or seconds).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "timeout_seconds")]
    pub timeout: Option<Seconds>,
    /// Attempts after the first one that fails.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// The pause between attempts (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<Seconds>,
    /// Extra environment for the step (command steps; `${config.KEY}` expands).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Run once when the step has finally failed: to collect diagnostics or undo.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<Step>,
    /// The nodes the step runs on (default: every node). Its `on_failure` steps go with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// Whether the step runs on a first install, on an upgrade, or on both (the default).
    #[serde(default, skip_serializing_if = "Phase::is_both")]
    pub when: Phase,
}

/// Which runs a step is part of: a first install (or a `--force` reinstall), an
/// upgrade from an older version (downgrades and hotfixes included), both of those (the
/// default), or an uninstall (format 6), which runs only the steps marked for it.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Install,
    Upgrade,
    Uninstall,
    #[default]
    Both,
}

impl Phase {
    fn is_both(&self) -> bool {
        *self == Phase::Both
    }

    /// Whether a step marked `self` runs in a run of kind `now` (`Install`, `Upgrade` or
    /// `Uninstall`).
    pub fn includes(self, now: Phase) -> bool {
        self == now || (self == Phase::Both && now != Phase::Uninstall)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Install => "install",
            Phase::Upgrade => "upgrade",
            Phase::Uninstall => "uninstall",
            Phase::Both => "install and upgrade",
        }
    }
}

/// A node's part in the install.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The only management node.
    Single,
    /// The first of a dual pair: it serves what the others pull (the registry).
    Primary,
    /// The other node(s) of the pair.
    Secondary,
    /// A node of the fleet the management nodes manage.
    Worker,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Single, Role::Primary, Role::Secondary, Role::Worker];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Single => "single",
            Role::Primary => "primary",
            Role::Secondary => "secondary",
            Role::Worker => "worker",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a step does: one variant a kind, each wrapping the kind's own record, so that
/// the code of one kind never sees another's fields.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// Load the images of an `image` member into the container engine, streamed.
    LoadImages(LoadImagesAction),
    /// Restore a `registry-pack` member into a registry's storage root.
    RestoreRegistry(RestoreRegistryAction),
    /// Write a member into a directory of the host (`<to>/<member>`), such as a tool
    /// into `/usr/local/bin`.
    Extract(ExtractAction),
    /// Wait until a TCP port accepts connections or an HTTP URL answers (2xx or 3xx),
    /// within the step's timeout (default 60s).
    WaitFor(WaitForAction),
    /// Publish the images of an `image` member into the site's registry over the
    /// registry API, straight from the bundle: each under its tag (and its track tag).
    PushImages(PushImagesAction),
    /// A program of the product (a `tool` member, found by name) or of the host, run in
    /// the staging directory.
    Command(CommandAction),
}

/// Load the images of an `image` member into the container engine, streamed.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LoadImagesAction {
    pub member: String,
    /// `auto` (the default), `docker`, `docker-api`, `podman` or `containerd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// Restore a `registry-pack` member into a registry's storage root.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RestoreRegistryAction {
    pub member: String,
    /// The registry's `storage.filesystem.rootdirectory`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// ...or the key of the product's config that names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_from_config: Option<String>,
    /// `user[:group]` to own what is restored, for a registry running as its own user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Octal mode bits for restored files (directories get the matching x bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `host:port` of the registry serving that root: checked online after the restore...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// ...or the key of the product's config that names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_from_config: Option<String>,
}

/// Write a member into a directory of the host (`<to>/<member>`), such as a tool
/// into `/usr/local/bin`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtractAction {
    pub member: String,
    /// The directory it lands in; `${config.KEY}` expands.
    pub to: String,
    /// Octal mode bits of the written file (default: the member's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `user[:group]` to own it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// Wait until a TCP port accepts connections or an HTTP URL answers (2xx or 3xx),
/// within the step's timeout (default 60s).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct WaitForAction {
    /// `host:port`; `${config.KEY}` expands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// `http://host:port/path`; `${config.KEY}` expands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
}

/// Publish the images of an `image` member into the site's registry over the
/// registry API, straight from the bundle: each under its tag (and its track tag).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PushImagesAction {
    pub member: String,
    /// The registry's `host:port`; `${config.KEY}` expands.
    pub registry: String,
    /// A repository prefix (`release` makes `sample/app` `release/sample/app`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Basic-auth user and password; `${config.KEY}` expands (an empty user: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Also tag `1.4.34` as its track `1.4`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub track_tags: bool,
}

/// A program of the product (a `tool` member, found by name) or of the host, run in
/// the staging directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CommandAction {
    /// The program and its arguments; `${config.KEY}` expands in each.
    pub run: Vec<String>,
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::LoadImages(_) => "load-images",
            Action::RestoreRegistry(_) => "restore-registry",
            Action::Extract(_) => "extract",
            Action::WaitFor(_) => "wait-for",
            Action::PushImages(_) => "push-images",
            Action::Command(_) => "command",
        }
    }

    /// The member the step reads from the bundle, if any.
    pub fn member(&self) -> Option<&str> {
        match self {
            Action::LoadImages(LoadImagesAction { member, .. })
            | Action::RestoreRegistry(RestoreRegistryAction { member, .. })
            | Action::Extract(ExtractAction { member, .. })
            | Action::PushImages(PushImagesAction { member, .. }) => Some(member),
            Action::WaitFor(_) | Action::Command(_) => None,
        }
    }
}

impl Step {
    /// The step's name: as the spec gives it, or derived from its action.
    pub fn name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        match &self.action {
            Action::LoadImages(LoadImagesAction { member, .. }) => format!("load {member}"),
            Action::RestoreRegistry(RestoreRegistryAction { member, .. }) => format!("restore {member}"),
            Action::Extract(ExtractAction { member, .. }) => format!("extract {member}"),
            Action::PushImages(PushImagesAction { member, .. }) => format!("push {member}"),
            Action::WaitFor(WaitForAction { tcp, http }) => format!("wait for {}", tcp.as_deref().or(http.as_deref()).unwrap_or("?")),
            Action::Command(CommandAction { run }) => run.join(" "),
        }
    }

    /// Whether the step runs on a node of `role`.
    pub fn runs_on(&self, role: Role) -> bool {
        self.roles.is_empty() || self.roles.contains(&role)
    }

    pub fn retry_delay(&self) -> Duration {
        self.retry_delay.map_or(Duration::from_secs(5), Seconds::duration)
    }
}

/// Octal mode bits as a spec writes them ("0644"); the builder checks them with this
/// too, so a bundle never carries a mode the stub would refuse.
pub fn parse_mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777)
}

/// A duration as a spec writes it (`10m`, `1h30m`, `90s`, or plain seconds), stored in
/// the index as whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl Seconds {
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.duration()))
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Seconds {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: whole seconds, or text such as 90s, 10m, 1h30m.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*([0-9]+\\s*(ns|us|ms|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days)?\\s*)+$"}
            ]
        })
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Seconds(n)),
            Raw::Text(text) => match text.trim().parse::<u64>() {
                Ok(n) => Ok(Seconds(n)),
                Err(_) => humantime::parse_duration(text.trim())
                    .map(|d| Seconds(d.as_secs()))
                    .map_err(|e| serde::de::Error::custom(format!("'{text}' is not a duration such as 90s, 10m or 1h30m ({e})"))),
            },
        }
    }
}

/// The product's config as the spec describes it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ConfigRules {
    /// Keys (dotted for nesting) that must be set and non-empty before step 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    /// The key listing the management nodes (addresses or host names, `user@` allowed):
    /// one is a `single` node; of more, the first is the `primary`, the others `secondary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_nodes_key: Option<String>,
    /// The key listing the fleet's `worker` nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_nodes_key: Option<String>,
}

impl ConfigRules {
    pub fn is_empty(&self) -> bool {
        self.required.is_empty() && self.management_nodes_key.is_none() && self.worker_nodes_key.is_none()
    }
}

/// What the host must offer, checked in preflight.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// The install must run as root.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub root: bool,
    /// TCP ports that must be free (nothing listening) before the install.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
}

impl Requires {
    pub fn is_empty(&self) -> bool {
        !self.root && self.ports.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(yaml: &str) -> Result<Step, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn common_fields_and_the_action_share_one_mapping() {
        let s = step("name: cadm install\nkind: command\nrun: [cadm, install]\ntimeout: 10m\nretries: 2\nretry_delay: 3s\nenv: {A: b}\n")
            .unwrap();
        assert_eq!(s.name(), "cadm install");
        assert_eq!(s.action, Action::Command(CommandAction { run: vec!["cadm".into(), "install".into()] }));
        assert_eq!((s.timeout, s.retries, s.retry_delay), (Some(Seconds(600)), 2, Some(Seconds(3))));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Step>(&json).unwrap(), s);
    }

    #[test]
    fn a_misspelt_field_is_refused() {
        let err = step("kind: command\nrun: [x]\ntimout: 5m\n").unwrap_err();
        assert!(err.contains("timout"), "{err}");
        let err = step("kind: load-images\nmember: a\nrun: [x]\n").unwrap_err();
        assert!(err.contains("run"), "{err}");
    }

    #[test]
    fn durations_take_words_or_seconds() {
        assert_eq!(step("kind: command\nrun: [x]\ntimeout: 90\n").unwrap().timeout, Some(Seconds(90)));
        assert_eq!(step("kind: command\nrun: [x]\ntimeout: 1h30m\n").unwrap().timeout, Some(Seconds(5400)));
        assert!(step("kind: command\nrun: [x]\ntimeout: soon\n").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn a_format_1_command_step_still_reads() {
        let s: Step = serde_json::from_str(r#"{"kind":"command","name":"x","run":["a"],"env":{"K":"v"},"timeout_seconds":5}"#).unwrap();
        assert_eq!((s.timeout, s.env.len()), (Some(Seconds(5)), 1));
    }

    #[test]
    fn roles_default_to_every_node() {
        let s = step("kind: command\nrun: [x]\nroles: [primary, single]\n").unwrap();
        assert!(s.runs_on(Role::Primary) && s.runs_on(Role::Single) && !s.runs_on(Role::Secondary));
        assert!(step("kind: command\nrun: [x]\n").unwrap().runs_on(Role::Worker));
        assert!(step("kind: command\nrun: [x]\nroles: [master]\n").unwrap_err().contains("master"));
    }

    #[test]
    fn unnamed_steps_get_a_name_from_their_action() {
        assert_eq!(step("kind: load-images\nmember: images\n").unwrap().name(), "load images");
        assert_eq!(step("kind: wait-for\ntcp: 127.0.0.1:5000\n").unwrap().name(), "wait for 127.0.0.1:5000");
    }
}

#[cfg(test)]
mod action_tests {
    use super::*;

    #[test]
    fn each_kind_reads_its_own_fields_and_refuses_others() {
        let step: Step = serde_json::from_str(r#"{"kind":"load-images","member":"m","engine":"docker","name":"load"}"#).unwrap();
        assert_eq!(step.action, Action::LoadImages(LoadImagesAction { member: "m".into(), engine: Some("docker".into()) }));
        assert_eq!(step.name, "load");
        // The kind's record carries only its own fields: another kind's are refused.
        let err = serde_json::from_str::<Step>(r#"{"kind":"load-images","member":"m","run":["x"]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `run`"), "{err}");
        let err = serde_json::from_str::<Step>(r#"{"kind":"unpack","member":"m"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `unpack`"), "{err}");
        // And it is written back as it was read.
        let again: Step = serde_json::from_str(&serde_json::to_string(&step).unwrap()).unwrap();
        assert_eq!(again, step);
    }
}
