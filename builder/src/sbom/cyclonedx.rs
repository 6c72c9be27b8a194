//! CycloneDX 1.6 JSON: the bundle as `metadata.component`, each member a `file`
//! component, each image a `container` component (its purl, its layers as `file`
//! components, its operating system, its packages as `library` components with the
//! layer each came from), and `dependencies` from the bundle down to the packages.
//! Nothing in it depends on the time or the host unless the build records them.

use serde_json::{json, Value};

use super::{image_purl, package_purl, ImageFacts, Subject};

fn property(name: &str, value: impl ToString) -> Value {
    json!({"name": name, "value": value.to_string()})
}

fn sha256(hex: &str) -> Value {
    json!([{"alg": "SHA-256", "content": hex.strip_prefix("sha256:").unwrap_or(hex)}])
}

pub(super) fn document(subject: &Subject) -> Value {
    let meta = subject.meta;
    let mut bundle = json!({
        "type": "application",
        "bom-ref": "bundle",
        "name": meta.name,
        "version": meta.version,
        "hashes": sha256(&subject.members_sha256()),
        "properties": [
            property("airbin:arch", &meta.arch),
            property("airbin:members-sha256", subject.members_sha256()),
        ],
    });
    if !meta.description.is_empty() {
        bundle["description"] = json!(meta.description);
    }
    if let Some(base) = &meta.hotfix_of {
        bundle["properties"].as_array_mut().expect("an array").push(property("airbin:hotfix-of", base));
    }
    let mut metadata = json!({
        "tools": {"components": [{"type": "application", "name": "airbin", "version": subject.facts.builder_version}]},
        "component": bundle,
    });
    if !subject.facts.built_at.is_empty() {
        metadata["timestamp"] = json!(subject.facts.built_at);
    }
    let mut components = Vec::new();
    let mut dependencies =
        vec![json!({"ref": "bundle", "dependsOn": subject.members.iter().map(|m| format!("member:{}", m.name)).collect::<Vec<_>>()})];
    for member in subject.members {
        components.push(json!({
            "type": "file",
            "bom-ref": format!("member:{}", member.name),
            "name": member.name,
            "hashes": sha256(&member.sha256),
            "properties": [property("airbin:kind", member.kind.as_str()), property("airbin:size", member.size)],
        }));
        let images: Vec<String> =
            (0..subject.images.len()).filter(|i| subject.images[*i].member == member.name).map(|i| format!("image:{}", i + 1)).collect();
        dependencies.push(json!({"ref": format!("member:{}", member.name), "dependsOn": images}));
    }
    for (i, image) in subject.images.iter().enumerate() {
        let (component, depends) = image_component(i + 1, image);
        components.push(component);
        dependencies.push(depends);
    }
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", subject.uuid()),
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": dependencies,
    })
}

/// An image: its layers and operating system, then its packages; and what it depends on.
fn image_component(n: usize, image: &ImageFacts) -> (Value, Value) {
    let at = format!("image:{n}");
    let mut properties = vec![property("airbin:member", &image.member)];
    properties.extend(image.tags.iter().map(|t| property("airbin:tag", t)));
    properties.extend(image.found.not_read.iter().map(|what| property("airbin:packages-not-read", what)));
    let mut nested = Vec::new();
    for (k, layer) in image.layers.iter().enumerate() {
        nested.push(json!({
            "type": "file",
            "bom-ref": format!("{at}:layer:{}", k + 1),
            "name": format!("layer {} of {}", k + 1, image.layers.len()),
            "hashes": sha256(layer),
            "properties": [property("airbin:layer-digest", layer)],
        }));
    }
    let os = image.found.os.as_ref();
    if let Some(os) = os.filter(|o| !o.id.is_empty()) {
        nested.push(json!({
            "type": "operating-system",
            "bom-ref": format!("{at}:os"),
            "name": os.id,
            "version": os.version_id,
            "description": os.pretty_name,
        }));
    }
    let mut packages = Vec::new();
    for (k, package) in image.found.packages.iter().enumerate() {
        let reference = format!("{at}:package:{}", k + 1);
        let mut component = json!({
            "type": "library",
            "bom-ref": reference,
            "name": package.name,
            "version": package.version,
            "purl": package_purl(package, os),
            "properties": [
                property("airbin:layer", image.layers.get(package.layer).map_or("", String::as_str)),
                property("airbin:layer-index", package.layer + 1),
                property("airbin:package-type", package.ecosystem.purl_type()),
            ],
        });
        if let Some(license) = &package.license {
            component["licenses"] = json!([{"license": {"name": license}}]);
        }
        nested.push(component);
        packages.push(reference);
    }
    let name = image.tags.first().map_or_else(|| image.digest.clone(), |t| t.rsplit_once(':').map_or(t.as_str(), |(r, _)| r).to_string());
    let mut component = json!({
        "type": "container",
        "bom-ref": at,
        "name": name,
        "purl": image_purl(image),
        "hashes": sha256(&image.digest),
        "properties": properties,
        "components": nested,
    });
    if let Some(tag) = image.tags.first().and_then(|t| t.rsplit_once(':')).map(|(_, tag)| tag) {
        component["version"] = json!(tag);
    }
    (component, json!({"ref": at, "dependsOn": packages}))
}
