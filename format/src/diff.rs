//! What changed from one bundle to another, from their indexes alone: members, images
//! and tags, registry repositories, tags and blobs, parameters, steps. What a reviewer
//! reads before releasing a version (`airbin diff`), and a field engineer before an
//! upgrade (`plan` against the installed record).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Index;

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Diff {
    pub from: String,
    pub to: String,
    pub members: Changes,
    /// Tags: added, removed, and retagged (the tag now names another image ID).
    pub images: Changes,
    pub registry: Changes,
    pub parameters: Changes,
    pub steps: Changes,
}

/// Added, removed and changed things, each one line of text.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Compares two maps of name → description: what is only in `new`, only in `old`,
    /// and in both with another value (`how` says what changed).
    fn of<V: PartialEq>(
        old: &BTreeMap<String, V>,
        new: &BTreeMap<String, V>,
        show: impl Fn(&V) -> String,
        how: impl Fn(&V, &V) -> String,
    ) -> Changes {
        let mut c = Changes::default();
        for (name, value) in new {
            match old.get(name) {
                None => c.added.push(format!("{name} {}", show(value)).trim_end().to_string()),
                Some(before) if before != value => c.changed.push(format!("{name}: {}", how(before, value))),
                Some(_) => {}
            }
        }
        for (name, value) in old {
            if !new.contains_key(name) {
                c.removed.push(format!("{name} {}", show(value)).trim_end().to_string());
            }
        }
        c
    }
}

fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

pub fn diff(old: &Index, new: &Index) -> Diff {
    Diff {
        from: format!("{} {}", old.bundle.name, old.bundle.version),
        to: format!("{} {}", new.bundle.name, new.bundle.version),
        members: member_changes(old, new),
        images: image_changes(old, new),
        registry: registry_changes(old, new),
        parameters: parameter_changes(old, new),
        steps: step_changes(old, new),
    }
}

fn member_changes(old: &Index, new: &Index) -> Changes {
    let members = |index: &Index| -> BTreeMap<String, (String, u64, String)> {
        index.members.iter().map(|m| (m.name.clone(), (m.kind.as_str().to_string(), m.size, m.sha256.clone()))).collect()
    };
    Changes::of(
        &members(old),
        &members(new),
        |(kind, size, _)| format!("({kind}, {})", human(*size)),
        |(_, a, da), (_, b, db)| {
            let size = if a == b { human(*b) } else { format!("{} -> {}", human(*a), human(*b)) };
            if da == db {
                size
            } else {
                format!("{size}, content {} -> {}", short(da), short(db))
            }
        },
    )
}

fn image_changes(old: &Index, new: &Index) -> Changes {
    let tags = |index: &Index| -> BTreeMap<String, String> {
        let tagged = index.members.iter().flat_map(|m| &m.images).flat_map(|i| i.tags.iter().map(move |t| (t.clone(), i.id.clone())));
        tagged.collect()
    };
    Changes::of(
        &tags(old),
        &tags(new),
        |id| format!("(image {})", short(id)),
        |a, b| format!("retagged: image {} -> {}", short(a), short(b)),
    )
}

/// Registry packs: each repository's tags (tag → manifest), then blob counts.
fn registry_changes(old: &Index, new: &Index) -> Changes {
    let repos = |index: &Index| -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for record in index.members.iter().filter_map(|m| m.registry.as_ref()) {
            for repo in &record.repositories {
                let tags = out.entry(repo.name.clone()).or_default();
                tags.extend(repo.tags.iter().map(|t| (t.tag.clone(), t.manifest.clone())));
            }
        }
        out
    };
    let mut registry = Changes::of(
        &repos(old),
        &repos(new),
        |tags| format!("(tags {})", tags.keys().cloned().collect::<Vec<_>>().join(", ")),
        |a, b| {
            let (ka, kb): (BTreeSet<&String>, BTreeSet<&String>) = (a.keys().collect(), b.keys().collect());
            let added: Vec<&str> = kb.difference(&ka).map(|s| s.as_str()).collect();
            let removed: Vec<&str> = ka.difference(&kb).map(|s| s.as_str()).collect();
            let moved: Vec<String> = ka
                .intersection(&kb)
                .filter(|t| a[**t] != b[**t])
                .map(|t| format!("{t} ({} -> {})", short(&a[*t]), short(&b[*t])))
                .collect();
            let moved: Vec<&str> = moved.iter().map(String::as_str).collect();
            let parts = [("tags added", added), ("tags removed", removed), ("tags moved to another manifest", moved)];
            let parts: Vec<String> =
                parts.iter().filter(|(_, t)| !t.is_empty()).map(|(what, t)| format!("{what} {}", t.join(", "))).collect();
            parts.join("; ")
        },
    );
    let blobs = |index: &Index| -> u64 { index.members.iter().filter_map(|m| m.registry.as_ref()).map(|r| r.blobs).sum() };
    let (old_blobs, new_blobs) = (blobs(old), blobs(new));
    let omitted = |index: &Index| -> usize { index.members.iter().filter_map(|m| m.registry.as_ref()).map(|r| r.omitted.len()).sum() };
    let (old_omitted, new_omitted) = (omitted(old), omitted(new));
    if old_blobs != new_blobs || old_omitted != new_omitted {
        let left_out = |n: usize| if n > 0 { format!(" (+{n} left out: the base carries them)") } else { String::new() };
        registry.changed.push(format!("blobs: {old_blobs}{} -> {new_blobs}{}", left_out(old_omitted), left_out(new_omitted)));
    }
    registry
}

fn parameter_changes(old: &Index, new: &Index) -> Changes {
    let params =
        |index: &Index| -> BTreeMap<String, String> { index.parameters.iter().map(|p| (p.name.clone(), describe_parameter(p))).collect() };
    Changes::of(&params(old), &params(new), |d| format!("({d})"), |a, b| format!("{a} -> {b}"))
}

fn step_changes(old: &Index, new: &Index) -> Changes {
    let steps = |index: &Index| -> BTreeMap<String, (String, String)> {
        index.steps.iter().map(|s| (s.name(), (s.action.kind().to_string(), serde_json::to_string(s).unwrap_or_default()))).collect()
    };
    Changes::of(
        &steps(old),
        &steps(new),
        |(kind, _)| format!("({kind})"),
        |(ka, _), (kb, _)| if ka == kb { format!("{kb} step changed") } else { format!("{ka} -> {kb}") },
    )
}

fn describe_parameter(p: &super::Parameter) -> String {
    let mut text = p.kind.as_str().to_string();
    if p.required {
        text.push_str(", required");
    }
    if p.secret {
        text.push_str(", secret");
    }
    if let Some(default) = &p.default {
        text.push_str(&format!(", default {}", p.shown(default)));
    }
    if p.key() != p.name {
        text.push_str(&format!(", key {}", p.key()));
    }
    text
}

impl Diff {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a diff serializes")
    }

    /// The diff as a reviewer reads it: one section per kind, `+`, `-` and `~` lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (title, changes) in [
            ("members", &self.members),
            ("images", &self.images),
            ("registry", &self.registry),
            ("parameters", &self.parameters),
            ("steps", &self.steps),
        ] {
            if changes.is_empty() {
                continue;
            }
            out.push(format!("{title}:"));
            out.extend(changes.added.iter().map(|l| format!("  + {l}")));
            out.extend(changes.removed.iter().map(|l| format!("  - {l}")));
            out.extend(changes.changed.iter().map(|l| format!("  ~ {l}")));
        }
        if out.is_empty() {
            out.push("no change in members, images, registry, parameters or steps".into());
        }
        out
    }
}
