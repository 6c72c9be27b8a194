//! Builds the static stub that `airbin` carries inside itself, so that the `airbin`
//! binary alone is all a build host needs.
//!
//! The stub a bundle carries is two programs in one: the loader (`loader/`), which holds
//! the runtime (`stub/`, `airbin-stub`) zstd-compressed and runs it from memory. Both are
//! built by nested cargos for x86_64-unknown-linux-musl, each into its own target
//! directory (`target/stub`, `target/loader`) so the builds never wait on each other's
//! lock: first the runtime, then it is packed into `target/loader/airbin-stub.zst`, then
//! the loader that includes it. Set AIRBIN_STUB=/path/to/airbin-stub to pack a runtime
//! built elsewhere.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const STUB_TARGET: &str = "x86_64-unknown-linux-musl";
/// zstd's highest regular level: the runtime is packed once per build and unpacked on
/// every start, and decoding is as fast at any level.
const PACK_LEVEL: i32 = 19;

fn main() {
    println!("cargo:rerun-if-env-changed=AIRBIN_STUB");
    let workspace = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).parent().unwrap().to_path_buf();
    let target_root = env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    let runtime = match env::var_os("AIRBIN_STUB") {
        Some(path) => PathBuf::from(path),
        None => build_runtime(&workspace, &target_root.join("stub")),
    };
    println!("cargo:rerun-if-changed={}", runtime.display());
    let loader_dir = target_root.join("loader");
    let (packed, runtime_len) = pack_runtime(&runtime, &loader_dir);
    let stub = build_loader(&workspace, &loader_dir, &packed);
    println!("cargo:rustc-env=AIRBIN_STUB_PATH={}", stub.display());
    println!("cargo:rustc-env=AIRBIN_STUB_TARGET={STUB_TARGET}");
    println!("cargo:rustc-env=AIRBIN_RUNTIME_LEN={runtime_len}");
}

fn build_runtime(workspace: &Path, target_dir: &Path) -> PathBuf {
    for watched in ["stub/src", "stub/Cargo.toml", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    nested_cargo(
        workspace,
        &["build", "--quiet", "-p", "airbin-stub", "--bin", "airbin-stub", "--profile", "stub", "--target", STUB_TARGET],
        target_dir,
        &[],
        "the static stub",
    );
    let runtime = target_dir.join(STUB_TARGET).join("stub").join("airbin-stub");
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

fn build_loader(workspace: &Path, target_dir: &Path, packed: &Path) -> PathBuf {
    for watched in ["loader/src", "loader/build.rs", "loader/Cargo.toml", "loader/Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    let manifest = workspace.join("loader").join("Cargo.toml");
    let manifest = manifest.to_str().expect("a UTF-8 workspace path");
    nested_cargo(
        workspace,
        &["build", "--quiet", "--release", "--manifest-path", manifest, "--target", STUB_TARGET],
        target_dir,
        &[("AIRBIN_PACKED_STUB", packed.as_os_str())],
        "the stub's loader",
    );
    let loader = target_dir.join(STUB_TARGET).join("release").join("airbin-loader");
    assert!(loader.is_file(), "cargo built no loader at {}", loader.display());
    loader
}

fn nested_cargo(workspace: &Path, args: &[&str], target_dir: &Path, envs: &[(&str, &std::ffi::OsStr)], what: &str) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace).args(args).arg("--target-dir").arg(target_dir).envs(envs.iter().copied());
    // The outer build's flags are for the host target, not for the static stub.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER"] {
        command.env_remove(var);
    }
    let status = command.status().unwrap_or_else(|e| panic!("running cargo to build {what}: {e}"));
    if !status.success() {
        panic!(
            "building {what} failed; it needs the Rust target {STUB_TARGET} and musl-gcc: \
             run `bash hack/setup-host.sh` (or `rustup target add {STUB_TARGET}` and `apt-get install musl-tools`)"
        );
    }
}
