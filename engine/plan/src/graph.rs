//! The task graph (petgraph): edges from each upstream task to the tasks that need it; cycle reports.

use petgraph::Direction;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Dfs, Reversed};

use dagrun_workflow::{Diagnostic, Workflow};

/// The DAG of a workflow. Node weights are indices into `workflow.tasks`.
#[derive(Debug, Clone)]
pub struct TaskGraph {
    graph: DiGraph<usize, ()>,
    order: Vec<usize>,
}

impl TaskGraph {
    /// Builds the graph; a dependency cycle is reported with every task in it, in order.
    pub fn build(wf: &Workflow) -> Result<TaskGraph, Vec<Diagnostic>> {
        let mut graph = DiGraph::with_capacity(wf.tasks.len(), wf.tasks.len());
        for i in 0..wf.tasks.len() {
            graph.add_node(i);
        }
        let index: foldhash::HashMap<&str, usize> =
            wf.tasks.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
        for (i, task) in wf.tasks.iter().enumerate() {
            for up in task.upstream() {
                let u = index[up];
                graph.add_edge(NodeIndex::new(u), NodeIndex::new(i), ());
            }
        }
        match toposort(&graph, None) {
            Ok(order) => Ok(TaskGraph { order: order.into_iter().map(|n| graph[n]).collect(), graph }),
            Err(_) => Err(cycles(wf, &graph)),
        }
    }

    /// Task indices in a dependency-respecting order.
    pub fn topo_order(&self) -> &[usize] {
        &self.order
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Direct upstream tasks of `i`.
    pub fn upstream(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph.neighbors_directed(NodeIndex::new(i), Direction::Incoming).map(|n| self.graph[n])
    }

    /// Direct downstream tasks of `i`.
    pub fn downstream(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing).map(|n| self.graph[n])
    }

    /// `i` and everything it (transitively) needs.
    pub fn with_ancestors(&self, i: usize) -> Vec<usize> {
        let rev = Reversed(&self.graph);
        let mut dfs = Dfs::new(rev, NodeIndex::new(i));
        let mut out = Vec::new();
        while let Some(n) = dfs.next(rev) {
            out.push(self.graph[n]);
        }
        out
    }

    /// `i` and everything that (transitively) needs it.
    pub fn with_descendants(&self, i: usize) -> Vec<usize> {
        descendants(&self.graph, i)
    }
}

/// Node `i` and every node reachable from it, as node weights (shared with the instance graph).
pub(crate) fn descendants(graph: &DiGraph<usize, ()>, i: usize) -> Vec<usize> {
    let mut dfs = Dfs::new(graph, NodeIndex::new(i));
    let mut out = Vec::new();
    while let Some(n) = dfs.next(graph) {
        out.push(graph[n]);
    }
    out
}

/// One diagnostic per strongly connected component: the cycle as `a → b → c → a`.
fn cycles(wf: &Workflow, graph: &DiGraph<usize, ()>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut sccs: Vec<Vec<NodeIndex>> = tarjan_scc(graph).into_iter().filter(|c| c.len() > 1).collect();
    sccs.sort_by_key(|c| c.iter().map(|n| graph[*n]).min());
    for scc in sccs {
        let cycle = cycle_in(graph, &scc);
        let names: Vec<&str> = cycle.iter().map(|&i| wf.tasks[i].name.as_str()).collect();
        let mut shown = names.clone();
        shown.push(names[0]);
        let mut d = Diagnostic::new("dagrun::cycle", format!("dependency cycle: {}", shown.join(" → ")), &wf.source());
        for (k, &i) in cycle.iter().enumerate() {
            let up = cycle[(k + cycle.len() - 1) % cycle.len()];
            let up_name = &wf.tasks[up].name;
            d = d.label(wf.dependency_span(i, up_name), format!("`{}` needs `{up_name}`", wf.tasks[i].name));
        }
        out.push(d.help("remove one of these dependencies to break the cycle"));
    }
    out
}

/// A simple cycle through the component, starting at its first task in file order.
fn cycle_in(graph: &DiGraph<usize, ()>, scc: &[NodeIndex]) -> Vec<usize> {
    let members: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
    let start = *scc.iter().min_by_key(|n| graph[**n]).expect("non-empty");
    // Depth-first search for a path back to `start`, visiting successors in file order.
    let mut path = vec![start];
    let mut visited = std::collections::HashSet::from([start]);
    fn dfs(
        graph: &DiGraph<usize, ()>,
        members: &std::collections::HashSet<NodeIndex>,
        start: NodeIndex,
        path: &mut Vec<NodeIndex>,
        visited: &mut std::collections::HashSet<NodeIndex>,
    ) -> bool {
        let cur = *path.last().expect("non-empty");
        let mut next: Vec<NodeIndex> = graph.neighbors(cur).filter(|n| members.contains(n)).collect();
        next.sort_by_key(|n| graph[*n]);
        for n in next {
            if n == start {
                return true;
            }
            if visited.insert(n) {
                path.push(n);
                if dfs(graph, members, start, path, visited) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    dfs(graph, &members, start, &mut path, &mut visited);
    path.into_iter().map(|n| graph[n]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_workflow::Source;

    fn wf(tasks: &str) -> Workflow {
        let src = format!("Workflow(name: \"t\", tasks: [{tasks}])");
        Workflow::from_source(Source::new("w.ron", src), "/".into()).unwrap()
    }

    #[test]
    fn orders_and_walks() {
        let w = wf(r#"
            Task(name: "c", kind: Command(run: "x"), after: ["b"]),
            Task(name: "a", kind: Command(run: "x"), outputs: {"o": "o"}),
            Task(name: "b", kind: Command(run: "x"), inputs: {"i": Output("a", "o")}),
            Task(name: "d", kind: Command(run: "x")),
        "#);
        let g = TaskGraph::build(&w).unwrap();
        let pos = |i| g.topo_order().iter().position(|&x| x == i).unwrap();
        assert!(pos(1) < pos(2) && pos(2) < pos(0));
        let mut anc = g.with_ancestors(0);
        anc.sort();
        assert_eq!(anc, vec![0, 1, 2]);
        let mut desc = g.with_descendants(1);
        desc.sort();
        assert_eq!(desc, vec![0, 1, 2]);
    }

    #[test]
    fn names_every_task_in_a_cycle_in_order() {
        let w = wf(r#"
            Task(name: "a", kind: Command(run: "x"), after: ["c"]),
            Task(name: "b", kind: Command(run: "x"), after: ["a"]),
            Task(name: "c", kind: Command(run: "x"), after: ["b"]),
            Task(name: "ok", kind: Command(run: "x")),
        "#);
        let errs = TaskGraph::build(&w).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message, "dependency cycle: a → b → c → a");
        assert_eq!(errs[0].labels.len(), 3);
    }
}
