//! The product's config as a step reads it: `${config.KEY}` in a step's values, and
//! the keys a step takes whole (a registry's root, its address). `install` resolves the
//! config once, with every other source of values, and hands it in as this trait: the
//! steps never reach into how it was found.

use std::path::PathBuf;

use airbin_format::error::{Error, Result};

pub(crate) trait ConfigValues: Sync {
    /// The value at `key` as text; `needed_by` names who asks, for the error.
    fn text(&self, key: &str, needed_by: &str) -> Result<String>;
    /// The value at `key` as an absolute path (a relative one is the config file's).
    fn path_value(&self, key: &str, needed_by: &str) -> Result<PathBuf>;
    /// `expanded` (a value a placeholder filled) as an absolute path.
    fn resolve_path(&self, expanded: &str) -> PathBuf;
}

/// Replaces each `${config.KEY}` in `text` with the config's value.
pub(crate) fn expand(text: &str, config: Option<&dyn ConfigValues>, needed_by: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${config.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${config.".len()..];
        let end = after.find('}').ok_or_else(|| Error::integrity(format!("an unterminated ${{config. placeholder in {needed_by}")))?;
        let key = &after[..end];
        let config =
            config.ok_or_else(|| Error::usage(format!("{needed_by} takes `{key}` from the product's config, and there is none")))?;
        out.push_str(&config.text(key, needed_by)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The config keys `text` names in `${config.KEY}` placeholders.
pub(crate) use airbin_format::validate::config_placeholders as referenced_keys;
