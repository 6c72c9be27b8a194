//! Where each field of a spec is: its path, as serde and the validator name it
//! (`steps[1].run[0]`, `members[0].path`), to the line it stands on, so that every
//! error can say the line as well as the field.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

#[derive(Debug, Default)]
pub(crate) struct Located {
    lines: HashMap<String, usize>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Walk {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl Walk {
    /// The path of the node starting now, in the container on top of the stack.
    fn child_path(&self) -> Option<String> {
        match self.stack.last()? {
            Frame::Map { path, key: Some(key) } => Some(join(path, key)),
            Frame::Map { key: None, .. } => None,
            Frame::Seq { path, index } => Some(format!("{path}[{index}]")),
        }
    }

    /// The container on top has taken one whole value.
    fn advance(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            None => {}
        }
    }

    fn record(&mut self, path: &str, mark: Marker) {
        self.lines.entry(path.to_string()).or_insert(mark.line());
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Walk {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => match self.stack.last_mut() {
                // A key: the field starts on its line.
                Some(Frame::Map { path, key: key @ None }) => {
                    let at = join(path, &text);
                    *key = Some(text);
                    self.record(&at, mark);
                }
                _ => {
                    if let Some(at) = self.child_path() {
                        self.record(&at, mark);
                    }
                    self.advance();
                }
            },
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = self.child_path().unwrap_or_default();
                self.record(&path, mark);
                let frame = match event {
                    Event::MappingStart(..) => Frame::Map { path, key: None },
                    _ => Frame::Seq { path, index: 0 },
                };
                self.stack.push(frame);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.advance();
            }
            Event::Alias(_) => self.advance(),
            _ => {}
        }
    }
}

impl Located {
    /// Reads where every field of `text` is; a document that is not YAML gives its
    /// error's line and message.
    pub(crate) fn read(text: &str) -> Result<Located, (usize, String)> {
        let mut walk = Walk::default();
        let mut parser = Parser::new_from_str(text);
        parser.load(&mut walk, false).map_err(|e| (e.marker().line(), e.info().to_string()))?;
        Ok(Located { lines: walk.lines })
    }

    /// The line of `path`, or of the nearest field that holds it.
    pub(crate) fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path.trim_start_matches('.').to_string();
        loop {
            if let Some(line) = self.lines.get(&path) {
                return Some(*line);
            }
            let cut = path.rfind(['.', '['])?;
            path.truncate(cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_its_line() {
        let text = "name: x\nmembers:\n  - name: a\n    path: a.tar\nsteps:\n  - kind: command\n    run: [a, b]\n    timout: 3\n";
        let located = Located::read(text).unwrap();
        assert_eq!(located.line_of("name"), Some(1));
        assert_eq!(located.line_of("members[0].path"), Some(4));
        assert_eq!(located.line_of("steps[0].timout"), Some(8));
        assert_eq!(located.line_of("steps[0].run[1]"), Some(7));
        assert_eq!(located.line_of("steps[0].nothing.deeper"), Some(6), "the nearest field that holds it");
        let (line, _) = Located::read("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(line >= 1);
    }
}
