//! Where each value of a YAML document starts, so that problems found after parsing can
//! still name a line. serde's YAML types keep no positions, so we read the same text once
//! more with a marked event parser.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// How deep lists and mappings may nest. A Machinefile needs six levels or so (Ansible
/// vars a few more); the YAML scanner under serde takes time quadratic in the depth, so a
/// file nested thousands deep would hold `envctl` for minutes before any error.
pub const MAX_DEPTH: usize = 64;

/// Maps a dotted path (`machines.1.ip`) to the 1-based line where its value starts.
#[derive(Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
    too_deep: Option<usize>,
}

impl LineIndex {
    /// Indexes `text`. A document the parser rejects gives an empty index: its syntax
    /// error is reported by the deserializer, with its own position. One nested deeper
    /// than [`MAX_DEPTH`] is read no further: see [`LineIndex::too_deep`].
    pub fn new(text: &str) -> LineIndex {
        let mut index = LineIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let (event, span) = match item {
                Ok(item) => item,
                // The parser counts flow levels in a byte: past 255 it stops with this.
                Err(err) if err.info() == "recursion limit exceeded" => {
                    return LineIndex::too_deep_at(err.marker().line());
                }
                Err(_) => return LineIndex::default(),
            };
            let line = span.start.line();
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Mapping {
                        key: key @ None, ..
                    }) = stack.last_mut()
                    {
                        *key = Some(value.into_owned());
                        continue;
                    }
                    index.record(&stack, line);
                    advance(&mut stack);
                }
                Event::Alias(_) => {
                    index.record(&stack, line);
                    advance(&mut stack);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) if stack.len() == MAX_DEPTH => {
                    return LineIndex::too_deep_at(line);
                }
                Event::MappingStart(..) => {
                    index.record(&stack, line);
                    stack.push(Frame::Mapping { key: None });
                }
                Event::SequenceStart(..) => {
                    index.record(&stack, line);
                    stack.push(Frame::Sequence { next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    advance(&mut stack);
                }
                _ => {}
            }
        }
        index
    }

    fn too_deep_at(line: usize) -> LineIndex {
        LineIndex {
            lines: HashMap::new(),
            too_deep: Some(line),
        }
    }

    /// The line where lists and mappings first nest deeper than [`MAX_DEPTH`], if they do.
    pub fn too_deep(&self) -> Option<usize> {
        self.too_deep
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(path) {
                return Some(*line);
            }
            path = &path[..path.rfind('.')?];
        }
    }

    fn record(&mut self, stack: &[Frame], line: usize) {
        let path = stack
            .iter()
            .filter_map(|frame| match frame {
                Frame::Mapping { key } => key.clone(),
                Frame::Sequence { next } => Some(next.to_string()),
            })
            .collect::<Vec<_>>()
            .join(".");
        self.lines.entry(path).or_insert(line);
    }
}

enum Frame {
    /// `key` is the key whose value comes next, once it has been read.
    Mapping {
        key: Option<String>,
    },
    Sequence {
        next: usize,
    },
}

/// A value is complete: the enclosing mapping waits for a new key, the list moves on.
fn advance(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Mapping { key }) => *key = None,
        Some(Frame::Sequence { next }) => *next += 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::LineIndex;

    const DOC: &str = "\
name: demo
network:
  subnet: 10.0.0.0/24
machines:
  - name: a
    ip: 10.0.0.2
  - name: b
    groups: [web, db]
    ip: 10.0.0.3
  - {name: c, ip: 10.0.0.4}
";

    #[test]
    fn paths_map_to_the_line_of_their_value() {
        let index = LineIndex::new(DOC);
        let cases = [
            ("name", Some(1)),
            ("network.subnet", Some(3)),
            ("machines.0.name", Some(5)),
            ("machines.0.ip", Some(6)),
            ("machines.1.ip", Some(9)),
            ("machines.1.groups.1", Some(8)),
            ("machines.2.ip", Some(10)),
            // Absent fields fall back to their nearest ancestor.
            ("machines.1.hostname", Some(7)),
            ("provision.playbook", None),
        ];
        for (path, want) in cases {
            assert_eq!(index.line_of(path), want, "path {path}");
        }
    }

    #[test]
    fn broken_yaml_gives_no_lines() {
        assert_eq!(LineIndex::new("a: [b\n").line_of("a"), None);
    }
}
