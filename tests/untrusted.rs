//! A bundle is untrusted input. Each test forges a bundle the way someone who can
//! rewrite the file would (every digest, offset, the launcher's checksum and the
//! trailer computed again, `support::forge`) or hands the builder a hostile input, and
//! checks the refusal: exit 3 (2 for the builder), one line naming what and where, and
//! nothing written.

mod support;

use airbin_format::{CommandAction, ExtractAction, RestoreRegistryAction};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use airbin_format::{Action, Index, Step};
use support::*;
use tar::EntryType;

fn position(index: &Index, name: &str) -> usize {
    index.members.iter().position(|m| m.name == name).unwrap()
}

fn extract(bin: &Path, target: &Path, tmp: &Path) -> Output {
    run(Shell::Dash, bin, &["extract", "--target", target.to_str().unwrap()], tmp)
}

#[test]
fn names_from_the_index_are_held_to_the_builders_rules() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let long = "x".repeat(256);
    for (n, bad) in ["", ".", "..", "../../escaped", "a/b", "a\0b", "a\nb", "-rf", long.as_str()].into_iter().enumerate() {
        let bin = forge(
            minimal(),
            &dir.path().join(format!("member-{n}.bin")),
            |index, _| {
                let at = position(index, "hello");
                index.members[at].name = bad.to_string();
            },
            |_| {},
        );
        let target = dir.path().join(format!("t{n}"));
        assert_refused(&format!("member name {bad:?}"), &extract(&bin, &target, &tmp), "members[0].name", &target);
        // Nothing that reads the index uses it either.
        let info = run(Shell::Bash, &bin, &["info"], &tmp);
        assert_eq!(info.status.code(), Some(3), "info of member name {bad:?}");
    }
    assert!(!dir.path().join("escaped").exists());

    // The bundle's name and version make the default extract target and the state directory.
    for (field, bad) in [("name", "../../etc"), ("name", "a/b"), ("version", ".."), ("version", "1\u{1b}[2J")] {
        let bin = forge(
            minimal(),
            &dir.path().join("meta.bin"),
            |index, _| match field {
                "name" => index.bundle.name = bad.into(),
                _ => index.bundle.version = bad.into(),
            },
            |_| {},
        );
        let work = dir.path().join(format!("work-{field}"));
        fs::create_dir_all(&work).unwrap();
        let out = Command::new("bash").arg(&bin).arg("extract").current_dir(&work).env("TMPDIR", &tmp).output().unwrap();
        assert_refused(&format!("bundle {field} {bad:?}"), &out, &format!("bundle.{field}"), &work.join("x"));
        assert!(entries(&work).is_empty(), "bundle {field} {bad:?}: {:?}", entries(&work));
        let out = run(Shell::Busybox, &bin, &["install", "--use-sample", "--yes"], &tmp);
        assert_eq!(out.status.code(), Some(3), "install with bundle {field} {bad:?}: {}", stderr(&out));
        assert!(!tmp.join("airbin-state").exists(), "no state directory for a refused bundle");
    }
}

#[test]
fn step_names_and_values_are_held_to_the_builders_rules() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let command = |name: &str| Step {
        name: name.into(),
        action: Action::Command(CommandAction { run: vec!["hello".into()] }),
        timeout: None,
        retries: 0,
        retry_delay: None,
        env: Default::default(),
        on_failure: vec![],
        roles: vec![],
        when: Default::default(),
    };
    let cases: Vec<(&str, Step, &str)> = vec![
        ("a step name with a slash", command("../x"), "steps[0].name"),
        ("a step name with a control character", command("a\u{1b}[2Jb"), "steps[0].name"),
        ("an empty command", Step { action: Action::Command(CommandAction { run: vec![] }), ..command("empty") }, "steps[0].run"),
        ("a relative extract target", Step { action: extract_to("rel/dir", None), ..command("x") }, "steps[0].to"),
        ("the root as extract target", Step { action: extract_to("/", None), ..command("x") }, "steps[0].to"),
        ("a setuid mode on an unmarked member", Step { action: extract_to("/opt/x", Some("4755")), ..command("x") }, "steps[0].mode"),
        ("an owner that is an option", Step { action: extract_owned("--reference=/etc/shadow"), ..command("x") }, "steps[0].owner"),
        ("a timeout beyond bounds", Step { timeout: Some(airbin_format::Seconds(u64::MAX)), ..command("x") }, "steps[0].timeout"),
    ];
    for (what, step, field) in cases {
        let bin = forge(minimal(), &dir.path().join("step.bin"), |index, _| index.steps = vec![step.clone()], |_| {});
        let out = run(Shell::Bash, &bin, &["plan", "--use-sample"], &tmp);
        assert_refused(what, &out, field, &tmp.join("airbin-state"));
    }
}

/// The lifecycle's fields (parameters, hotfix_of, push-images) from a forged index are
/// held to the builder's rules before anything runs.
#[test]
fn parameters_hotfix_and_push_fields_of_a_forged_index_are_checked() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let param = |json: serde_json::Value| -> airbin_format::Parameter { serde_json::from_value(json).unwrap() };
    let push = |registry: &str| -> Step {
        serde_json::from_value(serde_json::json!({"name": "push", "kind": "push-images", "member": "hello", "registry": registry})).unwrap()
    };
    type Forge = Box<dyn Fn(&mut Index)>;
    let cases: Vec<(&str, Forge, &str)> = vec![
        (
            "a parameter name with a slash",
            Box::new(move |i| i.parameters = vec![param(serde_json::json!({"name": "../x", "type": "string"}))]),
            "parameters[0].name",
        ),
        (
            "a pattern that is no regex",
            Box::new(move |i| i.parameters = vec![param(serde_json::json!({"name": "a", "type": "string", "pattern": "("}))]),
            "parameters[0].pattern",
        ),
        (
            "a default of the wrong type",
            Box::new(move |i| i.parameters = vec![param(serde_json::json!({"name": "a", "type": "int", "default": "x"}))]),
            "parameters[0].default",
        ),
        (
            "a config key with a space",
            Box::new(move |i| i.parameters = vec![param(serde_json::json!({"name": "a", "type": "string", "key": "a b"}))]),
            "parameters[0].key",
        ),
        (
            "a secret on a command line",
            Box::new(move |i| {
                i.parameters = vec![param(serde_json::json!({"name": "pw", "type": "string", "secret": true}))];
                i.steps = vec![Step {
                    action: Action::Command(CommandAction { run: vec!["echo".into(), "${config.pw}".into()] }),
                    ..push("x:1")
                }];
            }),
            "puts the secret `pw` on a command line",
        ),
        ("a hotfix_of that is a path", Box::new(|i| i.bundle.hotfix_of = Some("../1.0".into())), "bundle.hotfix_of"),
        (
            "a push of a member that is no image",
            Box::new(move |i| i.steps = vec![push("a:1")]),
            "'hello' is a tool member; this step needs an image member",
        ),
    ];
    for (what, change, field) in cases {
        let bin = forge(minimal(), &dir.path().join("forged.bin"), |index, _| change(index), |_| {});
        let out = run(Shell::Bash, &bin, &["plan", "--use-sample"], &tmp);
        assert_refused(what, &out, field, &tmp.join("airbin-state"));
    }
}

fn extract_to(to: &str, mode: Option<&str>) -> Action {
    Action::Extract(ExtractAction { member: "hello".into(), to: to.into(), mode: mode.map(str::to_string), owner: None })
}

fn extract_owned(owner: &str) -> Action {
    Action::Extract(ExtractAction { member: "hello".into(), to: "/opt/x".into(), mode: None, owner: Some(owner.into()) })
}

/// Forges `minimal` with its `conf.d` tree member's tar replaced.
fn with_tree(dir: &Path, name: &str, tar: Vec<u8>) -> PathBuf {
    forge(
        minimal(),
        &dir.join(name),
        |index, contents| {
            let at = position(index, "conf.d");
            contents[at] = tar;
        },
        |_| {},
    )
}

#[test]
fn link_tricks_that_take_two_entries_are_refused() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "keep").unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a hard link to a symlink",
            raw_tar(&[
                ("file", EntryType::Regular, None, b"x", 0o644),
                ("s", EntryType::Symlink, Some("file"), b"", 0o777),
                ("h", EntryType::Link, Some("s"), b"", 0o644),
            ]),
            "'h' is a hard link to a symlink",
        ),
        (
            "a symlink to . used as a path component",
            raw_tar(&[("d", EntryType::Symlink, Some("."), b"", 0o777), ("d/d/d/x", EntryType::Symlink, Some("../../.."), b"", 0o777)]),
            "is a symlink that leads outside the member",
        ),
        (
            "a dangling symlink whose text leads outside",
            raw_tar(&[("l", EntryType::Symlink, Some("."), b"", 0o777), ("y", EntryType::Symlink, Some("l/../nowhere/x"), b"", 0o777)]),
            "'y' is a symlink that leads outside the member",
        ),
        (
            "a hard link through a symlink that leads outside",
            raw_tar(&[("d", EntryType::Symlink, Some("."), b"", 0o777), ("h", EntryType::Link, Some("d/../outside/secret"), b"", 0o644)]),
            "hard link to outside",
        ),
    ];
    for (n, (what, tar, want)) in cases.into_iter().enumerate() {
        let bin = with_tree(dir.path(), &format!("links-{n}.bin"), tar);
        let target = dir.path().join(format!("t{n}"));
        assert_refused(what, &extract(&bin, &target, &tmp), want, &target);
    }
    assert_eq!(fs::read_to_string(outside.join("secret")).unwrap(), "keep");
    assert_eq!(entries(&outside), ["secret"]);
}

#[test]
fn setuid_setgid_and_sticky_bits_are_dropped_unless_the_spec_marks_the_member() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let tar = raw_tar(&[("bin", EntryType::Directory, None, b"", 0o1777), ("bin/tool", EntryType::Regular, None, b"#!/bin/sh\n", 0o6755)]);
    let bin = with_tree(dir.path(), "bits.bin", tar);
    let target = dir.path().join("t");
    let out = extract(&bin, &target, &tmp);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&target.join("conf.d/bin/tool")), 0o755);
    assert_eq!(mode(&target.join("conf.d/bin")), 0o777);

    // A file member whose index mode carries setuid without the mark is refused.
    let forged = forge(
        minimal(),
        &dir.path().join("suid.bin"),
        |index, _| {
            let at = position(index, "hello");
            index.members[at].mode = 0o4755;
        },
        |_| {},
    );
    assert_refused("an unmarked setuid file", &extract(&forged, &dir.path().join("t2"), &tmp), "members[0].mode", &dir.path().join("t2"));

    // Marked in the spec, the bits stay; the builder records the mark.
    let spec_dir = dir.path().join("spec");
    fs::create_dir(&spec_dir).unwrap();
    fs::write(spec_dir.join("tool.sh"), "#!/bin/sh\n").unwrap();
    fs::write(
        spec_dir.join("bundle.yaml"),
        "name: suid\nversion: '1'\nmembers:\n  - {name: tool, kind: tool, path: tool.sh, mode: '4755', special_bits: true}\n",
    )
    .unwrap();
    let marked = build(&spec_dir, &spec_dir.join("dist"));
    let out = extract(&marked, &dir.path().join("t3"), &tmp);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&dir.path().join("t3/tool")), 0o4755);
    // Unmarked, the builder refuses the mode.
    fs::write(
        spec_dir.join("bundle.yaml"),
        "name: suid\nversion: '1'\nmembers:\n  - {name: tool, kind: tool, path: tool.sh, mode: '4755'}\n",
    )
    .unwrap();
    let out = airbin().arg("build").arg(&spec_dir).arg("-o").arg(spec_dir.join("dist2")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("members[0].mode") && stderr(&out).contains("special_bits: true"), "{}", stderr(&out));
}

#[test]
fn sizes_that_lie_are_refused() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    type Lie = Box<dyn Fn(&mut Index)>;
    let cases: Vec<(&str, Lie, &str)> = vec![
        (
            "unpacked_bytes far below size",
            Box::new(|index| {
                let at = position(index, "hello");
                index.members[at].unpacked_bytes = 1;
            }),
            "unpacked_bytes",
        ),
        (
            "a tree's unpacked_bytes far below its tar stream",
            Box::new(|index| {
                let at = position(index, "conf.d");
                index.members[at].unpacked_bytes = 4096;
            }),
            "unpacked_bytes",
        ),
        (
            "sizes whose sum overflows",
            Box::new(|index| {
                for m in &mut index.members {
                    m.unpacked_bytes = u64::MAX / 2 + 1;
                }
            }),
            "larger than any member can be",
        ),
    ];
    let big_tree = raw_tar(&[("big", EntryType::Regular, None, &vec![0u8; 1 << 20], 0o644)]);
    for (what, lie, want) in cases {
        let bin = forge(
            minimal(),
            &dir.path().join("lie.bin"),
            |index, contents| {
                let at = position(index, "conf.d");
                contents[at] = big_tree.clone();
            },
            lie,
        );
        let target = dir.path().join("t");
        assert_refused(what, &extract(&bin, &target, &tmp), want, &target);
    }

    // Decompressed bytes beyond what the index says: stops at once, leaves nothing.
    let bin = forge(
        minimal(),
        &dir.path().join("long.bin"),
        |index, contents| {
            let at = position(index, "hello");
            contents[at] = vec![b'x'; 8 << 20];
        },
        |index| {
            let at = position(index, "hello");
            let member = &mut index.members[at];
            member.size = 4096;
            member.codec = airbin_format::Codec::Zstd;
        },
    );
    let target = dir.path().join("t-long");
    let out = extract(&bin, &target, &tmp);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!target.exists() || entries(&target).is_empty(), "{:?}", entries(&target));
}

#[test]
fn image_references_and_ids_follow_the_docker_grammar() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let image_dir = dir.path().join("image");
    fs::create_dir(&image_dir).unwrap();
    // The builder refuses a docker save whose RepoTags would reach the engine's API.
    for (n, tag) in ["evil:1/json?x=1 HTTP/1.1", "--help", "case/UPPER:1", "a:b:c\r\nHost: x"].into_iter().enumerate() {
        let archive = image_archive_in(&image_dir, tag);
        fs::write(
            image_dir.join("bundle.yaml"),
            format!("name: img\nversion: '1'\nmembers:\n  - {{name: images, kind: image, path: {}}}\n", archive.display()),
        )
        .unwrap();
        let out = airbin().arg("build").arg(&image_dir).arg("-o").arg(dir.path().join(format!("d{n}"))).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{tag:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("is not a Docker image reference"), "{tag:?}: {}", stderr(&out));
        assert!(!dir.path().join(format!("d{n}")).exists());
    }
    // A forged index is refused the same way, and an ID that is not sha256:<hex>.
    let good = image_archive_in(&image_dir, "airbin/ok:1");
    fs::write(
        image_dir.join("bundle.yaml"),
        format!("name: img\nversion: '1'\nmembers:\n  - {{name: images, kind: image, path: {}}}\n", good.display()),
    )
    .unwrap();
    let bin = build(&image_dir, &dir.path().join("dist"));
    for (what, edit) in [
        (
            "a tag with a path and a query",
            Box::new(|i: &mut Index| i.members[0].images[0].tags = vec!["a:1/json?x".into()]) as Box<dyn Fn(&mut Index)>,
        ),
        ("a multibyte image ID", Box::new(|i: &mut Index| i.members[0].images[0].id = format!("sha256:{}", "é".repeat(32)))),
        ("a short image ID", Box::new(|i: &mut Index| i.members[0].images[0].id = "sha256:ab".into())),
    ] {
        let forged = forge(&bin, &dir.path().join("forged.bin"), |_, _| {}, edit);
        let out = run(Shell::Bash, &forged, &["info"], &tmp);
        assert_refused(what, &out, "members[0].images[0]", &tmp.join("nothing"));
        let out = run(Shell::Bash, &forged, &["list"], &tmp);
        assert_eq!(out.status.code(), Some(3), "{what}: list");
    }
}

#[test]
fn free_text_cannot_steer_the_terminal() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let bin =
        forge(minimal(), &dir.path().join("esc.bin"), |index, _| index.bundle.description = "\u{1b}]0;owned\u{7}\u{1b}[2J".into(), |_| {});
    let out = run(Shell::Bash, &bin, &["info"], &tmp);
    assert_refused("escape sequences in the description", &out, "bundle.description", &tmp.join("nothing"));
    assert!(!stderr(&out).contains('\u{1b}'), "the error prints no escape character");
}

#[test]
fn long_tar_names_are_refused_before_they_are_read() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    // A GNU long-name entry of 1 MiB, then a file it would name.
    let long = vec![b'a'; 1 << 20];
    let mut tar = raw_tar(&[("././@LongLink", EntryType::GNULongName, None, &long, 0o644)]);
    tar.truncate(tar.len() - 1024);
    tar.extend(raw_tar(&[("x", EntryType::Regular, None, b"x", 0o644)]));
    let bin = forge(
        minimal(),
        &dir.path().join("long.bin"),
        |index, contents| {
            let at = position(index, "conf.d");
            contents[at] = tar;
        },
        |index| {
            let at = position(index, "conf.d");
            index.members[at].unpacked_bytes = 4 << 20;
        },
    );
    let target = dir.path().join("t");
    let out = extract(&bin, &target, &tmp);
    assert_refused("a 1 MiB GNU long name", &out, "65536-byte bound", &target);
    assert!(stderr(&out).len() < 1000, "the error stays short: {} bytes", stderr(&out).len());
}

#[test]
fn the_builder_refuses_hostile_inputs_without_hanging() {
    let dir = scratch();
    let root = dir.path();
    fs::write(root.join("tool.sh"), "#!/bin/sh\n").unwrap();
    let build_with = |yaml: &str, out: &Path| {
        fs::write(root.join("bundle.yaml"), yaml).unwrap();
        let child = airbin().arg("build").arg(root.join("bundle.yaml")).arg("-o").arg(out).spawn_output();
        child.wait_bounded()
    };

    // The output directory inside a member's input directory.
    fs::create_dir_all(root.join("files/sub")).unwrap();
    fs::write(root.join("files/sub/a"), "a").unwrap();
    let out = build_with("name: x\nversion: '1'\nmembers:\n  - {name: files, kind: file, path: files}\n", &root.join("files/dist"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("the bundle would pack itself"), "{}", stderr(&out));
    assert!(!root.join("files/dist").exists());

    // A member that is a symlink to outside its declared path.
    std::os::unix::fs::symlink("/etc/passwd", root.join("link.sh")).unwrap();
    let out = build_with("name: x\nversion: '1'\nmembers:\n  - {name: t, kind: tool, path: link.sh}\n", &root.join("dist"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is a symlink (to /etc/passwd)") && stderr(&out).contains("follow_symlinks: true"), "{}", stderr(&out));
    let out = build_with(
        "name: x\nversion: '1'\nmembers:\n  - {name: t, kind: tool, path: link.sh, follow_symlinks: true}\n",
        &root.join("dist"),
    );
    assert!(out.status.success(), "follow_symlinks: true takes it: {}", stderr(&out));

    // Deeply nested YAML.
    let deep = format!("name: x\nversion: '1'\nmembers: []\ndescription: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let out = build_with(&deep, &root.join("dist"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("nests deeper"), "{}", stderr(&out));

    // A FIFO as the spec file: refused, not waited on.
    let fifo = root.join("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let out = airbin().arg("build").arg(&fifo).arg("-o").arg(root.join("dist")).spawn_output().wait_bounded();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a regular file"), "{}", stderr(&out));

    // A registry pack with a non-ASCII blob name, and one with a symlink in it.
    let pack = root.join("pack/docker/registry/v2/blobs/sha256/éé");
    fs::create_dir_all(&pack).unwrap();
    let out = build_with("name: x\nversion: '1'\nmembers:\n  - {name: pack, kind: registry-pack, path: pack}\n", &root.join("dist"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("has no place in a registry's storage"), "{}", stderr(&out));
    fs::remove_dir_all(root.join("pack")).unwrap();
    fs::create_dir_all(root.join("pack/docker/registry/v2/repositories")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("pack/docker/registry/v2/blobs")).unwrap();
    let out = build_with("name: x\nversion: '1'\nmembers:\n  - {name: pack, kind: registry-pack, path: pack}\n", &root.join("dist"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("neither a regular file nor a directory") || stderr(&out).contains("symlink"), "{}", stderr(&out));
}

/// Runs a command with its output captured, killed if it runs over 60 s: a hang is a failure.
trait Bounded {
    fn spawn_output(&mut self) -> std::process::Child;
}

impl Bounded for Command {
    fn spawn_output(&mut self) -> std::process::Child {
        self.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    }
}

trait WaitBounded {
    fn wait_bounded(self) -> Output;
}

impl WaitBounded for std::process::Child {
    fn wait_bounded(mut self) -> Output {
        let started = std::time::Instant::now();
        while self.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(60) {
                self.kill().unwrap();
                panic!("the builder hung for 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.wait_with_output().unwrap()
    }
}

/// A one-tag registry pack (`app:1.0`) written as the registry lays it out.
fn registry_pack(dir: &Path) -> PathBuf {
    let sha = sha2_hex;
    let root = dir.join("pack");
    let v2 = root.join("docker/registry/v2");
    let layer = b"layer bytes".to_vec();
    let config = b"{\"config\":{}}".to_vec();
    let manifest = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\"config\":{{\"digest\":\"sha256:{}\"}},\"layers\":[{{\"digest\":\"sha256:{}\"}}]}}",
        sha(&config),
        sha(&layer)
    )
    .into_bytes();
    let write = |rel: String, content: &[u8]| {
        let path = v2.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    };
    for blob in [&layer, &config, &manifest] {
        let hex = sha(blob);
        write(format!("blobs/sha256/{}/{hex}/data", &hex[..2]), blob);
    }
    for hex in [sha(&layer), sha(&config)] {
        write(format!("repositories/app/_layers/sha256/{hex}/link"), format!("sha256:{hex}").as_bytes());
    }
    let m = sha(&manifest);
    write(format!("repositories/app/_manifests/revisions/sha256/{m}/link"), format!("sha256:{m}").as_bytes());
    write("repositories/app/_manifests/tags/1.0/current/link".into(), format!("sha256:{m}").as_bytes());
    root
}

/// A bundle restoring that pack into `registry_root`.
fn pack_bundle(dir: &Path, registry_root: &Path) -> PathBuf {
    registry_pack(dir);
    fs::write(
        dir.join("bundle.yaml"),
        format!(
            "name: packed\nversion: '1'\nmembers:\n  - {{name: pack, kind: registry-pack, path: pack}}\nsteps:\n  - {{name: restore, kind: restore-registry, member: pack, root: {}}}\n",
            registry_root.display()
        ),
    )
    .unwrap();
    build(&dir.join("bundle.yaml"), &dir.join("dist"))
}

fn install(bin: &Path, tmp: &Path) -> Output {
    run(Shell::Bash, bin, &["install", "--yes"], tmp)
}

/// A scratch place with a `tmp/` to run in and the pack bundle restoring into `registry/`:
/// (the place, tmp, the registry root, the bundle).
fn pack_site() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let root = dir.path().join("registry");
    let bin = pack_bundle(dir.path(), &root);
    (dir, tmp, root, bin)
}

#[test]
fn restore_registry_places_only_the_registrys_own_files_and_follows_no_link() {
    let (dir, tmp, root, bin) = pack_site();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("file"), "keep").unwrap();

    // A pack holding a symlink, or a file with no place in a registry: refused at install.
    let v2 = "docker/registry/v2";
    type Entries = Vec<(String, EntryType, Option<String>)>;
    let hostile: Vec<(&str, Entries)> = vec![
        ("a symlink in the pack", vec![(format!("{v2}/blobs"), EntryType::Symlink, Some(outside.display().to_string()))]),
        ("a file outside the registry's layout", vec![(format!("{v2}/evil.sh"), EntryType::Regular, None)]),
        (
            "a name outside the registry's grammar",
            vec![(format!("{v2}/repositories/app/_manifests/tags/x y/current/link"), EntryType::Regular, None)],
        ),
        ("a hard link", vec![(format!("{v2}/repositories/app/_layers/sha256/{}/link", "a".repeat(64)), EntryType::Link, Some("x".into()))]),
    ];
    for (n, (what, entries_)) in hostile.into_iter().enumerate() {
        let raw: Vec<RawEntry<'_>> = entries_.iter().map(|(p, k, l)| (p.as_str(), *k, l.as_deref(), &b""[..], 0o644)).collect();
        let forged = forge(
            &bin,
            &dir.path().join(format!("pack-{n}.bin")),
            |_, contents| contents[0] = raw_tar(&raw),
            |index| {
                index.members[0].unpacked_bytes = 1 << 20;
            },
        );
        let out = install(&forged, &tmp);
        assert_eq!(out.status.code(), Some(3), "{what}: {}", stderr(&out));
        assert!(!root.join("docker").exists(), "{what}: nothing placed: {:?}", entries(&root));
        let _ = fs::remove_dir_all(tmp.join("airbin-state"));
    }
    assert_eq!(entries(&outside), ["file"]);

    // A symlink in the root where the registry keeps a directory: refused, named, nothing written through it.
    fs::create_dir_all(root.join(v2)).unwrap();
    std::os::unix::fs::symlink(&outside, root.join(v2).join("blobs")).unwrap();
    let out = install(&bin, &tmp);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("blobs is a symlink where the registry keeps a directory"), "{}", stderr(&out));
    assert_eq!(entries(&outside), ["file"]);
    fs::remove_file(root.join(v2).join("blobs")).unwrap();
    let _ = fs::remove_dir_all(tmp.join("airbin-state"));

    // A symlink where a file belongs: replaced by the file (said so); its target untouched.
    let link = root.join(v2).join("repositories/app/_manifests/tags/1.0/current/link");
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(outside.join("file"), &link).unwrap();
    let out = install(&bin, &tmp);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("replaced 1 symlink(s)"), "{}", stderr(&out));
    assert!(!fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(fs::read_to_string(outside.join("file")).unwrap(), "keep");
}

#[test]
fn a_restore_that_fails_its_check_takes_back_what_it_placed() {
    let (dir, tmp, root, bin) = pack_site();
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("kept"), "x").unwrap();
    // The index says the tag points at another manifest than the pack holds.
    let forged = forge(
        &bin,
        &dir.path().join("mismatch.bin"),
        |_, _| {},
        |index| {
            let record = index.members[0].registry.as_mut().unwrap();
            record.repositories[0].tags[0].manifest = format!("sha256:{}", "b".repeat(64));
        },
    );
    let out = install(&forged, &tmp);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("what it placed was taken back"), "{}", stderr(&out));
    assert_eq!(entries(&root), ["kept"], "the root is as it was");
}

#[test]
fn registry_roots_and_modes_come_from_the_spec_only_within_bounds() {
    let dir = scratch();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let bin = pack_bundle(dir.path(), &dir.path().join("registry"));
    for (what, root, mode) in
        [("a root of /", Some("/"), None), ("a relative root", Some("var/lib/registry"), None), ("a setuid mode", None, Some("4644"))]
    {
        let forged = forge(
            &bin,
            &dir.path().join("root.bin"),
            |index, _| {
                if let Action::RestoreRegistry(RestoreRegistryAction { root: r, mode: m, .. }) = &mut index.steps[0].action {
                    if let Some(root) = root {
                        *r = Some(root.into());
                    }
                    *m = mode.map(str::to_string);
                }
            },
            |_| {},
        );
        let out = install(&forged, &tmp);
        assert_refused(what, &out, "steps[0]", &tmp.join("airbin-state"));
        // The builder refuses the same spec.
        let yaml = fs::read_to_string(dir.path().join("bundle.yaml")).unwrap();
        let changed = match (root, mode) {
            (Some(root), _) => yaml.replace(&format!("root: {}", dir.path().join("registry").display()), &format!("root: {root}")),
            (_, Some(mode)) => yaml.replace("member: pack,", &format!("member: pack, mode: '{mode}',")),
            _ => unreachable!(),
        };
        fs::write(dir.path().join("bad.yaml"), changed).unwrap();
        let out = airbin().arg("build").arg(dir.path().join("bad.yaml")).arg("-o").arg(dir.path().join("bad")).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
    }
}

/// Every path below `dir` with its mode bits and owner, sorted.
fn modes_below(dir: &Path) -> Vec<(String, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        out.push((path.strip_prefix(dir).unwrap().display().to_string(), meta.mode() & 0o7777, meta.uid()));
        if meta.is_dir() {
            pending.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_blob_that_does_not_match_its_name_is_refused_into_an_empty_root_and_into_a_serving_one() {
    let (dir, tmp, root, bin) = pack_site();
    // The layer's bytes changed, its name (its digest) kept: every digest of the file is right.
    let forged = forge(
        &bin,
        &dir.path().join("bad-blob.bin"),
        |_, contents| {
            let at = contents[0].windows(11).position(|w| w == b"layer bytes").unwrap();
            contents[0][at..at + 11].copy_from_slice(b"LAYER BYTES");
        },
        |_| {},
    );
    let refused = |out: &Output, what: &str| {
        assert_eq!(out.status.code(), Some(6), "{what}: {}", stderr(out));
        let err = stderr(out);
        assert!(err.contains("not its name") && err.contains("what it placed was taken back"), "{what}: {err}");
    };

    // A root with no registry tree yet: the tree goes in with one rename, and back out.
    let out = install(&forged, &tmp);
    refused(&out, "an empty root");
    assert_eq!(entries(&root), Vec::<String>::new(), "an empty root");
    let _ = fs::remove_dir_all(tmp.join("airbin-state"));

    // A root serving the pack, which has lost the layer: the forged one goes in on its own, and back out.
    assert!(install(&bin, &tmp).status.success());
    let _ = fs::remove_dir_all(tmp.join("airbin-state"));
    let layer = sha2_hex(b"layer bytes");
    fs::remove_dir_all(root.join(format!("docker/registry/v2/blobs/sha256/{}/{layer}", &layer[..2]))).unwrap();
    let before = modes_below(&root);
    let out = install(&forged, &tmp);
    refused(&out, "a serving root");
    assert_eq!(modes_below(&root), before, "a serving root is as it was");
}

fn sha2_hex(bytes: &[u8]) -> String {
    airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

#[test]
fn a_first_restore_gives_the_files_the_owner_and_modes_a_restore_file_by_file_gives() {
    let (dir, tmp, root, bin) = pack_site();
    // The pack's directories world-writable: a root gets 0755 directories whatever the pack says.
    let loose = forge(
        &bin,
        &dir.path().join("loose.bin"),
        |_, contents| {
            let mut archive = tar::Archive::new(&contents[0][..]);
            let mut items = Vec::new();
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().display().to_string();
                let kind = entry.header().entry_type();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
                items.push((path, kind, data, if kind == EntryType::Directory { 0o777 } else { 0o644 }));
            }
            let raw: Vec<RawEntry<'_>> = items.iter().map(|(p, k, d, m)| (p.as_str(), *k, None, &d[..], *m)).collect();
            contents[0] = raw_tar(&raw);
        },
        |_| {},
    );
    let out = install(&loose, &tmp);
    assert!(out.status.success(), "{}", stderr(&out));
    let placed = modes_below(&root.join("docker"));
    assert!(placed.len() > 10, "{placed:?}");
    for (path, mode, _) in &placed {
        let is_dir = fs::symlink_metadata(root.join("docker").join(path)).unwrap().is_dir();
        assert_eq!(*mode, if is_dir { 0o755 } else { 0o644 }, "{path}");
    }
    fs::remove_dir_all(&root).unwrap();
    let _ = fs::remove_dir_all(tmp.join("airbin-state"));

    // With the step's owner and mode: every file and directory, not only those it made.
    let owned = forge(
        &loose,
        &dir.path().join("owned.bin"),
        |index, _| {
            if let Action::RestoreRegistry(RestoreRegistryAction { owner, mode, .. }) = &mut index.steps[0].action {
                *owner = Some("65534:65534".into());
                *mode = Some("0640".into());
            }
        },
        |_| {},
    );
    let out = install(&owned, &tmp);
    assert!(out.status.success(), "{}", stderr(&out));
    for (path, mode, uid) in modes_below(&root.join("docker")) {
        let is_dir = fs::symlink_metadata(root.join("docker").join(&path)).unwrap().is_dir();
        assert_eq!((mode, uid), (if is_dir { 0o750 } else { 0o640 }, 65534), "{path}");
    }
}

// ---- Trust, round two: a pinned key holds before any of the bundle's code runs. ----

#[test]
fn a_pinned_key_holds_before_any_of_the_bundles_code_runs() {
    let dir = scratch();
    let (signed, key) = signed_minimal(dir.path());
    let runner = airbin_run(dir.path());
    let state = dir.path().join("state");
    // A forger rewrites the launcher (and every checksum it can): under `sh`, its code
    // runs before anything checks the signature.
    let to = format!("{:<25}#", "touch \"$0.pwn\"");
    let forged = forge_launcher(&signed, &dir.path().join("forged.bin"), "# Run: sh THIS_FILE --help", &to);
    let marker = dir.path().join("forged.bin.pwn");
    let out = Command::new("sh").arg(&forged).args(["info", "--trusted-key"]).arg(&key).output().unwrap();
    assert!(marker.exists(), "under sh the forged launcher ran (what a pinned key alone cannot stop): {}", stderr(&out));
    fs::remove_file(&marker).unwrap();
    // airbin-run reads it as data: refused, and not one byte of it ran.
    for args in [&["info"][..], &["install", "--yes"], &["plan"], &["preflight"], &["check"], &["extract", "--target", "x"]] {
        let out = Command::new(&runner)
            .arg(&forged)
            .args(args)
            .arg("--trusted-key")
            .arg(&key)
            .env("AIRBIN_STATE_DIR", &state)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "airbin-run {args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("does not match its content") || stderr(&out).contains("damaged"), "{}", stderr(&out));
        assert!(!marker.exists(), "airbin-run {args:?} ran the bundle's launcher");
        assert!(!state.exists() && !dir.path().join("x").exists(), "airbin-run {args:?} wrote before the verdict");
    }
    // The genuine bundle installs through it, with the same commands, flags and JSON.
    let out = Command::new(&runner)
        .arg(&signed)
        .args(["--yes", "--json", "--trusted-key"])
        .arg(&key)
        .env("AIRBIN_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((doc["command"].as_str(), doc["status"].as_str()), (Some("install"), Some("ok")));
    // An unsigned bundle, and no key pinned at all: refused.
    let out = Command::new(&runner).arg(minimal()).arg("info").arg("--trusted-key").arg(&key).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = Command::new(&runner).arg(&signed).arg("info").env("AIRBIN_TRUSTED_KEYS_DIR", dir.path().join("none")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("none is pinned"), "{}", stderr(&out));
    // A newer format than it reads: refused, naming the version it needs.
    let mut newer = fs::read(&signed).unwrap();
    let at = newer.len() - 160 + 148;
    newer[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    fs::write(dir.path().join("newer.bin"), &newer).unwrap();
    let out = Command::new(&runner).arg(dir.path().join("newer.bin")).arg("info").arg("--trusted-key").arg(&key).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("format 99") && stderr(&out).contains("or newer"), "{}", stderr(&out));
}

#[test]
fn runtime_install_puts_the_trusted_runner_on_the_host_and_says_how_far_it_is_trusted() {
    let dir = scratch();
    let (signed, key) = signed_minimal(dir.path());
    let to = dir.path().join("bin");
    let out = Command::new("sh").arg(&signed).args(["runtime", "install", "--to"]).arg(&to).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("TRUSTED ON FIRST USE"), "no key pinned: said so: {}", stdout(&out));
    let out =
        Command::new("sh").arg(&signed).args(["runtime", "install", "--to"]).arg(&to).arg("--trusted-key").arg(&key).output().unwrap();
    assert!(out.status.success() && stdout(&out).contains("verified against the pinned key"), "{}", stdout(&out));
    let run = Command::new(to.join("airbin-run")).arg(&signed).arg("check").arg("--trusted-key").arg(&key).output().unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
}

/// A TCP listener that records whether anything connected to it.
fn watched_port() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

#[test]
fn with_a_key_pinned_no_registry_node_or_disk_is_touched_before_the_verdict() {
    let dir = scratch();
    let (_, key) = signed_minimal(dir.path());
    let (listener, address) = watched_port();
    let spec = dir.path().join("spec");
    fs::create_dir_all(&spec).unwrap();
    fs::copy(repo_root().join("samples/compass/registry/registry-pack.tar"), spec.join("pack.tar")).unwrap();
    let root = dir.path().join("root");
    fs::write(
        spec.join("bundle.yaml"),
        format!(
            "name: probe\nversion: '1'\nmembers:\n  - {{name: pack, kind: registry-pack, path: pack.tar}}\nconfig:\n  management_nodes_key: nodes\nsteps:\n  - {{name: restore, kind: restore-registry, member: pack, root: {}, address: '{address}'}}\n",
            root.display()
        ),
    )
    .unwrap();
    // Unsigned (as a forger's bundle is): every command refuses it before anything.
    let bin = build(&spec.join("bundle.yaml"), &dir.path().join("dist"));
    let config = dir.path().join("config");
    fs::write(&config, "nodes: [10.9.8.1, 10.9.8.2]\n").unwrap();
    let fake_ssh = dir.path().join("fake-bin");
    fs::create_dir_all(&fake_ssh).unwrap();
    let calls = dir.path().join("ssh-calls");
    fs::write(fake_ssh.join("ssh"), format!("#!/bin/sh\necho \"$@\" >> {}\nexit 255\n", calls.display())).unwrap();
    fs::set_permissions(fake_ssh.join("ssh"), fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake_ssh.display(), std::env::var("PATH").unwrap());
    let state = dir.path().join("state");
    for args in [
        &["preflight", "--role", "single"][..],
        &["install", "--yes", "--role", "single"],
        &["install", "--all-nodes", "--yes"],
        &["status", "--verify"],
    ] {
        let out = Command::new("sh")
            .arg(&bin)
            .args(args)
            .arg("--config")
            .arg(&config)
            .arg("--trusted-key")
            .arg(&key)
            .env("PATH", &path)
            .env("AIRBIN_STATE_DIR", &state)
            .output()
            .unwrap();
        let err = stderr(&out);
        if args[0] == "status" {
            assert!(out.status.code() == Some(2) || out.status.code() == Some(3), "{args:?}: {err}");
        } else {
            assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
            assert!(err.contains("is not signed"), "{args:?}: {err}");
        }
        assert!(listener.accept().is_err(), "{args:?}: the registry was asked before the verdict");
        assert!(!calls.exists(), "{args:?}: a node was reached before the verdict: {}", fs::read_to_string(&calls).unwrap_or_default());
        assert!(!root.exists() && !state.exists(), "{args:?}: the disk was written before the verdict");
    }
}

/// A server that answers every connection one byte at a time, every 300 ms, forever:
/// what no per-read timeout ever stops.
fn trickle() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                while std::io::Write::write_all(&mut stream, b"H").is_ok() {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                }
            });
        }
    });
    address
}

/// Starts `command`, sends SIGTERM after `after`, and returns the exit code and how long
/// the run took from the signal.
fn stopped_by_sigterm(mut command: Command, after: std::time::Duration) -> (Option<i32>, std::time::Duration, String) {
    let child = command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(after);
    // The runtime, not the launcher's shell: the newest process carrying the bundle.
    let pid = child.id();
    let signalled = std::time::Instant::now();
    let _ = Command::new("pkill").args(["-TERM", "-P", &pid.to_string()]).status();
    send(pid, nix::sys::signal::Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    (out.status.code(), signalled.elapsed(), stderr(&out))
}

#[test]
fn a_peer_that_trickles_never_holds_a_request_past_its_deadline_nor_past_a_sigterm() {
    let dir = scratch();
    let slow = trickle();
    let spec = dir.path().join("spec");
    fs::create_dir_all(&spec).unwrap();
    fs::copy(repo_root().join("samples/compass/images/release-images.tar"), spec.join("images.tar")).unwrap();
    fs::copy(repo_root().join("samples/compass/registry/registry-pack.tar"), spec.join("pack.tar")).unwrap();
    let bundle = |name: &str, steps: &str| {
        fs::write(
            spec.join(format!("{name}.yaml")),
            format!("name: {name}\nversion: '1'\nmembers:\n  - {{name: images, kind: image, path: images.tar}}\n  - {{name: pack, kind: registry-pack, path: pack.tar}}\nsteps:\n{steps}"),
        )
        .unwrap();
        build(&spec.join(format!("{name}.yaml")), &dir.path().join(format!("dist-{name}")))
    };
    let root = dir.path().join("root");
    let wait = bundle("wait", &format!("  - {{name: wait, kind: wait-for, http: 'http://{slow}/v2/', timeout: 2s}}\n"));
    let wait_long = bundle("waitlong", &format!("  - {{name: wait, kind: wait-for, http: 'http://{slow}/v2/', timeout: 10m}}\n"));
    let probe = bundle(
        "probe",
        &format!("  - {{name: restore, kind: restore-registry, member: pack, root: {}, address: '{slow}'}}\n", root.display()),
    );
    let push = bundle("push", &format!("  - {{name: push, kind: push-images, member: images, registry: '{slow}'}}\n"));
    let run = |bin: &Path, args: &[&str]| {
        let mut c = Command::new("sh");
        c.arg(bin).args(args).env("AIRBIN_STATE_DIR", dir.path().join("state")).env("TMPDIR", dir.path());
        c
    };
    // Its own deadline: a wait of 2 s ends, though the peer keeps sending.
    let started = std::time::Instant::now();
    let out = run(&wait, &["--yes"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "the wait took {:?}", started.elapsed());
    // SIGTERM is heard within a second or two, whatever the run is blocked on.
    let unix = dir.path().join("api.sock");
    let unix_listener = std::os::unix::net::UnixListener::bind(&unix).unwrap();
    std::thread::spawn(move || {
        for stream in unix_listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                while std::io::Write::write_all(&mut stream, b"H").is_ok() {
                    std::thread::sleep(std::time::Duration::from_millis(300));
                }
            });
        }
    });
    let cases: Vec<(&str, Command)> = vec![
        ("wait-for", run(&wait_long, &["--yes"])),
        ("preflight's registry probe", run(&probe, &["preflight"])),
        ("push-images", run(&push, &["--yes", "--skip-preflight", "registry"])),
        ("the registry's online check", run(&probe, &["--yes", "--skip-preflight", "registry"])),
        ("the Docker Engine API", {
            let mut c = run(&push, &["--yes", "--skip-preflight", "registry"]);
            c.env("DOCKER_HOST", format!("unix://{}", unix.display()));
            let _ = c;
            let mut c = Command::new("sh");
            let images = bundle("images", "  - {kind: load-images, member: images, engine: docker-api}\n");
            c.arg(images)
                .arg("--yes")
                .env("DOCKER_HOST", format!("unix://{}", unix.display()))
                .env("AIRBIN_STATE_DIR", dir.path().join("state2"));
            c
        }),
    ];
    for (what, command) in cases {
        let (code, took, err) = stopped_by_sigterm(command, std::time::Duration::from_millis(2500));
        assert!(took < std::time::Duration::from_secs(4), "{what}: SIGTERM took {took:?} to stop the run: {err}");
        assert!(matches!(code, Some(130) | Some(7) | Some(6)), "{what}: exit {code:?}: {err}");
    }
}

#[test]
fn a_state_directory_others_can_write_or_links_planted_in_it_are_refused() {
    if !skip::root("a_state_directory_others_can_write") {
        return;
    }
    let dir = scratch();
    let spec = dir.path().join("spec");
    fs::create_dir_all(&spec).unwrap();
    fs::write(spec.join("tool.sh"), "#!/bin/sh\ntrue\n").unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        "name: planted\nversion: '1'\nmembers:\n  - {name: tool.sh, kind: tool, path: tool.sh}\nparameters:\n  - {name: site, type: string, required: true}\n  - {name: pw, type: string, secret: true, required: true}\nsteps:\n  - {name: run, kind: command, run: [sh, tool.sh], env: {PW: '${config.pw}'}}\n",
    )
    .unwrap();
    let bin = build(&spec.join("bundle.yaml"), &dir.path().join("dist"));
    let install = |base: &Path| {
        Command::new("sh")
            .arg(&bin)
            .args(["--yes", "--set", "site=a", "--set", "pw=secret-1"])
            .env("AIRBIN_STATE_DIR", base)
            .output()
            .unwrap()
    };
    // A base any user may write to (no sticky bit): refused, nothing made.
    let open = dir.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let out = install(&open);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("any user may write to without the sticky bit"), "{}", stderr(&out));
    assert!(!open.join("planted").exists());
    // A state directory of another user's: refused.
    let theirs = dir.path().join("theirs");
    fs::create_dir_all(theirs.join("planted")).unwrap();
    Command::new("chown").args(["nobody"]).arg(theirs.join("planted")).status().unwrap();
    let out = install(&theirs);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("belongs to user"), "{}", stderr(&out));
    // A link planted where each of its files belongs: never followed.
    for name in [
        "journal.jsonl",
        "lock",
        "logs",
        "staging",
        "answers.json",
        "secrets.json",
        "placed.json",
        "installed.json",
        "installed-index.json",
        "verified",
    ] {
        let base = dir.path().join(format!("s-{name}"));
        let root = base.join("planted");
        fs::create_dir_all(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
        let victim = dir.path().join(format!("victim-{name}"));
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("keep"), "keep").unwrap();
        let target = if matches!(name, "logs" | "staging") { victim.clone() } else { victim.join("keep") };
        std::os::unix::fs::symlink(&target, root.join(name)).unwrap();
        let out = install(&base);
        assert_eq!(fs::read_to_string(victim.join("keep")).unwrap(), "keep", "{name}: the link was followed: {}", stderr(&out));
        assert_eq!(entries(&victim), ["keep"], "{name}: the link was followed: {}", stderr(&out));
        if !out.status.success() {
            assert_eq!(stderr(&out).lines().filter(|l| l.contains("error")).count(), 1, "{name}: {}", stderr(&out));
        }
    }
}

#[test]
fn secrets_reach_no_stored_or_printed_text_errors_included() {
    let dir = scratch();
    let spec = dir.path().join("spec");
    fs::create_dir_all(&spec).unwrap();
    fs::write(spec.join("notes"), "n\n").unwrap();
    fs::write(
        spec.join("bundle.yaml"),
        "name: leak\nversion: '1'\nmembers:\n  - {name: notes, kind: file, path: notes}\nparameters:\n  - {name: pw, type: string, secret: true, key: db.password, required: true}\nsteps:\n  - {name: wait, kind: wait-for, http: 'http://admin:${config.db.password}@127.0.0.1:1/v2/', timeout: 1s}\n",
    )
    .unwrap();
    let bin = build(&spec.join("bundle.yaml"), &dir.path().join("dist"));
    let secret = "s3cr3t-Pa55";
    let config = dir.path().join("config");
    // A flow mapping and a block scalar: however it is written, the value is the secret.
    fs::write(&config, format!("db: {{password: {secret}, host: a}}\nnote: |\n  kept\n")).unwrap();
    let state = dir.path().join("state");
    let run = |args: &[&str]| {
        Command::new("sh").arg(&bin).args(args).arg("--config").arg(&config).env("AIRBIN_STATE_DIR", &state).output().unwrap()
    };
    let out = run(&["--yes", "--json"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let mut shown = vec![stdout(&out), stderr(&out)];
    for args in [&["status"][..], &["status", "--json"], &["plan"], &["plan", "--json"]] {
        let out = Command::new("sh").arg(&bin).args(args).env("AIRBIN_STATE_DIR", &state).output().unwrap();
        shown.push(stdout(&out));
        shown.push(stderr(&out));
    }
    let support = dir.path().join("s.tar.gz");
    let out = run(&["support", "-o", support.to_str().unwrap()].iter().copied().filter(|a| *a != "--config").collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let unpacked = dir.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    assert!(Command::new("tar").arg("-xzf").arg(&support).arg("-C").arg(&unpacked).status().unwrap().success());
    for text in &shown {
        assert!(!text.contains(secret), "printed: {text}");
    }
    let mut files = Vec::new();
    let mut stack = vec![state.clone(), unpacked.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    for file in files {
        let text = String::from_utf8_lossy(&fs::read(&file).unwrap()).into_owned();
        if file.ends_with("secrets.json") {
            assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
            continue;
        }
        assert!(!text.contains(secret), "{} holds the secret", file.display());
        if file.ends_with("journal.jsonl") && file.starts_with(&state) {
            assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "the journal is 0600");
        }
        if file.ends_with("config.masked") {
            assert!(text.contains("host: a") && text.contains("kept"), "the masked config keeps the rest: {text}");
        }
    }
    // A forged node-list key that names a secret: refused before any ssh.
    let forged = forge(
        &bin,
        &dir.path().join("nodes.bin"),
        |index, _| {
            index.config.management_nodes_key = Some("db.password".into());
        },
        |_| {},
    );
    let out = Command::new("sh").arg(&forged).args(["plan", "--config"]).arg(&config).env("AIRBIN_STATE_DIR", &state).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!stderr(&out).contains(secret), "{}", stderr(&out));
}

#[test]
fn the_builder_takes_a_detached_signature_and_a_base_only_when_they_check_out() {
    let dir = scratch();
    let (signed, key) = signed_minimal(dir.path());
    let sig = signed.with_file_name(format!("{}.minisig", signed.file_name().unwrap().to_string_lossy()));
    let genuine = fs::read(&sig).unwrap();
    let repo = dir.path().join("repo");
    let add = |extra: &[&str]| airbin().args(["repo", "add"]).arg(&repo).arg(&signed).args(extra).output().unwrap();
    // A link to a host file where the signature belongs: refused, nothing published.
    fs::remove_file(&sig).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &sig).unwrap();
    let out = add(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!repo.join("index.json").exists());
    // A FIFO: refused at once (never waited on).
    fs::remove_file(&sig).unwrap();
    nix::unistd::mkfifo(&sig, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let started = std::time::Instant::now();
    let out = add(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Another key's signature: refused; the genuine one, checked with --key: taken.
    fs::remove_file(&sig).unwrap();
    let other = scratch();
    let (other_signed, _) = signed_minimal(other.path());
    fs::copy(other_signed.with_file_name(format!("{}.minisig", other_signed.file_name().unwrap().to_string_lossy())), &sig).unwrap();
    let out = add(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("is signed by key"), "{}", stderr(&out));
    fs::write(&sig, &genuine).unwrap();
    let out = add(&["--key", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A delta's base must check out, and what it leaves out is what the base carries.
    let pack_dir = dir.path().join("pack");
    fs::create_dir_all(&pack_dir).unwrap();
    assert!(Command::new("tar")
        .arg("-xf")
        .arg(repo_root().join("samples/compass/registry/registry-pack.tar"))
        .arg("-C")
        .arg(&pack_dir)
        .status()
        .unwrap()
        .success());
    let spec = |version: &str| {
        let d = dir.path().join(format!("delta-{version}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join("bundle.yaml"),
            format!(
                "name: deltas\nversion: '{version}'\nmembers:\n  - {{name: pack, kind: registry-pack, path: {}}}\n",
                pack_dir.display()
            ),
        )
        .unwrap();
        d
    };
    let base = build(&spec("1"), &dir.path().join("delta-dist-1"));
    let v2 = spec("2");
    let out = airbin().arg("build").arg(&v2).args(["-o"]).arg(dir.path().join("d2")).arg("--base").arg(&base).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a base nobody vouched for: {}", stderr(&out));
    assert!(stderr(&out).contains("--base-key") && stderr(&out).contains("--base-sha256"), "{}", stderr(&out));
    let out = airbin()
        .arg("build")
        .arg(&v2)
        .args(["-o"])
        .arg(dir.path().join("d2"))
        .arg("--base")
        .arg(&base)
        .args(["--base-sha256", &"0".repeat(64)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // A hostile base lacks a layer and claims (in its index) to have left it out: the new
    // delta leaves out what the base really carries, and so keeps that layer.
    let hostile = forge(
        &base,
        &dir.path().join("hostile.bin"),
        |index, contents| {
            let at = index.members.iter().position(|m| m.name == "pack").unwrap();
            let mut files: Vec<(String, Vec<u8>)> = Vec::new();
            let mut archive = tar::Archive::new(&contents[at][..]);
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                if entry.header().entry_type().is_file() {
                    let mut data = Vec::new();
                    std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
                    files.push((entry.path().unwrap().display().to_string(), data));
                }
            }
            let (biggest, _) =
                files.iter().enumerate().filter(|(_, (p, _))| p.contains("/blobs/")).max_by_key(|(_, (_, d))| d.len()).unwrap();
            let (path, _) = files.remove(biggest);
            let hex = path.rsplit('/').nth(1).unwrap().to_string();
            let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
            contents[at] = files_tar(Vec::new(), &refs);
            index.members[at].registry.as_mut().unwrap().omitted = vec![format!("sha256:{hex}")];
            fs::write(dir.path().join("lacked"), &hex).unwrap();
        },
        |_| {},
    );
    let lacked = format!("sha256:{}", fs::read_to_string(dir.path().join("lacked")).unwrap());
    let sum = airbin_format::digest::to_hex(&<sha2::Sha256 as sha2::Digest>::digest(fs::read(&hostile).unwrap()));
    let out = airbin()
        .arg("build")
        .arg(&v2)
        .args(["-o"])
        .arg(dir.path().join("d3"))
        .arg("--base")
        .arg(&hostile)
        .args(["--base-sha256", &sum])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let delta = airbin_format::Bundle::open(Path::new(stdout(&out).trim())).unwrap();
    let omitted = &delta.index.members[0].registry.as_ref().unwrap().omitted;
    assert!(!omitted.contains(&lacked), "the layer the base only claimed is carried: {omitted:?}");
    assert!(!omitted.is_empty(), "what the base really carries is left out");
}

#[test]
fn escape_sequences_from_an_index_never_reach_the_terminal() {
    let dir = scratch();
    let spec = dir.path().join("spec");
    fs::create_dir_all(&spec).unwrap();
    fs::write(spec.join("notes"), "n\n").unwrap();
    let members = "members:\n  - {name: notes, kind: file, path: notes}\n";
    fs::write(spec.join("bundle.yaml"), format!("name: esc\nversion: '1'\n{members}parameters:\n  - {{name: mode, type: enum, values: [a, b], default: a}}\n  - {{name: name, type: string, pattern: '[a-z]+', default: x}}\n")).unwrap();
    let bin = build(&spec.join("bundle.yaml"), &dir.path().join("dist"));
    let esc = "\u{1b}]0;owned\u{7}\u{1b}[2J";
    for (what, edit) in [
        ("a default", Box::new(|index: &mut Index| index.parameters[1].default = Some(format!("x{esc}"))) as Box<dyn Fn(&mut Index)>),
        ("an enum value", Box::new(|index: &mut Index| index.parameters[0].values.push(format!("c{esc}")))),
        ("a pattern", Box::new(|index: &mut Index| index.parameters[1].pattern = Some(format!("[a-z]+{esc}")))),
    ] {
        let forged = forge(&bin, &dir.path().join("forged.bin"), |index, _| edit(index), |_| {});
        let out = Command::new("sh").arg(&forged).arg("plan").env("AIRBIN_STATE_DIR", dir.path().join("s")).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{what}: {}", stderr(&out));
        assert!(!stderr(&out).contains('\u{1b}') && !stdout(&out).contains('\u{1b}'), "{what}: an escape reached the terminal");
    }
    // The builder refuses them too.
    fs::write(
        spec.join("bundle.yaml"),
        format!("name: esc\nversion: '1'\n{members}parameters:\n  - {{name: mode, type: enum, values: [\"a\\u001b[2J\"]}}\n"),
    )
    .unwrap();
    let out = airbin().arg("build").arg(spec.join("bundle.yaml")).arg("-o").arg(dir.path().join("d")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\u{1b}'), "{}", stderr(&out));
}
