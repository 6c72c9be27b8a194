//! Builds the static stubs that `airbin` carries inside itself, one per architecture a
//! bundle may be for, so that the `airbin` binary alone is all a build host needs.
//!
//! The stub a bundle carries is two programs in one: the loader (`loader/`), which holds
//! the runtime (`stub/`, `airbin-stub`) zstd-compressed and runs it from memory. Both are
//! built by nested cargos for each musl target, each into its own target directory
//! (`target/stub/<arch>`, `target/loader/<arch>`) so the builds never wait on each other's
//! lock: first the runtimes, side by side (their LTO runs on one core each), then each is
//! packed into `target/loader/<arch>/airbin-stub.zst`, then the loader that includes it.
//! Set AIRBIN_STUB_AMD64 (or AIRBIN_STUB_ARM64) to a runtime built elsewhere to pack it.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// zstd's highest regular level: the runtime is packed once per build and unpacked on
/// every start, and decoding is as fast at any level.
const PACK_LEVEL: i32 = 19;

struct StubTarget {
    /// The bundle arch it serves, as specs and the index name it.
    arch: &'static str,
    triple: &'static str,
    /// Cross-compilation's tools, set for the nested cargo unless the caller set them.
    /// Debian's musl-dev for the target's architecture brings its compiler wrapper
    /// (`aarch64-linux-musl-gcc`, musl's headers on the cross gcc), which cc-rs finds by
    /// itself; rustc links with the plain cross gcc and its own musl, as for x86_64.
    tools: &'static [(&'static str, &'static str)],
    /// What to install when the build fails.
    needs: &'static str,
}

const TARGETS: [StubTarget; 2] = [
    StubTarget {
        arch: "amd64",
        triple: "x86_64-unknown-linux-musl",
        tools: &[],
        needs: "the Rust target x86_64-unknown-linux-musl and musl-gcc (`rustup target add x86_64-unknown-linux-musl`, `apt-get install musl-tools`)",
    },
    StubTarget {
        arch: "arm64",
        triple: "aarch64-unknown-linux-musl",
        tools: &[
            ("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "aarch64-linux-gnu-gcc"),
            ("CC_aarch64_unknown_linux_musl", "aarch64-linux-musl-gcc"),
            ("AR_aarch64_unknown_linux_musl", "aarch64-linux-gnu-ar"),
        ],
        needs: "the Rust target aarch64-unknown-linux-musl, a cross gcc and musl for arm64 \
                (`rustup target add aarch64-unknown-linux-musl`, `dpkg --add-architecture arm64 && apt-get update && apt-get install gcc-aarch64-linux-gnu musl-dev:arm64`)",
    },
];

fn main() {
    let workspace = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).parent().unwrap().to_path_buf();
    let target_root = env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    for watched in [
        "format/src",
        "format/Cargo.toml",
        "stub/src",
        "stub/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
        "loader/src",
        "loader/build.rs",
        "loader/Cargo.toml",
        "loader/Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    let runtimes: Vec<PathBuf> = std::thread::scope(|scope| {
        let builds: Vec<_> = TARGETS
            .iter()
            .map(|target| {
                let override_var = format!("AIRBIN_STUB_{}", target.arch.to_uppercase());
                println!("cargo:rerun-if-env-changed={override_var}");
                let (workspace, target_root) = (&workspace, &target_root);
                scope.spawn(move || match env::var_os(&override_var) {
                    Some(path) => PathBuf::from(path),
                    None => build_runtime(workspace, &target_root.join("stub").join(target.arch), target),
                })
            })
            .collect();
        builds.into_iter().map(|build| build.join().expect("a stub build panicked")).collect()
    });
    for (target, runtime) in TARGETS.iter().zip(runtimes) {
        println!("cargo:rerun-if-changed={}", runtime.display());
        let loader_dir = target_root.join("loader").join(target.arch);
        let (packed, runtime_len) = pack_runtime(&runtime, &loader_dir);
        let stub = build_loader(&workspace, &loader_dir, &packed, target);
        let arch = target.arch.to_uppercase();
        // Where the packed runtime lies in the stub: `airbin runtime` unpacks it from there.
        let (at, len) = packed_at(&stub, &packed);
        println!("cargo:rustc-env=AIRBIN_RUNTIME_{arch}_AT={at}");
        println!("cargo:rustc-env=AIRBIN_RUNTIME_{arch}_PACKED_LEN={len}");
        println!("cargo:rustc-env=AIRBIN_STUB_{arch}_PATH={}", stub.display());
        println!("cargo:rustc-env=AIRBIN_STUB_{arch}_TARGET={}", target.triple);
        println!("cargo:rustc-env=AIRBIN_RUNTIME_{arch}_LEN={runtime_len}");
    }
}

fn build_runtime(workspace: &Path, target_dir: &Path, target: &StubTarget) -> PathBuf {
    nested_cargo(
        workspace,
        &["build", "--quiet", "-p", "airbin-stub", "--bin", "airbin-stub", "--profile", "stub", "--target", target.triple],
        target_dir,
        &[],
        target,
        "stub",
    );
    let runtime = target_dir.join(target.triple).join("stub").join("airbin-stub");
    assert!(runtime.is_file(), "cargo built no stub at {}", runtime.display());
    runtime
}

/// One zstd frame with the content size and checksum that the loader requires. Written
/// only when it changed, so an unchanged runtime does not relink the loader.
fn pack_runtime(runtime: &Path, loader_dir: &Path) -> (PathBuf, usize) {
    let bytes = std::fs::read(runtime).unwrap_or_else(|e| panic!("reading the runtime {}: {e}", runtime.display()));
    let mut compressor = zstd::bulk::Compressor::new(PACK_LEVEL).expect("a zstd compressor");
    compressor.include_checksum(true).expect("zstd checksum flag");
    compressor.include_contentsize(true).expect("zstd content-size flag");
    let packed_bytes = compressor.compress(&bytes).expect("packing the runtime");
    std::fs::create_dir_all(loader_dir).expect("creating the loader's target directory");
    let packed = loader_dir.join("airbin-stub.zst");
    if std::fs::read(&packed).ok().as_deref() != Some(packed_bytes.as_slice()) {
        std::fs::write(&packed, &packed_bytes).unwrap_or_else(|e| panic!("writing {}: {e}", packed.display()));
    }
    (packed, bytes.len())
}

/// The offset and length of the packed runtime inside the loader that includes it.
fn packed_at(stub: &Path, packed: &Path) -> (usize, usize) {
    let stub = std::fs::read(stub).expect("reading the stub");
    let packed = std::fs::read(packed).expect("reading the packed runtime");
    let at = stub.windows(packed.len()).position(|w| w == packed.as_slice()).expect("the loader holds the packed runtime whole");
    (at, packed.len())
}

fn build_loader(workspace: &Path, target_dir: &Path, packed: &Path, target: &StubTarget) -> PathBuf {
    let manifest = workspace.join("loader").join("Cargo.toml");
    let manifest = manifest.to_str().expect("a UTF-8 workspace path");
    nested_cargo(
        workspace,
        &["build", "--quiet", "--release", "--manifest-path", manifest, "--target", target.triple],
        target_dir,
        &[("AIRBIN_PACKED_STUB", packed.as_os_str().to_owned())],
        target,
        "stub's loader",
    );
    let loader = target_dir.join(target.triple).join("release").join("airbin-loader");
    assert!(loader.is_file(), "cargo built no loader at {}", loader.display());
    loader
}

fn nested_cargo(workspace: &Path, args: &[&str], target_dir: &Path, envs: &[(&str, OsString)], target: &StubTarget, what: &str) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace).args(args).arg("--target-dir").arg(target_dir);
    command.envs(envs.iter().map(|(k, v)| (k, v)));
    for (var, tool) in target.tools {
        if env::var_os(var).is_none() {
            command.env(var, tool);
        }
    }
    // The outer build's flags are for the host target, not for the static stub.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER"] {
        command.env_remove(var);
    }
    // Its own, where asked: hack/release.sh remaps the source paths panics would carry.
    println!("cargo:rerun-if-env-changed=AIRBIN_STUB_RUSTFLAGS");
    if let Some(flags) = env::var_os("AIRBIN_STUB_RUSTFLAGS") {
        command.env("RUSTFLAGS", flags);
    }
    let status = command.status().unwrap_or_else(|e| panic!("running cargo to build the {} {what}: {e}", target.arch));
    if !status.success() {
        panic!("building the {} {what} ({}) failed; it needs {}: run `bash hack/setup-host.sh`", target.arch, target.triple, target.needs);
    }
}
