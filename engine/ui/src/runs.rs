//! The start page (workflows), the runs list, one run as a timeline of its tasks, and the
//! server-sent events a running run's page listens to (it reloads when the run's state changes).

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use dagrun_history::RunRow;

use crate::html::{class, escape, seg, when};
use crate::{App, Page};

/// Most runs a list shows.
const LIST: usize = 200;

/// The workflows: those named on the command line and those with runs.
pub fn index(app: &App) -> Page {
    let known = match app.history.workflows() {
        Ok(k) => k,
        Err(e) => return Page::error(e),
    };
    let mut names: Vec<&str> =
        app.graphs.iter().map(|g| g.name.as_str()).chain(known.iter().map(String::as_str)).collect();
    names.sort_unstable();
    names.dedup();
    let mut body = String::from("<h1>Workflows</h1>");
    if names.is_empty() {
        body.push_str("<p class=\"muted\">No runs in the history yet, and no workflow file given.</p>");
    }
    body.push_str("<ul>");
    for n in names {
        let (e, s) = (escape(n), seg(n));
        let _ = write!(
            body,
            "<li><a href=\"/workflows/{s}\">{e}</a> · <a href=\"/runs?workflow={s}\">runs</a> · \
             <a href=\"/workflows/{s}/backfill\">backfill grid</a></li>"
        );
    }
    body.push_str("</ul>");
    Page::ok("workflows", &body)
}

/// The most recent runs, of one workflow if given.
pub fn list(app: &App, workflow: Option<&str>) -> Page {
    let runs = match app.history.runs(workflow, LIST) {
        Ok(r) => r,
        Err(e) => return Page::error(e),
    };
    if let Some(w) = workflow
        && runs.is_empty()
        && !app.graphs.iter().any(|g| g.name == w)
    {
        return Page::not_found(format!(
            "no workflow `{w}`: not given to `dagrun ui` and no runs of it in the history"
        ));
    }
    let mut body = match workflow {
        Some(w) => format!("<h1>Runs of {}</h1>", escape(w)),
        None => "<h1>Runs</h1>".to_owned(),
    };
    if runs.is_empty() {
        body.push_str("<p class=\"muted\">No runs recorded.</p>");
        return Page::ok("runs", &body);
    }
    body.push_str(
        "<table id=\"runs\"><tr><th>run</th><th>workflow</th><th>started (UTC)</th><th>took</th><th>status</th>\
         <th>tasks</th><th>cached</th><th>failed</th><th>saved</th></tr>",
    );
    for r in &runs {
        let took = r.finished_ms.map_or_else(|| "—".to_owned(), |f| dagrun_report::duration(f - r.started_ms));
        let _ = write!(
            body,
            "<tr><td><a href=\"/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td>{took}</td><td class=\"{}\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            seg(&r.id),
            escape(&r.id),
            escape(&r.workflow),
            when(r.started_ms),
            class(r.status_now()),
            escape(r.status_now()),
            r.counts.tasks,
            r.counts.cached,
            r.counts.failed,
            dagrun_report::duration(r.saved_ms)
        );
    }
    body.push_str("</table>");
    Page::ok("runs", &body)
}

/// One run: its tasks as bars on a time axis (see [`timeline`]).
pub fn one(app: &App, id: &str) -> Page {
    let run = match app.history.run(id) {
        Ok(Some(r)) => r,
        Ok(None) => return Page::not_found(format!("no run `{id}` in the history")),
        Err(e) => return Page::error(e),
    };
    let status = run.status_now();
    let live = if run.finished() || status == "killed" { "" } else { " data-live=\"1\"" };
    let mut body = format!(
        "<h1 id=\"run\" data-run=\"{}\" data-status=\"{}\"{live}>Run {}</h1><p>{} · started {} UTC · \
         <span class=\"{}\">{}</span> · {} tasks, {} cached, {} failed · the cache saved {}</p>",
        escape(&run.id),
        escape(status),
        escape(&run.id),
        workflow_link(&run.workflow),
        when(run.started_ms),
        class(status),
        escape(status),
        run.counts.tasks,
        run.counts.cached,
        run.counts.failed,
        dagrun_report::duration(run.saved_ms)
    );
    match status {
        "killed" => body.push_str(
            "<p class=\"problem\">Killed mid-run: no end was recorded and the process that ran it is gone.</p>",
        ),
        _ if run.finished() => {}
        _ if run.pid.is_some() => {
            body.push_str("<p class=\"muted\">Still going: this page reloads when it changes.</p>")
        }
        _ => {
            body.push_str("<p class=\"muted\">Still going (or killed mid-run): this page reloads when it changes.</p>")
        }
    }
    body.push_str(&timeline(&run));
    if run.status == "waiting" {
        body.push_str(&crate::models::decide_form(app, &run.id));
    }
    Page::ok(&format!("run {}", run.id), &body)
}

fn workflow_link(name: &str) -> String {
    format!("<a href=\"/workflows/{}\">{}</a>", seg(name), escape(name))
}

/// The timeline's width in pixels.
const LANE: f64 = 400.0;

/// The run's tasks as bars on one time axis: each starts at its start time's offset from the
/// run's start, as long as it took (parallel tasks overlap), in start order. Tasks recorded
/// without a start time (older records; tasks that never started) follow in completion order:
/// without any start time the bars are the durations, scaled to the longest, in completion order.
fn timeline(run: &RunRow) -> String {
    if run.tasks.is_empty() {
        return "<p class=\"muted\">No task finished in this run (yet).</p>".to_owned();
    }
    let timed = run.tasks.iter().any(|t| t.started_ms.is_some());
    let mut tasks: Vec<&dagrun_history::TaskRow> = run.tasks.iter().collect();
    // Stable: completion order among equal (and absent) start times.
    tasks.sort_by_key(|t| t.started_ms.map_or((1, 0), |s| (0, s)));
    let offset = |t: &dagrun_history::TaskRow| t.started_ms.map(|s| (s - run.started_ms).max(0));
    let span = if timed {
        let ends = tasks.iter().filter_map(|t| offset(t).map(|o| o + t.duration_ms.max(0)));
        ends.chain(run.finished_ms.map(|f| f - run.started_ms)).max().unwrap_or(0).max(1) as f64
    } else {
        run.tasks.iter().map(|t| t.duration_ms).max().unwrap_or(0).max(1) as f64
    };
    let px = |ms: i64| ms.max(0) as f64 / span * LANE;
    let mut out = format!(
        "<table id=\"tasks\" data-timed=\"{}\"><tr><th>task ({})</th><th>status</th><th>started</th><th>took</th>\
         <th>timeline: {} from the run's start</th><th>attempts</th><th>error</th></tr>",
        u8::from(timed),
        if timed { "by start time" } else { "in completion order" },
        dagrun_report::duration(span as i64)
    );
    for t in tasks {
        let hit =
            if t.cached { format!("cache hit, saved {}", dagrun_report::duration(t.saved_ms)) } else { String::new() };
        let error = t.error.as_deref().map(|e| escape(e.lines().next().unwrap_or(""))).unwrap_or_default();
        let (bar, started) = match (timed, offset(t)) {
            (true, Some(o)) => (
                format!(
                    "<div class=\"lane\"><span class=\"bar {}\" data-offset-ms=\"{o}\" data-duration-ms=\"{}\" \
                     style=\"left:{:.0}px;width:{:.0}px\"></span></div>",
                    class(&t.status),
                    t.duration_ms,
                    px(o),
                    px(t.duration_ms).max(2.0)
                ),
                format!("+{}", dagrun_report::duration(o)),
            ),
            (true, None) => ("<div class=\"lane\"></div>".to_owned(), "—".to_owned()),
            (false, _) => (
                format!(
                    "<span class=\"bar {}\" style=\"width:{:.0}px\"></span>",
                    class(&t.status),
                    px(t.duration_ms).max(2.0)
                ),
                "—".to_owned(),
            ),
        };
        let _ = write!(
            out,
            "<tr class=\"task\"><td>{}</td><td class=\"{}\">{}</td><td>{started}</td><td>{}</td><td>{bar} {hit}</td>\
             <td>{}</td><td class=\"problem\">{error}</td></tr>",
            escape(&t.task),
            class(&t.status),
            escape(&t.status),
            dagrun_report::duration(t.duration_ms),
            t.attempts
        );
    }
    out.push_str("</table>");
    out
}

/// `GET /runs/{id}/events`: the run's state each time it changes (checked every second), until it ends.
pub async fn events(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let stream = futures_util::stream::unfold((app, id, None::<String>, false), |(app, id, last, done)| async move {
        if done {
            return None;
        }
        loop {
            let (a, i) = (app.clone(), id.clone());
            let now = tokio::task::spawn_blocking(move || a.history.run(&i).ok().flatten()).await.ok().flatten();
            let state = now.as_ref().map(|r| format!("{} {}", r.status_now(), r.tasks.len()));
            let finished = now.as_ref().is_none_or(|r| r.finished() || r.status_now() == "killed");
            if state != last {
                let data = state.clone().unwrap_or_else(|| "unknown".to_owned());
                return Some((Ok(Event::default().data(data)), (app, id, state, finished)));
            }
            if finished {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
