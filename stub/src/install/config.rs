//! The product's config: the answers file a field engineer fills in from the bundle's
//! sample. It keeps the product's own format, YAML (dotted keys reach into nested
//! mappings) or shell-style `KEY="value"` lines, and is read and checked once, before
//! step 1: every key the spec requires or a step takes a value from must be set.

use std::path::{Path, PathBuf};

use airbin_format::error::{Error, Result};

/// Where the config came from, for messages and the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// `--config FILE`.
    Flag,
    /// `config` beside the `.bin`.
    BesideBundle,
    /// The bundle's own sample, taken as it is with `--use-sample`.
    Sample,
    /// No file: the values given with `--set`, defaults, prompts and the answers
    /// remembered from the last run.
    NoFile,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "--config",
            Source::BesideBundle => "beside the bundle",
            Source::Sample => "the bundle's sample (--use-sample)",
            Source::NoFile => "no file: --set, defaults, prompts and remembered answers",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Yaml,
    Shell,
}

pub(crate) struct ProductConfig {
    /// The file as the engineer named it (or `<bundle>:<sample member>`).
    pub(crate) path: PathBuf,
    pub(crate) source: Source,
    /// What relative paths in the config are relative to.
    base: PathBuf,
    /// The file's bytes, copied as they are into the staging directory (unless a
    /// parameter's value changed them: `staged_text`).
    pub(crate) text: String,
    values: serde_yaml::Value,
    /// Values set from `--set`, defaults or prompts: the staged copy is written anew.
    changed: bool,
    /// Keys the bundle declares secret, besides those that look it (`is_secret_key`).
    secret_keys: Vec<String>,
}

/// The file `--config` names, else `config` beside the bundle if it is there.
pub(crate) fn locate(explicit: Option<&Path>, bundle: &Path) -> Option<(PathBuf, Source)> {
    if let Some(path) = explicit {
        return Some((path.to_path_buf(), Source::Flag));
    }
    let beside = beside_bundle(bundle);
    beside.exists().then_some((beside, Source::BesideBundle))
}

/// `config` in the bundle's directory.
pub(crate) fn beside_bundle(bundle: &Path) -> PathBuf {
    match bundle.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("config"),
        _ => PathBuf::from("config"),
    }
}

/// Reads and parses the config file at `path`.
pub(crate) fn load(path: &Path, source: Source) -> Result<ProductConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!(
            "the product's config {} cannot be read ({e}); fix the path given with --config, or put the config beside the bundle as `config`",
            path.display()
        ))
    })?;
    let absolute = crate::fsx::absolute(path);
    let base = absolute.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    parse(path.to_path_buf(), source, base, text)
}

/// A config from text already in memory (the bundle's sample).
pub(crate) fn parse(path: PathBuf, source: Source, base: PathBuf, text: String) -> Result<ProductConfig> {
    let (values, _) = parse_text(&text).map_err(|why| Error::usage(format!("{}: {why}; fix the config and run again", path.display())))?;
    Ok(ProductConfig { path, source, base, text, values, changed: false, secret_keys: Vec::new() })
}

/// No config file: the values come from `--set`, defaults, prompts and remembered
/// answers, and are staged as `config` like any other.
pub(crate) fn empty(bundle: &Path) -> ProductConfig {
    let path = beside_bundle(bundle);
    let base = crate::fsx::absolute(&path).parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    ProductConfig {
        path,
        source: Source::NoFile,
        base,
        text: String::new(),
        values: serde_yaml::Value::Mapping(Default::default()),
        changed: false,
        secret_keys: Vec::new(),
    }
}

fn parse_text(text: &str) -> std::result::Result<(serde_yaml::Value, Style), String> {
    let meaningful = || text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    if meaningful().next().is_none() {
        return Ok((serde_yaml::Value::Mapping(Default::default()), Style::Yaml));
    }
    if meaningful().all(|line| shell_assignment(line).is_some()) {
        let mut map = serde_yaml::Mapping::new();
        for line in meaningful() {
            let (key, value) = shell_assignment(line).expect("checked above");
            map.insert(key.into(), parse_shell_value(value)?.into());
        }
        return Ok((serde_yaml::Value::Mapping(map), Style::Shell));
    }
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(value @ serde_yaml::Value::Mapping(_)) => Ok((value, Style::Yaml)),
        Ok(_) => Err("it is neither a YAML mapping (key: value) nor shell-style KEY=\"value\" lines".into()),
        Err(e) => Err(format!("not valid YAML ({e})")),
    }
}

/// `KEY=value` or `export KEY=value`: the key and the raw value.
fn shell_assignment(line: &str) -> Option<(&str, &str)> {
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (key, value) = line.split_once('=')?;
    let ok = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some((key, value))
}

/// A shell value: "double quoted" (with \" \\ \$ \` escapes), 'single quoted', or bare
/// up to a comment. Nothing is expanded: the config is data, not a script.
fn parse_shell_value(raw: &str) -> std::result::Result<String, String> {
    let raw = raw.trim();
    if let Some(rest) = raw.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err(format!("unterminated double quote in {raw}"));
    }
    if let Some(rest) = raw.strip_prefix('\'') {
        return rest.split_once('\'').map(|(v, _)| v.to_string()).ok_or_else(|| format!("unterminated single quote in {raw}"));
    }
    Ok(raw.split(" #").next().unwrap_or("").trim().to_string())
}

impl ProductConfig {
    /// The value at a dotted key, as parsed.
    pub(crate) fn lookup(&self, key: &str) -> Option<&serde_yaml::Value> {
        let mut value = &self.values;
        for part in key.split('.') {
            value = value.get(part)?;
        }
        Some(value)
    }

    /// Sets `key` (dotted: nested mappings are made as needed) to `value`.
    pub(crate) fn set(&mut self, key: &str, value: serde_yaml::Value) {
        let mut at = &mut self.values;
        for part in key.split('.') {
            if !at.is_mapping() {
                *at = serde_yaml::Value::Mapping(Default::default());
            }
            let map = at.as_mapping_mut().expect("a mapping");
            at = map.entry(part.into()).or_insert(serde_yaml::Value::Null);
        }
        *at = value;
        self.changed = true;
    }

    /// Sets `key` to the checked spelling of a value the file holds, when it differs.
    pub(crate) fn set_if_changed(&mut self, key: &str, value: serde_yaml::Value) {
        if self.scalar(key) != scalar_of_value(&value) {
            self.set(key, value);
        }
    }

    pub(crate) fn mark_secret(&mut self, key: &str) {
        self.secret_keys.push(key.to_string());
    }

    /// Whether the value at `key` is never shown.
    pub(crate) fn is_secret(&self, key: &str) -> bool {
        is_secret_key(key) || self.secret_keys.iter().any(|k| k == key)
    }

    /// What is staged as `config`: the file as it is, or, once a parameter set a value
    /// the file lacks, the values written anew in the file's own style.
    pub(crate) fn staged_text(&self) -> String {
        if !self.changed {
            return self.text.clone();
        }
        let style = parse_text(&self.text).map_or(Style::Yaml, |(_, style)| style);
        match style {
            Style::Shell => {
                let mut lines: Vec<String> = self.text.lines().map(str::to_string).collect();
                for (key, value) in self.flat() {
                    let line =
                        format!("{key}=\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`"));
                    match lines.iter().position(|l| shell_assignment(l.trim()).is_some_and(|(k, _)| k == key)) {
                        Some(at) => lines[at] = line,
                        None => lines.push(line),
                    }
                }
                lines.join("\n") + "\n"
            }
            Style::Yaml => serde_yaml::to_string(&self.values).unwrap_or_default(),
        }
    }

    /// The text of a single value, or None when the key is missing or not a scalar.
    pub(crate) fn scalar(&self, key: &str) -> Option<String> {
        scalar_of_value(self.lookup(key)?)
    }

    /// The text value at `key` (dotted for nested mappings: `registry.root`).
    pub(crate) fn text(&self, key: &str, needed_by: &str) -> Result<String> {
        match self.lookup(key) {
            None => Err(Error::usage(format!(
                "{}: no key `{key}`, which {needed_by} needs; add it (see the bundle's config sample)",
                self.path.display()
            ))),
            Some(_) => self
                .scalar(key)
                .ok_or_else(|| Error::usage(format!("{}: `{key}` must be a single value, for {needed_by}", self.path.display()))),
        }
    }

    /// The value at `key` as the plan shows it: a scalar, or a list joined by spaces.
    pub(crate) fn shown(&self, key: &str) -> Option<String> {
        let mut out = Vec::new();
        flatten(key, self.lookup(key)?, &mut out);
        Some(out.into_iter().map(|(_, v)| v).collect::<Vec<_>>().join(" "))
    }

    /// A list value: a YAML sequence of scalars, or one value of words separated by
    /// spaces or commas (`NODES="10.0.0.1 10.0.0.2"`). None when the key is missing.
    pub(crate) fn list(&self, key: &str) -> Option<Vec<String>> {
        let words = |text: &str| text.split([' ', ',', '\t']).filter(|w| !w.is_empty()).map(str::to_string).collect::<Vec<_>>();
        match self.lookup(key)? {
            serde_yaml::Value::Sequence(items) => {
                Some(items.iter().flat_map(|item| self.scalar_of(item).map(|t| words(&t)).unwrap_or_default()).collect())
            }
            serde_yaml::Value::Null => Some(Vec::new()),
            other => self.scalar_of(other).map(|t| words(&t)),
        }
    }

    fn scalar_of(&self, value: &serde_yaml::Value) -> Option<String> {
        match value {
            serde_yaml::Value::String(text) => Some(text.clone()),
            serde_yaml::Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }

    /// A path value: relative paths are relative to the config's own directory.
    pub(crate) fn path_value(&self, key: &str, needed_by: &str) -> Result<PathBuf> {
        Ok(self.resolve_path(&self.text(key, needed_by)?))
    }

    pub(crate) fn resolve_path(&self, text: &str) -> PathBuf {
        let path = Path::new(text);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    /// Of `keys`, those missing or empty.
    pub(crate) fn missing<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        keys.into_iter().filter(|key| !self.has(key)).collect()
    }

    /// Whether `key` holds a value (not missing, not empty).
    pub(crate) fn has(&self, key: &str) -> bool {
        match self.lookup(key) {
            None | Some(serde_yaml::Value::Null) => false,
            Some(serde_yaml::Value::String(s)) => !s.trim().is_empty(),
            Some(serde_yaml::Value::Sequence(s)) => !s.is_empty(),
            Some(serde_yaml::Value::Mapping(m)) => !m.is_empty(),
            Some(_) => true,
        }
    }

    /// Every value as (dotted key, text): scalars as they are, lists joined by spaces.
    pub(crate) fn flat(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        flatten("", &self.values, &mut out);
        out
    }

    /// The config with the values of secret keys masked, for `support`: written anew
    /// from the parsed values (in the file's own style), so that no way of writing a
    /// value (a flow mapping, a block scalar, a quoted key) keeps it from the mask.
    pub(crate) fn masked_text(&self) -> String {
        let (_, style) = parse_text(&self.text).unwrap_or((serde_yaml::Value::Null, Style::Yaml));
        match style {
            Style::Shell => {
                let lines: Vec<String> = self
                    .flat()
                    .into_iter()
                    .map(|(key, value)| if self.is_secret(&key) { format!("{key}= ********") } else { format!("{key}=\"{value}\"") })
                    .collect();
                lines.join("\n")
            }
            Style::Yaml => {
                let mut masked = self.values.clone();
                mask_secrets(&mut masked, "", &|key| self.is_secret(key));
                serde_yaml::to_string(&masked).unwrap_or_default().trim_end().to_string()
            }
        }
    }
}

/// Replaces the value of every key `secret` names (dotted) in `value` with the mask.
fn mask_secrets(value: &mut serde_yaml::Value, prefix: &str, secret: &dyn Fn(&str) -> bool) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (key, child) in map.iter_mut() {
                let name = scalar_of_value(key).unwrap_or_default();
                let dotted = if prefix.is_empty() { name } else { format!("{prefix}.{name}") };
                if secret(&dotted) || dotted.rsplit('.').next().is_some_and(is_secret_key) {
                    *child = serde_yaml::Value::String(airbin_format::params::MASK.into());
                } else {
                    mask_secrets(child, &dotted, secret);
                }
            }
        }
        serde_yaml::Value::Tagged(tagged) => mask_secrets(&mut tagged.value, prefix, secret),
        _ => {}
    }
}

fn scalar_of_value(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flatten(prefix: &str, value: &serde_yaml::Value, out: &mut Vec<(String, String)>) {
    let scalar = scalar_of_value;
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (key, child) in map {
                let Some(key) = scalar(key) else { continue };
                let dotted = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
                flatten(&dotted, child, out);
            }
        }
        serde_yaml::Value::Sequence(items) => {
            let texts: Vec<String> = items.iter().filter_map(scalar).collect();
            out.push((prefix.to_string(), texts.join(" ")));
        }
        serde_yaml::Value::Tagged(tagged) => flatten(prefix, &tagged.value, out),
        other => out.push((prefix.to_string(), scalar(other).unwrap_or_default())),
    }
}

pub(crate) use airbin_format::rules::is_secret_key;

impl crate::steps::ConfigValues for ProductConfig {
    fn text(&self, key: &str, needed_by: &str) -> Result<String> {
        ProductConfig::text(self, key, needed_by)
    }
    fn path_value(&self, key: &str, needed_by: &str) -> Result<PathBuf> {
        ProductConfig::path_value(self, key, needed_by)
    }
    fn resolve_path(&self, expanded: &str) -> PathBuf {
        ProductConfig::resolve_path(self, expanded)
    }
}

/// `AIRBIN_CONFIG_` and `registry.address` → `AIRBIN_CONFIG_REGISTRY_ADDRESS`.
pub(crate) fn env_name(prefix: &str, key: &str) -> String {
    let mut name = String::from(prefix);
    name.extend(key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }));
    name
}

pub(crate) use crate::steps::values::{expand, referenced_keys};

/// bundle (it is small: capped at 1 MiB).
pub(crate) fn sample_config(bundle: &airbin_format::Bundle, sample: &airbin_format::Member) -> Result<ProductConfig> {
    use std::io::Read;
    let mut text = String::new();
    bundle
        .content_reader(sample)?
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| Error::usage(format!("the bundle's config sample {} is not text ({e})", sample.name)))?;
    let base = bundle.path.parent().map_or_else(|| PathBuf::from("."), crate::fsx::absolute);
    parse(PathBuf::from(format!("{}:{}", bundle.path.display(), sample.name)), Source::Sample, base, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ProductConfig {
        parse(PathBuf::from("/etc/p/config"), Source::Flag, PathBuf::from("/etc/p"), text.to_string()).unwrap()
    }

    #[test]
    fn reads_plain_and_nested_yaml_keys() {
        let c = config("registry_root: /srv/registry\nregistry:\n  address: 127.0.0.1:5000\n  port: 5000\n");
        assert_eq!(c.text("registry_root", "x").unwrap(), "/srv/registry");
        assert_eq!(c.text("registry.address", "x").unwrap(), "127.0.0.1:5000");
        assert_eq!(c.text("registry.port", "x").unwrap(), "5000");
    }

    #[test]
    fn reads_shell_style_lines_without_expanding_them() {
        let c = config("# compass\nCLUSTER=\"demo one\"\nexport ROOT='/srv/$x'\nPORT=5000 # the port\nESC=\"a\\\"b\"\n");
        assert_eq!(c.text("CLUSTER", "x").unwrap(), "demo one");
        assert_eq!(c.text("ROOT", "x").unwrap(), "/srv/$x");
        assert_eq!(c.text("PORT", "x").unwrap(), "5000");
        assert_eq!(c.text("ESC", "x").unwrap(), "a\"b");
    }

    #[test]
    fn a_missing_key_is_named_with_the_file() {
        let err = config("a: 1\n").text("registry_root", "restore-registry").unwrap_err();
        assert!(err.message.starts_with("/etc/p/config: no key `registry_root`, which restore-registry needs"), "{}", err.message);
        assert!(config("registry: [1, 2]\n").text("registry", "x").is_err());
    }

    #[test]
    fn missing_lists_absent_and_empty_keys() {
        let c = config("a: 1\nb: ''\nc: []\nd:\n  e: x\nf:\n");
        assert_eq!(c.missing(["a", "b", "c", "d.e", "d.g", "f", "z"]), ["b", "c", "d.g", "f", "z"]);
    }

    #[test]
    fn relative_paths_resolve_against_the_configs_directory() {
        let c = config("root: data/registry\nabs: /srv/r\n");
        assert_eq!(c.path_value("root", "x").unwrap(), Path::new("/etc/p/data/registry"));
        assert_eq!(c.path_value("abs", "x").unwrap(), Path::new("/srv/r"));
    }

    #[test]
    fn secrets_are_masked_in_both_styles() {
        let c = config("user: admin\nadmin_password: hunter2\napi:\n  token: \"abc\"\n");
        let masked = c.masked_text();
        assert!(!masked.contains("hunter2") && !masked.contains("abc") && masked.contains("user: admin"), "{masked}");
        let c = config("DB_PASSWORD=\"hunter2\"\nHOST=db\n");
        assert_eq!(c.masked_text(), "DB_PASSWORD= ********\nHOST=\"db\"");
        // However a secret is written: a flow mapping, a block scalar, a declared key.
        let mut c = config("db: {password: hunter2, host: a}\nnote: |\n  x\nsite:\n  pin: >-\n    4711\n");
        c.mark_secret("site.pin");
        let masked = c.masked_text();
        assert!(!masked.contains("hunter2") && !masked.contains("4711") && masked.contains("host: a"), "{masked}");
    }

    #[test]
    fn placeholders_expand_and_flat_names_become_env_names() {
        let c = config("registry:\n  address: 127.0.0.1:5000\nnodes: [a, b]\n");
        assert_eq!(expand("http://${config.registry.address}/v2/", Some(&c), "x").unwrap(), "http://127.0.0.1:5000/v2/");
        assert!(expand("${config.nope}", Some(&c), "step x").unwrap_err().message.contains("no key `nope`"));
        assert_eq!(referenced_keys("${config.a}-${config.b.c}"), ["a", "b.c"]);
        assert_eq!(env_name("AIRBIN_CONFIG_", "registry.address"), "AIRBIN_CONFIG_REGISTRY_ADDRESS");
        assert!(c.flat().contains(&("nodes".to_string(), "a b".to_string())));
    }
}
