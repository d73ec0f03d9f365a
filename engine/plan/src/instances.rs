//! The run graph: tasks expanded into instances, one per partition for partitioned tasks.
//!
//! An unpartitioned workflow expands to one instance per task. A partitioned task expands to
//! one instance per selected partition; the instances it needs from upstream (the same
//! partition, or a window of partitions for a `Partitions` input) are added even when they lie
//! outside the selection, so a trailing window is always complete. A shard (`--shard I/N`)
//! keeps its slice of each scheme's partitions and leaves out what reads partitions of other
//! shards (see [`Instances::expand`]).

use std::collections::{BTreeMap, VecDeque};

use petgraph::Direction;
use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use dagrun_cache::SmallMap;
use dagrun_workflow::partition::{Partition, Scheme, render};
use dagrun_workflow::{Input, Workflow};

use crate::graph::TaskGraph;
use crate::select::Selection;
use crate::shard::Shard;

/// Which partitions a run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionSelection {
    /// The latest complete partition of each time scheme (every key of list schemes).
    Latest,
    /// The partitions with these keys, or containing the instants they name.
    Keys(Vec<String>),
    /// Partitions starting in `[from, to]`, Unix seconds.
    Range {
        /// First instant.
        from: i64,
        /// Last instant (inclusive).
        to: i64,
    },
}

/// One instance of a task: the task, and its partition if partitioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Index into `workflow.tasks`.
    pub task: usize,
    /// The partition, for partitioned tasks.
    pub partition: Option<Partition>,
    /// `task` or `task@partition`.
    pub name: String,
    /// Template variables (`{partition}`, `{date}`, ...), empty when unpartitioned.
    pub vars: BTreeMap<&'static str, String>,
}

/// Where one input of an instance comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file (path as written, partition variables filled in).
    File(String),
    /// A glob (variables filled in).
    Glob(String),
    /// Output `output` of one upstream instance.
    Output {
        /// Upstream instance.
        instance: usize,
        /// Output name.
        output: String,
    },
    /// Output `output` of several upstream instances, oldest first.
    Partitions {
        /// Upstream instances.
        instances: Vec<usize>,
        /// Output name.
        output: String,
    },
}

/// The instance graph of a run.
#[derive(Debug, Clone)]
pub struct Instances {
    /// Every instance; indices are stable for the run.
    pub nodes: Vec<Instance>,
    /// Per instance: each input's source.
    pub sources: Vec<SmallMap<String, Source>>,
    graph: DiGraph<usize, ()>,
    order: Vec<usize>,
    /// Per instance: position of its partition among the run's partitions (for ordering).
    pub rank: Vec<i64>,
    /// Selected tasks left out of a partial run (indices into `workflow.tasks`): unpartitioned
    /// tasks that read every partition up to the latest, and what depends on them. Run on
    /// fewer partitions they would see a truncated history (and could retrain and deploy a
    /// model on it).
    pub left_out: Vec<usize>,
    /// Of those, the ones that read the windows (the rest are downstream of them); in a shard,
    /// the unpartitioned tasks that read partitioned ones.
    pub whole_history: Vec<usize>,
    /// The shard of the partitions this run covers (`--shard I/N`, N > 1).
    pub shard: Option<Shard>,
}

/// Why a run's partitions could not be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PartitionError {
    /// `--partition`/`--partitions` named a key no scheme has.
    #[error("no partition `{key}` in scheme `{scheme}`{}", .hint)]
    UnknownKey {
        /// The key given.
        key: String,
        /// The scheme.
        scheme: String,
        /// More context.
        hint: String,
    },
    /// The selection contains no partition at all.
    #[error("no partition of scheme `{scheme}` is selected ({why})")]
    Empty {
        /// The scheme.
        scheme: String,
        /// Why.
        why: String,
    },
    /// A shard got no partition: there are fewer partitions than shards.
    #[error("shard {shard} has no partition: the selection has {partitions}, fewer than {} shards", .shard.count())]
    EmptyShard {
        /// The shard.
        shard: Shard,
        /// The number of partitions selected (of the scheme with the most).
        partitions: usize,
    },
}

impl Instances {
    /// Expands the selected tasks into instances for the chosen partitions; `now` (Unix
    /// seconds) decides which partitions are complete.
    ///
    /// A run whose partitions end before the latest complete one (`--partition` of an older
    /// day, a backfill of an older range) is partial: unpartitioned tasks reading a
    /// `Partitions(...)` window, and their downstream, are left out of it (see [`Instances::left_out`]).
    ///
    /// With a `shard` of N > 1, each scheme's chosen partitions are cut to the shard's slice
    /// ([`Shard::take`]); every unpartitioned task that reads a partitioned one (an input or
    /// `after`) is left out with its downstream: it would read other shards' partitions too (and
    /// run them here) or, after a shard's partitions only, compute a partial result. The
    /// unsharded run after the shards runs them, the shards' partitions being cache hits.
    pub fn expand(
        wf: &Workflow,
        tasks: &TaskGraph,
        selection: &Selection,
        partitions: &PartitionSelection,
        shard: Option<Shard>,
        now: i64,
    ) -> Result<Instances, PartitionError> {
        let mut chosen = choose(wf, partitions, now)?;
        let shard = shard.filter(|s| !s.is_whole());
        let whole_history = match shard {
            Some(s) => {
                slice(&mut chosen, s)?;
                reading_partitions(wf, tasks, selection)
            }
            None => whole_history_tasks(wf, selection, &chosen, now),
        };
        let mut left_out: Vec<usize> = whole_history.iter().flat_map(|&t| tasks.with_descendants(t)).collect();
        left_out.retain(|&t| selection.included[t]);
        left_out.sort_unstable();
        left_out.dedup();
        // The end of the run's range: where unpartitioned consumers' windows end.
        let run_end = chosen.values().flatten().map(|p| p.end).max();
        let by_name = wf.tasks.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
        let mut b = Builder {
            wf,
            by_name,
            nodes: Vec::new(),
            index: foldhash::HashMap::default(),
            sources: Vec::new(),
            edges: Vec::new(),
            run_end,
            after_all: Vec::new(),
        };
        let mut queue = VecDeque::new();
        for &t in tasks.topo_order() {
            if !selection.included[t] || left_out.contains(&t) {
                continue;
            }
            match &wf.tasks[t].partitioned {
                Some(scheme) => {
                    for p in &chosen[scheme] {
                        queue.push_back(b.node(t, Some(p.clone())));
                    }
                }
                None => queue.push_back(b.node(t, None)),
            }
        }
        let mut done = vec![false; 0];
        while let Some(i) = queue.pop_front() {
            if done.len() <= i {
                done.resize(i + 1, false);
            }
            if done[i] {
                continue;
            }
            done[i] = true;
            let before = b.nodes.len();
            b.resolve(i);
            queue.extend(before..b.nodes.len());
        }
        for (u, i) in std::mem::take(&mut b.after_all) {
            let ups: Vec<usize> = (0..b.nodes.len()).filter(|&j| b.nodes[j].task == u).collect();
            b.edges.extend(ups.into_iter().map(|j| (j, i)));
        }
        let mut graph = DiGraph::with_capacity(b.nodes.len(), b.edges.len());
        for i in 0..b.nodes.len() {
            graph.add_node(i);
        }
        for &(u, d) in &b.edges {
            graph.update_edge(NodeIndex::new(u), NodeIndex::new(d), ());
        }
        let order = toposort(&graph, None).expect("the task graph is acyclic").into_iter().map(|n| graph[n]).collect();
        let rank = b.nodes.iter().map(|n| n.partition.as_ref().map_or(i64::MIN, |p| p.start)).collect();
        Ok(Instances { nodes: b.nodes, sources: b.sources, graph, order, rank, left_out, whole_history, shard })
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Instances in dependency order.
    pub fn topo_order(&self) -> &[usize] {
        &self.order
    }

    /// Direct upstream instances.
    pub fn upstream(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph.neighbors_directed(NodeIndex::new(i), Direction::Incoming).map(|n| self.graph[n])
    }

    /// Direct downstream instances.
    pub fn downstream(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph.neighbors_directed(NodeIndex::new(i), Direction::Outgoing).map(|n| self.graph[n])
    }

    /// `i` and everything that (transitively) needs it.
    pub fn with_descendants(&self, i: usize) -> Vec<usize> {
        crate::graph::descendants(&self.graph, i)
    }

    /// The distinct partition keys of the run, in time order.
    pub fn partition_keys(&self) -> Vec<String> {
        let mut keys: Vec<(i64, String)> =
            self.nodes.iter().filter_map(|n| n.partition.as_ref().map(|p| (p.start, p.key.clone()))).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter().map(|(_, k)| k).collect()
    }
}

/// Cuts each scheme's partitions to the shard's slice; an error when the shard gets none at all.
fn slice(chosen: &mut BTreeMap<String, Vec<Partition>>, shard: Shard) -> Result<(), PartitionError> {
    let partitions = chosen.values().map(Vec::len).max().unwrap_or(0);
    for parts in chosen.values_mut() {
        *parts = shard.take(std::mem::take(parts));
    }
    if chosen.values().all(Vec::is_empty) {
        return Err(PartitionError::EmptyShard { shard, partitions });
    }
    Ok(())
}

/// Selected unpartitioned tasks with a partitioned task directly upstream (through an input or
/// `after`): what a shard leaves out, with their downstream.
fn reading_partitions(wf: &Workflow, tasks: &TaskGraph, selection: &Selection) -> Vec<usize> {
    let partitioned = |t: usize| wf.tasks[t].partitioned.is_some();
    (0..wf.tasks.len())
        .filter(|&t| selection.included[t] && !partitioned(t) && tasks.upstream(t).any(partitioned))
        .collect()
}

/// Selected unpartitioned tasks that read a window of a time scheme whose chosen partitions end
/// before its latest complete one.
fn whole_history_tasks(
    wf: &Workflow,
    selection: &Selection,
    chosen: &BTreeMap<String, Vec<Partition>>,
    now: i64,
) -> Vec<usize> {
    let truncated = |scheme_name: &str| {
        let scheme = &wf.schemes[scheme_name];
        let run_end = chosen.get(scheme_name).and_then(|c| c.iter().map(|p| p.end).max());
        let latest_end = scheme.complete_before(now).last().map(|p| p.end);
        scheme.is_time() && run_end < latest_end
    };
    let reads_truncated = |task: &dagrun_workflow::Task| {
        task.partitioned.is_none()
            && task.inputs.values().any(|input| match input {
                // A trailing window (`last: N`) ends where the run ends: complete in any run.
                Input::Partitions { task: up, last: None, .. } => {
                    wf.task_index(up).and_then(|u| wf.tasks[u].partitioned.as_deref()).is_some_and(&truncated)
                }
                _ => false,
            })
    };
    (0..wf.tasks.len()).filter(|&t| selection.included[t] && reads_truncated(&wf.tasks[t])).collect()
}

/// The partitions of each scheme that the run covers.
fn choose(
    wf: &Workflow,
    sel: &PartitionSelection,
    now: i64,
) -> Result<BTreeMap<String, Vec<Partition>>, PartitionError> {
    let used: std::collections::BTreeSet<&String> = wf.tasks.iter().filter_map(|t| t.partitioned.as_ref()).collect();
    let mut out = BTreeMap::new();
    for name in used {
        let scheme = &wf.schemes[name];
        let parts = match sel {
            PartitionSelection::Latest => {
                let all = scheme.complete_before(now);
                match scheme {
                    Scheme::List(_) => all,
                    Scheme::Time { .. } => all.last().cloned().into_iter().collect(),
                }
            }
            PartitionSelection::Range { from, to } => scheme.between(*from, *to),
            PartitionSelection::Keys(keys) => {
                let mut parts = Vec::new();
                for key in keys {
                    match scheme.find(key) {
                        Some(p) => parts.push(p),
                        None if keys.len() > 1 && !scheme.is_time() => {}
                        None => {
                            return Err(PartitionError::UnknownKey {
                                key: key.clone(),
                                scheme: name.clone(),
                                hint: match scheme {
                                    Scheme::List(items) => format!(" (keys: {})", items.join(", ")),
                                    Scheme::Time { .. } => " (outside its range, or not a date)".to_owned(),
                                },
                            });
                        }
                    }
                }
                parts.sort();
                parts.dedup();
                parts
            }
        };
        if parts.is_empty() {
            let why = match sel {
                PartitionSelection::Latest => "no partition has ended yet".to_owned(),
                PartitionSelection::Range { .. } => "none starts in the range".to_owned(),
                PartitionSelection::Keys(_) => "none matches".to_owned(),
            };
            return Err(PartitionError::Empty { scheme: name.clone(), why });
        }
        out.insert(name.clone(), parts);
    }
    Ok(out)
}

struct Builder<'a> {
    wf: &'a Workflow,
    /// Task name → index (a linear search per reference would be quadratic in large workflows).
    by_name: foldhash::HashMap<&'a str, usize>,
    nodes: Vec<Instance>,
    index: foldhash::HashMap<(usize, Option<String>), usize>,
    sources: Vec<SmallMap<String, Source>>,
    edges: Vec<(usize, usize)>,
    run_end: Option<i64>,
    /// `(task, instance)`: an unpartitioned instance runs after every instance of a
    /// partitioned task.
    after_all: Vec<(usize, usize)>,
}

impl Builder<'_> {
    fn node(&mut self, task: usize, partition: Option<Partition>) -> usize {
        let key = (task, partition.as_ref().map(|p| p.key.clone()));
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let t = &self.wf.tasks[task];
        let (name, vars) = match (&partition, &t.partitioned) {
            (Some(p), Some(s)) => (format!("{}@{}", t.name, p.key), p.vars(&self.wf.schemes[s])),
            _ => (t.name.clone(), BTreeMap::new()),
        };
        let i = self.nodes.len();
        self.nodes.push(Instance { task, partition, name, vars });
        self.sources.push(SmallMap::new());
        self.index.insert(key, i);
        i
    }

    /// Instances of `up` that an instance reads through a `Partitions` input.
    fn window(&mut self, consumer: usize, up: usize, last: Option<u32>) -> Vec<usize> {
        let scheme_name = self.wf.tasks[up].partitioned.clone().expect("validated: upstream is partitioned");
        let scheme = &self.wf.schemes[&scheme_name];
        let (lo, hi) = match &self.nodes[consumer].partition {
            Some(p) => (p.start, p.end),
            None => (i64::MIN, self.run_end.unwrap_or(i64::MAX)),
        };
        let mut candidates: Vec<Partition> = match scheme {
            Scheme::List(_) => scheme.between(0, 0),
            Scheme::Time { .. } => scheme.between(i64::MIN, hi.saturating_sub(1)),
        };
        if scheme.is_time() {
            candidates.retain(|q| q.start < hi);
        }
        let picked: Vec<Partition> = match last {
            Some(n) => candidates.split_off(candidates.len().saturating_sub(n as usize)),
            None if scheme.is_time() => candidates.into_iter().filter(|q| q.start >= lo).collect(),
            None => candidates,
        };
        picked.into_iter().map(|q| self.node(up, Some(q))).collect()
    }

    fn resolve(&mut self, i: usize) {
        let wf = self.wf;
        let task = &wf.tasks[self.nodes[i].task];
        let vars = self.nodes[i].vars.clone();
        let partition = self.nodes[i].partition.clone();
        let upstream_of = |b: &mut Self, name: &str| {
            let u = b.by_name[name];
            let p = if wf.tasks[u].partitioned.is_some() { partition.clone() } else { None };
            b.node(u, p)
        };
        let mut sources = SmallMap::new();
        for (name, input) in &task.inputs {
            let source = match input {
                Input::File(p) => Source::File(render(p, &vars)),
                Input::Glob(p) => Source::Glob(render(p, &vars)),
                Input::Output(t, o) => {
                    let u = upstream_of(self, t);
                    self.edges.push((u, i));
                    Source::Output { instance: u, output: o.clone() }
                }
                Input::Partitions { task: t, output, last } => {
                    let u = self.by_name[t.as_str()];
                    let instances = self.window(i, u, *last);
                    self.edges.extend(instances.iter().map(|&q| (q, i)));
                    Source::Partitions { instances, output: output.clone() }
                }
            };
            sources.insert(name.clone(), source);
        }
        for dep in &task.after {
            let u = self.by_name[dep.as_str()];
            if task.partitioned.is_none() && wf.tasks[u].partitioned.is_some() {
                // After a partitioned task: after every instance of it in the run (known once
                // all instances exist).
                self.after_all.push((u, i));
                continue;
            }
            let u = upstream_of(self, dep);
            self.edges.push((u, i));
        }
        self.sources[i] = sources.into_iter().collect(); // without spare room
    }
}
