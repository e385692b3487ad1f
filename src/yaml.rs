//! YAML with positions: every node of a document, addressed by its JSON pointer, keeps the
//! line and column it came from, so that any later error (meta-schema, serde, lint) can say
//! where in the file the problem is.
//!
//! Built on saphyr's event parser rather than its loader so that duplicate keys are an error
//! that names both places, and aliases resolve to the anchored value.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use saphyr::{Scalar, ScalarStyle};
use saphyr_parser::{Event, Parser, Span, Tag};
use serde_json::{Map, Number, Value};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A parsed YAML document: its value and where each node started.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    /// JSON pointer of a node -> position of its value.
    values: HashMap<String, Pos>,
    /// JSON pointer of a mapping entry -> position of its key.
    keys: HashMap<String, Pos>,
}

/// A YAML syntax error at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

impl Document {
    /// Where the value at `pointer` starts; falls back to the nearest ancestor.
    pub fn value_pos(&self, pointer: &str) -> Pos {
        self.lookup(&self.values, pointer)
    }

    /// Where the key of the entry at `pointer` starts (the value for sequence items).
    pub fn key_pos(&self, pointer: &str) -> Pos {
        match self.keys.get(pointer) {
            Some(pos) => *pos,
            None => self.value_pos(pointer),
        }
    }

    fn lookup(&self, map: &HashMap<String, Pos>, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(pos) = map.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos { line: 1, col: 1 },
            }
        }
    }
}

/// Escape one JSON-pointer segment (`~` and `/`).
pub fn pointer_segment(s: &str) -> Cow<'_, str> {
    if s.contains(['~', '/']) {
        Cow::Owned(s.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Parse one YAML document. An empty file is an error; so is more than one document.
pub fn parse(src: &str) -> Result<Document, YamlError> {
    let mut builder = Builder {
        parser: Parser::new_from_str(src),
        values: HashMap::new(),
        keys: HashMap::new(),
        anchors: HashMap::new(),
        last: Pos { line: 1, col: 1 },
    };
    let mut root = None;
    loop {
        let (event, span) = builder.next()?;
        match event {
            Event::StreamStart | Event::DocumentStart(_) | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            other => {
                if root.is_some() {
                    return Err(YamlError {
                        pos: pos(&span),
                        message:
                            "a spec file holds one YAML document; remove the extra `---` document"
                                .into(),
                    });
                }
                root = Some(builder.node(other, span, String::new())?);
            }
        }
    }
    match root {
        Some(value) => Ok(Document {
            value,
            values: builder.values,
            keys: builder.keys,
        }),
        None => Err(YamlError {
            pos: Pos { line: 1, col: 1 },
            message: "the file is empty; a spec needs at least `collection:` and `domain:`".into(),
        }),
    }
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
    anchors: HashMap<usize, Value>,
    last: Pos,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next_event() {
            Some(Ok((event, span))) => {
                self.last = pos(&span);
                Ok((event, span))
            }
            Some(Err(e)) => Err(YamlError {
                pos: Pos {
                    line: e.marker().line(),
                    col: e.marker().col() + 1,
                },
                message: format!("invalid YAML: {}", e.info()),
            }),
            None => Err(YamlError {
                pos: self.last,
                message: "invalid YAML: unexpected end of input".into(),
            }),
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span, path: String) -> Result<Value, YamlError> {
        self.values.insert(path.clone(), pos(&span));
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                (scalar(&text, style, tag.as_ref(), pos(&span))?, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    let child = format!("{path}/{}", items.len());
                    items.push(self.node(event, span, child)?);
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(anchor, _) => (Value::Object(self.mapping(&path)?), anchor),
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(v) => (v.clone(), 0),
                None => {
                    return Err(YamlError {
                        pos: pos(&span),
                        message: "alias refers to an unknown anchor".into(),
                    })
                }
            },
            other => {
                return Err(YamlError {
                    pos: pos(&span),
                    message: format!("invalid YAML: unexpected {other:?}"),
                })
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    fn mapping(&mut self, path: &str) -> Result<Map<String, Value>, YamlError> {
        let mut map = Map::new();
        loop {
            let (event, span) = self.next()?;
            let key = match event {
                Event::MappingEnd => return Ok(map),
                Event::Scalar(text, ..) => text.into_owned(),
                _ => {
                    return Err(YamlError {
                        pos: pos(&span),
                        message: "mapping keys must be plain strings".into(),
                    })
                }
            };
            let child = format!("{path}/{}", pointer_segment(&key));
            if let Some(first) = self.keys.get(&child) {
                return Err(YamlError {
                    pos: pos(&span),
                    message: format!(
                        "duplicate key `{key}` (first defined at line {}); remove one of them",
                        first.line
                    ),
                });
            }
            self.keys.insert(child.clone(), pos(&span));
            let (event, span) = self.next()?;
            let value = self.node(event, span, child)?;
            map.insert(key, value);
        }
    }
}

/// Resolve a scalar with YAML 1.2's core schema (plain scalars only; quoted ones are strings).
fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Cow<'_, Tag>>,
    at: Pos,
) -> Result<Value, YamlError> {
    let parsed =
        Scalar::parse_from_cow_and_metadata(Cow::Borrowed(text), style, tag).ok_or_else(|| {
            YamlError {
                pos: at,
                message: format!("invalid YAML: `{text}` does not match its tag"),
            }
        })?;
    Ok(match parsed {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(b),
        Scalar::Integer(i) => Value::Number(i.into()),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner())
            .map(Value::Number)
            .ok_or_else(|| YamlError {
                pos: at,
                message: format!("`{text}` is not a finite number"),
            })?,
        Scalar::String(s) => Value::String(s.into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_values() {
        let doc = parse("collection: users\nfields:\n  email:\n    type: string\n").unwrap();
        assert_eq!(doc.key_pos("/fields/email"), Pos { line: 3, col: 3 });
        assert_eq!(
            doc.value_pos("/fields/email/type"),
            Pos { line: 4, col: 11 }
        );
        assert_eq!(doc.value["fields"]["email"]["type"], "string");
    }

    #[test]
    fn missing_pointer_falls_back_to_parent() {
        let doc = parse("a:\n  b: 1\n").unwrap();
        assert_eq!(doc.value_pos("/a/b/c/d"), Pos { line: 2, col: 6 });
    }

    #[test]
    fn duplicate_key_names_both_lines() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 1 });
        assert!(
            err.message
                .contains("duplicate key `a` (first defined at line 1)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn core_schema_scalars() {
        let doc = parse("a: 1\nb: -1.5\nc: true\nd: ~\ne: '1'\nf: 2dsphere\n").unwrap();
        assert_eq!(
            doc.value,
            serde_json::json!({"a":1,"b":-1.5,"c":true,"d":null,"e":"1","f":"2dsphere"})
        );
    }

    #[test]
    fn aliases_resolve() {
        let doc = parse("a: &x {t: 1}\nb: *x\n").unwrap();
        assert_eq!(doc.value["b"], serde_json::json!({"t": 1}));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
        assert!(err.message.starts_with("invalid YAML"), "{}", err.message);
    }

    #[test]
    fn empty_and_multi_document() {
        assert!(parse("").unwrap_err().message.contains("empty"));
        assert!(parse("a: 1\n---\nb: 2\n")
            .unwrap_err()
            .message
            .contains("one YAML document"));
    }
}
