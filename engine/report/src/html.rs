//! The report as one self-contained HTML page: inline CSS, inline SVG charts, no script, no
//! fonts, no URL (it opens the same offline, from a mail attachment or a CI artifact).

use std::fmt::Write;

use dagrun_history::Report;
use dagrun_history::report::{Recovery, Summary};

use crate::{charts, duration, missed, percent, plural, trim, window};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.8rem 1rem;flex:1;min-width:14rem}
.big{font-size:1.6rem;font-weight:600}.note{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border-bottom:1px solid #eee;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f6f6}td.n{text-align:right}svg{max-width:100%;height:auto;display:block;margin:.5rem 0}";

use dagrun_contracts::html::escape as esc;

/// The whole page.
pub fn html(r: &Report) -> String {
    let scope = r.workflow.as_deref().map_or_else(|| "all workflows".to_owned(), |w| format!("workflow {}", esc(w)));
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>dagrun report: {scope}</title><style>{STYLE}</style></head><body>\n\
         <h1>dagrun report: {scope}</h1><p class=\"note\">{} · report format version {}</p>\n",
        esc(&window(r)),
        r.version
    );
    cards(&mut o, r);
    let _ = writeln!(o, "<h2>Time saved</h2>");
    chart(&mut o, charts::saved_hours(r), "no runs in the window");
    let _ = writeln!(o, "<h2>Time to recovery after drift</h2>");
    chart(&mut o, charts::recovery(r), "no drift incidents in the window");
    incidents(&mut o, &r.drift);
    let _ = writeln!(o, "<h2>Bad deploys prevented</h2>");
    chart(&mut o, charts::prevented(r), "no deploy was prevented in the window");
    prevented(&mut o, r);
    let _ = writeln!(o, "<h2>Runs</h2><table><tr><th>workflow</th>{}</tr>", summary_head());
    let _ = writeln!(o, "<tr><th>all</th>{}</tr>", summary_cells(&r.total));
    for w in &r.workflows {
        let _ = writeln!(o, "<tr><td>{}</td>{}</tr>", esc(&w.workflow), summary_cells(&w.summary));
    }
    let _ = writeln!(o, "</table>");
    if !r.models.is_empty() {
        let _ = writeln!(
            o,
            "<h2>Models</h2><table><tr><th>model</th><th>registry</th><th>deploys</th><th>rollbacks</th>\
             <th>drift incidents</th><th>median recovery</th><th>worst</th><th>open</th></tr>"
        );
        for m in &r.models {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&m.model),
                esc(&m.registry),
                m.deploys,
                m.rollbacks,
                m.drift.incidents.len(),
                m.drift.median_ms.map_or_else(|| "n/a".to_owned(), duration),
                m.drift.worst_ms.map_or_else(|| "n/a".to_owned(), duration),
                m.drift.open
            );
        }
        let _ = writeln!(o, "</table>");
    }
    let _ = writeln!(o, "<p class=\"note\">Every number is defined in docs/report.md of dagrun.</p></body></html>");
    o
}

fn cards(o: &mut String, r: &Report) {
    let s = &r.total.saved;
    let manual = s.manual.as_ref().map_or_else(
        || "no estimate (set <code>manual_minutes</code>)".to_owned(),
        |m| format!("{} h manual effort replaced ({})", trim(m.minutes as f64 / 60.0, 2), plural(m.runs, "run")),
    );
    let per_cycle = s.per_cycle.as_ref().map_or_else(
        || "no retraining cycle in the window".to_owned(),
        |c| {
            let m = c.manual_minutes.map_or_else(|| "no estimate".to_owned(), |m| format!("{} h", trim(m / 60.0, 2)));
            format!(
                "per retraining cycle: {} compute, {m} manual ({})",
                duration(c.cache_saved_ms),
                plural(c.cycles, "cycle")
            )
        },
    );
    let d = &r.drift;
    let ttr = match (d.median_ms, d.worst_ms) {
        _ if d.incidents.is_empty() => "no drift incidents".to_owned(),
        (Some(m), Some(w)) => format!("median {}, worst {}", duration(m), duration(w)),
        _ => "none resolved yet".to_owned(),
    };
    let _ = writeln!(
        o,
        "<div class=\"cards\">\
         <div class=\"card\"><div class=\"note\">compute saved by the cache</div><div class=\"big\">{}</div>\
         <div class=\"note\">{manual}<br>{per_cycle}</div></div>\
         <div class=\"card\"><div class=\"note\">time to recovery after drift</div><div class=\"big\">{ttr}</div>\
         <div class=\"note\">{} resolved, {} open</div></div>\
         <div class=\"card\"><div class=\"note\">bad deploys prevented</div><div class=\"big\">{}</div>\
         <div class=\"note\">gate refusals, rejected approvals, refused deploys</div></div></div>",
        duration(s.cache_saved_ms),
        d.resolved,
        d.open,
        r.prevented.len()
    );
}

fn chart(o: &mut String, svg: Option<String>, empty: &str) {
    match svg {
        Some(svg) => o.push_str(&svg),
        None => {
            let _ = write!(o, "<p class=\"note\">{}</p>", esc(empty));
        }
    }
    o.push('\n');
}

fn incidents(o: &mut String, d: &Recovery) {
    if d.incidents.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "<table><tr><th>#</th><th>model</th><th>workflow</th><th>detected</th><th>recovery</th><th>how</th><th>alerts</th></tr>"
    );
    for i in &d.incidents {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            i.id,
            esc(&i.model),
            esc(&i.workflow),
            dagrun_history::report::utc_day(i.detected_ms),
            i.recovery_ms.map_or_else(|| "open".to_owned(), duration),
            esc(i.resolution.as_deref().unwrap_or("")),
            i.alerts
        );
    }
    let _ = writeln!(o, "</table>");
}

fn prevented(o: &mut String, r: &Report) {
    if r.prevented.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "<table><tr><th>day</th><th>kind</th><th>workflow</th><th>run</th><th>task</th><th>metric</th><th>why</th></tr>"
    );
    for b in &r.prevented {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            dagrun_history::report::utc_day(b.at_ms),
            esc(&b.kind),
            esc(&b.workflow),
            esc(&b.run_id),
            esc(&b.task),
            esc(&missed(b).unwrap_or_default()),
            esc(&b.reason)
        );
    }
    let _ = writeln!(o, "</table>");
}

fn summary_head() -> &'static str {
    "<th>runs</th><th>completed</th><th>failed</th><th>unfinished</th><th>success rate</th><th>cache hit rate</th>\
     <th>deploys</th><th>per week</th><th>rollbacks</th><th>mean time to recover</th><th>compute saved</th>"
}

fn summary_cells(s: &Summary) -> String {
    format!(
        "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
        s.runs,
        s.completed,
        s.failed,
        s.unfinished,
        percent(s.success_rate),
        percent(s.cache.hit_rate),
        s.deploys,
        s.deploys_per_week.map_or_else(|| "n/a".to_owned(), |w| trim(w, 2)),
        s.rollbacks,
        s.failures.mean_ms.map_or_else(|| "n/a".to_owned(), duration),
        duration(s.saved.cache_saved_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_history::report::{Block, Facts, ReportQuery, compute};

    #[test]
    fn a_page_escapes_what_it_shows_and_names_no_url() {
        let q = ReportQuery { workflow: None, since_ms: 0, until_ms: 86_400_000, manual_minutes: None };
        let facts = Facts {
            blocks: vec![Block {
                at_ms: 1_000,
                workflow: "<w>".into(),
                run_id: "r1".into(),
                task: "evaluate".into(),
                kind: "gate".into(),
                reason: "accuracy 0.5 < min 0.7".into(),
                metric: Some("accuracy".into()),
                value: Some(0.5),
                threshold: Some(0.7),
                shortfall: Some(0.2),
            }],
            ..Facts::default()
        };
        let page = html(&compute(&facts, &q));
        assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
        assert!(page.contains("&lt;w&gt;") && !page.contains("<w>"), "escaped");
        assert!(page.contains("accuracy 0.5 &lt; min 0.7") && page.contains("short by 0.2"));
        assert!(page.contains("<svg") && page.contains("no drift incidents in the window"));
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
    }
}
