//! The backfill grid: partitions × tasks of a workflow, each cell the instance's state in the
//! newest run that had it (cached, ran, failed, …) or not yet run, for a range `?from=&to=` of
//! partition keys. One grid per partition scheme when the workflow file was given.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;

use crate::html::{class, escape, seg};
use crate::{App, Page};

pub fn page(app: &App, name: &str, from: Option<String>, to: Option<String>) -> Page {
    let given = app.graphs.iter().find(|g| g.name == name);
    let cells = match app.history.partition_cells(name) {
        Ok(c) => c,
        Err(e) => return Page::error(e),
    };
    let known = app.history.workflows().map(|k| k.iter().any(|k| k == name)).unwrap_or(false);
    if given.is_none() && !known {
        return Page::not_found(format!(
            "no workflow `{name}`: not given to `dagrun ui` and no runs of it in the history"
        ));
    }
    let (from, to) = (from.filter(|f| !f.is_empty()), to.filter(|t| !t.is_empty()));
    let inside = |p: &str| from.as_deref().is_none_or(|f| p >= f) && to.as_deref().is_none_or(|t| p <= t);
    // (task, partition) → newest state; later rows are newer.
    let mut state: HashMap<(&str, &str), &str> = HashMap::new();
    for c in cells.iter().filter(|c| inside(&c.partition)) {
        state.insert((&c.task, &c.partition), &c.status);
    }
    // Scheme → its tasks; without the file, one grid of the tasks seen.
    let mut schemes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match given {
        Some(g) => g.tasks.iter().filter_map(|t| Some((t.partitioned.clone()?, t.name.clone()))).for_each(|(s, t)| {
            schemes.entry(s).or_default().push(t);
        }),
        None => {
            let tasks: BTreeSet<&str> = state.keys().map(|(t, _)| *t).collect();
            schemes.insert("partitions".to_owned(), tasks.into_iter().map(str::to_owned).collect());
        }
    }
    let mut body = format!(
        "<h1>Backfill grid of {}</h1><form method=\"get\">from <input name=\"from\" value=\"{}\"> to \
         <input name=\"to\" value=\"{}\"> <button>show</button></form>\
         <p>Legend: <span class=\"s-cached\">cached</span> <span class=\"s-ran\">ran</span> \
         <span class=\"s-failed\">failed</span> <span class=\"s-none\">not yet run</span></p>",
        escape(name),
        escape(from.as_deref().unwrap_or("")),
        escape(to.as_deref().unwrap_or(""))
    );
    if state.is_empty() {
        body.push_str("<p class=\"muted\">No partitioned task has run in this range.</p>");
    }
    for (scheme, tasks) in &schemes {
        body.push_str(&grid(scheme, tasks, &state));
    }
    let _ = write!(body, "<p><a href=\"/workflows/{}\">the DAG</a></p>", seg(name));
    Page::ok(&format!("backfill {name}"), &body)
}

/// `ran` for a task that ran and succeeded; the other states as recorded.
fn shown(status: &str) -> &str {
    if status == "succeeded" { "ran" } else { status }
}

fn grid(scheme: &str, tasks: &[String], state: &HashMap<(&str, &str), &str>) -> String {
    let partitions: BTreeSet<&str> =
        state.keys().filter(|(t, _)| tasks.iter().any(|x| x == t)).map(|(_, p)| *p).collect();
    let mut out = format!(
        "<h2>{}: <span class=\"count\" data-scheme=\"{0}\">{}</span> partitions</h2><table class=\"grid\" data-scheme=\"{0}\"><tr><th>partition</th>",
        escape(scheme),
        partitions.len()
    );
    for t in tasks {
        let _ = write!(out, "<th>{}</th>", escape(t));
    }
    out.push_str("</tr>");
    for p in &partitions {
        let _ = write!(out, "<tr class=\"partition\"><th>{}</th>", escape(p));
        for t in tasks {
            let s = state.get(&(t.as_str(), *p)).map_or("not yet run", |s| shown(s));
            let _ =
                write!(out, "<td class=\"{}\" title=\"{} {}: {}\"></td>", class(s), escape(t), escape(p), escape(s));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}
