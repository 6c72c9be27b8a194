//! Builds the static stub that `airbin` carries inside itself, so that the `airbin`
//! binary alone is all a build host needs.
//!
//! The stub is built by a nested cargo, for x86_64-unknown-linux-musl with the `stub`
//! profile, into its own target directory (`target/stub`) so the two builds never wait
//! on each other's lock. Set AIRBIN_STUB=/path/to/airbin-stub to use a stub built
//! elsewhere.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const STUB_TARGET: &str = "x86_64-unknown-linux-musl";

fn main() {
    println!("cargo:rerun-if-env-changed=AIRBIN_STUB");
    let stub = match env::var_os("AIRBIN_STUB") {
        Some(path) => PathBuf::from(path),
        None => build_stub(),
    };
    println!("cargo:rustc-env=AIRBIN_STUB_PATH={}", stub.display());
    println!("cargo:rustc-env=AIRBIN_STUB_TARGET={STUB_TARGET}");
}

fn build_stub() -> PathBuf {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap();
    for watched in ["stub/src", "stub/Cargo.toml", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }
    let target_dir = env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from).join("stub");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", "airbin-stub", "--bin", "airbin-stub", "--profile", "stub", "--target", STUB_TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags are for the host target, not for the static stub.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER"] {
        command.env_remove(var);
    }
    let status = command.status().expect("running cargo to build the stub");
    if !status.success() {
        panic!(
            "building the static stub failed; it needs the Rust target {STUB_TARGET} and musl-gcc: \
             run `bash hack/setup-host.sh` (or `rustup target add {STUB_TARGET}` and `apt-get install musl-tools`)"
        );
    }
    let stub = target_dir.join(STUB_TARGET).join("stub").join("airbin-stub");
    assert!(Path::new(&stub).is_file(), "cargo built no stub at {}", stub.display());
    stub
}
