//! Where each value of a YAML document starts, so that problems found after parsing can
//! still name a line. serde's YAML types keep no positions, so we read the same text once
//! more with a marked event parser.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Tag};

/// How deep lists and mappings may nest. A Machinefile needs six levels or so (Ansible
/// vars a few more); the YAML scanner under serde takes time quadratic in the depth, so a
/// file nested thousands deep would hold `envctl` for minutes before any error.
pub const MAX_DEPTH: usize = 64;

/// Maps a dotted path (`machines.1.ip`) to the 1-based line where its value starts.
#[derive(Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
    too_deep: Option<usize>,
    lost: Vec<Lost>,
}

/// Something the YAML says that serde would lose without a word: a key given twice in
/// one mapping (serde keeps one of them) or a tag envctl does not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    pub line: usize,
    /// The dotted path of the value.
    pub path: String,
    pub message: String,
}

/// The core-schema tags serde reads as they say; any other tag would be dropped.
const KEPT_TAGS: [&str; 7] = ["str", "int", "float", "bool", "null", "map", "seq"];

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
            if let Event::Scalar(_, _, _, Some(tag))
            | Event::MappingStart(_, Some(tag))
            | Event::SequenceStart(_, Some(tag)) = &event
            {
                index.dropped_tag(&stack, line, tag);
            }
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Mapping { key: None, seen }) = stack.last_mut() {
                        let value = value.into_owned();
                        let repeated = seen.get(&value).copied();
                        seen.entry(value.clone()).or_insert(line);
                        if let Some(first) = repeated {
                            let path = path_of(&stack, Some(&value));
                            index.lost.push(Lost {
                                line,
                                path,
                                message: format!(
                                    "`{value}` is given twice in one mapping (first on line {first}): \
                                     YAML keeps only one of them; remove the other"
                                ),
                            });
                        }
                        if let Some(Frame::Mapping { key, .. }) = stack.last_mut() {
                            *key = Some(value);
                        }
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
                    stack.push(Frame::Mapping {
                        key: None,
                        seen: HashMap::new(),
                    });
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
            too_deep: Some(line),
            ..LineIndex::default()
        }
    }

    /// Duplicate keys and dropped tags, in the order of the file.
    pub fn lost(&self) -> &[Lost] {
        &self.lost
    }

    fn dropped_tag(&mut self, stack: &[Frame], line: usize, tag: &Tag) {
        if tag.is_yaml_core_schema() && KEPT_TAGS.contains(&tag.suffix.as_str()) {
            return;
        }
        let shown = if tag.is_yaml_core_schema() {
            format!("!!{}", tag.suffix)
        } else {
            format!("{}{}", tag.handle, tag.suffix)
        };
        self.lost.push(Lost {
            line,
            path: path_of(stack, None),
            message: format!(
                "the tag `{shown}` is not one envctl reads: it would be dropped without a word; \
                 remove it (tags envctl keeps: {})",
                KEPT_TAGS.map(|tag| format!("!!{tag}")).join(", ")
            ),
        });
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
        self.lines.entry(path_of(stack, None)).or_insert(line);
    }
}

/// The dotted path the parser stands at, or of `key` in the innermost mapping.
fn path_of(stack: &[Frame], key: Option<&str>) -> String {
    let depth = if key.is_some() {
        stack.len().saturating_sub(1)
    } else {
        stack.len()
    };
    stack[..depth]
        .iter()
        .filter_map(|frame| match frame {
            Frame::Mapping { key, .. } => key.clone(),
            Frame::Sequence { next } => Some(next.to_string()),
        })
        .chain(key.map(str::to_string))
        .collect::<Vec<_>>()
        .join(".")
}

enum Frame {
    /// `key` is the key whose value comes next, once it has been read.
    /// `seen` holds each key read so far, with its line.
    Mapping {
        key: Option<String>,
        seen: HashMap<String, usize>,
    },
    Sequence {
        next: usize,
    },
}

/// A value is complete: the enclosing mapping waits for a new key, the list moves on.
fn advance(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Mapping { key, .. }) => *key = None,
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
