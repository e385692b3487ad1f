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

impl YamlError {
    /// How to fix it: bounds get their own advice, syntax errors the usual one.
    pub fn fix(&self) -> &'static str {
        if self.message.contains("alias bomb") {
            "use fewer nested aliases: caas expands at most 200,000 nodes per file"
        } else if self.message.contains("nests deeper") || self.message.contains("recursion limit")
        {
            "flatten the document; caas reads at most 128 levels of nesting"
        } else {
            "fix the YAML syntax at this position (indentation, quotes, brackets)"
        }
    }
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

/// The most nodes a document may hold once its aliases are expanded. Aliases are allowed
/// (they are ordinary YAML, and a spec may reuse a field block), but a few hundred bytes of
/// nested aliases can expand to billions of nodes ("billion laughs"), so the expansion is
/// counted as it happens and refused past this budget, long before memory is at risk.
pub const MAX_NODES: usize = 200_000;

/// The deepest nesting of mappings and sequences accepted (the parser recurses per level).
pub const MAX_DEPTH: usize = 128;

/// Parse one YAML document. An empty file is an error; so is more than one document.
pub fn parse(src: &str) -> Result<Document, YamlError> {
    let mut builder = Builder {
        parser: Parser::new_from_str(src),
        values: HashMap::new(),
        keys: HashMap::new(),
        anchors: HashMap::new(),
        last: Pos { line: 1, col: 1 },
        nodes: 0,
        depth: 0,
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
    /// Anchored values and their size in nodes.
    anchors: HashMap<usize, (Value, usize)>,
    last: Pos,
    /// Nodes so far, aliases counted expanded.
    nodes: usize,
    depth: usize,
}

/// Nodes in a value (itself included).
fn size(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(size).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(size).sum::<usize>(),
        _ => 1,
    }
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
        self.count(1, &span)?;
        let nested = matches!(event, Event::SequenceStart(..) | Event::MappingStart(..));
        if nested {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(YamlError {
                    pos: pos(&span),
                    message: format!("the document nests deeper than {MAX_DEPTH} levels"),
                });
            }
        }
        let result = self.node_inner(event, &span, path);
        if nested {
            self.depth -= 1;
        }
        let (value, anchor) = result?;
        if anchor != 0 {
            let n = size(&value);
            self.anchors.insert(anchor, (value.clone(), n));
        }
        Ok(value)
    }

    /// Count `n` more nodes against [`MAX_NODES`].
    fn count(&mut self, n: usize, span: &Span) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                pos: pos(span),
                message: format!(
                    "the document expands to more than {MAX_NODES} nodes (nested aliases multiply: an alias bomb?); refused before expanding it"
                ),
            });
        }
        Ok(())
    }

    fn node_inner(
        &mut self,
        event: Event<'a>,
        span: &Span,
        path: String,
    ) -> Result<(Value, usize), YamlError> {
        let span = *span;
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
            Event::Alias(id) => match self.anchors.get(&id).map(|(_, n)| *n) {
                Some(n) => {
                    // Counted before the copy is made: a bomb never gets to allocate.
                    self.count(n.saturating_sub(1), &span)?;
                    (self.anchors[&id].0.clone(), 0)
                }
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
        Ok((value, anchor))
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

    /// `levels` anchors, each a list of `width` aliases of the one before: width^levels leaves.
    pub(crate) fn alias_bomb(width: usize, levels: usize) -> String {
        let mut out = format!("l0: &l0 [{}]\n", vec!["lol"; width].join(", "));
        for i in 1..=levels {
            out.push_str(&format!(
                "l{i}: &l{i} [{}]\n",
                vec![format!("*l{}", i - 1); width].join(", ")
            ));
        }
        out
    }

    #[test]
    fn alias_bombs_are_refused_before_they_expand() {
        for (width, levels) in [(10, 8), (9, 8), (4, 12)] {
            let bomb = alias_bomb(width, levels);
            let started = std::time::Instant::now();
            let err = parse(&bomb).unwrap_err();
            assert!(err.message.contains("alias bomb"), "{}", err.message);
            assert!(
                err.pos.line > 1,
                "located at the alias that crossed the budget"
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
        }
        // Reuse within the budget is fine.
        assert!(parse(&alias_bomb(10, 3)).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("a: {}1{}\n", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse(&deep).unwrap_err();
        // The parser's own recursion limit or ours: either way a located refusal.
        assert!(
            err.message.contains("nests deeper than 128")
                || err.message.contains("recursion limit exceeded"),
            "{}",
            err.message
        );
        let fine = format!("a: {}1{}\n", "[".repeat(100), "]".repeat(100));
        assert!(parse(&fine).is_ok());
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
