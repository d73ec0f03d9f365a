//! `dagrun graph`: the task graph as Graphviz DOT or Mermaid.

use std::fmt::Write;

use dagrun_workflow::{Input, Workflow};

/// The graph in DOT; data edges are labelled with the output they carry, `after` edges dashed.
pub fn dot(wf: &Workflow) -> String {
    let mut s = format!("digraph {:?} {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n", wf.name);
    for t in &wf.tasks {
        let _ = writeln!(s, "  {:?} [label=\"{}\\n({})\"];", t.name, t.name, t.kind.label());
    }
    for t in &wf.tasks {
        for input in t.inputs.values() {
            if let Input::Output(up, out) = input {
                let _ = writeln!(s, "  {up:?} -> {:?} [label={out:?}];", t.name);
            }
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
        for input in t.inputs.values() {
            if let Input::Output(up, out) = input {
                let _ = writeln!(s, "  {} -->|{out}| {}", id(up), id(&t.name));
            }
        }
        for up in &t.after {
            let _ = writeln!(s, "  {} -.-> {}", id(up), id(&t.name));
        }
    }
    s
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
}
