//! The install's parameters, resolved once before step 1: each from `--set`, else the
//! config (the answers file), else its default, else (on a terminal, without `--yes`)
//! asked for. Every value is checked against its declaration, and every bad or missing
//! one is listed in one message. The values land in the config under their keys, so
//! steps take them as `${config.KEY}` like any other answer.

use std::io::{BufRead, Write};

use serde::Serialize;

use super::config::ProductConfig;
use airbin_format::error::{Error, Result};
use airbin_format::{params::MASK, ParamType, Parameter};

/// Where a value came from, as `plan` shows it.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum From {
    Set,
    Config,
    Default,
    Prompt,
    /// The value an earlier run used (given then with `--set`, at a prompt or by a config).
    Remembered,
    /// Optional, with no default, and not given.
    Unset,
}

impl From {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            From::Set => "--set",
            From::Config => "config",
            From::Default => "default",
            From::Prompt => "prompt",
            From::Remembered => "remembered",
            From::Unset => "not set",
        }
    }
}

/// A parameter with its value; `value` is masked in every form that is shown.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Resolved {
    pub(crate) name: String,
    pub(crate) key: String,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    /// The value as shown: masked for a secret.
    pub(crate) value: String,
    pub(crate) from: From,
    pub(crate) secret: bool,
    /// The last install's value when this one differs from it (masked for a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) was: Option<String>,
    #[serde(skip)]
    pub(crate) actual: String,
}

/// `--set KEY=VALUE`, as typed.
pub(crate) fn parse_set(text: &str) -> Result<(String, String)> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        Error::usage(format!(
            "--set {}: give KEY=VALUE, such as --set registry_address=10.0.0.5:5000",
            airbin_format::rules::printable(text, 80)
        ))
    })?;
    Ok((key.trim().to_string(), value.to_string()))
}

/// Asks for a value on the terminal; `None` when there is no terminal to ask on.
pub(crate) trait Prompter {
    fn ask(&self, param: &Parameter, problem: Option<&str>) -> Option<String>;
}

/// Where a parameter's value may come from besides the config, and what to say when
/// one is wrong.
pub(crate) struct Sources<'a> {
    /// The `--set` pairs (by parameter name or by its config key).
    pub(crate) sets: &'a [(String, String)],
    /// Values asked for on the terminal already, by parameter name.
    pub(crate) answered: &'a [(String, String)],
    /// The value an earlier run used, by config key.
    pub(crate) remembered: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) prompter: Option<&'a dyn Prompter>,
    /// Where the values go, as the message names it ("/etc/p/config").
    pub(crate) config_shown: String,
    /// Problems found before (a `--set` that names nothing): one message says them all.
    pub(crate) problems: Vec<String>,
}

/// Whether a `--set` key names a parameter (by its name or config key).
pub(crate) fn declares<'a>(params: &'a [Parameter], key: &str) -> Option<&'a Parameter> {
    params.iter().find(|p| p.name == key || p.key() == key)
}

/// Resolves every parameter into `config`: `--set`, else the config, else the value an
/// earlier run used, else the default, else (on a terminal) asked for. Every bad or
/// missing value in one message (`--set` keys that name no parameter are the caller's).
pub(crate) fn resolve(params: &[Parameter], config: &mut ProductConfig, sources: &Sources) -> Result<Vec<Resolved>> {
    let mut problems = sources.problems.clone();
    let mut resolved = Vec::new();
    for param in params {
        let given = sources.sets.iter().rev().find(|(k, _)| *k == param.name || k == param.key()).map(|(_, v)| (v.clone(), From::Set));
        let from_config = || config.scalar(param.key()).filter(|v| !v.trim().is_empty()).map(|v| (v, From::Config));
        let remembered = || (sources.remembered)(param.key()).filter(|v| !v.trim().is_empty()).map(|v| (v, From::Remembered));
        let candidate = given.or_else(from_config).or_else(remembered).or_else(|| param.default.clone().map(|v| (v, From::Default)));
        let (value, from) = match candidate {
            Some((value, from)) => match param.check(&value) {
                Ok(value) => (value, from),
                Err(why) => {
                    problems.push(format!("{} = {} (from {}) {why}", param.name, quote(param, &value), from.as_str()));
                    continue;
                }
            },
            None if param.required => match sources
                .answered
                .iter()
                .find(|(n, _)| *n == param.name)
                .map(|(_, v)| v.clone())
                .or_else(|| sources.prompter.and_then(|p| ask_until_valid(p, param)))
            {
                Some(value) => (value, From::Prompt),
                None => {
                    problems.push(format!("{} ({}) is required and not set", param.name, param.kind.as_str()));
                    continue;
                }
            },
            None => (String::new(), From::Unset),
        };
        resolved.push(Resolved {
            name: param.name.clone(),
            key: param.key().to_string(),
            kind: param.kind.as_str(),
            value: if param.secret && !value.is_empty() { MASK.to_string() } else { value.clone() },
            from,
            secret: param.secret,
            was: None,
            actual: value,
        });
    }
    if !problems.is_empty() {
        return Err(Error::usage(format!(
            "{}: {}; set {} in {} or with --set NAME=VALUE, and run again ({} plan lists the parameters)",
            if problems.len() == 1 { "a parameter is wrong" } else { "parameters are wrong" },
            problems.join("; "),
            if problems.len() == 1 { "it" } else { "them" },
            sources.config_shown,
            crate::shell::bundle(),
        )));
    }
    for (param, value) in params.iter().zip(&resolved) {
        if value.from != From::Config {
            config.set(param.key(), typed(param.kind, &value.actual));
        } else {
            config.set_if_changed(param.key(), typed(param.kind, &value.actual));
        }
        if param.secret {
            config.mark_secret(param.key());
        }
    }
    Ok(resolved)
}

fn quote(param: &Parameter, value: &str) -> String {
    if param.secret {
        MASK.to_string()
    } else {
        format!("'{}'", airbin_format::rules::printable(value, 120))
    }
}

/// The value as YAML types it, so that a product reading the staged config sees `5000`
/// and `true`, not strings.
fn typed(kind: ParamType, value: &str) -> serde_yaml::Value {
    match kind {
        ParamType::Int => value.parse::<i64>().map_or_else(|_| value.into(), Into::into),
        ParamType::Bool => (value == "true").into(),
        _ => value.into(),
    }
}

pub(crate) fn ask_until_valid(prompter: &dyn Prompter, param: &Parameter) -> Option<String> {
    let mut problem = None;
    for _ in 0..3 {
        let answer = prompter.ask(param, problem.as_deref())?;
        match param.check(&answer) {
            Ok(value) => return Some(value),
            Err(why) => problem = Some(format!("{} {why}", quote(param, &answer))),
        }
    }
    None
}

/// Asks on `/dev/tty`: the question on it, the answer from it, a secret without echo.
pub(crate) struct Terminal;

impl Prompter for Terminal {
    fn ask(&self, param: &Parameter, problem: Option<&str>) -> Option<String> {
        use nix::sys::termios::{self, LocalFlags, SetArg};
        let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok()?;
        let mut out = &tty;
        if let Some(problem) = problem {
            let _ = writeln!(out, "  {problem}; try again");
        }
        let about = if param.description.is_empty() { String::new() } else { format!(" ({})", param.description) };
        let choices = if param.kind == ParamType::Enum { format!(": {}", param.values.join(", ")) } else { String::new() };
        let _ = write!(out, "{}{about} [{}{choices}]: ", param.name, param.kind.as_str());
        let _ = out.flush();
        let saved = param.secret.then(|| termios::tcgetattr(&tty).ok()).flatten();
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = termios::tcsetattr(&tty, SetArg::TCSANOW, &quiet);
        }
        let mut line = String::new();
        let read = std::io::BufReader::new(&tty).read_line(&mut line);
        if let Some(saved) = &saved {
            let _ = termios::tcsetattr(&tty, SetArg::TCSANOW, saved);
            let _ = writeln!(out);
        }
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::config::{parse, Source};
    use std::path::PathBuf;

    fn params(yaml: &str) -> Vec<Parameter> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn config(text: &str) -> ProductConfig {
        parse(PathBuf::from("/etc/p/config"), Source::Flag, PathBuf::from("/etc/p"), text.to_string()).unwrap()
    }

    struct Answers(std::cell::RefCell<Vec<&'static str>>);
    impl Prompter for Answers {
        fn ask(&self, _: &Parameter, _: Option<&str>) -> Option<String> {
            self.0.borrow_mut().pop().map(str::to_string)
        }
    }

    fn sources<'a>(sets: &'a [(String, String)], prompter: Option<&'a dyn Prompter>) -> Sources<'a> {
        Sources { sets, answered: &[], remembered: &|_| None, prompter, config_shown: "/etc/p/config".into(), problems: Vec::new() }
    }

    #[test]
    fn set_beats_config_beats_remembered_beats_default_and_each_is_named() {
        let p = params("- {name: port, type: int, key: registry.port, default: 5000}\n- {name: host, type: string, default: a}\n- {name: mode, type: enum, values: [x, y], default: x}\n");
        let mut c = config("registry:\n  port: 6000\nhost: b\n");
        let r = resolve(&p, &mut c, &sources(&[("mode".into(), "y".into())], None)).unwrap();
        let got: Vec<(&str, &str, From)> = r.iter().map(|r| (r.name.as_str(), r.value.as_str(), r.from)).collect();
        assert_eq!(got, [("port", "6000", From::Config), ("host", "b", From::Config), ("mode", "y", From::Set)]);
        assert_eq!(c.text("mode", "x").unwrap(), "y");
        let mut c = config("");
        let remembered = |k: &str| (k == "registry.port").then(|| "7000".to_string());
        let from_earlier = Sources { remembered: &remembered, ..sources(&[], None) };
        let r = resolve(&p, &mut c, &from_earlier).unwrap();
        assert_eq!((r[0].value.as_str(), r[0].from, r[1].from), ("7000", From::Remembered, From::Default));
    }

    #[test]
    fn every_bad_or_missing_value_and_unknown_set_is_in_one_message() {
        let p = params("- {name: port, type: int}\n- {name: pw, type: string, secret: true, required: true, pattern: '.{8,}'}\n- {name: ip, type: ip, required: true}\n");
        let mut c = config("port: five\npw: short\n");
        let e = resolve(&p, &mut c, &sources(&[], None)).unwrap_err();
        for part in [
            "port = 'five' (from config) is not an integer",
            "pw = ******** (from config) does not match",
            "ip (ip) is required and not set",
        ] {
            assert!(e.message.contains(part), "{part}: {}", e.message);
        }
        assert!(!e.message.contains("short"), "{}", e.message);
        assert_eq!(e.class, airbin_format::error::ExitClass::Usage);
    }

    #[test]
    fn a_missing_required_value_is_asked_for_until_it_is_valid() {
        let p = params("- {name: ip, type: ip, required: true}\n");
        let mut c = config("");
        let answers = Answers(std::cell::RefCell::new(vec!["10.0.0.5", "not-an-ip"]));
        let r = resolve(&p, &mut c, &sources(&[], Some(&answers))).unwrap();
        assert_eq!((r[0].value.as_str(), r[0].from), ("10.0.0.5", From::Prompt));
    }

    #[test]
    fn secrets_are_masked_and_marked() {
        let p = params("- {name: pw, type: string, secret: true, key: db.pass}\n");
        let mut c = config("db:\n  pass: hunter2\n");
        let r = resolve(&p, &mut c, &sources(&[], None)).unwrap();
        assert_eq!(r[0].value, MASK);
        assert!(!c.masked_text().contains("hunter2"));
    }
}
