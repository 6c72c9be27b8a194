//! `airbin init`: a starting bundle that builds as it is, for a release engineer to
//! change rather than to write from nothing: `bundle.yaml` with a comment on every
//! field, the schema beside it for the editor, and small inputs of each kind (an image
//! archive, a registry pack holding the same image, an admin tool, a config sample with
//! a secret), all made here so that nothing needs Docker.

use std::fs;
use std::path::PathBuf;

use serde::Serialize;
use sha2::{Digest, Sha256};

use airbin_format::console::{out_line, print_json, Envelope, Ui};
use airbin_format::error::{Error, IoContext, Result};

use crate::cli::InitArgs;

#[derive(Serialize)]
struct Written {
    dir: PathBuf,
    files: Vec<PathBuf>,
}

/// `airbin init [DIR]`: writes the bundle and says how to build it.
pub(crate) fn run(args: &InitArgs, ui: &Ui) -> Result<()> {
    if let Some(why) = airbin_format::rules::unsafe_name(&args.name) {
        return Err(Error::usage(format!("--name '{}': it {why}; {}", args.name, airbin_format::rules::SAFE_NAME)));
    }
    let dir = &args.dir;
    if dir.join("bundle.yaml").exists() {
        return Err(Error::usage(format!(
            "{} holds a bundle.yaml already; init writes a new bundle: give an empty or new directory",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).ctx("creating", dir)?;
    let mut files = Vec::new();
    let mut write = |rel: &str, bytes: &[u8], mode: u32| -> Result<()> {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).ctx("creating", parent)?;
        }
        airbin_format::files::write_atomic(&path, bytes, mode)?;
        files.push(path);
        Ok(())
    };
    let schema = serde_json::to_string_pretty(&crate::assemble::check::schema::spec_schema()).expect("a schema serializes");
    write("bundle.schema.json", format!("{schema}\n").as_bytes(), 0o644)?;
    if args.minimal {
        write("bundle.yaml", minimal_spec(&args.name).as_bytes(), 0o644)?;
        write("hello", b"#!/bin/sh\necho \"hello from the bundle: $*\"\n", 0o755)?;
    } else {
        let image = Image::new(&format!("{}/app:1.0", args.name));
        write("bundle.yaml", full_spec(&args.name).as_bytes(), 0o644)?;
        write("images/app.tar", &image.docker_archive(), 0o644)?;
        for (rel, bytes) in image.registry_tree() {
            write(&format!("registry/{rel}"), &bytes, 0o644)?;
        }
        let tool = format!(
            "#!/bin/sh\n# The product's admin tool: it reads the config the install stages beside it.\necho \"{}ctl $*\"\n",
            args.name
        );
        write(&format!("bin/{}ctl", args.name), tool.as_bytes(), 0o755)?;
        write("config.sample", CONFIG_SAMPLE.as_bytes(), 0o644)?;
    }
    if ui.json {
        print_json(&Envelope::ok("init", Written { dir: dir.clone(), files }));
    } else if !ui.quiet {
        for file in &files {
            out_line(&file.display().to_string());
        }
        out_line(&format!("next: airbin lint {0} && airbin build {0}; docs/SPEC.md describes every field", dir.display()));
    }
    Ok(())
}

const CONFIG_SAMPLE: &str = "\
# The site's values: a field engineer copies this file (sh BUNDLE.bin extract config.sample),
# fills it in, and gives it to the install (--config FILE, or as `config` beside the bundle).
registry_root: /var/lib/docker-registry
registry_address: 127.0.0.1:5000
tools_dir: /usr/local/bin
# A secret: masked in every log, plan, status and support tarball.
admin_password: ''
";

fn full_spec(name: &str) -> String {
    format!(
        "\
# yaml-language-server: $schema=bundle.schema.json
# A bundle spec: docs/SPEC.md describes every field; `airbin lint .` checks it.
name: {name}
version: '1.0'
arch: amd64                      # amd64 or arm64; airbin build --arch overrides it
description: {name} 1.0, offline installer

members:
  # A `docker save` archive (docker-archive or OCI layout); its images load into the
  # site's container engine. Or let airbin fetch and write it from an image list:
  #   {{name: app-images, kind: image, images: [{name}/app:1.0], from: registry.example:5000}}
  # (pinned in bundle.lock on the first build; see docs/SPEC.md, Members from image lists).
  - {{name: app-images, kind: image, path: images/app.tar}}
  # A registry's storage tree (the directory holding docker/registry/v2), restored into
  # the site's registry. Or from a list: images_file: images.txt, from: HOST[:PORT].
  - {{name: registry, kind: registry-pack, path: registry}}
  # The product's admin tool: staged for the command steps, and extracted below.
  - {{name: {name}ctl, kind: tool, path: bin/{name}ctl}}
  # What the site's config looks like; named config.sample so that
  # `sh BUNDLE.bin extract config.sample` hands it to the field engineer.
  - {{name: config.sample, kind: config-sample, path: config.sample}}

# Keys that must be set before step 1; the steps may use the sample's other keys too.
config:
  required: [registry_root, tools_dir]

# Typed values, asked for or given with --set; each held by a config key.
parameters:
  - {{name: admin_password, type: string, secret: true, required: true, description: 'the admin password of {name}'}}

steps:
  - {{name: load images, kind: load-images, member: app-images}}
  - {{name: restore registry, kind: restore-registry, member: registry, root_from_config: registry_root}}
  - {{name: install {name}ctl, kind: extract, member: {name}ctl, to: '${{config.tools_dir}}', mode: '0755'}}
  # A command runs in the staging directory, with the config as ./config; `when` says
  # whether it runs on a first install, an upgrade, both (the default) or an uninstall.
  - name: set up {name}
    kind: command
    run: [{name}ctl, install, --config, config]
    env: {{ADMIN_PASSWORD: '${{config.admin_password}}'}}
    timeout: 10m
    retries: 1
  - {{name: migrate, kind: command, run: [{name}ctl, migrate], when: upgrade}}
  - {{name: tear down, kind: command, run: [{name}ctl, uninstall], when: uninstall}}
"
    )
}

fn minimal_spec(name: &str) -> String {
    format!(
        "\
# yaml-language-server: $schema=bundle.schema.json
# The smallest bundle: one tool and one step. docs/SPEC.md describes every field.
name: {name}
version: '1.0'
members:
  - {{name: hello, kind: tool, path: hello}}
steps:
  - {{name: say hello, kind: command, run: [hello, world]}}
"
    )
}

/// A tiny image of one layer, as a docker-archive and as a registry's storage tree.
struct Image {
    reference: String,
    layer: Vec<u8>,
    config: Vec<u8>,
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Image {
    fn new(reference: &str) -> Image {
        let layer = tar_of(&[("etc/example-release", b"example 1.0\n")]);
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha(&layer))]},
        });
        Image { reference: reference.to_string(), layer, config: serde_json::to_vec(&config).expect("json") }
    }

    /// What `docker save` writes (the classic layout).
    fn docker_archive(&self) -> Vec<u8> {
        let (config, layer) = (sha(&self.config), sha(&self.layer));
        let manifest = serde_json::json!([{"Config": format!("{config}.json"), "RepoTags": [self.reference], "Layers": [format!("{layer}/layer.tar")]}]);
        let manifest = manifest.to_string();
        tar_of(&[
            (&format!("{config}.json"), &self.config),
            (&format!("{layer}/layer.tar"), &self.layer),
            ("manifest.json", manifest.as_bytes()),
        ])
    }

    /// A registry's storage tree serving the image under its tag: blobs, links.
    fn registry_tree(&self) -> Vec<(String, Vec<u8>)> {
        let (repo, tag) = self.reference.rsplit_once(':').expect("name:tag");
        let descriptor = |media: &str, bytes: &[u8]| serde_json::json!({"mediaType": media, "size": bytes.len(), "digest": format!("sha256:{}", sha(bytes))});
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": descriptor("application/vnd.docker.container.image.v1+json", &self.config),
            "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar", &self.layer)],
        }))
        .expect("json");
        let v2 = "docker/registry/v2";
        let mut tree = Vec::new();
        for blob in [&self.layer, &self.config, &manifest] {
            let hex = sha(blob);
            tree.push((format!("{v2}/blobs/sha256/{}/{hex}/data", &hex[..2]), blob.clone()));
        }
        let link = |hex: String| format!("sha256:{hex}").into_bytes();
        let repo_dir = format!("{v2}/repositories/{repo}");
        for blob in [&self.layer, &self.config] {
            tree.push((format!("{repo_dir}/_layers/sha256/{}/link", sha(blob)), link(sha(blob))));
        }
        let m = sha(&manifest);
        tree.push((format!("{repo_dir}/_manifests/revisions/sha256/{m}/link"), link(m.clone())));
        tree.push((format!("{repo_dir}/_manifests/tags/{tag}/current/link"), link(m.clone())));
        tree.push((format!("{repo_dir}/_manifests/tags/{tag}/index/sha256/{m}/link"), link(m)));
        tree
    }
}

/// A tar stream of regular files, each 0644, stamped at the epoch (reproducible).
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        tar.append_data(&mut header, name, *data).expect("a tar in memory");
    }
    tar.into_inner().expect("a tar in memory")
}
