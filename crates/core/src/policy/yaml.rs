//! YAML (and JSON) text to JSON values, with a line and column for every node.
//!
//! Kubernetes reads manifests as YAML, turns them into JSON and decodes that strictly. This
//! module does the same with yaml-rust2's event parser, building a [`serde_json::Value`] per
//! `---` document and a [`SourceMap`] that gives each node's position by [`JsonPath`]:
//!
//! * plain scalars follow the YAML 1.2 core schema (`null`, `~` and empty are null; `true`,
//!   `False`…; decimal, `0x` and `0o` integers; floats); quoted and block scalars are strings;
//!   the `!!str`, `!!int`, `!!float`, `!!bool` and `!!null` tags are honoured;
//! * anchors, aliases and `<<` merge keys work, within an expansion budget that refuses
//!   "billion laughs" documents;
//! * duplicate keys and keys that are not strings are errors, as in Kubernetes' strict decoding;
//! * `.inf` and `.nan` are errors: JSON cannot hold them;
//! * block scalars (`|`, `|-`, `>`) remember where their content starts, so that "line 3 of the
//!   PEM block in `publicKeys`" can be reported as a line of the file
//!   ([`SourceMap::content_line_position`]).
//!
//! Errors carry the 1-based line and column; a syntax error ends the stream (the documents
//! before it are still returned), other errors only drop their own document.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::path::JsonPath;

/// Deepest nesting accepted; deeper documents are refused rather than risking the stack.
pub const MAX_DEPTH: usize = 200;
/// Most nodes one document may expand to, aliases included.
pub const MAX_NODES: usize = 1_000_000;
/// Most nodes that aliases may add to one document.
pub const MAX_ALIAS_NODES: usize = 100_000;
/// Most documents one file (or text) may hold.
pub const MAX_DOCUMENTS: usize = 10_000;
/// Most nodes all the documents of one file may hold together.
pub const MAX_FILE_NODES: usize = 2_000_000;

/// A 1-based line and column in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

impl Position {
    /// The start of the text.
    pub const START: Position = Position { line: 1, column: 1 };

    fn from_marker(mark: &Marker) -> Position {
        Position {
            line: mark.line().max(1),
            column: mark.col() + 1,
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Where the content of a block scalar (`|`, `|-`, `>` …) sits in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockScalar {
    /// File line of the content's first line.
    pub first_line: usize,
    /// 1-based column where the content's indentation ends.
    pub column: usize,
    /// `>` scalars join lines, so their content lines do not map to file lines.
    pub folded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NodeSpan {
    key: Option<Position>,
    value: Position,
    block: Option<BlockScalar>,
}

/// The position of every node of one document, by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    nodes: HashMap<JsonPath, NodeSpan>,
}

impl SourceMap {
    fn nearest(&self, path: &JsonPath) -> Option<&NodeSpan> {
        let mut current = path.clone();
        loop {
            if let Some(span) = self.nodes.get(&current) {
                return Some(span);
            }
            current.pop()?;
        }
    }

    /// Where the node at `path` is named: its key for a mapping member, else its value. Paths
    /// that are not in the document (a field the user did not write) fall back to the nearest
    /// ancestor that is.
    pub fn position(&self, path: &JsonPath) -> Position {
        self.nearest(path)
            .map(|span| span.key.unwrap_or(span.value))
            .unwrap_or(Position::START)
    }

    /// Where the value at `path` starts (nearest ancestor as for [`SourceMap::position`]).
    pub fn value_position(&self, path: &JsonPath) -> Position {
        self.nearest(path)
            .map(|span| span.value)
            .unwrap_or(Position::START)
    }

    /// Whether the document has a node at exactly `path`.
    pub fn contains(&self, path: &JsonPath) -> bool {
        self.nodes.contains_key(path)
    }

    /// The block scalar layout of the string at `path`, if it was written as one.
    pub fn block_scalar(&self, path: &JsonPath) -> Option<BlockScalar> {
        self.nodes.get(path).and_then(|span| span.block)
    }

    /// The file position of 1-based line `line` of the string at `path`, whose content is
    /// `content`. Exact for literal block scalars (`|`, `|-`, `|+`); for other scalars, the
    /// position of the value (their lines do not map one to one onto file lines).
    pub fn content_line_position(&self, path: &JsonPath, content: &str, line: usize) -> Position {
        match self.block_scalar(path) {
            Some(block) if !block.folded && line >= 1 => {
                let extra = content
                    .split('\n')
                    .nth(line - 1)
                    .map(|l| l.chars().take_while(|c| *c == ' ').count())
                    .unwrap_or(0);
                Position {
                    line: block.first_line + line - 1,
                    column: block.column + extra,
                }
            }
            _ => self.value_position(path),
        }
    }
}

/// One YAML document as JSON, with its source map.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The document's value.
    pub value: Value,
    /// Node positions.
    pub source_map: SourceMap,
    /// The line where the document's content starts.
    pub first_line: usize,
}

/// A YAML document that cannot become JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {}, column {}: {kind}", position.line, position.column)]
pub struct YamlError {
    /// Where.
    pub position: Position,
    /// What.
    pub kind: YamlErrorKind,
}

/// What is wrong with a YAML document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlErrorKind {
    /// The text is not YAML.
    #[error("invalid YAML: {0}")]
    Syntax(String),
    /// A mapping names the same key twice.
    #[error("duplicate key '{key}' (first set at line {first_line})")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Line of the first occurrence.
        first_line: usize,
    },
    /// A mapping key that is not a string (`1:`, `true:`, `[a]:` …).
    #[error("mapping key {found} is not a string: quote it")]
    NonStringKey {
        /// The key as written or its kind.
        found: String,
    },
    /// `.inf`, `.nan` or a tagged scalar that cannot be represented.
    #[error("{0}")]
    NotRepresentable(String),
    /// Aliases expand to too much, or nesting is too deep.
    #[error("{0}")]
    TooLarge(String),
    /// `<<` with something other than mappings.
    #[error("the merge key '<<' takes a mapping or a list of mappings")]
    BadMerge,
}

/// Parses every `---` document of `text`. Empty documents are skipped. An `Err` drops only its
/// own document, except a syntax error, which ends the list.
pub fn parse_documents(text: &str) -> Vec<Result<Document, YamlError>> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let mut out = Vec::new();
    let (mut documents, mut file_nodes) = (0usize, 0usize);
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) => {
                out.push(Err(YamlError {
                    position: Position::from_marker(e.marker()),
                    kind: YamlErrorKind::Syntax(e.info().to_string()),
                }));
                return out;
            }
        };
        match event {
            Event::StreamEnd => return out,
            Event::DocumentStart => builder = Builder::default(),
            Event::DocumentEnd => {
                documents += 1;
                file_nodes = file_nodes.saturating_add(builder.nodes);
                if documents > MAX_DOCUMENTS || file_nodes > MAX_FILE_NODES {
                    out.push(Err(YamlError {
                        position: Position::from_marker(&mark),
                        kind: YamlErrorKind::TooLarge(if documents > MAX_DOCUMENTS {
                            format!(
                                "the text holds more than {MAX_DOCUMENTS} documents: split it into several files"
                            )
                        } else {
                            format!(
                                "the documents of this text hold more than {MAX_FILE_NODES} nodes together: split it into several files"
                            )
                        }),
                    }));
                    return out;
                }
                if let Some(result) = builder.finish() {
                    out.push(result);
                }
                builder = Builder::default();
            }
            other => builder.event(other, &mark),
        }
    }
}

#[derive(Debug)]
enum FrameKind {
    Sequence(Vec<Value>),
    Mapping {
        map: Map<String, Value>,
        key: Option<PendingKey>,
        keys_seen: HashMap<String, usize>,
        merged: Vec<Map<String, Value>>,
        first_key: Option<Position>,
    },
}

#[derive(Debug)]
struct PendingKey {
    name: String,
    merge: bool,
}

#[derive(Debug)]
struct Frame {
    kind: FrameKind,
    path: JsonPath,
    anchor: usize,
    size: usize,
    height: usize,
}

#[derive(Debug, Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Value>,
    map: SourceMap,
    anchors: HashMap<usize, (Value, usize, usize)>,
    nodes: usize,
    alias_nodes: usize,
    error: Option<YamlError>,
    first_line: Option<usize>,
}

/// Where the next node goes.
enum Slot {
    Root,
    Item(JsonPath),
    Key,
    Value(JsonPath),
}

impl Builder {
    fn finish(self) -> Option<Result<Document, YamlError>> {
        if let Some(error) = self.error {
            return Some(Err(error));
        }
        let value = self.root?;
        if value.is_null() {
            return None;
        }
        let first_line = self.first_line.unwrap_or(1);
        Some(Ok(Document {
            value,
            source_map: self.map,
            first_line,
        }))
    }

    fn fail(&mut self, mark: &Marker, kind: YamlErrorKind) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                position: Position::from_marker(mark),
                kind,
            });
        }
    }

    fn slot(&self) -> Slot {
        match self.stack.last() {
            None => Slot::Root,
            Some(Frame {
                kind: FrameKind::Sequence(items),
                path,
                ..
            }) => Slot::Item(path.index(items.len())),
            Some(Frame {
                kind: FrameKind::Mapping { key: None, .. },
                ..
            }) => Slot::Key,
            Some(Frame {
                kind: FrameKind::Mapping { key: Some(key), .. },
                path,
                ..
            }) => Slot::Value(path.field(&key.name)),
        }
    }

    fn record(&mut self, path: &JsonPath, value: Position, block: Option<BlockScalar>) {
        if self.first_line.is_none() {
            self.first_line = Some(value.line);
        }
        let span = self.map.nodes.entry(path.clone()).or_insert(NodeSpan {
            key: None,
            value,
            block: None,
        });
        span.value = value;
        span.block = block;
    }

    fn count_nodes(&mut self, mark: &Marker, added: usize, by_alias: bool) -> bool {
        self.nodes += added;
        if by_alias {
            self.alias_nodes += added;
        }
        if self.nodes > MAX_NODES || self.alias_nodes > MAX_ALIAS_NODES {
            self.fail(
                mark,
                YamlErrorKind::TooLarge(format!(
                    "the document expands to too many nodes (aliases may add at most {MAX_ALIAS_NODES}, the whole document {MAX_NODES}): refusing a possible 'billion laughs' document"
                )),
            );
            return false;
        }
        true
    }

    fn event(&mut self, event: Event, mark: &Marker) {
        if self.error.is_some() {
            return;
        }
        let position = Position::from_marker(mark);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                if !self.count_nodes(mark, 1, false) {
                    return;
                }
                if matches!(self.slot(), Slot::Key) {
                    self.key(&text, style, tag.as_ref(), mark);
                    return;
                }
                let value = match resolve_scalar(&text, style, tag.as_ref()) {
                    Ok(value) => value,
                    Err(kind) => return self.fail(mark, kind),
                };
                let block = match style {
                    TScalarStyle::Literal | TScalarStyle::Folded => {
                        let leading = text.chars().take_while(|c| *c == '\n').count();
                        Some(BlockScalar {
                            first_line: position.line.saturating_sub(leading).max(1),
                            column: position.column,
                            folded: style == TScalarStyle::Folded,
                        })
                    }
                    _ => None,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, (value.clone(), 1, 0));
                }
                self.place(value, position, block, 1, 0, mark);
            }
            Event::Alias(id) => {
                let Some((value, size, height)) = self.anchors.get(&id).cloned() else {
                    return self.fail(
                        mark,
                        YamlErrorKind::Syntax(format!("unknown anchor (alias #{id})")),
                    );
                };
                if !self.count_nodes(mark, size, true) {
                    return;
                }
                if self.stack.len() + height > MAX_DEPTH {
                    return self.fail(mark, too_deep());
                }
                if matches!(self.slot(), Slot::Key) {
                    match value {
                        Value::String(s) => self.key(&s, TScalarStyle::SingleQuoted, None, mark),
                        other => self.fail(
                            mark,
                            YamlErrorKind::NonStringKey {
                                found: describe(&other),
                            },
                        ),
                    }
                    return;
                }
                self.place(value, position, None, size, height, mark);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if !self.count_nodes(mark, 1, false) {
                    return;
                }
                if self.stack.len() >= MAX_DEPTH {
                    return self.fail(mark, too_deep());
                }
                let path = match self.slot() {
                    Slot::Root => JsonPath::root(),
                    Slot::Item(path) | Slot::Value(path) => path,
                    Slot::Key => {
                        return self.fail(
                            mark,
                            YamlErrorKind::NonStringKey {
                                found: "(a mapping or sequence)".into(),
                            },
                        );
                    }
                };
                self.record(&path, position, None);
                let kind = if matches!(event, Event::SequenceStart(..)) {
                    FrameKind::Sequence(Vec::new())
                } else {
                    FrameKind::Mapping {
                        map: Map::new(),
                        key: None,
                        keys_seen: HashMap::new(),
                        merged: Vec::new(),
                        first_key: None,
                    }
                };
                self.stack.push(Frame {
                    kind,
                    path,
                    anchor,
                    size: 1,
                    height: 0,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return;
                };
                let (value, first_key) = match frame.kind {
                    FrameKind::Sequence(items) => (Value::Array(items), None),
                    FrameKind::Mapping {
                        mut map,
                        merged,
                        first_key,
                        ..
                    } => {
                        for source in merged {
                            for (k, v) in source {
                                if !map.contains_key(&k) {
                                    map.insert(k, v);
                                }
                            }
                        }
                        (Value::Object(map), first_key)
                    }
                };
                let start = first_key.unwrap_or_else(|| self.map.value_position(&frame.path));
                if frame.anchor > 0 {
                    self.anchors
                        .insert(frame.anchor, (value.clone(), frame.size, frame.height + 1));
                }
                self.place_completed(value, start, frame.size, frame.height + 1, mark);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart | Event::DocumentEnd => {}
        }
    }

    fn key(&mut self, text: &str, style: TScalarStyle, tag: Option<&Tag>, mark: &Marker) {
        let merge = style == TScalarStyle::Plain && tag.is_none() && text == "<<";
        let name = match resolve_scalar(text, style, tag) {
            Ok(Value::String(s)) => s,
            Ok(other) => {
                let found = if style == TScalarStyle::Plain && !text.is_empty() {
                    format!("'{text}' ({})", kind_name(&other))
                } else {
                    describe(&other)
                };
                return self.fail(mark, YamlErrorKind::NonStringKey { found });
            }
            Err(kind) => return self.fail(mark, kind),
        };
        let position = Position::from_marker(mark);
        let Some(Frame {
            kind:
                FrameKind::Mapping {
                    key,
                    keys_seen,
                    first_key,
                    ..
                },
            path,
            ..
        }) = self.stack.last_mut()
        else {
            return;
        };
        if !merge {
            if let Some(first_line) = keys_seen.get(&name) {
                let first_line = *first_line;
                return self.fail(
                    mark,
                    YamlErrorKind::DuplicateKey {
                        key: name,
                        first_line,
                    },
                );
            }
            keys_seen.insert(name.clone(), position.line);
        }
        if first_key.is_none() {
            *first_key = Some(position);
        }
        let member = path.field(&name);
        *key = Some(PendingKey { name, merge });
        if !merge {
            self.map
                .nodes
                .entry(member)
                .or_insert(NodeSpan {
                    key: None,
                    value: position,
                    block: None,
                })
                .key = Some(position);
        }
    }

    fn place(
        &mut self,
        value: Value,
        position: Position,
        block: Option<BlockScalar>,
        size: usize,
        height: usize,
        mark: &Marker,
    ) {
        match self.slot() {
            Slot::Root => self.record(&JsonPath::root(), position, block),
            Slot::Item(path) | Slot::Value(path) => {
                let merge = matches!(
                    self.stack.last(),
                    Some(Frame {
                        kind: FrameKind::Mapping {
                            key: Some(PendingKey { merge: true, .. }),
                            ..
                        },
                        ..
                    })
                );
                if !merge {
                    self.record(&path, position, block);
                }
            }
            Slot::Key => {}
        }
        self.attach(value, size, height, mark);
    }

    fn place_completed(
        &mut self,
        value: Value,
        start: Position,
        size: usize,
        height: usize,
        mark: &Marker,
    ) {
        // The collection's own span was recorded at its start; a block mapping's start marker
        // is unreliable, so use its first key instead.
        if let Some(frame_path) = match self.slot() {
            Slot::Root => Some(JsonPath::root()),
            Slot::Item(path) | Slot::Value(path) => Some(path),
            Slot::Key => None,
        } && let Some(span) = self.map.nodes.get_mut(&frame_path)
        {
            span.value = start;
        }
        if self.stack.is_empty() {
            self.first_line = Some(start.line);
        }
        self.attach(value, size, height, mark);
    }

    fn attach(&mut self, value: Value, size: usize, height: usize, mark: &Marker) {
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(value);
            return;
        };
        frame.size += size;
        frame.height = frame.height.max(height);
        match &mut frame.kind {
            FrameKind::Sequence(items) => items.push(value),
            FrameKind::Mapping {
                map, key, merged, ..
            } => {
                let Some(pending) = key.take() else {
                    return;
                };
                if pending.merge {
                    match value {
                        Value::Object(source) => merged.push(source),
                        Value::Array(items) => {
                            for item in items {
                                match item {
                                    Value::Object(source) => merged.push(source),
                                    _ => return self.fail(mark, YamlErrorKind::BadMerge),
                                }
                            }
                        }
                        _ => self.fail(mark, YamlErrorKind::BadMerge),
                    }
                } else {
                    map.insert(pending.name, value);
                }
            }
        }
    }
}

fn too_deep() -> YamlErrorKind {
    YamlErrorKind::TooLarge(format!("the document nests deeper than {MAX_DEPTH} levels"))
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("'{b}' (a boolean)"),
        Value::Number(n) => format!("'{n}' (a number)"),
        Value::String(s) => format!("'{s}'"),
        Value::Array(_) => "(a sequence)".into(),
        Value::Object(_) => "(a mapping)".into(),
    }
}

const CORE_TAG: &str = "tag:yaml.org,2002:";

/// The JSON value of a scalar: YAML 1.2 core schema for plain scalars, strings otherwise, and
/// the standard tags when given.
fn resolve_scalar(
    text: &str,
    style: TScalarStyle,
    tag: Option<&Tag>,
) -> Result<Value, YamlErrorKind> {
    if let Some(tag) = tag
        && tag.handle == CORE_TAG
    {
        let bad = |what: &str| {
            YamlErrorKind::NotRepresentable(format!("'{text}' is not a valid !!{what} value"))
        };
        return match tag.suffix.as_str() {
            "str" | "binary" | "timestamp" => Ok(Value::String(text.to_string())),
            "null" => Ok(Value::Null),
            "bool" => parse_bool(text).map(Value::Bool).ok_or_else(|| bad("bool")),
            "int" => parse_int(text).ok_or_else(|| bad("int")),
            "float" => match parse_float(text) {
                Some(Ok(value)) => Ok(value),
                Some(Err(kind)) => Err(kind),
                None => parse_int(text)
                    .and_then(|v| v.as_f64())
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| bad("float")),
            },
            _ => resolve_untagged(text, style),
        };
    }
    resolve_untagged(text, style)
}

fn resolve_untagged(text: &str, style: TScalarStyle) -> Result<Value, YamlErrorKind> {
    if style != TScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    if let Some(b) = parse_bool(text) {
        return Ok(Value::Bool(b));
    }
    if let Some(value) = parse_int(text) {
        return Ok(value);
    }
    match parse_float(text) {
        Some(result) => result,
        None => Ok(Value::String(text.to_string())),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_int(text: &str) -> Option<Value> {
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(oct) = text.strip_prefix("0o") {
        (oct, 8)
    } else {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if let Ok(v) = text.parse::<i64>() {
            return Some(Value::Number(v.into()));
        }
        if let Ok(v) = text.strip_prefix('+').unwrap_or(text).parse::<u64>() {
            return Some(Value::Number(v.into()));
        }
        return text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number);
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .map(|v| Value::Number(v.into()))
}

/// `None` when `text` is not a core-schema float; `Some(Err)` for `.inf`/`.nan`.
fn parse_float(text: &str) -> Option<Result<Value, YamlErrorKind>> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN") {
        return Some(Err(YamlErrorKind::NotRepresentable(format!(
            "'{text}' cannot be represented in JSON (Kubernetes refuses it too)"
        ))));
    }
    // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let bytes = unsigned.as_bytes();
    let mut i = 0;
    let int_digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp_digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if exp_digits == 0 {
            return None;
        }
        i += exp_digits;
    }
    if i != bytes.len() {
        return None;
    }
    let parsed = text.parse::<f64>().ok()?;
    Some(Number::from_f64(parsed).map(Value::Number).ok_or_else(|| {
        YamlErrorKind::NotRepresentable(format!("'{text}' cannot be represented in JSON"))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Document {
        let mut docs = parse_documents(text);
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0).unwrap()
    }

    fn error(text: &str) -> YamlError {
        parse_documents(text)
            .into_iter()
            .find_map(Result::err)
            .expect("an error")
    }

    fn p(text: &str) -> JsonPath {
        JsonPath::parse(text).unwrap()
    }

    #[test]
    fn core_schema_scalars() {
        let doc = one(concat!(
            "n1: \nn2: ~\nn3: null\nn4: NULL\n",
            "b1: true\nb2: False\nb3: TRUE\nb4: yes\nb5: 'true'\n",
            "i1: 42\ni2: -7\ni3: 0x1F\ni4: 0o17\ni5: +3\ni6: \"42\"\n",
            "f1: 1.5\nf2: -.5\nf3: 1e3\nf4: 2.\n",
            "s1: 1.2.3\ns2: 0x\ns3: nan\ns4: !!str 12\ns5: |\n  12\n",
            "t1: !!int \"12\"\nt2: !!bool 'true'\nt3: !!float 3\n",
        ));
        assert_eq!(
            doc.value,
            json!({
                "n1": null, "n2": null, "n3": null, "n4": null,
                "b1": true, "b2": false, "b3": true, "b4": "yes", "b5": "true",
                "i1": 42, "i2": -7, "i3": 31, "i4": 15, "i5": 3, "i6": "42",
                "f1": 1.5, "f2": -0.5, "f3": 1000.0, "f4": 2.0,
                "s1": "1.2.3", "s2": "0x", "s3": "nan", "s4": "12", "s5": "12\n",
                "t1": 12, "t2": true, "t3": 3.0,
            })
        );
    }

    #[test]
    fn infinity_and_nan_are_refused() {
        for text in ["a: .inf", "a: -.Inf", "a: .NaN"] {
            assert!(matches!(
                error(text).kind,
                YamlErrorKind::NotRepresentable(_)
            ));
        }
        assert!(matches!(
            error("a: !!int abc").kind,
            YamlErrorKind::NotRepresentable(_)
        ));
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let docs = parse_documents("---\na: 1\n---\n---\n# only a comment\n---\n- b\n...\n");
        let values: Vec<Value> = docs.into_iter().map(|d| d.unwrap().value).collect();
        assert_eq!(values, vec![json!({"a": 1}), json!(["b"])]);
        assert!(parse_documents("").is_empty());
        assert!(parse_documents("# nothing\n").is_empty());
    }

    #[test]
    fn json_input() {
        let doc = one("{\"apiVersion\": \"v1\", \"items\": [1, {\"b\": null}], \"c\": 1e3}");
        assert_eq!(
            doc.value,
            json!({"apiVersion": "v1", "items": [1, {"b": null}], "c": 1000.0})
        );
        assert_eq!(
            doc.source_map.position(&p("items[1].b")),
            Position {
                line: 1,
                column: 36
            }
        );
    }

    #[test]
    fn positions_of_keys_values_and_items() {
        let text = "a: 1\nb:\n  c: x\n  list:\n    - one\n    - k: v\n";
        let doc = one(text);
        let sm = &doc.source_map;
        assert_eq!(sm.position(&p("a")), Position { line: 1, column: 1 });
        assert_eq!(sm.value_position(&p("a")), Position { line: 1, column: 4 });
        assert_eq!(sm.position(&p("b.c")), Position { line: 3, column: 3 });
        assert_eq!(
            sm.position(&p("b.list[0]")),
            Position { line: 5, column: 7 }
        );
        assert_eq!(
            sm.position(&p("b.list[1]")),
            Position { line: 6, column: 7 }
        );
        assert_eq!(
            sm.position(&p("b.list[1].k")),
            Position { line: 6, column: 7 }
        );
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(
            sm.position(&p("b.list[1].k.missing[3]")),
            Position { line: 6, column: 7 }
        );
        assert_eq!(sm.value_position(&p("b")), Position { line: 3, column: 3 });
        assert_eq!(doc.first_line, 1);
        let later = one("\n\n# comment\nkind: X\n");
        assert_eq!(later.first_line, 4);
    }

    #[test]
    fn block_scalar_lines_map_to_file_lines() {
        let text = "spec:\n  key: |-\n    -----BEGIN PUBLIC KEY-----\n    # comment\n      indented\n    -----END PUBLIC KEY-----\n  other: x\n";
        let doc = one(text);
        let path = p("spec.key");
        let content = doc.value["spec"]["key"].as_str().unwrap();
        assert_eq!(
            content,
            "-----BEGIN PUBLIC KEY-----\n# comment\n  indented\n-----END PUBLIC KEY-----"
        );
        let sm = &doc.source_map;
        assert_eq!(
            sm.content_line_position(&path, content, 1),
            Position { line: 3, column: 5 }
        );
        assert_eq!(
            sm.content_line_position(&path, content, 2),
            Position { line: 4, column: 5 }
        );
        assert_eq!(
            sm.content_line_position(&path, content, 3),
            Position { line: 5, column: 7 }
        );
        // Leading blank lines are part of the content.
        let doc = one("k: |\n\n  first\n");
        let content = doc.value["k"].as_str().unwrap();
        assert_eq!(
            doc.source_map.content_line_position(&p("k"), content, 2),
            Position { line: 3, column: 3 }
        );
        // A quoted string maps every line to its start.
        let doc = one("k: \"a\\nb\"\n");
        assert_eq!(
            doc.source_map.content_line_position(&p("k"), "a\nb", 2),
            Position { line: 1, column: 4 }
        );
    }

    #[test]
    fn anchors_aliases_and_merges() {
        let doc = one(
            "base: &b {x: 1, y: 2}\nuse: *b\nmerged:\n  <<: *b\n  y: 3\nlist: &l [a, b]\nagain: *l\n",
        );
        assert_eq!(
            doc.value,
            json!({
                "base": {"x": 1, "y": 2},
                "use": {"x": 1, "y": 2},
                "merged": {"y": 3, "x": 1},
                "list": ["a", "b"],
                "again": ["a", "b"],
            })
        );
        // Nodes reached through an alias report the alias' position.
        assert_eq!(
            doc.source_map.position(&p("use.x")),
            Position { line: 2, column: 1 }
        );
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in ['b', 'c', 'd', 'e', 'f', 'g', 'h'] {
            text.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = name;
        }
        assert!(matches!(error(&text).kind, YamlErrorKind::TooLarge(_)));
    }

    #[test]
    fn a_text_of_too_many_documents_is_refused_at_the_cap() {
        let text = "a: 1\n---\n".repeat(MAX_DOCUMENTS + 5);
        let docs = parse_documents(&text);
        assert_eq!(docs.len(), MAX_DOCUMENTS + 1);
        let last = docs
            .last()
            .and_then(|d| d.as_ref().err())
            .map(|e| e.kind.to_string());
        assert_eq!(
            last.as_deref(),
            Some("the text holds more than 10000 documents: split it into several files")
        );
        assert!(docs[..MAX_DOCUMENTS].iter().all(Result::is_ok));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(MAX_DEPTH + 5), "]".repeat(MAX_DEPTH + 5));
        assert!(matches!(error(&text).kind, YamlErrorKind::TooLarge(_)));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = error("a: 1\nb:\n  c: 1\n  c: 2\n");
        assert_eq!(err.position, Position { line: 4, column: 3 });
        assert_eq!(
            err.to_string(),
            "line 4, column 3: duplicate key 'c' (first set at line 3)"
        );
    }

    #[test]
    fn non_string_keys_are_errors() {
        assert_eq!(
            error("1: a\n").kind,
            YamlErrorKind::NonStringKey {
                found: "'1' (a number)".into()
            }
        );
        assert!(matches!(
            error("true: a\n").kind,
            YamlErrorKind::NonStringKey { .. }
        ));
        assert!(matches!(
            error("? [a]\n: b\n").kind,
            YamlErrorKind::NonStringKey { .. }
        ));
        assert_eq!(one("\"1\": a\n").value, json!({"1": "a"}));
    }

    #[test]
    fn syntax_errors_are_located_and_keep_earlier_documents() {
        let docs = parse_documents("a: 1\n---\nb: c: d\n");
        assert_eq!(docs.len(), 2);
        assert!(docs[0].is_ok());
        let err = docs[1].clone().unwrap_err();
        assert_eq!(err.position, Position { line: 3, column: 5 });
        assert!(matches!(err.kind, YamlErrorKind::Syntax(_)), "{err}");
        let err = error("a:\n  - x\n - y\n");
        assert_eq!(err.position.line, 3);
    }

    #[test]
    fn a_bad_document_does_not_stop_the_next() {
        let docs = parse_documents("a: 1\na: 2\n---\nb: 1\n");
        assert_eq!(docs.len(), 2);
        assert!(docs[0].is_err());
        assert_eq!(docs[1].clone().unwrap().value, json!({"b": 1}));
    }
}
