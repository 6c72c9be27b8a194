//! Install parameters as data: what the spec declares, the index carries, `airbin build`
//! checks defaults against, the `.bin` checks every value against before step 1, and
//! `airbin inspect --schema` renders as JSON Schema for a portal's form.
//!
//! ```yaml
//! parameters:
//!   - name: registry_address
//!     type: host:port
//!     key: registry.address      # the config key that holds the answer (default: name)
//!     default: 127.0.0.1:5000
//!   - name: admin_password
//!     type: string
//!     secret: true
//!     required: true
//!     pattern: "[^ ]{8,}"
//! ```

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ParamType {
    #[serde(rename = "string")]
    String,
    #[serde(rename = "int")]
    Int,
    #[serde(rename = "bool")]
    Bool,
    #[serde(rename = "enum")]
    Enum,
    #[serde(rename = "ip")]
    Ip,
    #[serde(rename = "host:port")]
    HostPort,
    #[serde(rename = "path")]
    Path,
    #[serde(rename = "url")]
    Url,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
            ParamType::Enum => "enum",
            ParamType::Ip => "ip",
            ParamType::HostPort => "host:port",
            ParamType::Path => "path",
            ParamType::Url => "url",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// The config key that holds the answer (dotted for nesting); default: the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value when none is given; YAML's `5000` or `true` is taken as its text.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "scalar_text")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "scalar_schema"))]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// Never shown: masked in logs, plan, status, `--json`, `support` and the record.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
    /// A regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The choices of an `enum`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[cfg(feature = "schema")]
fn scalar_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": ["string", "integer", "number", "boolean"]})
}

/// A default written as YAML's `5000`, `true` or `"x"`: kept as its text.
fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Bool(bool),
        Float(f64),
    }
    Ok(Option::<Scalar>::deserialize(d)?.map(|s| match s {
        Scalar::Text(t) => t,
        Scalar::Int(n) => n.to_string(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Float(f) => f.to_string(),
    }))
}

/// The masked form of a secret, wherever a value is shown.
pub const MASK: &str = "********";

impl Parameter {
    /// The config key holding the value.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.name)
    }

    /// The value as shown: masked for a secret.
    pub fn shown(&self, value: &str) -> String {
        if self.secret {
            MASK.to_string()
        } else {
            value.to_string()
        }
    }

    /// Checks `text` against the type, the choices and the pattern; returns the value in
    /// its one spelling (`yes` → `true`), or why it is not one.
    pub fn check(&self, text: &str) -> Result<String, String> {
        let text = text.trim();
        let value = match self.kind {
            ParamType::String => text.to_string(),
            ParamType::Int => text.parse::<i64>().map(|n| n.to_string()).map_err(|_| "is not an integer".to_string())?,
            ParamType::Bool => match text.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => "true".into(),
                "false" | "no" | "off" | "0" => "false".into(),
                _ => return Err("is not a bool (true or false)".into()),
            },
            ParamType::Enum => {
                if !self.values.iter().any(|v| v == text) {
                    return Err(format!("is not one of {}", self.values.join(", ")));
                }
                text.to_string()
            }
            ParamType::Ip => text.parse::<IpAddr>().map(|ip| ip.to_string()).map_err(|_| "is not an IP address".to_string())?,
            ParamType::HostPort => check_host_port(text).map(|()| text.to_string())?,
            ParamType::Path => {
                if !text.starts_with('/') || text.contains('\0') {
                    return Err("is not an absolute path".into());
                }
                text.to_string()
            }
            ParamType::Url => check_url(text).map(|()| text.to_string())?,
        };
        if text.contains(['\n', '\r', '\0']) {
            return Err("has a line break or a NUL byte".into());
        }
        if let Some(pattern) = &self.pattern {
            let re = anchored(pattern).map_err(|e| format!("cannot be checked: the pattern is not valid ({e})"))?;
            if !re.is_match(&value) {
                return Err(format!("does not match the pattern {pattern}"));
            }
        }
        Ok(value)
    }

    /// This parameter as a JSON Schema property.
    pub fn schema(&self) -> serde_json::Value {
        use serde_json::json;
        let mut p = match self.kind {
            ParamType::String => json!({"type": "string"}),
            ParamType::Int => json!({"type": "integer"}),
            ParamType::Bool => json!({"type": "boolean"}),
            ParamType::Enum => json!({"type": "string", "enum": self.values}),
            ParamType::Ip => json!({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
            ParamType::HostPort => json!({"type": "string", "pattern": r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$"}),
            ParamType::Path => json!({"type": "string", "pattern": "^/"}),
            ParamType::Url => json!({"type": "string", "format": "uri"}),
        };
        let map = p.as_object_mut().expect("an object");
        if let Some(pattern) = &self.pattern {
            // JSON Schema's pattern is not anchored; ours matches the whole value.
            let anchored = format!("^(?:{pattern})$");
            match map.get("pattern") {
                Some(existing) => {
                    let both = json!([{"pattern": existing}, {"pattern": anchored}]);
                    map.remove("pattern");
                    map.insert("allOf".into(), both);
                }
                None => {
                    map.insert("pattern".into(), anchored.into());
                }
            }
        }
        if let Some(default) = &self.default {
            let typed = match (self.kind, self.check(default)) {
                (ParamType::Int, Ok(v)) => v.parse::<i64>().map_or_else(|_| json!(v), |n| json!(n)),
                (ParamType::Bool, Ok(v)) => json!(v == "true"),
                _ => json!(default),
            };
            if !self.secret {
                map.insert("default".into(), typed);
            }
        }
        if !self.description.is_empty() {
            map.insert("description".into(), self.description.clone().into());
        }
        map.insert("title".into(), self.name.clone().into());
        if self.secret {
            map.insert("writeOnly".into(), true.into());
        }
        map.insert("x-airbin-type".into(), self.kind.as_str().into());
        map.insert("x-airbin-config-key".into(), self.key().into());
        p
    }
}

/// The parameters as one JSON Schema object (draft 2020-12): a portal renders its form
/// from it; the answers go into the config under each `x-airbin-config-key`.
pub fn json_schema(bundle: &str, version: &str, params: &[Parameter]) -> serde_json::Value {
    let properties: serde_json::Map<String, serde_json::Value> = params.iter().map(|p| (p.name.clone(), p.schema())).collect();
    let required: Vec<&str> = params.iter().filter(|p| p.required && p.default.is_none()).map(|p| p.name.as_str()).collect();
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": format!("{bundle} {version} install parameters"),
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "required": required,
    })
}

/// The pattern matched against the whole value.
pub fn anchored(pattern: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())
}

fn check_host_port(text: &str) -> Result<(), String> {
    let bad = || "is not host:port (such as 10.0.0.5:5000 or registry.local:5000)".to_string();
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => is_host_name(host),
    };
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

fn check_url(text: &str) -> Result<(), String> {
    let bad = || "is not a URL (such as https://host/path)".to_string();
    let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
    let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_ok = !host.is_empty() && (is_host_name(host) || check_host_port(host).is_ok() || host.starts_with('['));
    if scheme_ok && host_ok && !text.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Checks the declarations themselves (names, keys, patterns, enum choices, defaults),
/// on the builder's side and on the stub's: `(field, what is wrong)`.
pub fn check_declarations(params: &[Parameter]) -> Result<(), (String, String)> {
    let mut names = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    for (i, p) in params.iter().enumerate() {
        let at = |f: &str| format!("parameters[{i}].{f}");
        let name_ok = !p.name.is_empty()
            && p.name.len() <= 100
            && p.name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err((
                at("name"),
                format!("'{}' is not a parameter name: a letter, then letters, digits, _ or -", super::rules::printable(&p.name, 100)),
            ));
        }
        if !names.insert(p.name.as_str()) {
            return Err((at("name"), format!("'{}' names two parameters", p.name)));
        }
        if !super::rules::is_config_key(p.key()) {
            return Err((
                at("key"),
                format!("'{}' is not a config key (letters, digits, _ and -, dotted for nesting)", super::rules::printable(p.key(), 100)),
            ));
        }
        if !keys.insert(p.key()) {
            return Err((at("key"), format!("config key '{}' holds two parameters", p.key())));
        }
        if let Some(why) = super::rules::unsafe_text(&p.description, 4096) {
            return Err((at("description"), why.to_string()));
        }
        if p.kind == ParamType::Enum {
            if p.values.is_empty() {
                return Err((at("values"), "an enum parameter lists its choices in `values`".into()));
            }
        } else if !p.values.is_empty() {
            return Err((at("values"), format!("only an enum parameter has `values`; this one is a {}", p.kind.as_str())));
        }
        // What a terminal shows (a prompt, a plan, an error) holds no control character:
        // an escape sequence from a bundle never reaches the engineer's terminal.
        if p.values.iter().any(|v| v.is_empty() || v.len() > 200 || v.chars().any(char::is_control)) {
            return Err((at("values"), "a choice is empty, longer than 200 bytes, or has a control character".into()));
        }
        if let Some(pattern) = &p.pattern {
            if pattern.len() > 1000 {
                return Err((at("pattern"), "is longer than 1000 bytes".into()));
            }
            if pattern.chars().any(char::is_control) {
                return Err((at("pattern"), "has a control character".into()));
            }
            anchored(pattern).map_err(|e| (at("pattern"), format!("is not a regular expression ({})", e.lines().last().unwrap_or(""))))?;
        }
        if p.secret && p.default.is_some() {
            return Err((at("default"), "a secret has no default: whoever has the bundle could read it; let the site set it".into()));
        }
        if let Some(default) = &p.default {
            if default.chars().any(char::is_control) {
                return Err((at("default"), "has a control character".into()));
            }
            if default.len() > 4096 {
                return Err((at("default"), "is longer than 4096 bytes".into()));
            }
            p.check(default).map_err(|why| (at("default"), format!("'{}' {why}", p.shown(default))))?;
        }
    }
    if params.len() > 500 {
        return Err(("parameters".into(), "more than 500 parameters".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(yaml: &str) -> Parameter {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn every_type_takes_its_values_and_refuses_others() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("int", &["5000", "-3", " 7 "], &["5k", "1.5", ""]),
            ("bool", &["true", "no", "ON", "0"], &["maybe", ""]),
            ("ip", &["10.0.0.5", "::1", "fe80::1"], &["10.0.0", "host", "10.0.0.256"]),
            ("host:port", &["10.0.0.5:5000", "registry.local:443", "[::1]:5000"], &["10.0.0.5", ":5000", "h:0", "h:70000", "a b:1"]),
            ("path", &["/srv/registry", "/"], &["srv", "", "./x"]),
            ("url", &["https://h/x", "http://10.0.0.5:5000/v2/", "ftp://u@h"], &["h/x", "https://", "http://a b/"]),
            ("string", &["anything", ""], &[]),
        ];
        for (kind, good, bad) in cases {
            let p = param(&format!("name: p\ntype: \"{kind}\"\n"));
            for g in *good {
                assert!(p.check(g).is_ok(), "{kind} {g}: {:?}", p.check(g));
            }
            for b in *bad {
                assert!(p.check(b).is_err(), "{kind} took {b}");
            }
        }
        assert_eq!(param("name: p\ntype: bool\n").check("yes").unwrap(), "true");
        let e = param("name: p\ntype: enum\nvalues: [single, dual]\n");
        assert!(e.check("dual").is_ok() && e.check("triple").unwrap_err().contains("single, dual"));
    }

    #[test]
    fn a_pattern_matches_the_whole_value() {
        let p = param("name: p\ntype: string\npattern: '[a-z]+'\n");
        assert!(p.check("abc").is_ok());
        assert!(p.check("abc1").unwrap_err().contains("pattern"));
    }

    #[test]
    fn declarations_are_checked_defaults_included() {
        let check = |yaml: &str| check_declarations(&serde_yaml::from_str::<Vec<Parameter>>(yaml).unwrap());
        assert!(check("- {name: port, type: int, default: 5000}\n- {name: on, type: bool, default: true}\n").is_ok());
        assert!(check("- {name: port, type: int, default: five}\n").unwrap_err().0.ends_with("default"));
        assert!(check("- {name: mode, type: enum}\n").unwrap_err().0.ends_with("values"));
        assert!(check("- {name: a, type: string, pattern: '('}\n").unwrap_err().0.ends_with("pattern"));
        assert!(check("- {name: a, type: string}\n- {name: b, type: string, key: a}\n").unwrap_err().0.ends_with("key"));
        assert!(check("- {name: 'a b', type: string}\n").unwrap_err().0.ends_with("name"));
        let e = check("- {name: pw, type: string, secret: true, default: hunter2}\n").unwrap_err();
        assert!(!e.1.contains("hunter2") && e.0.ends_with("default"), "{e:?}");
        assert!(serde_yaml::from_str::<Parameter>("name: a\ntype: float\n").is_err());
    }

    #[test]
    fn the_schema_types_each_parameter_and_hides_secret_defaults() {
        let params: Vec<Parameter> = serde_yaml::from_str(
            "- {name: port, type: int, default: 5000, description: the port}\n- {name: pw, type: string, secret: true, required: true}\n- {name: mode, type: enum, values: [a, b], required: true}\n",
        )
        .unwrap();
        let s = json_schema("demo", "1.0", &params);
        assert_eq!(s["properties"]["port"]["type"], "integer");
        assert_eq!(s["properties"]["port"]["default"], 5000);
        assert_eq!(s["properties"]["pw"]["writeOnly"], true);
        assert!(s["properties"]["pw"].get("default").is_none());
        assert_eq!(s["required"], serde_json::json!(["pw", "mode"]));
    }
}
