//! Helpers of the runtime's unit tests: a small real bundle, written with the format
//! crate's writer, to prepare and plan steps against.

use std::path::Path;

use airbin_format::{BuildFacts, Bundle, BundleMeta, BundleWriter, InstallRules, Step};

/// A bundle with no members and `steps` (JSON, as the index holds them), opened.
pub(crate) fn bundle_with_steps(dir: &Path, steps: &str) -> Bundle {
    let path = dir.join("test.bin");
    let out = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    let meta = BundleMeta {
        name: "unit".into(),
        version: "1.0".into(),
        arch: airbin_format::arch::native().into(),
        description: String::new(),
        hotfix_of: None,
    };
    let writer = BundleWriter::new(out, b"stub", &meta, "test").unwrap();
    let steps: Vec<Step> = serde_json::from_str(steps).unwrap();
    let facts =
        BuildFacts { builder_version: "test".into(), built_at: String::new(), build_host: String::new(), delta_of: None, delta_for: None };
    writer.finish(meta, facts, InstallRules { steps, ..InstallRules::default() }, None).unwrap();
    Bundle::open(&path).unwrap()
}
