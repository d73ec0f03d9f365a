//! A structural RON reader that keeps byte spans, so diagnostics can point at the exact value.
//!
//! serde + ron give us typed values but no locations for them. This module reads the same
//! text a second time and builds a light tree of [`Node`]s (structs, tuples, lists, maps,
//! strings, scalars) with the byte range of every node. It never decides what a value means;
//! it only answers "where is field `after` of the 3rd task?".

use std::ops::Range;

/// A RON value with the byte range it covers in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Byte range of the whole value (for a named struct, from its name to its `)`).
    pub span: Range<usize>,
    /// What kind of value this is.
    pub kind: NodeKind,
}

/// The shape of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `Name(field: value, ...)` or `(field: value, ...)`.
    Struct(Vec<Field>),
    /// `Name(value, ...)`, `(value, ...)` or a bare `Name` (an empty tuple).
    Tuple(Vec<Node>),
    /// `[value, ...]`.
    List(Vec<Node>),
    /// `{ key: value, ... }`.
    Map(Vec<(Node, Node)>),
    /// A string literal, unescaped.
    Str(String),
    /// Numbers, booleans, chars, identifiers: anything we never need to look inside.
    Scalar,
}

/// One `name: value` entry of a struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The field name as written.
    pub name: String,
    /// Byte range of the field name.
    pub name_span: Range<usize>,
    /// The field's value.
    pub value: Node,
}

impl Node {
    /// The value of struct field `name`, if this is a struct that has it.
    pub fn field(&self, name: &str) -> Option<&Node> {
        self.field_entry(name).map(|f| &f.value)
    }

    /// The whole entry (name span and value) of struct field `name`.
    pub fn field_entry(&self, name: &str) -> Option<&Field> {
        match &self.kind {
            NodeKind::Struct(fields) => fields.iter().find(|f| f.name == name),
            _ => None,
        }
    }

    /// Element `i` of a list or tuple.
    pub fn index(&self, i: usize) -> Option<&Node> {
        match &self.kind {
            NodeKind::List(items) | NodeKind::Tuple(items) => items.get(i),
            _ => None,
        }
    }

    /// The elements of a list or tuple (empty for anything else).
    pub fn items(&self) -> &[Node] {
        match &self.kind {
            NodeKind::List(items) | NodeKind::Tuple(items) => items,
            _ => &[],
        }
    }

    /// The `(key, value)` entry of a map whose key is the string `key`.
    pub fn map_entry(&self, key: &str) -> Option<&(Node, Node)> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|(k, _)| k.as_str() == Some(key)),
            _ => None,
        }
    }

    /// The string value of a string literal.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// The node at `path` below `root` (`key`, `a.b`, `list[2]`, `a.b[0].c`): map keys and struct
/// fields by name, list and tuple elements by index. Stops at the deepest node found; `None` when
/// not even the first step is there (or `path` is empty).
pub fn resolve_path<'a>(root: &'a Node, path: &str) -> Option<&'a Node> {
    let mut found = None;
    let mut node = root;
    for step in path_steps(path) {
        let next = match step {
            Step::Key(k) => node.map_entry(k).map(|(_, v)| v).or_else(|| node.field(k)),
            Step::Index(i) => node.index(i),
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
        found = Some(node);
    }
    found
}

/// One step of a param path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[2]` → `Key(a)`, `Key(b)`, `Index(2)`; an index that is not a number ends the path.
fn path_steps(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = part.split_once('[').map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        for index in indexes.split('[') {
            match index.strip_suffix(']').and_then(|n| n.parse().ok()) {
                Some(n) => steps.push(Step::Index(n)),
                None if index.is_empty() => {}
                None => return steps,
            }
        }
    }
    steps
}

/// How deeply `(`, `[` and `{` may nest: the same limit `ron` applies by default. The reader
/// recurses once per level, so deeper input is refused before it can overflow the stack.
pub const MAX_DEPTH: usize = 128;

/// The UTF-8 byte order mark: skipped at the start of a file, like whitespace.
pub const BOM: &str = "\u{feff}";

/// What `ron` treats as whitespace (besides comments): the reader must skip exactly the same
/// characters, or a file with e.g. U+2028 would lose every location.
pub fn is_ron_whitespace(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C' | '\u{85}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}'
    )
}

/// Why the structural reader gave up (the caller falls back to diagnostics without spans).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// Byte offset where reading failed.
    pub offset: usize,
    /// What was expected there.
    pub expected: &'static str,
    /// Reading stopped because brackets nest deeper than [`MAX_DEPTH`] (at `offset`).
    pub too_deep: bool,
}

/// Reads the whole document into a [`Node`] tree (a leading byte order mark is skipped).
pub fn parse(src: &str) -> Result<Node, ScanError> {
    Reader::new(src, true).document()
}

/// What reading a document without keeping its tree finds (see [`scan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Some map gives the same string key twice (ron would silently keep the last one). A file
    /// without (that ron reads) needs no span tree unless something is wrong with it.
    pub duplicate_key: bool,
    /// Where the top-level value starts (after attributes and comments).
    pub root_start: usize,
    /// The top-level struct's `tasks` list: its span (`[` to `]`) and each item's.
    pub tasks: Option<(Range<usize>, Vec<Range<usize>>)>,
    /// The deepest nesting of brackets met.
    pub max_depth: usize,
}

/// Reads the whole document like [`parse`] without keeping the tree (see [`Scan`]).
pub fn scan(src: &str) -> Result<Scan, ScanError> {
    let mut r = Reader::new(src, false);
    let root = r.document()?;
    let tasks = r.tasks_list.take().map(|list| (list, std::mem::take(&mut r.items)));
    Ok(Scan { duplicate_key: r.duplicate_key, root_start: root.span.start, tasks, max_depth: r.max_depth })
}

struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
    /// Open brackets around `pos`.
    depth: usize,
    /// Build the tree (`false`: only read, returning childless nodes, and note duplicate keys).
    keep: bool,
    /// Without `keep`: a map gave some string key twice.
    duplicate_key: bool,
    /// The next value is a map key: a string's text is needed even without `keep`.
    want_text: bool,
    /// Without `keep`: the next value is the top-level struct's `tasks` field.
    capture: bool,
    /// Span of the `tasks` list, once read (without `keep`).
    tasks_list: Option<Range<usize>>,
    /// Spans of the `tasks` list's items, in order.
    items: Vec<Range<usize>>,
    /// The deepest `depth` reached.
    max_depth: usize,
}

impl<'a> Reader<'a> {
    fn new(src: &'a str, keep: bool) -> Self {
        let start = if src.starts_with(BOM) { BOM.len() } else { 0 };
        Reader {
            src: src.as_bytes(),
            pos: start,
            depth: 0,
            keep,
            duplicate_key: false,
            want_text: false,
            capture: false,
            tasks_list: None,
            items: Vec::new(),
            max_depth: 0,
        }
    }

    fn document(&mut self) -> Result<Node, ScanError> {
        self.skip_ws()?;
        while self.peek_str("#!") {
            self.skip_attribute()?;
            self.skip_ws()?;
        }
        let node = self.value()?;
        self.skip_ws()?;
        if self.pos != self.src.len() {
            return Err(self.err("end of file"));
        }
        Ok(node)
    }

    fn err(&self, expected: &'static str) -> ScanError {
        ScanError { offset: self.pos, expected, too_deep: false }
    }

    /// Enters one more level of brackets, refusing to go deeper than [`MAX_DEPTH`].
    fn descend(&mut self) -> Result<(), ScanError> {
        self.depth += 1;
        self.max_depth = self.max_depth.max(self.depth);
        if self.depth > MAX_DEPTH {
            return Err(ScanError { offset: self.pos, expected: "less nesting", too_deep: true });
        }
        Ok(())
    }

    /// The whitespace character at `pos` (ASCII or not) and its length in bytes.
    fn ws_len(&self) -> Option<usize> {
        let rest = &self.src[self.pos..];
        let c = match rest.first()? {
            b if b.is_ascii() => char::from(*b),
            _ => std::str::from_utf8(&rest[..rest.len().min(4)])
                .or_else(|e| std::str::from_utf8(&rest[..e.valid_up_to()]))
                .ok()?
                .chars()
                .next()?,
        };
        is_ron_whitespace(c).then(|| c.len_utf8())
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn peek_str(&self, s: &str) -> bool {
        self.src[self.pos..].starts_with(s.as_bytes())
    }

    fn skip_ws(&mut self) -> Result<(), ScanError> {
        loop {
            if let Some(n) = self.ws_len() {
                self.pos += n;
                continue;
            }
            match self.peek() {
                Some(b'/') if self.peek_str("//") => {
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.pos += 1;
                    }
                }
                Some(b'/') if self.peek_str("/*") => {
                    let mut depth = 0usize;
                    loop {
                        if self.peek_str("/*") {
                            depth += 1;
                            self.pos += 2;
                        } else if self.peek_str("*/") {
                            depth -= 1;
                            self.pos += 2;
                            if depth == 0 {
                                break;
                            }
                        } else if self.peek().is_none() {
                            return Err(self.err("end of block comment"));
                        } else {
                            self.pos += 1;
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn skip_attribute(&mut self) -> Result<(), ScanError> {
        // `#![enable(...)]`: skip to the matching `]`.
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'[' => depth += 1,
                b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(self.err("end of attribute"))
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), ScanError> {
        self.skip_ws()?;
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn is_ident_byte(c: u8) -> bool {
        c.is_ascii_alphanumeric() || c == b'_' || c == b'#' || c >= 0x80
    }

    fn ident(&mut self) -> Option<Range<usize>> {
        let start = self.pos;
        if self.peek_str("r#") && self.src.get(self.pos + 2).is_some_and(|c| c.is_ascii_alphabetic()) {
            self.pos += 2;
        }
        while self.peek().is_some_and(Self::is_ident_byte) && self.ws_len().is_none() {
            self.pos += 1;
        }
        (self.pos > start).then_some(start..self.pos)
    }

    fn value(&mut self) -> Result<Node, ScanError> {
        self.skip_ws()?;
        let start = self.pos;
        let (want_text, capture) = (std::mem::take(&mut self.want_text), std::mem::take(&mut self.capture));
        match self.peek() {
            Some(b'"') => self.string(start, want_text),
            Some(b'r' | b'b') if self.is_raw_or_byte_string() => self.string(start, want_text),
            Some(b'\'') => self.char_lit(start),
            Some(b'[') => {
                self.descend()?;
                self.pos += 1;
                let items = self.seq(b']', capture)?;
                self.depth -= 1;
                if capture {
                    self.tasks_list = Some(start..self.pos);
                }
                Ok(Node { span: start..self.pos, kind: NodeKind::List(items) })
            }
            Some(b'{') => {
                self.descend()?;
                let node = self.map(start)?;
                self.depth -= 1;
                Ok(node)
            }
            Some(b'(') => self.parens(start),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                self.ident();
                let after_name = self.pos;
                self.skip_ws()?;
                if self.peek() == Some(b'(') {
                    self.parens(start)
                } else {
                    self.pos = after_name;
                    Ok(Node { span: start..self.pos, kind: NodeKind::Scalar })
                }
            }
            Some(c) if c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.') => {
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'+')) {
                    self.pos += 1;
                }
                Ok(Node { span: start..self.pos, kind: NodeKind::Scalar })
            }
            _ => Err(self.err("a value")),
        }
    }

    fn is_raw_or_byte_string(&self) -> bool {
        let rest = &self.src[self.pos..];
        rest.starts_with(b"r\"")
            || rest.starts_with(b"r#")
            || rest.starts_with(b"b\"")
            || rest.starts_with(b"br\"")
            || rest.starts_with(b"br#")
    }

    /// A string literal. A raw string's text is always kept; another's with `keep` or
    /// `want_text` (else it is a scalar).
    fn string(&mut self, start: usize, want_text: bool) -> Result<Node, ScanError> {
        if self.peek() == Some(b'b') {
            self.pos += 1;
        }
        if self.peek() == Some(b'r') {
            self.pos += 1;
            let mut hashes = 0;
            while self.peek() == Some(b'#') {
                hashes += 1;
                self.pos += 1;
            }
            self.expect(b'"', "`\"`")?;
            let body = self.pos;
            loop {
                match self.peek() {
                    None => return Err(self.err("end of raw string")),
                    Some(b'"')
                        if self.src[self.pos + 1..].iter().take(hashes).filter(|&&c| c == b'#').count() == hashes =>
                    {
                        let text = String::from_utf8_lossy(&self.src[body..self.pos]).into_owned();
                        self.pos += 1 + hashes;
                        return Ok(Node { span: start..self.pos, kind: NodeKind::Str(text) });
                    }
                    Some(_) => self.pos += 1,
                }
            }
        }
        self.pos += 1; // opening quote
        let keep_text = self.keep || want_text;
        let mut text = Vec::new();
        loop {
            // Runs of plain characters at once, up to the closing quote or an escape.
            let rest = &self.src[self.pos..];
            let Some(at) = memchr::memchr2(b'"', b'\\', rest) else {
                self.pos = self.src.len();
                return Err(self.err("end of string"));
            };
            if keep_text {
                text.extend_from_slice(&rest[..at]);
            }
            self.pos += at;
            if rest[at] == b'"' {
                self.pos += 1;
                let kind = if keep_text {
                    NodeKind::Str(String::from_utf8_lossy(&text).into_owned())
                } else {
                    NodeKind::Scalar
                };
                return Ok(Node { span: start..self.pos, kind });
            }
            let esc = self.src.get(self.pos + 1).copied();
            self.pos += 2;
            match esc {
                Some(b'n') => text.push(b'\n'),
                Some(b't') => text.push(b'\t'),
                Some(b'r') => text.push(b'\r'),
                Some(b'0') => text.push(0),
                Some(c @ (b'\\' | b'"' | b'\'')) => text.push(c),
                // \u{..} and \x..: keep the raw text; spans matter here, not exact values.
                Some(c) => text.extend_from_slice(&[b'\\', c]),
                None => return Err(self.err("end of string")),
            }
        }
    }

    fn char_lit(&mut self, start: usize) -> Result<Node, ScanError> {
        self.pos += 1;
        loop {
            match self.peek() {
                None => return Err(self.err("end of char")),
                Some(b'\\') => self.pos += 2,
                Some(b'\'') => {
                    self.pos += 1;
                    return Ok(Node { span: start..self.pos, kind: NodeKind::Scalar });
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Items up to `close`; `capture`: note each item's span (the `tasks` list, see [`scan`]).
    fn seq(&mut self, close: u8, capture: bool) -> Result<Vec<Node>, ScanError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws()?;
            if self.peek() == Some(close) {
                self.pos += 1;
                items.shrink_to_fit(); // kept for the whole run: no slack
                return Ok(items);
            }
            let item = self.value()?;
            if capture {
                self.items.push(item.span.clone());
            }
            if self.keep {
                items.push(item);
            }
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => return Err(self.err("`,` or a closing bracket")),
            }
        }
    }

    fn map(&mut self, start: usize) -> Result<Node, ScanError> {
        self.pos += 1;
        let mut entries = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        loop {
            self.skip_ws()?;
            if self.peek() == Some(b'}') {
                self.pos += 1;
                entries.shrink_to_fit();
                return Ok(Node { span: start..self.pos, kind: NodeKind::Map(entries) });
            }
            self.want_text = true;
            let key = self.value()?;
            self.expect(b':', "`:` after a map key")?;
            let value = self.value()?;
            if self.keep {
                entries.push((key, value));
            } else if let NodeKind::Str(k) = key.kind {
                // Maps are small: a linear scan of the keys seen so far.
                self.duplicate_key |= keys.contains(&k);
                keys.push(k);
            }
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(self.err("`,` or `}`")),
            }
        }
    }

    /// `(` ... `)` after an optional name, one level deeper.
    fn parens(&mut self, start: usize) -> Result<Node, ScanError> {
        self.descend()?;
        let node = self.parens_inner(start)?;
        self.depth -= 1;
        Ok(node)
    }

    /// `(` ... `)`: a struct when the first entry is `ident:`.
    fn parens_inner(&mut self, start: usize) -> Result<Node, ScanError> {
        self.pos += 1; // `(`
        self.skip_ws()?;
        let save = self.pos;
        let is_struct = match self.ident() {
            Some(_) => {
                self.skip_ws()?;
                self.peek() == Some(b':') && !self.peek_str("::")
            }
            None => false,
        };
        self.pos = save;
        if !is_struct {
            let items = self.seq(b')', false)?;
            return Ok(Node { span: start..self.pos, kind: NodeKind::Tuple(items) });
        }
        let mut fields = Vec::new();
        loop {
            self.skip_ws()?;
            if self.peek() == Some(b')') {
                self.pos += 1;
                fields.shrink_to_fit();
                return Ok(Node { span: start..self.pos, kind: NodeKind::Struct(fields) });
            }
            let name_span = self.ident().ok_or_else(|| self.err("a field name"))?;
            self.expect(b':', "`:` after a field name")?;
            self.capture = !self.keep && self.depth == 1 && &self.src[name_span.clone()] == b"tasks";
            let value = self.value()?;
            if self.keep {
                let name = String::from_utf8_lossy(&self.src[name_span.clone()]).into_owned();
                let name = name.strip_prefix("r#").map(str::to_owned).unwrap_or(name);
                fields.push(Field { name, name_span, value });
            }
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {}
                _ => return Err(self.err("`,` or `)`")),
            }
        }
    }
}

#[cfg(test)]
#[path = "spans_tests.rs"]
mod tests;
