//! Output paths: each output is a file of its own under the workflow directory, apart from every
//! declared input, every other output, the workflow file and the state directory (dagrun deletes
//! declared outputs before a task runs, so an overlap would destroy data).
//!
//! Partition templates (`out/{date}.txt`) are compared conservatively: only the directory part of
//! the literal text before the first `{` is known, so a templated path is only reported when it
//! is certainly inside a literal one (or spelt exactly like another templated path).

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Component, Path};

use crate::diag::{Diagnostic, Source};
use crate::model::{Input, TaskDef};
use crate::spans::Node;
use crate::validate::{TaskSpans, valid_name};

/// The default state directory beside the workflow file.
const STATE_DIR: &str = ".dagrun";

/// Per task: valid output names, and paths that name a file under the workflow directory.
pub(crate) fn check_output_paths(source: &Source, def: &TaskDef, sp: &TaskSpans<'_>, diags: &mut Vec<Diagnostic>) {
    for (name, path) in &def.outputs {
        if !valid_name(name) {
            diags.push(
                Diagnostic::new("dagrun::invalid-name", format!("invalid output name `{name}`"), source)
                    .label(sp.map_key("outputs", name), "not a valid name")
                    .help("output names use only letters, digits, `_` and `-`"),
            );
        }
        let Some((what, label)) = path_problem(path) else { continue };
        let file = match Path::new(path).file_name() {
            Some(f) if !path.ends_with('/') => f.to_string_lossy().into_owned(),
            _ => "model.onnx".to_owned(),
        };
        diags.push(
            Diagnostic::new("dagrun::output-path", format!("output `{name}` of task `{}` {what}", def.name), source)
                .label(sp.map_value("outputs", name), label)
                .help(format!(
                    "outputs are restored from the cache to their path, so they live under the workflow file's \
                     directory: write e.g. \"out/{file}\" (copy it elsewhere in a later task if you need to)"
                )),
        );
    }
}

/// Why `path` cannot be an output at all (message, label).
fn path_problem(path: &str) -> Option<(&'static str, &'static str)> {
    let p = Path::new(path);
    Some(if path.is_empty() {
        ("is empty", "no path")
    } else if p.is_absolute() {
        ("is an absolute path", "absolute path")
    } else if p.components().any(|c| matches!(c, Component::ParentDir)) {
        ("leaves the workflow directory with `..`", "leaves the workflow directory")
    } else if path.ends_with('/') {
        ("ends with `/`: an output is a file, not a directory", "ends with `/`")
    } else if components(path).is_empty() {
        ("is the workflow directory itself", "the whole directory")
    } else {
        return None;
    })
}

/// `path` without `.` components, split at `/`.
fn components(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".").collect()
}

/// `path` with `.` components and repeated `/` removed: borrowed when it has none (the common
/// case, which a 10,000-task workflow then checks without a copy of each path).
pub(crate) fn normalize(path: &str) -> Cow<'_, str> {
    if path.split('/').all(|c| !c.is_empty() && c != ".") {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(components(path).join("/"))
    }
}

/// Whether `prefix` is `path`'s first components (both normalized): `out/d` is of `out/d/x`,
/// not of `out/dx`; the empty path is of every path.
fn starts_with_components(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.is_empty() || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

/// Who a path belongs to.
#[derive(Debug, Clone, Copy)]
enum Owner<'a> {
    Output { task: usize, task_name: &'a str, name: &'a str },
    Input { task: usize, task_name: &'a str, name: &'a str },
    WorkflowFile,
    StateDir,
}

/// A path some part of the workflow claims, in comparable form.
struct Claim<'a> {
    owner: Owner<'a>,
    /// Normalized text (templates included).
    norm: Cow<'a, str>,
    /// How many bytes of `norm` are certainly known, ending at a component boundary: the whole
    /// of a literal path; the directory every instance of a templated one is inside.
    known: usize,
    templated: bool,
}

impl<'a> Claim<'a> {
    fn new(owner: Owner<'a>, path: &'a str) -> Self {
        let templated = path.contains('{');
        let norm = normalize(path);
        let known = if templated {
            // The literal text's directory, normalized as `norm` is: its first components.
            let literal = &path[..path.find('{').unwrap_or(path.len())];
            normalize(&literal[..literal.rfind('/').map_or(0, |i| i + 1)]).len()
        } else {
            norm.len()
        };
        Claim { owner, norm, known, templated }
    }

    /// The certainly known part of the path (see `known`).
    fn known(&self) -> &str {
        &self.norm[..self.known]
    }

    fn describe(&self) -> String {
        match self.owner {
            Owner::Output { task_name, name, .. } => format!("output `{name}` of task `{task_name}` (`{}`)", self.norm),
            Owner::Input { task_name, name, .. } => format!("input `{name}` of task `{task_name}` (`{}`)", self.norm),
            Owner::WorkflowFile => format!("the workflow file `{}`", self.norm),
            Owner::StateDir => format!("the state directory `{STATE_DIR}/`"),
        }
    }

    fn span(&self, doc: Option<&Node>) -> Option<Range<usize>> {
        match self.owner {
            Owner::Output { task, name, .. } => TaskSpans::new(doc, task).map_value("outputs", name),
            Owner::Input { task, name, .. } => TaskSpans::new(doc, task).map_value("inputs", name),
            Owner::WorkflowFile | Owner::StateDir => None,
        }
    }
}

/// How two claimed paths certainly relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rel {
    Same,
    /// The first is inside the second.
    Inside,
    /// The first contains the second.
    Contains,
}

fn relation(a: &Claim<'_>, b: &Claim<'_>) -> Option<Rel> {
    if a.norm == b.norm {
        return Some(Rel::Same);
    }
    let (a_in_b, b_in_a) = (starts_with_components(a.known(), b.known()), starts_with_components(b.known(), a.known()));
    match (a.templated, b.templated) {
        (false, false) if a_in_b => Some(Rel::Inside),
        (false, false) if b_in_a => Some(Rel::Contains),
        (true, false) if a_in_b => Some(Rel::Inside),
        (false, true) if b_in_a => Some(Rel::Contains),
        _ => None,
    }
}

/// Every claimed path: outputs and `File` inputs that are valid relative paths, the workflow file
/// and the state directory.
fn claims<'a>(source: &'a Source, defs: &'a [Option<TaskDef>]) -> (Vec<Claim<'a>>, Vec<Claim<'a>>) {
    let mut outputs = Vec::new();
    let mut others = vec![Claim::new(Owner::StateDir, STATE_DIR)];
    if let Some(file) = Path::new(&source.name).file_name().and_then(|f| f.to_str()) {
        others.push(Claim::new(Owner::WorkflowFile, file));
    }
    for (task, def) in defs.iter().enumerate() {
        let Some(def) = def else { continue };
        for (name, path) in &def.outputs {
            if path_problem(path).is_none() {
                outputs.push(Claim::new(Owner::Output { task, task_name: &def.name, name }, path));
            }
        }
        for (name, input) in &def.inputs {
            if let Input::File(path) = input
                && path_problem(path).is_none()
            {
                others.push(Claim::new(Owner::Input { task, task_name: &def.name, name }, path));
            }
        }
    }
    (outputs, others)
}

/// Outputs that are, contain or are inside another output, a `File` input, the workflow file or
/// the state directory. Each output is reported once, against the first earlier output (else the
/// first other claim) it clashes with.
pub(crate) fn check_overlaps(
    source: &Source,
    defs: &[Option<TaskDef>],
    doc: Option<&Node>,
    diags: &mut Vec<Diagnostic>,
) {
    let (outputs, others) = claims(source, defs);
    let mut index = ClaimIndex::default();
    for (j, other) in others.iter().enumerate() {
        index.add(Order::Other(j), other);
    }
    for (k, out) in outputs.iter().enumerate() {
        let first = index.first_clash(out);
        if let Some(order) = first {
            let other = match order {
                Order::Output(i) => &outputs[i],
                Order::Other(j) => &others[j],
            };
            let rel = relation(out, other).expect("the index finds only related claims");
            diags.push(overlap(source, doc, out, other, rel));
        }
        index.add(Order::Output(k), out);
    }
}

/// Where a claim stands in the order clashes are looked for: earlier outputs first, then the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Order {
    Output(usize),
    Other(usize),
}

/// Claims by the paths that can relate to them, so that checking n outputs takes O(n · depth)
/// look-ups instead of comparing every pair (10,000-task workflows validate in milliseconds).
/// Keyed by the claims' own text (slices of their normalized paths), hashed with foldhash. Only
/// the first clash is reported, so each key keeps the earliest claim in [`Order`] (no list).
#[derive(Default)]
struct ClaimIndex<'c> {
    /// By normalized path: candidates for `Same`.
    exact: foldhash::HashMap<&'c str, Order>,
    /// Literal claims by path: candidates a path can be inside.
    literal: foldhash::HashMap<&'c str, Order>,
    /// By each directory a claim is certainly inside: candidates a literal path can contain.
    inside: foldhash::HashMap<&'c str, Order>,
}

impl<'c> ClaimIndex<'c> {
    fn add(&mut self, order: Order, c: &'c Claim<'_>) {
        fn keep_first<'c>(map: &mut foldhash::HashMap<&'c str, Order>, key: &'c str, order: Order) {
            let first = map.entry(key).or_insert(order);
            *first = (*first).min(order);
        }
        keep_first(&mut self.exact, &c.norm, order);
        if !c.templated {
            keep_first(&mut self.literal, &c.norm, order);
        }
        for dir in dirs(c) {
            keep_first(&mut self.inside, dir, order);
        }
    }

    /// The earliest indexed claim `c` is the same as, inside, or contains (see [`relation`]).
    fn first_clash(&self, c: &Claim<'_>) -> Option<Order> {
        let same = self.exact.get(&*c.norm);
        let within = dirs(c).filter_map(|d| self.literal.get(d));
        let containing = (!c.templated).then(|| self.inside.get(&*c.norm)).flatten();
        same.into_iter().chain(within).chain(containing).copied().min()
    }
}

/// The directories a claim is certainly inside, shortest first: every proper prefix of a literal
/// path; every prefix of a templated path's known directory, that directory included. Each is a
/// slice of the normalized path, up to a `/` (or, for a templated path, its whole known part).
fn dirs<'a>(c: &'a Claim<'_>) -> impl Iterator<Item = &'a str> + 'a {
    let known = c.known();
    let whole = (c.templated && !known.is_empty()).then_some(known);
    known.match_indices('/').map(move |(i, _)| &known[..i]).chain(whole)
}

fn overlap(source: &Source, doc: Option<&Node>, out: &Claim<'_>, other: &Claim<'_>, rel: Rel) -> Diagnostic {
    let Owner::Output { task_name, name, .. } = out.owner else { unreachable!("only outputs are checked") };
    if let (Owner::Output { task_name: first, name: other_name, .. }, Rel::Same) = (other.owner, rel) {
        let norm = &out.norm;
        let message = if first == task_name {
            format!("task `{first}` writes `{norm}` twice (outputs `{other_name}` and `{name}`)")
        } else {
            format!("tasks `{first}` and `{task_name}` both write `{norm}`")
        };
        return Diagnostic::new("dagrun::output-conflict", message, source)
            .label(out.span(doc), format!("written by `{task_name}`"))
            .label(other.span(doc), format!("also written by `{first}`"))
            .help("each output file must belong to exactly one task: give one of them another path");
    }
    let how = match rel {
        Rel::Same => "is the same path as",
        Rel::Inside => "is inside",
        Rel::Contains => "contains",
    };
    let (label, help) = match other.owner {
        Owner::StateDir => ("inside the state directory", "dagrun keeps its cache and run history in `.dagrun/`"),
        Owner::WorkflowFile => ("the workflow file", "the workflow file must never be written by a task"),
        Owner::Input { .. } => ("overlaps an input", "a task's inputs are never written by a task"),
        Owner::Output { .. } => ("overlaps another output", "one output cannot live inside another"),
    };
    Diagnostic::new("dagrun::output-overlap", format!("{} {how} {}", out.describe(), other.describe()), source)
        .label(out.span(doc), label)
        .label(other.span(doc), "this path")
        .help(format!(
            "dagrun deletes a task's outputs before it runs, so they must not overlap anything else; {help}: \
             give output `{name}` a path of its own, e.g. under \"out/\""
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: &str, b: &str) -> Option<Rel> {
        relation(&Claim::new(Owner::StateDir, a), &Claim::new(Owner::StateDir, b))
    }

    #[test]
    fn compares_paths_by_component() {
        assert_eq!(rel("out/d", "./out//d"), Some(Rel::Same));
        assert_eq!(rel("out/d/x.txt", "out/d"), Some(Rel::Inside));
        assert_eq!(rel("out", "out/d/x.txt"), Some(Rel::Contains));
        assert_eq!(rel("out/d", "out/dx"), None);
        assert_eq!(rel(".dagrun/layout", ".dagrun"), Some(Rel::Inside));
    }

    #[test]
    fn templates_only_clash_when_certain() {
        assert_eq!(rel("out/d/{date}.txt", "out/d"), Some(Rel::Inside));
        assert_eq!(rel("out", "out/{date}/x.txt"), Some(Rel::Contains));
        assert_eq!(rel("out/{date}.txt", "out/{date}.txt"), Some(Rel::Same));
        assert_eq!(rel("out/d{date}.txt", "out/d"), None);
        assert_eq!(rel("out/{date}.txt", "out/{date}.csv"), None);
        assert_eq!(rel("out/{date}.txt", "out/2025-01-01.txt"), None);
    }

    /// The index finds the earliest claim `relation` relates, whatever the mix of paths and
    /// the order claims are added in (outputs come before other claims in [`Order`]): built
    /// from claims `start..` for every start, it names each related claim in turn.
    #[test]
    fn the_index_agrees_with_pairwise_comparison() {
        let paths = [
            "out/d",
            "./out//d",
            "out/d/x.txt",
            "out",
            "out/dx",
            "out/d/{date}.txt",
            "out/{date}/x.txt",
            "out/{date}.txt",
            "out/{date}.csv",
            "out/2025-01-01.txt",
            "a/b/c",
            "a",
            "a/b/{x}",
            ".dagrun/layout",
            "{date}.txt",
            "out/./d/{x}.txt",
            "out//{date}/y",
            "a/b{x}/c",
        ];
        let claims: Vec<Claim<'_>> = paths.iter().map(|p| Claim::new(Owner::StateDir, p)).collect();
        let order = |j: usize| if j.is_multiple_of(3) { Order::Output(j) } else { Order::Other(j) };
        for (k, c) in claims.iter().enumerate() {
            for start in 0..claims.len() {
                let want =
                    (start..claims.len()).filter(|&j| j != k && relation(c, &claims[j]).is_some()).map(order).min();
                let others: Vec<usize> = (start..claims.len()).filter(|&j| j != k).collect();
                for added in [others.clone(), others.into_iter().rev().collect()] {
                    let mut index = ClaimIndex::default();
                    for j in added {
                        index.add(order(j), &claims[j]);
                    }
                    assert_eq!(index.first_clash(c), want, "{} from {start}", paths[k]);
                }
            }
        }
    }

    #[test]
    fn normal_paths_are_borrowed_and_the_rest_normalized() {
        assert!(matches!(normalize("out/d/x.txt"), Cow::Borrowed("out/d/x.txt")));
        for (path, normal) in [("./out//d/", "out/d"), ("out/./x", "out/x"), ("/out", "out"), (".", "")] {
            assert!(matches!(normalize(path), Cow::Owned(n) if n == normal), "{path}");
        }
        let known = |p| Claim::new(Owner::StateDir, p).known().to_owned();
        assert_eq!(known("./out//d/{date}/x.txt"), "out/d");
        assert_eq!(known("out/d{date}.txt"), "out");
        assert_eq!(known("{date}.txt"), "");
        assert_eq!(known("out/./x.txt"), "out/x.txt");
        assert!(starts_with_components("out/d/x", "out/d") && !starts_with_components("out/dx", "out/d"));
    }

    #[test]
    fn refuses_directories_and_the_workflow_directory() {
        assert!(path_problem("out/").is_some());
        assert!(path_problem(".").is_some());
        assert!(path_problem("./").is_some());
        assert!(path_problem("out/x.txt").is_none());
    }
}
