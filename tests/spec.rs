//! Writing a bundle spec: `airbin init` gives one that builds, `airbin lint` (and
//! `build`) say every mistake on one line with the file, the line, the field and the fix,
//! `airbin schema` validates every sample and refuses what a schema can catch, and deltas
//! are told apart by their name, their index and the repository.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::*;

fn init(dir: &Path, args: &[&str]) -> PathBuf {
    let out = airbin().arg("init").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    dir.to_path_buf()
}

fn lint(spec: &Path) -> Output {
    airbin().arg("lint").arg(spec).output().unwrap()
}

/// A copy of the `init` bundle with `find` replaced by `replace` in its spec.
fn mistaken(dir: &Path, base: &Path, find: &str, replace: &str) -> PathBuf {
    let copy = dir.join(format!("case-{}", fs::read_dir(dir).unwrap().count()));
    let cp = std::process::Command::new("cp").arg("-r").arg(base).arg(&copy).status().unwrap();
    assert!(cp.success());
    let spec = copy.join("bundle.yaml");
    let text = fs::read_to_string(&spec).unwrap();
    assert!(text.contains(find), "the init spec has no {find:?}");
    fs::write(&spec, text.replacen(find, replace, 1)).unwrap();
    copy
}

#[test]
fn init_writes_a_bundle_that_lints_clean_and_builds_as_it_is() {
    let dir = scratch();
    for (name, args) in [("full", vec![]), ("minimal", vec!["--minimal"])] {
        let bundle = init(&dir.path().join(name), &args);
        let text = fs::read_to_string(bundle.join("bundle.yaml")).unwrap();
        assert!(text.starts_with("# yaml-language-server: $schema=bundle.schema.json"), "{text}");
        let linted = lint(&bundle);
        assert!(linted.status.success(), "{name}: {}{}", stdout(&linted), stderr(&linted));
        // The minimal bundle has no config sample, which lint mentions.
        let clean = if name == "full" { "no errors, 0 warning(s)" } else { "no errors, 1 warning(s)" };
        assert!(stdout(&linted).contains(clean), "{name}: {}", stdout(&linted));
        let bin = build(&bundle, &dir.path().join(format!("dist-{name}")));
        let info = airbin().arg("inspect").arg(&bin).output().unwrap();
        assert!(info.status.success(), "{}", stderr(&info));
        if name == "full" {
            for kind in ["image", "registry-pack", "tool", "config-sample"] {
                assert!(stdout(&info).contains(kind), "{kind}: {}", stdout(&info));
            }
            assert!(stdout(&info).contains("image example/app:1.0") && stdout(&info).contains("repository example/app: 1.0"));
        }
    }
    // Into a directory that holds a bundle already: refused, nothing overwritten.
    let again = airbin().arg("init").arg(dir.path().join("full")).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("holds a bundle.yaml already"), "{}", stderr(&again));
}

/// Each class of mistake: (what, find, replace, the field, its line, words of the fix).
const MISTAKES: &[(&str, &str, &str, &str, usize, &str)] = &[
    ("a typo in a config key", "${config.tools_dir}", "${config.tools_dri}", "steps[2].to", 34, "did you mean `tools_dir`?"),
    (
        "a parameter as ${params.x}",
        "${config.admin_password}",
        "${params.admin_password}",
        "steps[3].env.ADMIN_PASSWORD",
        40,
        "write ${config.admin_password}",
    ),
    (
        "a bare ${x}",
        "${config.admin_password}",
        "${admin_password}",
        "steps[3].env.ADMIN_PASSWORD",
        40,
        "only the product's config is expanded",
    ),
    ("an unknown field in a step", "timeout: 10m", "timout: 10m", "steps[3].timout", 41, "did you mean `timeout`?"),
    ("an unknown field deeper", "secret: true", "sekret: true", "parameters[0].sekret", 29, "did you mean `secret`?"),
    ("an unknown top-level field", "\nconfig:\n", "\nconfg:\n", "confg", 24, "did you mean `config`?"),
    ("an unknown step kind", "kind: extract", "kind: unpack", "steps[2].kind", 34, "the kinds are load-images"),
    ("a member kind misspelt", "kind: image, path", "kind: imag, path", "members[0].kind", 13, "did you mean `image`"),
    ("a step naming no member", "member: app-images}", "member: app-image}", "steps[0].member", 32, "did you mean `app-images`?"),
    (
        "a step on a member of the wrong kind",
        "kind: load-images, member: app-images",
        "kind: load-images, member: registry",
        "steps[0].member",
        32,
        "needs an image member",
    ),
    ("a bad duration", "timeout: 10m", "timeout: ten minutes", "steps[3].timeout", 41, "not a duration such as 90s, 10m"),
    ("a missing input", "path: bin/examplectl", "path: bin/nothere", "members[2].path", 18, "relative to the spec's directory"),
    (
        "a registry pack one level too deep",
        "path: registry}",
        "path: registry/docker}",
        "members[1].path",
        16,
        "the directory that holds docker/registry/v2",
    ),
    (
        "a non-image archive",
        "path: images/app.tar",
        "path: config.sample",
        "members[0].path",
        13,
        "what `docker save -o FILE IMAGE...` writes",
    ),
    ("a tab in the indentation", "    timeout: 10m", "\ttimeout: 10m", "", 41, "YAML indents with spaces only"),
];

#[test]
fn every_mistake_is_one_line_with_the_file_line_field_and_fix_in_lint_and_build() {
    let dir = scratch();
    let base = init(&dir.path().join("base"), &[]);
    let cases = dir.path().join("cases");
    fs::create_dir(&cases).unwrap();
    for (what, find, replace, field, line, fix) in MISTAKES {
        let bundle = mistaken(&cases, &base, find, replace);
        let spec = bundle.join("bundle.yaml");
        let at = match field.is_empty() {
            true => format!("{}:{line}: ", spec.display()),
            false => format!("{}:{line}: {field}: ", spec.display()),
        };
        let linted = lint(&bundle);
        assert_eq!(linted.status.code(), Some(2), "{what}: {}", stderr(&linted));
        let said = stderr(&linted);
        let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{what}: one error line: {}", stderr(&linted));
        assert!(errors[0].starts_with(&format!("error: {at}")), "{what}: want «{at}» in {}", errors[0]);
        assert!(errors[0].contains(fix), "{what}: want «{fix}» in {}", errors[0]);
        // build stops with the same line, before it writes anything.
        let built = airbin().arg("build").arg(&bundle).arg("-o").arg(bundle.join("dist")).output().unwrap();
        assert_eq!(built.status.code(), Some(2), "{what}: {}", stderr(&built));
        let last = stderr(&built).lines().last().unwrap_or("").to_string();
        assert!(last.starts_with(&format!("airbin: error: {at}")) && last.contains(fix), "{what}: {last}");
        assert!(!bundle.join("dist").exists(), "{what}: build wrote something");
    }
}

#[test]
fn warnings_name_what_a_site_will_miss_without_failing() {
    let dir = scratch();
    let base = init(&dir.path().join("base"), &[]);
    let host_program = mistaken(dir.path(), &base, "run: [examplectl, migrate]", "run: [acmctl, migrate]");
    let out = lint(&host_program);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("bundle.yaml:43: steps[4].run[0]: `acmctl` is neither a member of this bundle nor an absolute path"),
        "{}",
        stdout(&out)
    );
    let no_sample = mistaken(dir.path(), &base, "  - {name: config.sample, kind: config-sample, path: config.sample}\n", "");
    let out = lint(&no_sample);
    assert!(
        stdout(&out).contains("members: the bundle carries no config sample; add a member of kind config-sample named config.sample"),
        "{}",
        stdout(&out)
    );
    // An image without a tag: it loads by ID only.
    let untagged = mistaken(dir.path(), &base, "path: images/app.tar", "path: images/untagged.tar");
    image_archive(&untagged.join("images/untagged.tar"), "", &[b"layer"]);
    let out = lint(&untagged);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("members[0].path: the image sha256:") && stdout(&out).contains("has no tag"), "{}", stdout(&out));
    // build goes on, and says them too.
    let built = airbin().arg("build").arg(&untagged).arg("-o").arg(untagged.join("dist")).output().unwrap();
    assert!(built.status.success(), "{}", stderr(&built));
    assert!(stderr(&built).contains("warning: ") && stderr(&built).contains("has no tag"), "{}", stderr(&built));
}

/// The spec as JSON, the way an editor's YAML language server sees it.
fn as_json(spec: &Path) -> serde_json::Value {
    serde_yaml::from_str(&fs::read_to_string(spec).unwrap()).unwrap()
}

#[test]
fn the_schema_validates_every_sample_and_refuses_what_a_schema_can_catch() {
    let dir = scratch();
    let out = airbin().arg("schema").arg("-o").arg(dir.path().join("schema.json")).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let schema: serde_json::Value = serde_json::from_slice(&fs::read(dir.path().join("schema.json")).unwrap()).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let validator = jsonschema::validator_for(&schema).unwrap();
    let base = init(&dir.path().join("base"), &[]);
    let minimal = init(&dir.path().join("minimal"), &["--minimal"]);
    for spec in [
        repo_root().join("samples/compass/bundle.yaml"),
        repo_root().join("samples/minimal/bundle.yaml"),
        base.join("bundle.yaml"),
        minimal.join("bundle.yaml"),
    ] {
        let errors: Vec<String> = validator.iter_errors(&as_json(&spec)).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", spec.display());
    }
    let refused = [
        ("timeout: 10m", "timout: 10m"),
        ("secret: true", "sekret: true"),
        ("kind: extract", "kind: unpack"),
        ("kind: image, path", "kind: imag, path"),
        ("timeout: 10m", "timeout: ten minutes"),
        ("retries: 1", "retries: two"),
        ("\nconfig:\n", "\nconfg:\n"),
        ("path: images/app.tar}", "pth: images/app.tar}"),
        // Neither a path nor an image list.
        (", path: images/app.tar}", "}"),
        ("path: images/app.tar}", "images: [app:1], from: 127.0.0.1:5000, platforms: some}"),
    ];
    let cases = dir.path().join("cases");
    fs::create_dir(&cases).unwrap();
    for (find, replace) in refused {
        let bundle = mistaken(&cases, &base, find, replace);
        assert!(!validator.is_valid(&as_json(&bundle.join("bundle.yaml"))), "the schema takes {replace:?}");
    }
    // The reference describes every field the schema has.
    let reference = fs::read_to_string(repo_root().join("docs/SPEC.md")).unwrap();
    let mut fields = Vec::new();
    collect_fields(&schema, &schema, &mut fields);
    for field in fields {
        assert!(reference.contains(&format!("`{field}`")), "docs/SPEC.md does not describe `{field}`");
    }
}

fn collect_fields(root: &serde_json::Value, node: &serde_json::Value, out: &mut Vec<String>) {
    let node = match node.get("$ref").and_then(|r| r.as_str()).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => &root["$defs"][name],
        None => node,
    };
    if let Some(properties) = node.get("properties").and_then(|p| p.as_object()) {
        for (name, schema) in properties {
            if !out.contains(name) {
                out.push(name.clone());
                collect_fields(root, schema, out);
            }
        }
    }
    for key in ["items", "anyOf", "oneOf", "additionalProperties"] {
        match node.get(key) {
            Some(serde_json::Value::Array(list)) => list.iter().for_each(|n| collect_fields(root, n, out)),
            Some(one @ serde_json::Value::Object(_)) => collect_fields(root, one, out),
            _ => {}
        }
    }
}

/// A bundle of one registry pack (a directory) and a restore step into the config's root.
fn pack_spec(dir: &Path, version: &str, pack: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("bundle.yaml"),
        format!(
            "name: packs\nversion: '{version}'\nmembers:\n  - {{name: registry, kind: registry-pack, path: {}}}\nsteps:\n  - {{kind: restore-registry, member: registry, root_from_config: registry_root}}\nconfig:\n  required: [registry_root]\n",
            pack.display()
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

#[test]
fn a_delta_is_named_recorded_and_kept_beside_its_full_bundle_and_a_fresh_site_takes_the_full_one() {
    let dir = scratch();
    let packs = init(&dir.path().join("packs"), &[]).join("registry");
    let one = build(&pack_spec(&dir.path().join("v1"), "1.0", &packs), &dir.path().join("dist"));
    let full = build(&pack_spec(&dir.path().join("v2"), "2.0", &packs), &dir.path().join("dist"));
    let sha = fs::read_to_string(format!("{}.sha256", one.display())).unwrap().split_whitespace().next().unwrap().to_string();
    let delta_out = airbin()
        .arg("build")
        .arg(dir.path().join("v2"))
        .arg("-o")
        .arg(dir.path().join("dist"))
        .args(["--base"])
        .arg(&one)
        .args(["--base-sha256", &sha])
        .output()
        .unwrap();
    assert!(delta_out.status.success(), "{}", stderr(&delta_out));
    let delta = PathBuf::from(stdout(&delta_out).trim());
    assert_eq!(delta.file_name().unwrap(), "packs-2.0-amd64.delta-from-1.0.bin");
    assert_eq!(full.file_name().unwrap(), "packs-2.0-amd64.bin", "the full build keeps its name");
    let info = airbin().arg("inspect").arg(&delta).output().unwrap();
    assert!(stdout(&info).contains("delta of:    1.0 (SHA-256 "), "{}", stdout(&info));
    let doc: serde_json::Value =
        serde_json::from_slice(&airbin().args(["inspect", "--json"]).arg(&delta).output().unwrap().stdout).unwrap();
    assert_eq!(doc["build"]["delta_of"], serde_json::json!({"version": "1.0", "sha256": sha}));
    assert_eq!(doc["format_version"], airbin_format::FORMAT_VERSION);

    // One repository holds the full bundle and the delta of 2.0 side by side.
    let repo = dir.path().join("repo");
    let added = airbin().args(["repo", "add"]).arg(&repo).arg(&one).arg(&full).arg(&delta).output().unwrap();
    assert!(added.status.success(), "{}", stderr(&added));
    let index: serde_json::Value = serde_json::from_slice(&fs::read(repo.join("index.json")).unwrap()).unwrap();
    let versions = index["bundles"][0]["versions"].as_array().unwrap();
    let two: Vec<&serde_json::Value> = versions.iter().filter(|v| v["version"] == "2.0").collect();
    assert_eq!(two.len(), 2, "{versions:?}");
    assert!(two[0].get("delta_of").is_none(), "the full bundle first: {:?}", two[0]);
    assert_eq!(two[1]["delta_of"]["version"], "1.0");
    assert!(airbin().args(["repo", "verify"]).arg(&repo).status().unwrap().success());

    // A fresh site (an empty registry root) takes the entry without delta_of, and it
    // installs; the delta refuses, saying what it needs.
    let site = dir.path().join("site");
    fs::create_dir_all(site.join("root")).unwrap();
    fs::write(site.join("config"), format!("registry_root: {}\n", site.join("root").display())).unwrap();
    let install = |bin: &Path, state: &str| {
        std::process::Command::new("sh")
            .arg(bin)
            .args(["--yes", "--config"])
            .arg(site.join("config"))
            .env("AIRBIN_STATE_DIR", site.join(state))
            .env("TMPDIR", &site)
            .output()
            .unwrap()
    };
    let fresh_full = repo.join(two[0]["path"].as_str().unwrap());
    let out = install(&fresh_full, "state-full");
    assert!(out.status.success(), "{}", stderr(&out));
    fs::remove_dir_all(site.join("root")).unwrap();
    fs::create_dir_all(site.join("root")).unwrap();
    let out = install(&repo.join(two[1]["path"].as_str().unwrap()), "state-delta");
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("delta"), "{}", stderr(&out));
}

#[test]
fn a_delta_of_a_tarball_pack_and_a_key_into_no_directory_are_usage_errors() {
    let dir = scratch();
    let packs = init(&dir.path().join("packs"), &[]).join("registry");
    let one = build(&pack_spec(&dir.path().join("v1"), "1.0", &packs), &dir.path().join("dist"));
    let tarball = dir.path().join("pack.tar");
    let tar = std::process::Command::new("tar").arg("-C").arg(&packs).arg("-cf").arg(&tarball).arg("docker").status().unwrap();
    assert!(tar.success());
    let spec = pack_spec(&dir.path().join("v2"), "2.0", &tarball);
    let sha = fs::read_to_string(format!("{}.sha256", one.display())).unwrap().split_whitespace().next().unwrap().to_string();
    let out = airbin()
        .args(["-q", "build"])
        .arg(&spec)
        .arg("-o")
        .arg(dir.path().join("dist2"))
        .arg("--base")
        .arg(&one)
        .args(["--base-sha256", &sha])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bundle.yaml:4: members[0].path: registry is a registry pack given as a tarball"), "{}", stderr(&out));
    assert!(stderr(&out).contains("give the pack as a directory (hack/make-registry-pack.sh --dir)"), "{}", stderr(&out));
    assert!(!dir.path().join("dist2").exists());

    let out = airbin().arg("keygen").arg("--no-password").arg("-o").arg(dir.path().join("nodir/key")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist; create it"), "{}", stderr(&out));
}
