//! `dagrun graph`: the task graph as Graphviz DOT or Mermaid.

use std::fmt::Write;

use dagrun_workflow::{Input, Task, Workflow};

/// The graph in DOT; data edges (`Output` and `Partitions` inputs) are labelled with the output
/// they carry, `after` edges dashed.
pub fn dot(wf: &Workflow) -> String {
    let mut s = format!("digraph {:?} {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n", wf.name);
    for t in &wf.tasks {
        let _ = writeln!(s, "  {:?} [label=\"{}\\n({})\"];", t.name, t.name, t.kind.label());
    }
    for t in &wf.tasks {
        for (up, label) in data_edges(t) {
            let _ = writeln!(s, "  {up:?} -> {:?} [label={label:?}];", t.name);
        }
        for up in &t.after {
            let _ = writeln!(s, "  {up:?} -> {:?} [style=dashed];", t.name);
        }
    }
    s.push_str("}\n");
    s
}

/// The graph as a Mermaid flowchart.
pub fn mermaid(wf: &Workflow) -> String {
    // Node ids are positional (`t0`, `t1`, ...): task names may contain characters Mermaid rejects.
    let id = |name: &str| format!("t{}", wf.task_index(name).unwrap_or(usize::MAX));
    let mut s = String::from("flowchart LR\n");
    for t in &wf.tasks {
        let _ = writeln!(s, "  {}[\"{} ({})\"]", id(&t.name), t.name, t.kind.label());
    }
    for t in &wf.tasks {
        for (up, label) in data_edges(t) {
            let _ = writeln!(s, "  {} -->|{label}| {}", id(up), id(&t.name));
        }
        for up in &t.after {
            let _ = writeln!(s, "  {} -.-> {}", id(up), id(&t.name));
        }
    }
    s
}

/// Task `t`'s data edges as (upstream task, edge label): an `Output` input is labelled with the
/// output's name; a `Partitions` input with the output's name and `(partitions)` or `(last N)`.
fn data_edges(t: &Task) -> impl Iterator<Item = (&str, String)> {
    t.inputs.values().filter_map(|input| match input {
        Input::Output(up, out) => Some((up.as_str(), out.clone())),
        Input::Partitions { task, output, last: None } => Some((task.as_str(), format!("{output} (partitions)"))),
        Input::Partitions { task, output, last: Some(n) } => Some((task.as_str(), format!("{output} (last {n})"))),
        Input::File(_) | Input::Glob(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_workflow::Source;

    #[test]
    fn renders_both_formats() {
        let src = r#"Workflow(name: "w", tasks: [
            Task(name: "a-1", kind: Command(run: "x"), outputs: {"o": "o"}),
            Task(name: "b", kind: Command(run: "x"), inputs: {"i": Output("a-1", "o")}, after: ["a-1"]),
        ])"#;
        let wf = Workflow::from_source(Source::new("w.ron", src), "/".into()).unwrap();
        let d = dot(&wf);
        assert!(d.contains("\"a-1\" -> \"b\" [label=\"o\"];"), "{d}");
        assert!(d.contains("\"a-1\" -> \"b\" [style=dashed];"), "{d}");
        let m = mermaid(&wf);
        assert!(m.contains("t0[\"a-1 (command)\"]"), "{m}");
        assert!(m.contains("t0 -->|o| t1"), "{m}");
        assert!(m.contains("t0 -.-> t1"), "{m}");
    }

    #[test]
    fn partitions_inputs_are_edges_in_both_formats() {
        let src = r#"Workflow(name: "w", partitions: {"daily": Daily(start: "2024-01-01")}, tasks: [
            Task(name: "prep", kind: Command(run: "x"), outputs: {"clean": "c/{date}"}, partitioned: "daily"),
            Task(name: "all", kind: Command(run: "x"), inputs: {"i": Partitions(task: "prep", output: "clean")}),
            Task(name: "week", kind: Command(run: "x"), partitioned: "daily",
                 inputs: {"i": Partitions(task: "prep", output: "clean", last: 7)}),
        ])"#;
        let wf = Workflow::from_source(Source::new("w.ron", src), "/".into()).unwrap();
        let d = dot(&wf);
        assert!(d.contains("\"prep\" -> \"all\" [label=\"clean (partitions)\"];"), "{d}");
        assert!(d.contains("\"prep\" -> \"week\" [label=\"clean (last 7)\"];"), "{d}");
        let m = mermaid(&wf);
        assert!(m.contains("t0 -->|clean (partitions)| t1"), "{m}");
        assert!(m.contains("t0 -->|clean (last 7)| t2"), "{m}");
    }
}
