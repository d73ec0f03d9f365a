//! Models (registry versions, candidate vs champion metrics from their verdicts, recent gate
//! verdicts, approvals waiting with approve/reject), and the payoff charts.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use dagrun_history::{ApprovalState, Decision, ReportQuery};

use crate::html::{escape, seg, when};
use crate::{App, Page};

const DAY_MS: i64 = 86_400_000;

/// Every model, or only `only` (`?model=NAME`; a name no run recorded: 404).
pub fn page(app: &App, only: Option<&str>) -> Page {
    let (mut models, verdicts) = match (app.history.models(), app.history.verdicts(50)) {
        (Ok(m), Ok(v)) => (m, v),
        (Err(e), _) | (_, Err(e)) => return Page::error(e),
    };
    if let Some(name) = only {
        models.retain(|(_, m)| m == name);
        if models.is_empty() {
            return Page::not_found(format!("no model `{name}`: no run recorded a registry model of that name"));
        }
    }
    let mut body = String::from("<h1>Models</h1>");
    body.push_str(&waiting(app));
    if models.is_empty() {
        body.push_str("<p class=\"muted\">No run has recorded a registry model yet.</p>");
    }
    for (registry, model) in &models {
        body.push_str(&versions(app, registry, model));
    }
    body.push_str("<h2>Recent gate verdicts</h2>");
    if verdicts.is_empty() {
        body.push_str("<p class=\"muted\">None recorded.</p>");
    } else {
        body.push_str("<table><tr><th>run</th><th>workflow</th><th>gate</th><th>decision</th><th>reason</th></tr>");
        for v in &verdicts {
            let _ = write!(
                body,
                "<tr><td><a href=\"/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"s-{}\">{}</td><td>{}</td></tr>",
                seg(&v.run_id),
                escape(&v.run_id),
                escape(&v.workflow),
                escape(&v.task),
                if v.verdict.decision == "pass" { "succeeded" } else { "refused" },
                escape(&v.verdict.decision),
                escape(&v.verdict.reason)
            );
        }
        body.push_str("</table>");
    }
    Page::ok("models", &body)
}

/// The registry directory: as recorded, or relative to a given workflow's directory.
fn registry_dir(app: &App, registry: &str) -> PathBuf {
    let p = Path::new(registry);
    if p.is_absolute() {
        return p.to_owned();
    }
    app.graphs.iter().map(|g| g.dir.join(p)).find(|d| d.is_dir()).unwrap_or_else(|| p.to_owned())
}

/// A model's versions, each with its verdict's candidate and champion metrics side by side.
fn versions(app: &App, registry: &str, model: &str) -> String {
    let dir = registry_dir(app, registry);
    let mut out = format!(
        "<h2><a href=\"/models?model={}\">{}</a> <span class=\"muted\">in {}</span></h2>",
        seg(model),
        escape(model),
        escape(registry)
    );
    let versions = dagrun_contracts::registry::versions(&dir, model);
    if versions.is_empty() {
        out.push_str("<p class=\"muted\">No versions found in the registry directory (give the workflow file so its relative path resolves).</p>");
        return out;
    }
    out.push_str("<table><tr><th>version</th><th>current</th><th>verdict</th><th>metric</th><th>candidate</th><th>champion</th></tr>");
    for v in versions.iter().rev() {
        let verdict = std::fs::read(dagrun_contracts::registry::verdict_file(&dir, model, &v.version))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        let rows = metric_rows(verdict.as_ref());
        let decision = verdict.as_ref().and_then(|v| v["decision"].as_str()).unwrap_or("—").to_owned();
        let span = rows.len().max(1);
        let _ = write!(
            out,
            "<tr><td rowspan=\"{span}\">{}</td><td rowspan=\"{span}\">{}</td><td rowspan=\"{span}\">{}</td>",
            escape(&v.version),
            if v.current { "current" } else { "" },
            escape(&decision)
        );
        if rows.is_empty() {
            out.push_str("<td colspan=\"3\" class=\"muted\">no verdict</td></tr>");
        }
        for (i, (m, cand, champ)) in rows.iter().enumerate() {
            let tr = if i == 0 { "" } else { "<tr>" };
            let _ = write!(out, "{tr}<td>{}</td><td>{}</td><td>{}</td></tr>", escape(m), escape(cand), escape(champ));
        }
    }
    out.push_str("</table>");
    out
}

/// (metric, candidate, champion) from a verdict's `candidate.metrics` and `champion.metrics`.
fn metric_rows(verdict: Option<&serde_json::Value>) -> Vec<(String, String, String)> {
    let Some(v) = verdict else { return Vec::new() };
    let Some(cand) = v["candidate"]["metrics"].as_object() else { return Vec::new() };
    let champ = v["champion"]["metrics"].as_object();
    let num = |x: Option<&serde_json::Value>| match x {
        Some(serde_json::Value::Number(n)) => n.as_f64().map_or_else(|| n.to_string(), |f| dagrun_report::trim(f, 4)),
        Some(other) if !other.is_null() => other.to_string(),
        _ => "—".to_owned(),
    };
    cand.iter()
        .filter(|(_, x)| x.is_number())
        .map(|(k, x)| (k.clone(), num(Some(x)), num(champ.and_then(|c| c.get(k)))))
        .collect()
}

/// The approvals waiting, each with approve/reject buttons.
fn waiting(app: &App) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    let pending: Vec<_> = match app.history.approvals(None, 100, now) {
        Ok(all) => all.into_iter().filter(|a| a.state == ApprovalState::Pending).collect(),
        Err(e) => return format!("<p class=\"problem\">{}</p>", escape(&e.to_string())),
    };
    let mut out = String::from("<h2>Approvals waiting</h2>");
    if pending.is_empty() {
        out.push_str("<p class=\"muted\">No run waits for approval.</p>");
    }
    for a in &pending {
        let _ = write!(
            out,
            "<div class=\"approval\" data-run=\"{}\"><p>#{} · {} · model {} ({}) · run <a href=\"/runs/{}\">{}</a> · asked {} UTC, \
             times out {} UTC<br>why: {}</p>{}</div>",
            escape(&a.run_id),
            a.id,
            escape(&a.binding.workflow),
            escape(&a.model),
            escape(dagrun_history::approvals::short(&a.binding.model_digest)),
            seg(&a.run_id),
            escape(&a.run_id),
            when(a.requested_ms),
            when(a.expires_ms),
            escape(&a.reasons.join("; ")),
            decide_form(app, &a.run_id)
        );
    }
    out
}

/// The approve/reject form of a waiting run (carries this start's token).
pub fn decide_form(app: &App, run: &str) -> String {
    format!(
        "<form class=\"decide\" method=\"post\" action=\"/runs/{s}/approve\" data-run=\"{e}\">\
         <input type=\"hidden\" name=\"token\" value=\"{t}\">by <input name=\"by\" value=\"\" placeholder=\"your name\"> \
         <button type=\"submit\" class=\"approve\" formaction=\"/runs/{s}/approve\">approve</button> \
         <button type=\"submit\" class=\"reject\" formaction=\"/runs/{s}/reject\">reject</button></form>",
        s = seg(run),
        e = escape(run),
        t = escape(&app.token)
    )
}

/// After a POST: the decision through the shared path, and what it said.
pub fn decided(app: &App, decision: Decision, run: &str, by: &str) -> Page {
    match app.history.approvals_of_run(run) {
        Ok(asked) if asked.is_empty() => {
            return Page::not_found(format!("run `{run}` asked for no approval: nothing to decide"));
        }
        Ok(_) => {}
        Err(e) => return Page::error(e),
    }
    let verb = if decision == Decision::Approve { "Approve" } else { "Reject" };
    let (ok, text) = match (app.decide)(decision, run, by) {
        Ok(t) => (true, t),
        Err(t) => (false, t),
    };
    let body = format!(
        "<h1>{verb} run {}</h1><p id=\"outcome\" class=\"{}\">{}</p><pre>{}</pre><p><a href=\"/runs/{}\">the run</a> · <a href=\"/models\">models</a></p>",
        escape(run),
        if ok { "done" } else { "problem" },
        if ok { "done" } else { "not done" },
        escape(&text),
        seg(run)
    );
    let mut page = Page::ok(&format!("{verb} {run}"), &body);
    if !ok {
        page.status = axum::http::StatusCode::CONFLICT;
    }
    page
}

/// The payoff report of the last 30 days: dagrun-report's charts and table.
pub fn payoff(app: &App) -> Page {
    let now = chrono::Utc::now().timestamp_millis();
    let q = ReportQuery { workflow: None, since_ms: now - 30 * DAY_MS, until_ms: now, manual_minutes: None };
    let r = match app.history.report(&q) {
        Ok(r) => r,
        Err(e) => return Page::error(e),
    };
    let mut body = format!("<h1>Payoff</h1><p>{}</p>", escape(&dagrun_report::window(&r)));
    let charts = [
        ("Hours saved", dagrun_report::charts::saved_hours(&r)),
        ("Bad deploys prevented", dagrun_report::charts::prevented(&r)),
        ("Time to recovery", dagrun_report::charts::recovery(&r)),
    ];
    for (title, svg) in charts {
        let _ = write!(body, "<h2>{title}</h2>");
        body.push_str(&svg.unwrap_or_else(|| "<p class=\"muted\">Nothing to chart in this window.</p>".to_owned()));
    }
    let _ = write!(body, "<h2>Numbers</h2><pre>{}</pre>", escape(&dagrun_report::table(&r)));
    Page::ok("payoff", &body)
}
