//! Names the param that failed to deserialize: ``param `columns`: invalid type: ...``.
//!
//! serde_json reports where in the params JSON it stopped (line and column), not which field it
//! was reading, and that JSON is written by the host, so its position means nothing to the user.
//! [`invalid_params_message`] reads the JSON up to that position, keeps the path of keys and
//! list indexes it is inside (`outer.inner`, `columns[1]`), and puts it in front of serde's
//! message instead of the position.

/// The user-facing text of a params deserialization error for the params JSON `json`.
///
/// A data error (wrong type or value, missing or unknown field) becomes
/// ``param `<path>`: <serde's message>``, or serde's message alone when the error concerns the
/// top-level object (e.g. ``missing field `factor` ``); its position is dropped. A syntax error
/// (the host never sends one) keeps serde_json's full text.
pub(crate) fn invalid_params_message(json: &str, e: &serde_json::Error) -> String {
    let full = e.to_string();
    if !e.is_data() {
        return full;
    }
    let position = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&position).unwrap_or(&full);
    match offset_of(json, e.line(), e.column()).map(|end| path_at(&json[..end])) {
        Some(path) if !path.is_empty() => format!("param `{path}`: {message}"),
        _ => message.to_owned(),
    }
}

/// Byte offset just after 1-based `line` and `column` (serde_json counts bytes); `None` when
/// serde gave no position or it lies outside the text.
fn offset_of(json: &str, line: usize, column: usize) -> Option<usize> {
    if line == 0 {
        return None;
    }
    let start: usize = json.split_inclusive('\n').take(line - 1).map(str::len).sum();
    let end = start + column;
    (end <= json.len() && json.is_char_boundary(end)).then_some(end)
}

/// Where a JSON reader is inside nested values.
enum Frame {
    /// In an object: the key whose value is being read, once its `:` has been seen.
    Object(Option<String>),
    /// In a list: the index of the element being read.
    List(usize),
}

/// The path of the value that the JSON `prefix` ends in, e.g. `outer.inner` or `columns[1]`;
/// empty at the top level or between an object's entries.
fn path_at(prefix: &str) -> String {
    let mut frames: Vec<Frame> = Vec::new();
    let mut last_string: Option<String> = None;
    let mut rest = prefix;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            let (string, after) = read_string(rest);
            last_string = string;
            rest = after;
            continue;
        }
        match (c, frames.last_mut()) {
            ('{', _) => frames.push(Frame::Object(None)),
            ('[', _) => frames.push(Frame::List(0)),
            ('}' | ']', _) => drop(frames.pop()),
            (':', Some(Frame::Object(key))) => *key = last_string.take(),
            (',', Some(Frame::Object(key))) => *key = None,
            (',', Some(Frame::List(i))) => *i += 1,
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    join_path(&frames)
}

/// Reads the string literal at the start of `s`: its text (`None` if `s` ends inside it) and the rest.
fn read_string(s: &str) -> (Option<String>, &str) {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return (serde_json::from_str(&s[..=i]).ok(), &s[i + 1..]),
            _ => {}
        }
    }
    (None, "")
}

/// `a.b[2].c` from the frames, leaving out an object with no current key.
fn join_path(frames: &[Frame]) -> String {
    let mut path = String::new();
    for frame in frames {
        match frame {
            Frame::Object(Some(key)) if path.is_empty() => path.push_str(key),
            Frame::Object(Some(key)) => {
                path.push('.');
                path.push_str(key);
            }
            Frame::Object(None) => {}
            Frame::List(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::path_at;

    #[test]
    fn path_of_a_prefix() {
        assert_eq!(path_at(r#"{"columns":"charges""#), "columns");
        assert_eq!(path_at(r#"{"a":1,"outer":{"inner":[1,"x""#), "outer.inner[1]");
        assert_eq!(path_at(r#"{"a":{"b":1},"c""#), "");
        assert_eq!(path_at(r#"{"a":{"b":1}"#), "a");
        assert_eq!(path_at(r#"{"a\"b:":"x""#), "a\"b:");
        assert_eq!(path_at(r#"{"k":"{[,:","n":[{"m":true"#), "n[0].m");
        assert_eq!(path_at("5"), "");
    }
}
