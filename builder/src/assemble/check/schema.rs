//! The spec's JSON Schema (draft 2020-12), generated from the very types `airbin build`
//! parses, and the walk that finds every field the schema does not know, at any depth,
//! with the closest name it does.

use serde_json::{json, Map, Value};

use super::finding::{closest, Finding};
use crate::assemble::spec::Spec;

/// The schema of `bundle.yaml`, as `airbin schema` prints it.
pub(crate) fn spec_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Spec)).expect("a schema serializes");
    schema["$id"] = json!("https://airbin.dev/schema/bundle-spec.json");
    if let Some(step) = schema.pointer_mut("/$defs/Step") {
        *step = steps_by_kind(step);
    }
    schema
}

/// A step is its kind's fields and the fields every step has, in one mapping (serde's
/// `flatten`): each kind becomes one closed object holding both, picked by `kind`, so
/// that an editor completes and checks each kind's fields.
fn steps_by_kind(step: &Value) -> Value {
    let common = step["properties"].as_object().cloned().unwrap_or_default();
    let kinds: Vec<Value> = step["oneOf"]
        .as_array()
        .map(|branches| {
            branches
                .iter()
                .map(|branch| {
                    let mut branch = branch.clone();
                    let properties = branch["properties"].as_object_mut().expect("a kind has fields");
                    for (name, schema) in &common {
                        properties.insert(name.clone(), schema.clone());
                    }
                    branch["additionalProperties"] = json!(false);
                    branch
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "description": "One install step: `kind` says what it does, and takes that kind's fields beside the ones every step has (name, when, roles, timeout, retries, retry_delay, env, on_failure).",
        "type": "object",
        "required": ["kind"],
        "oneOf": kinds,
    })
}

/// Whether `value` (a spec the parser took) is valid against the schema: the schema's
/// own test, which the suite runs on every spec it builds (`AIRBIN_SPEC_SCHEMA_CHECK=1`),
/// so that the schema cannot drift from the parser.
pub(crate) fn conforms(value: &Value) -> std::result::Result<(), String> {
    let schema = spec_schema();
    let validator = jsonschema::validator_for(&schema).map_err(|e| format!("the schema does not compile: {e}"))?;
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    match errors.is_empty() {
        true => Ok(()),
        false => Err(errors.join("; ")),
    }
}

/// The `$defs` entry a `$ref` names.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => resolve(root, &root["$defs"][name]),
        None => node,
    }
}

/// Every field of `value` (the spec as JSON) that the schema does not know, at any depth:
/// an unknown key, a step of an unknown kind.
pub(crate) fn unknown_fields(root: &Value, value: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    walk(root, root, value, "", &mut out);
    out
}

fn walk(root: &Value, node: &Value, value: &Value, path: &str, out: &mut Vec<Finding>) {
    let node = resolve(root, node);
    if let Some(branches) = node.get("anyOf").and_then(Value::as_array) {
        // Option<T>: the branch that is not null.
        if let Some(branch) = branches.iter().find(|b| b.get("type") != Some(&json!("null"))) {
            walk(root, branch, value, path, out);
        }
        return;
    }
    if let (Some(branches), Some(map)) = (node.get("oneOf").and_then(Value::as_array), value.as_object()) {
        return walk_kind(root, branches, map, path, out);
    }
    match value {
        Value::Object(map) => {
            let Some(properties) = node.get("properties").and_then(Value::as_object) else { return };
            let closed = node.get("additionalProperties") == Some(&json!(false));
            for (key, item) in map {
                match properties.get(key) {
                    Some(schema) => walk(root, schema, item, &join(path, key), out),
                    None if closed => out.push(unknown_key(path, key, properties)),
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(schema) = node.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(root, schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// A step: the branch its `kind` names.
fn walk_kind(root: &Value, branches: &[Value], map: &Map<String, Value>, path: &str, out: &mut Vec<Finding>) {
    let kinds: Vec<&str> = branches.iter().filter_map(|b| b["properties"]["kind"]["const"].as_str()).collect();
    let Some(kind) = map.get("kind").and_then(Value::as_str) else {
        out.push(Finding::error(join(path, "kind"), "a step needs a kind", format!("add `kind:`, one of {}", kinds.join(", "))));
        return;
    };
    match branches.iter().find(|b| b["properties"]["kind"]["const"] == kind) {
        Some(branch) => walk(root, branch, &Value::Object(map.clone()), path, out),
        None => out.push(Finding::error(
            join(path, "kind"),
            format!("`{kind}` is not a step kind"),
            match closest(kind, kinds.iter().copied()) {
                Some(near) => format!("did you mean `{near}`? the kinds are {}", kinds.join(", ")),
                None => format!("the kinds are {}", kinds.join(", ")),
            },
        )),
    }
}

fn unknown_key(path: &str, key: &str, properties: &Map<String, Value>) -> Finding {
    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
    let fix = match closest(key, names.iter().copied()) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!("the fields here are {}", names.join(", ")),
    };
    Finding::error(join(path, key), format!("`{key}` is not a field here"), fix)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
