//! SPDX 2.3 JSON: the bundle, each member, each image, each of its layers and each
//! operating-system package as packages (SPDX 2.3 asks SHA-1 of every file, so members
//! are packages with their SHA-256), tied by relationships: the document DESCRIBES the
//! bundle, which CONTAINS its members, a member its images, an image its layers, and a
//! layer the packages that came from it.

use serde_json::{json, Value};

use super::{image_purl, package_purl, Subject};

/// SPDX 2.3 asks a creation time; a build that records none gets the epoch.
const NO_TIME: &str = "1970-01-01T00:00:00Z";

fn package(id: &str, name: &str, version: &str, purpose: &str) -> Value {
    let mut value = json!({
        "SPDXID": id,
        "name": name,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": purpose,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    });
    if !version.is_empty() {
        value["versionInfo"] = json!(version);
    }
    value
}

fn checksum(hex: &str) -> Value {
    json!([{"algorithm": "SHA256", "checksumValue": hex.strip_prefix("sha256:").unwrap_or(hex)}])
}

fn purl(locator: String) -> Value {
    json!([{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": locator}])
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

pub(super) fn document(subject: &Subject) -> Value {
    let meta = subject.meta;
    let mut bundle = package("SPDXRef-Bundle", &meta.name, &meta.version, "INSTALL");
    bundle["checksums"] = checksum(&subject.members_sha256());
    bundle["comment"] =
        json!(format!("airbin bundle for {}; the checksum is the SHA-256 of its members' digests (airbin:members-sha256)", meta.arch));
    let mut packages = vec![bundle];
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Bundle")];
    for (m, member) in subject.members.iter().enumerate() {
        let id = format!("SPDXRef-Member-{}", m + 1);
        let mut value = package(&id, &member.name, "", "FILE");
        value["checksums"] = checksum(&member.sha256);
        value["comment"] = json!(format!("member of kind {}, {} bytes", member.kind.as_str(), member.size));
        packages.push(value);
        relationships.push(relationship("SPDXRef-Bundle", "CONTAINS", &id));
        for (i, image) in subject.images.iter().enumerate().filter(|(_, image)| image.member == member.name) {
            let image_id = format!("SPDXRef-Image-{}", i + 1);
            let name = image.tags.first().map_or(image.digest.as_str(), String::as_str);
            let mut value = package(&image_id, name, "", "CONTAINER");
            value["checksums"] = checksum(&image.digest);
            value["externalRefs"] = purl(image_purl(image));
            if !image.found.not_read.is_empty() {
                value["comment"] = json!(format!("packages not read: {}", image.found.not_read.join("; ")));
            }
            packages.push(value);
            relationships.push(relationship(&id, "CONTAINS", &image_id));
            for (k, layer) in image.layers.iter().enumerate() {
                let layer_id = format!("{image_id}-Layer-{}", k + 1);
                let mut value = package(&layer_id, &format!("{name} layer {}", k + 1), "", "ARCHIVE");
                value["checksums"] = checksum(layer);
                packages.push(value);
                relationships.push(relationship(&image_id, "CONTAINS", &layer_id));
            }
            for (k, found) in image.found.packages.iter().enumerate() {
                let package_id = format!("{image_id}-Package-{}", k + 1);
                let mut value = package(&package_id, &found.name, &found.version, "LIBRARY");
                value["externalRefs"] = purl(package_purl(found, image.found.os.as_ref()));
                value["sourceInfo"] =
                    json!(format!("from layer {} ({})", found.layer + 1, image.layers.get(found.layer).map_or("", String::as_str)));
                packages.push(value);
                relationships.push(relationship(&format!("{image_id}-Layer-{}", found.layer + 1), "CONTAINS", &package_id));
            }
        }
    }
    let stem = meta.file_stem();
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": stem,
        "documentNamespace": format!("https://airbin.invalid/spdx/{stem}-{}", subject.uuid()),
        "creationInfo": {
            "created": if subject.facts.built_at.is_empty() { NO_TIME } else { subject.facts.built_at.as_str() },
            "creators": [format!("Tool: airbin-{}", subject.facts.builder_version)],
        },
        "packages": packages,
        "relationships": relationships,
    })
}
