//! The DAG page: a workflow's tasks in layers by dependency (a task one layer right of its
//! deepest upstream), drawn as inline SVG, each box coloured by the task's last status.

use std::collections::HashMap;
use std::fmt::Write;

use crate::html::{escape, seg};
use crate::{App, Graph, Node, Page};

const W: usize = 170;
const H: usize = 34;
const GAP_X: usize = 60;
const GAP_Y: usize = 16;
/// Runs looked at for the tasks' last status.
const RECENT: usize = 20;

const FILL: [(&str, &str); 7] = [
    ("succeeded", "#b5e3b5"),
    ("cached", "#b9d3f5"),
    ("failed", "#f4a5a5"),
    ("refused", "#f8cf9a"),
    ("skipped", "#dddddd"),
    ("waiting", "#f5ee9a"),
    ("alerted", "#f8cf9a"),
];

pub fn page(app: &App, name: &str) -> Page {
    let known = match app.history.workflows() {
        Ok(k) => k,
        Err(e) => return Page::error(e),
    };
    let given = app.graphs.iter().find(|g| g.name == name);
    if given.is_none() && !known.iter().any(|k| k == name) {
        return Page::not_found(format!(
            "no workflow `{name}`: not given to `dagrun ui` and no runs of it in the history"
        ));
    }
    let last = match last_status(app, name) {
        Ok(l) => l,
        Err(e) => return Page::error(e),
    };
    let mut body = format!(
        "<h1>{}</h1><p><a href=\"/runs?workflow={s}\">runs</a> · <a href=\"/workflows/{s}/backfill\">backfill grid</a></p>",
        escape(name),
        s = seg(name)
    );
    let graph = match given {
        Some(g) => g.clone(),
        None => {
            body.push_str(
                "<p class=\"muted\">The workflow file was not given to <code>dagrun ui</code>: the tasks of its runs \
                 are shown without their edges (start it as <code>dagrun ui WORKFLOW.ron</code> to see them).</p>",
            );
            let mut names: Vec<&String> = last.keys().collect();
            names.sort();
            Graph {
                name: name.to_owned(),
                tasks: names.into_iter().map(|n| Node { name: n.clone(), ..Default::default() }).collect(),
                ..Default::default()
            }
        }
    };
    body.push_str(&svg(&graph, &last));
    body.push_str(
        "<p class=\"muted\">Colour: the task's status in its most recent run (any partition); grey: not run.</p>",
    );
    Page::ok(name, &body)
}

/// Each task's status in the most recent run that has it (`train@…` counts as `train`).
fn last_status(app: &App, workflow: &str) -> Result<HashMap<String, String>, dagrun_history::HistoryError> {
    let mut out = HashMap::new();
    for r in app.history.runs(Some(workflow), RECENT)? {
        let Some(run) = app.history.run(&r.id)? else { continue };
        for t in run.tasks {
            let base = t.task.split_once('@').map_or(t.task.as_str(), |(b, _)| b).to_owned();
            out.entry(base).or_insert(t.status);
        }
    }
    Ok(out)
}

/// Each task's layer: 0 for a task with no upstream, else one more than its deepest upstream.
pub fn layers(g: &Graph) -> Vec<usize> {
    let index: HashMap<&str, usize> = g.tasks.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
    let mut layer: Vec<Option<usize>> = vec![None; g.tasks.len()];
    // Longest path by repeated relaxation: a valid workflow is acyclic, and the bound stops a bad one.
    for _ in 0..=g.tasks.len() {
        let mut changed = false;
        for (i, t) in g.tasks.iter().enumerate() {
            let ups = t.upstream.iter().filter_map(|u| index.get(u.as_str()));
            let l = ups.map(|&u| layer[u].map_or(0, |x| x + 1)).max().unwrap_or(0);
            if layer[i] != Some(l) {
                layer[i] = Some(l);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    layer.into_iter().map(Option::unwrap_or_default).collect()
}

fn svg(g: &Graph, last: &HashMap<String, String>) -> String {
    let layer = layers(g);
    let mut row_of_layer: HashMap<usize, usize> = HashMap::new();
    let pos: Vec<(usize, usize)> = layer
        .iter()
        .map(|&l| {
            let row = row_of_layer.entry(l).or_default();
            *row += 1;
            (10 + l * (W + GAP_X), 10 + (*row - 1) * (H + GAP_Y))
        })
        .collect();
    let width = pos.iter().map(|p| p.0 + W + 10).max().unwrap_or(20);
    let height = pos.iter().map(|p| p.1 + H + 10).max().unwrap_or(20);
    let mut out = format!(
        "<svg id=\"dag\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let index: HashMap<&str, usize> = g.tasks.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
    for (i, t) in g.tasks.iter().enumerate() {
        for u in t.upstream.iter().filter_map(|u| index.get(u.as_str())) {
            let (a, b) = (pos[*u], pos[i]);
            let _ = write!(
                out,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#667\" stroke-width=\"1.5\"/>",
                a.0 + W,
                a.1 + H / 2,
                b.0,
                b.1 + H / 2
            );
        }
    }
    for (t, (x, y)) in g.tasks.iter().zip(&pos) {
        let status = last.get(&t.name).map_or("not run", String::as_str);
        let fill = FILL.iter().find(|(s, _)| *s == status).map_or("#f4f4f4", |(_, c)| c);
        let _ = write!(
            out,
            "<g class=\"task\" data-task=\"{n}\" data-status=\"{st}\"><title>{n}: {st}</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"5\" fill=\"{fill}\" stroke=\"#445\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{n}</text></g>",
            x + W / 2,
            y + H / 2 + 4,
            n = escape(&t.name),
            st = escape(status)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ups: &[&str]) -> Node {
        Node { name: name.into(), upstream: ups.iter().map(|s| s.to_string()).collect(), partitioned: None }
    }

    #[test]
    fn layers_follow_the_deepest_upstream() {
        let g = Graph {
            tasks: vec![
                node("deploy", &["gate", "train"]),
                node("data", &[]),
                node("train", &["data"]),
                node("gate", &["train"]),
            ],
            ..Default::default()
        };
        assert_eq!(layers(&g), [3, 0, 1, 2]);
        let s = svg(&g, &HashMap::from([("train".to_owned(), "failed".to_owned())]));
        assert_eq!(s.matches("<g class=\"task\"").count(), 4);
        assert_eq!(s.matches("<line").count(), 4);
        assert!(s.contains("data-task=\"train\" data-status=\"failed\""));
    }
}
