//! Unit tests of the span reader and the scan.

use super::*;

#[test]
fn finds_nested_spans() {
    let src = r##"// comment
Workflow(
name: "demo", /* block /* nested */ */
tasks: [
    Task(name: "a", kind: Command(run: r#"echo "hi""#), after: ["b"]),
    (name: "b", params: { "x": 1.5e3, "y": [1, -2], "z": Some('c') }),
],
)"##;
    let doc = parse(src).unwrap();
    let tasks = doc.field("tasks").unwrap();
    assert_eq!(tasks.items().len(), 2);
    let a = tasks.index(0).unwrap();
    assert_eq!(a.field("name").unwrap().as_str(), Some("a"));
    let after = a.field("after").unwrap().index(0).unwrap();
    assert_eq!(&src[after.span.clone()], "\"b\"");
    let run = a.field("kind").unwrap().field("run").unwrap();
    assert_eq!(run.as_str(), Some("echo \"hi\""));
    let b = tasks.index(1).unwrap();
    let (k, _) = b.field("params").unwrap().map_entry("y").unwrap();
    assert_eq!(&src[k.span.clone()], "\"y\"");
}

#[test]
fn skips_the_same_whitespace_as_ron() {
    let src = "\u{feff}(a:\u{2028}\"x\",\u{2029}b\x0B:\x0C[1,\u{85}2])";
    let doc = parse(src).unwrap();
    assert_eq!(doc.field("a").unwrap().as_str(), Some("x"));
    assert_eq!(&src[doc.field("b").unwrap().span.clone()], "[1,\u{85}2]");
}

#[test]
fn finds_duplicate_keys_without_keeping_the_tree() {
    let dup = |src: &str| scan(src).unwrap().duplicate_key;
    assert!(!dup(r#"W(tasks: [T(name: "a", params: {"x": 1}), T(name: "b", params: {"x": 2})])"#));
    assert!(dup(r#"W(tasks: [T(name: "a", params: {"x": 1, "y": 2, "x": 3})])"#));
    assert!(dup(r#"W(tasks: [T(params: {"o": {"k": [1, {"d": 1, "d": 2}]}})])"#), "nested");
    assert!(dup(r#"{"a": 1, r"a": 2}"#), "raw strings unescape alike");
    assert!(!dup(r#"{"a": {"a": 1}, "b": (a: 1, a: 2)}"#), "other maps and struct fields");
    assert_eq!(parse(r#"{"a": 1, "a": 2}"#).map(|_| ()), Ok(()), "the tree keeps both");
    let deep = "[".repeat(MAX_DEPTH + 1);
    assert!(scan(&deep).unwrap_err().too_deep);
    assert!(scan("W(a: ").is_err());
}

#[test]
fn refuses_deep_nesting_without_recursing_into_it() {
    let deep = "[".repeat(100_000);
    let err = parse(&deep).unwrap_err();
    assert!(err.too_deep);
    assert_eq!(err.offset, MAX_DEPTH);
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(parse(&ok).is_ok());
}

#[test]
fn reports_offset_of_garbage() {
    let err = parse("(a: 1,, )").unwrap_err();
    assert_eq!(err.offset, 6);
}

#[test]
fn unit_variants_and_attributes() {
    let doc = parse("#![enable(implicit_some)]\n(a: None, b: (), c: Foo)").unwrap();
    assert!(matches!(doc.field("b").unwrap().kind, NodeKind::Tuple(ref v) if v.is_empty()));
    assert!(matches!(doc.field("c").unwrap().kind, NodeKind::Scalar));
}

#[test]
fn resolves_param_paths_as_deep_as_written() {
    let src = r#"{"columns": ["a", "b"], "split": {"ratio": 0.5, "opt": (name: "adam")}}"#;
    let doc = parse(src).unwrap();
    let at = |path: &str| resolve_path(&doc, path).map(|n| &src[n.span.clone()]);
    assert_eq!(at("columns"), Some(r#"["a", "b"]"#));
    assert_eq!(at("columns[1]"), Some(r#""b""#));
    assert_eq!(at("split.ratio"), Some("0.5"));
    assert_eq!(at("split.opt.name"), Some(r#""adam""#));
    assert_eq!(at("split.seed"), Some(r#"{"ratio": 0.5, "opt": (name: "adam")}"#));
    assert_eq!(at("columns[7]"), Some(r#"["a", "b"]"#));
    assert_eq!(at("missing"), None);
    assert_eq!(at(""), None);
}

#[test]
fn splits_param_paths() {
    assert_eq!(
        path_steps("a.b[2][0].c"),
        [Step::Key("a"), Step::Key("b"), Step::Index(2), Step::Index(0), Step::Key("c")]
    );
    assert_eq!(path_steps("[1]"), [Step::Index(1)]);
    assert_eq!(path_steps("a[x].b"), [Step::Key("a")]);
}
