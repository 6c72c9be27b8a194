//! What a test needs of the host, and what happens when the host lacks it: the test
//! fails, saying what to install, unless the run names the need in `AIRBIN_TEST_SKIP`
//! (comma-separated: `docker`, `root`, `containerd`, `arm64`, `memfd-noexec`, a
//! program's name, or `all`). A skipped test records itself under
//! `target/tmp/airbin-skipped/`, and `hack/test.sh` ends with how many were skipped and
//! why: nothing passes silently without running.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// Whether the test may go on: true when `available`; false when the host lacks
/// `need` and the run names it as skipped; otherwise the test fails with `how` (what to
/// install or start).
pub fn needs(test: &str, need: &str, available: bool, how: &str) -> bool {
    if available {
        return true;
    }
    let named = std::env::var("AIRBIN_TEST_SKIP").unwrap_or_default();
    let skipped = named.split(',').map(str::trim).any(|n| n == need || n == "all");
    assert!(
        skipped,
        "{test} needs {need}, which this host lacks: {how}; or name it to skip the tests that need it: AIRBIN_TEST_SKIP={need}"
    );
    record(test, need);
    false
}

/// The directory skipped tests record themselves in, which `hack/test.sh` counts.
pub fn skipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("airbin-skipped")
}

fn record(test: &str, need: &str) {
    let dir = skipped_dir();
    let _ = fs::create_dir_all(&dir);
    let name: String = test.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    let _ = fs::write(dir.join(format!("{name}.{}", std::process::id())), format!("{test}: needs {need}\n"));
    println!("SKIPPED {test}: needs {need} (AIRBIN_TEST_SKIP names it)");
}

/// Whether `program` is on this host.
pub fn require(program: &str, test: &str) -> bool {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().is_ok_and(|o| o.status.success());
    needs(test, program, found, &format!("{program} is not installed (bash hack/setup-host.sh installs what the suite needs)"))
}

/// Whether a Docker Engine answers (`hack/test.sh` starts an isolated one).
pub fn docker_ready(test: &str) -> bool {
    let answers = Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]).output().is_ok_and(|o| o.status.success());
    let how = format!(
        "no Docker Engine answers (DOCKER_HOST={:?}); run the suite with bash hack/test.sh, which starts one",
        std::env::var("DOCKER_HOST").unwrap_or_default()
    );
    needs(test, "docker", answers, &how)
}

/// Whether this test runs as root (to run as other users, mount, make network namespaces).
pub fn root(test: &str) -> bool {
    needs(test, "root", nix::unistd::geteuid().is_root(), "run the suite as root (bash hack/test.sh)")
}
