//! The product's config file, where install steps take host-specific values from (the
//! registry root, the registry address): `--config FILE`, or `config` beside the bundle.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub struct ProductConfig {
    pub path: PathBuf,
    values: serde_yaml::Value,
}

/// `--config FILE` if given, else `config` beside the bundle.
pub fn locate(explicit: Option<&Path>, bundle: &Path) -> PathBuf {
    explicit.map_or_else(|| bundle.parent().unwrap_or(Path::new(".")).join("config"), Path::to_path_buf)
}

/// Loads the YAML config; `needed_by` says which step wants it, for the error.
pub fn load(path: &Path, needed_by: &str) -> Result<ProductConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!(
            "{needed_by} takes values from the product's config, but {} cannot be read ({e}); copy config.sample to config beside the bundle, edit it, or give --config FILE",
            path.display()
        ))
    })?;
    let values = serde_yaml::from_str(&text).map_err(|e| Error::usage(format!("{}: {e}; fix the config and run again", path.display())))?;
    Ok(ProductConfig { path: path.to_path_buf(), values })
}

impl ProductConfig {
    /// The text value at `key` (dotted for nested mappings: `registry.root`).
    pub fn text(&self, key: &str, needed_by: &str) -> Result<String> {
        let mut value = &self.values;
        for part in key.split('.') {
            value = value.get(part).ok_or_else(|| {
                Error::usage(format!("{}: no key `{key}`, which {needed_by} needs; add it (see config.sample)", self.path.display()))
            })?;
        }
        match value {
            serde_yaml::Value::String(text) => Ok(text.clone()),
            serde_yaml::Value::Number(number) => Ok(number.to_string()),
            _ => Err(Error::usage(format!("{}: `{key}` must be a single value, for {needed_by}", self.path.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ProductConfig {
        ProductConfig { path: PathBuf::from("config"), values: serde_yaml::from_str(text).unwrap() }
    }

    #[test]
    fn reads_plain_and_nested_keys() {
        let c = config("registry_root: /srv/registry\nregistry:\n  address: 127.0.0.1:5000\n  port: 5000\n");
        assert_eq!(c.text("registry_root", "x").unwrap(), "/srv/registry");
        assert_eq!(c.text("registry.address", "x").unwrap(), "127.0.0.1:5000");
        assert_eq!(c.text("registry.port", "x").unwrap(), "5000");
    }

    #[test]
    fn a_missing_key_is_named_with_the_file() {
        let err = config("a: 1\n").text("registry_root", "restore-registry").unwrap_err();
        assert_eq!(err.message, "config: no key `registry_root`, which restore-registry needs; add it (see config.sample)");
        assert!(config("registry: [1, 2]\n").text("registry", "x").is_err());
    }
}
