//! YAML written by hand: double-quoted scalars that hold any string, literal blocks for scripts,
//! and GitHub's `${{ }}` expressions neutralised in text that comes from the workflow file.

use std::fmt::Write as _;

/// `s` as a YAML double-quoted scalar. Quotes, backslashes, line breaks and every character
/// outside YAML's printable set are escaped, so no string can end the scalar or start a new key.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Characters outside YAML's printable set, plus the Unicode line and paragraph separators and
/// the byte order mark (which YAML 1.1 readers treat as breaks or markers).
fn needs_escape(c: char) -> bool {
    let n = c as u32;
    n < 0x20 || (0x7F..=0x9F).contains(&n) || matches!(n, 0x2028 | 0x2029 | 0xFEFF | 0xFFFE | 0xFFFF)
}

/// Text for a GitHub field that evaluates `${{ }}` (env values, `with:` inputs): each `${{` is
/// written as an expression that yields the two characters literally, so nothing in the
/// workflow file can reach GitHub's expression evaluator.
pub(crate) fn gh_literal(s: &str) -> String {
    s.replace("${{", "${{ '${{' }}")
}

/// `gh_literal` then `quote`: a GitHub value that stays exactly `s`.
pub(crate) fn gh_quote(s: &str) -> String {
    quote(&gh_literal(s))
}

/// Display text where GitHub does not evaluate expressions but a reader might take `${{` for one
/// (the workflow's `name`): `${{` becomes `$ {{`.
pub(crate) fn defang(s: &str) -> String {
    s.replace("${{", "$ {{")
}

/// `s` for a YAML comment: quoted, so a line break in it cannot end the comment.
pub(crate) fn comment(s: &str) -> String {
    quote(s)
}

/// `lead |` (`lead` is `key:` or `-`) and `text` as a literal block indented by `indent` spaces
/// (plus two for the block), or `lead "text"` when the text cannot be a block (leading spaces,
/// characters YAML forbids).
pub(crate) fn block(out: &mut String, indent: usize, lead: &str, text: &str) {
    let pad = " ".repeat(indent);
    let text = text.trim_end_matches('\n');
    let blockable = !text.is_empty()
        && !text.starts_with([' ', '\t', '\n'])
        && !text.chars().any(|c| c != '\n' && c != '\t' && needs_escape(c) || c == '\r');
    if !blockable {
        let _ = writeln!(out, "{pad}{lead} {}", quote(text));
        return;
    }
    let _ = writeln!(out, "{pad}{lead} |");
    for line in text.lines() {
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{pad}  {line}");
        }
    }
}

/// `key:` and one `- "item"` line per item.
pub(crate) fn list(out: &mut String, indent: usize, key: &str, items: &[String]) {
    let pad = " ".repeat(indent);
    let _ = writeln!(out, "{pad}{key}:");
    for item in items {
        let _ = writeln!(out, "{pad}  - {}", quote(item));
    }
}

/// A path for a glob-reading field (cache and artifact paths): glob characters are put in
/// brackets and a leading `!` or `#` (negation, comment) is hidden behind `./`, so the path
/// names exactly one file or directory. `{var}` partition templates become `*`.
pub(crate) fn glob_literal(path: &str, templated: bool) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(c) = rest.chars().next() {
        if templated
            && c == '{'
            && let Some(end) = rest.find('}')
            && dagrun_workflow::partition::VARS.contains(&&rest[1..end])
        {
            out.push('*');
            rest = &rest[end + 1..];
            continue;
        }
        match c {
            '*' | '?' | '[' | ']' | '{' | '}' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            '\\' => out.push_str("[\\\\]"),
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    if out.starts_with(['!', '#']) { format!("./{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_everything_that_could_break_out() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a \"b\" \\c"), r#""a \"b\" \\c""#);
        assert_eq!(quote("x\ny: 1"), r#""x\ny: 1""#);
        assert_eq!(quote("bell\u{7}\u{2028}"), r#""bell\u0007\u2028""#);
        assert_eq!(quote("é ${{ x }}"), "\"é ${{ x }}\"");
    }

    #[test]
    fn github_expressions_are_made_literal() {
        assert_eq!(gh_literal("a ${{ secrets.X }}"), "a ${{ '${{' }} secrets.X }}");
        assert_eq!(gh_literal("no expression }}"), "no expression }}");
        assert_eq!(defang("n ${{ x }}"), "n $ {{ x }}");
    }

    #[test]
    fn blocks_fall_back_to_quotes() {
        let mut out = String::new();
        block(&mut out, 4, "run:", "echo a\n\necho b\n");
        assert_eq!(out, "    run: |\n      echo a\n\n      echo b\n");
        out.clear();
        block(&mut out, 0, "-", "  leading");
        assert_eq!(out, "- \"  leading\"\n");
        out.clear();
        block(&mut out, 0, "run:", "a\rb");
        assert_eq!(out, "run: \"a\\rb\"\n");
    }

    #[test]
    fn glob_characters_are_literal() {
        assert_eq!(glob_literal("out/a*b?[c].txt", false), "out/a[*]b[?][[]c[]].txt");
        assert_eq!(glob_literal("!x/#y", false), "./!x/#y");
        assert_eq!(glob_literal("out/{date}/m-{hour}.csv", true), "out/*/m-*.csv");
        assert_eq!(glob_literal("out/{other}.csv", true), "out/[{]other[}].csv");
    }
}
