//! Deltas from what the site has: `sh x.bin inventory` (and `airbin inventory`) take
//! stock of a site's installed products, registry blobs and engine images; `airbin
//! build --base-inventory` leaves out every blob the site's registry holds; the install
//! checks in preflight that they are there and names what is not. With a real Docker
//! Engine and Debian's docker-registry.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::registry::Registry;
use support::*;

fn ok(out: Output, what: &str) -> Output {
    assert!(out.status.success(), "{what}: {}", stderr(&out));
    out
}

/// The product: a registry pack restored into the root its parameter names.
fn spec(dir: &Path, pack: &Path) -> PathBuf {
    let spec = dir.join("spec");
    fs::create_dir_all(&spec).unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        format!(
            "name: site-product\nversion: '2.0'\nmembers:\n  - {{name: pack, kind: registry-pack, path: {}}}\n\
             parameters:\n  - {{name: registry_root, type: path, required: true}}\n\
             steps:\n  - {{name: restore, kind: restore-registry, member: pack, root_from_config: registry_root}}\n",
            pack.display()
        ),
    )
    .unwrap();
    spec
}

fn blob_count(root: &Path) -> usize {
    fs::read_dir(root.join("docker/registry/v2/blobs/sha256"))
        .map_or(0, |d| d.flatten().flat_map(|p| fs::read_dir(p.path()).unwrap().flatten()).count())
}

/// The manifests a registry root serves (one revision link each, per repository).
fn manifest_count(root: &Path) -> usize {
    let out = Command::new("sh")
        .arg("-c")
        .arg("find docker/registry/v2/repositories -path '*/_manifests/revisions/sha256/*/link' | sed 's|.*/sha256/||' | sort -u | wc -l")
        .current_dir(root)
        .output()
        .unwrap();
    stdout(&out).trim().parse().unwrap()
}

#[test]
fn a_delta_built_from_a_site_inventory_leaves_out_what_the_site_holds() {
    let test = "a_delta_built_from_a_site_inventory_leaves_out_what_the_site_holds";
    if !docker_ready(test) || !require("docker-registry", test) || !require("skopeo", test) {
        return;
    }
    let dir = scratch();
    let d = dir.path();
    let compass = repo_root().join("samples/compass");
    // The site: the compass pack in its registry's root, the compass images in its engine.
    let site_root = d.join("site-registry");
    fs::create_dir_all(&site_root).unwrap();
    ok(Command::new("tar").arg("-xf").arg(compass.join("registry/registry-pack.tar")).arg("-C").arg(&site_root).output().unwrap(), "tar");
    ok(Command::new("docker").args(["load", "-q", "-i"]).arg(compass.join("images/release-images.tar")).output().unwrap(), "docker load");
    // The release: the site's pack plus one new image, pushed into a copy of it.
    let new_root = d.join("new-registry");
    ok(Command::new("cp").arg("-a").arg(&site_root).arg(&new_root).output().unwrap(), "cp");
    let registry = Registry::start(&new_root);
    let archive = compass.join("images/release-images.tar");
    ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("docker-archive:{}:compass/worker:2.7.3", archive.display()))
            .arg(format!("docker://{}/site/new:1.0", registry.address))
            .output()
            .unwrap(),
        "skopeo copy",
    );
    drop(registry);
    let spec = spec(d, &new_root);
    let full = build(&spec, &d.join("full"));

    // The site takes stock, signed: the runtime's command and the builder's agree.
    let key = ok(airbin().args(["keygen", "--no-password", "-o"]).arg(d.join("site")).output().unwrap(), "keygen");
    drop(key);
    let state = d.join("state");
    let inventory = d.join("site.json");
    let taken = Shell::Dash
        .command(&full)
        .args(["inventory", "--registry-root", site_root.to_str().unwrap(), "-o", inventory.to_str().unwrap(), "--sign"])
        .arg(d.join("site.key"))
        .env("TMPDIR", d)
        .env("AIRBIN_STATE_DIR", &state)
        .output()
        .unwrap();
    ok(taken, "inventory");
    let doc: Value = serde_json::from_slice(&fs::read(&inventory).unwrap()).unwrap();
    assert_eq!(doc["registries"][0]["blobs"].as_array().unwrap().len(), blob_count(&site_root));
    let api = doc["images"].as_array().unwrap().iter().find(|i| i["tags"].as_array().unwrap().iter().any(|t| t == "compass/api:2.7.3"));
    assert!(api.is_some_and(|i| i["layers"][0].as_str().unwrap().starts_with("sha256:")), "{doc}");
    let builder = ok(
        airbin().args(["inventory", "--json", "--registry-root"]).arg(&site_root).arg("--state-dir").arg(&state).output().unwrap(),
        "airbin inventory",
    );
    let builder: Value = serde_json::from_slice(&builder.stdout).unwrap();
    assert_eq!(builder["inventory"]["registries"], doc["registries"]);

    // The delta for that site: every blob it holds left out, named after it.
    let built = ok(
        airbin()
            .arg("build")
            .arg(&spec)
            .arg("-o")
            .arg(d.join("delta"))
            .arg("--base-inventory")
            .arg(&inventory)
            .arg("--base-key")
            .arg(d.join("site.pub"))
            .output()
            .unwrap(),
        "build --base-inventory",
    );
    let delta = PathBuf::from(stdout(&built).trim());
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    assert!(delta.to_string_lossy().ends_with(&format!("site-product-2.0-amd64.delta-for-{host}.bin")), "{}", delta.display());
    let index = airbin_format::Bundle::open(&delta).unwrap().index;
    let record = index.members[0].registry.as_ref().unwrap();
    // Every layer and config the site holds; manifests stay (small, and the pack's
    // check reads them).
    let site_blobs: Vec<String> =
        doc["registries"][0]["blobs"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_string()).collect();
    assert!(record.omitted.iter().all(|o| site_blobs.contains(o)), "only blobs the site holds");
    assert_eq!(record.omitted.len(), blob_count(&site_root) - manifest_count(&site_root), "every layer and config the site holds");
    assert_eq!(index.build.delta_for.as_ref().unwrap().host, host);
    assert!(fs::metadata(&delta).unwrap().len() < fs::metadata(&full).unwrap().len());

    // On a host whose registry lacks them: preflight names the missing blobs, nothing lands.
    let empty = d.join("empty-registry");
    let run = |bin: &Path, root: &Path| {
        Shell::Bash
            .command(bin)
            .args(["install", "--yes", "--set", &format!("registry_root={}", root.display())])
            .env("TMPDIR", d)
            .env("AIRBIN_STATE_DIR", &state)
            .output()
            .unwrap()
    };
    let refused = run(&delta, &empty);
    assert_eq!(refused.status.code(), Some(7), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(&format!("a delta for {host}'s inventory")) && stderr(&refused).contains("lacks"),
        "{}",
        stderr(&refused)
    );
    assert!(!empty.join("docker").exists(), "nothing placed");
    // On the site: it installs, and its registry serves the old tags and the new one.
    ok(run(&delta, &site_root), "install the delta");
    let serving = Registry::start(&site_root);
    assert_eq!(serving.manifest_status("site/new", "1.0"), 200);
    assert_eq!(serving.manifest_status("compass/agent", "2.7.3"), 200);
    // Taken again, the inventory lists the product installed.
    let again = ok(
        Shell::Dash
            .command(&delta)
            .args(["inventory", "--registry-root", site_root.to_str().unwrap()])
            .env("TMPDIR", d)
            .env("AIRBIN_STATE_DIR", &state)
            .output()
            .unwrap(),
        "inventory again",
    );
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["installed"][0]["name"], "site-product");
    assert_eq!(again["installed"][0]["version"], "2.0");

    // Edited after it was signed (one blob taken out): the signature no longer holds.
    let text = fs::read_to_string(&inventory).unwrap();
    let first = site_blobs[0].as_str();
    fs::write(&inventory, text.replacen(&format!("\"{first}\","), "", 1)).unwrap();
    let build_for = |inventory: &Path, key: bool| {
        let mut command = airbin();
        command.arg("build").arg(&spec).arg("-o").arg(d.join("x")).arg("--base-inventory").arg(inventory);
        if key {
            command.arg("--base-key").arg(d.join("site.pub"));
        }
        command.output().unwrap()
    };
    let edited = build_for(&inventory, true);
    assert_eq!(edited.status.code(), Some(3), "{}", stderr(&edited));
    fs::remove_file(format!("{}.minisig", inventory.display())).unwrap();
    let unsigned = build_for(&inventory, true);
    assert_eq!(unsigned.status.code(), Some(3), "{}", stderr(&unsigned));
    assert!(stderr(&unsigned).contains("--sign KEY"), "{}", stderr(&unsigned));
    // Something that is no inventory: a usage error naming the file.
    fs::write(d.join("bad.json"), "{\"format\": 1, \"nonsense\": true}").unwrap();
    let bad = build_for(&d.join("bad.json"), false);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("bad.json") && stderr(&bad).contains("not a site inventory"), "{}", stderr(&bad));
    let _ = Command::new("docker").args(["rmi", "-f", "compass/api:2.7.3", "compass/worker:2.7.3"]).output();
}
