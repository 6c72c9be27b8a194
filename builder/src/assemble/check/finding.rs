//! One thing wrong with a spec (or worth a second look), as one line: the file, the
//! line, the field, the problem and the fix.

use std::path::Path;

use serde::Serialize;

use airbin_format::error::Error;

use super::located::Located;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    Error,
    Warning,
}

/// One thing wrong with a spec, or worth a second look.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Finding {
    pub(crate) level: Level,
    /// The field, as `steps[1].run[0]` (empty for the file as a whole).
    pub(crate) field: String,
    pub(crate) line: Option<usize>,
    /// What is wrong, then what to do: `...; did you mean ...?`.
    pub(crate) message: String,
    /// The whole line, file and all, when the check wrote it itself.
    #[serde(skip)]
    pub(crate) rendered: Option<String>,
}

impl Finding {
    pub(crate) fn error(field: impl Into<String>, problem: impl std::fmt::Display, fix: impl std::fmt::Display) -> Finding {
        Finding { level: Level::Error, field: field.into(), line: None, message: format!("{problem}; {fix}"), rendered: None }
    }

    pub(crate) fn warning(field: impl Into<String>, problem: impl std::fmt::Display, fix: impl std::fmt::Display) -> Finding {
        Finding { level: Level::Warning, ..Finding::error(field, problem, fix) }
    }

    /// An error a check already wrote as one whole line.
    pub(crate) fn from_error(error: &Error) -> Finding {
        Finding {
            level: Level::Error,
            field: String::new(),
            line: None,
            message: error.message.clone(),
            rendered: Some(error.message.clone()),
        }
    }

    /// The line where the field is.
    pub(crate) fn at(mut self, located: &Located) -> Finding {
        self.line = self.line.or_else(|| located.line_of(&self.field));
        self
    }

    /// `FILE:LINE: FIELD: problem; fix`.
    pub(crate) fn render(&self, file: &Path) -> String {
        if let Some(text) = &self.rendered {
            return text.clone();
        }
        let line = self.line.map(|l| format!(":{l}")).unwrap_or_default();
        match self.field.is_empty() {
            true => format!("{}{line}: {}", file.display(), self.message),
            false => format!("{}{line}: {}: {}", file.display(), self.field, self.message),
        }
    }

    /// As the error `airbin build` stops with.
    pub(crate) fn into_error(self, file: &Path) -> Error {
        Error::usage(self.render(file))
    }
}

/// The name of `names` nearest `word`, when it is near enough to be a typo of it.
pub(crate) fn closest<'a>(word: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(|name| (strsim::damerau_levenshtein(word, name), name))
        .filter(|(distance, name)| *distance > 0 && *distance <= 2.max(name.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}
