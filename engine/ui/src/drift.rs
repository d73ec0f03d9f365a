//! The drift page: per workflow and `Drift` task (and the model it checks), each column's drift
//! statistic run after run as a small inline-SVG line chart — the threshold dashed, drifted
//! points red — with a table of the columns; then the drift incidents.

use std::collections::BTreeMap;
use std::fmt::Write;

use dagrun_history::{DriftColumn, DriftPoint};

use crate::html::{escape, seg, when};
use crate::{App, Page};

/// Most column results read (the newest); about 60 runs of a 300-column check.
const POINTS: usize = 20_000;
/// Most points a chart draws (the newest).
const PER_CHART: usize = 120;
const CHART_W: f64 = 280.0;
const CHART_H: f64 = 90.0;
const PAD: f64 = 6.0;
/// p-values below this are drawn at its height (−log₁₀ 1e-12 = 12).
const P_FLOOR: f64 = 1e-12;

/// A chart's group: one `Drift` task of one workflow (and the model it checks).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    workflow: String,
    task: String,
    registry: Option<String>,
    model: Option<String>,
}

/// One chart: a column compared by one test (a column whose test changed gets one per test).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Series {
    prediction: bool,
    column: String,
    test: String,
}

pub fn page(app: &App) -> Page {
    let (points, incidents) = match (app.history.drift_points(POINTS), app.history.incidents(500)) {
        (Ok(p), Ok(i)) => (p, i),
        (Err(e), _) | (_, Err(e)) => return Page::error(e),
    };
    let mut body = String::from(
        "<h1>Drift</h1><p class=\"muted\">Each <code>Drift</code> task's columns run after run: the test's \
         distance, or −log₁₀ of its p-value, so a point above the dashed threshold drifted (red).</p>",
    );
    body.push_str(&columns(&points));
    body.push_str("<h2>Incidents</h2>");
    if incidents.is_empty() {
        body.push_str("<p>No drift incidents recorded.</p>");
        return Page::ok("drift", &body);
    }
    body.push_str(
        "<table id=\"incidents\"><tr><th>model</th><th>workflow</th><th>detected (UTC)</th><th>alerts</th>\
         <th>resolved</th><th>time to recovery</th></tr>",
    );
    for i in &incidents {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&i.model),
            escape(&i.workflow),
            when(i.detected_ms),
            i.alerts,
            i.resolved_ms.map_or_else(|| "open".to_owned(), when),
            i.time_to_recovery_ms().map_or_else(|| "—".to_owned(), dagrun_report::duration)
        );
    }
    body.push_str("</table>");
    Page::ok("drift", &body)
}

/// The charts and tables of every group, from points oldest first.
fn columns(points: &[DriftPoint]) -> String {
    if points.is_empty() {
        return "<p>No drift results per column recorded (runs of <code>Drift</code> tasks record them).</p>"
            .to_owned();
    }
    let mut groups: BTreeMap<Group, BTreeMap<Series, Vec<&DriftPoint>>> = BTreeMap::new();
    for p in points {
        let g = Group {
            workflow: p.workflow.clone(),
            task: p.task.clone(),
            registry: p.registry.clone(),
            model: p.model.clone(),
        };
        let s =
            Series { prediction: p.column.prediction, column: p.column.column.clone(), test: p.column.test.clone() };
        groups.entry(g).or_default().entry(s).or_default().push(p);
    }
    let mut out = String::new();
    for (g, series) in &groups {
        let model = match (&g.model, &g.registry) {
            (Some(m), Some(r)) => format!(
                " <span class=\"muted\">checks <a href=\"/models?model={}\">{}</a> in {}</span>",
                seg(m),
                escape(m),
                escape(r)
            ),
            _ => String::new(),
        };
        let _ = write!(
            out,
            "<section class=\"drift\" data-workflow=\"{}\" data-task=\"{}\"><h2><a href=\"/workflows/{}\">{}</a> · {}{model}</h2>\
             <div class=\"charts\">",
            escape(&g.workflow),
            escape(&g.task),
            seg(&g.workflow),
            escape(&g.workflow),
            escape(&g.task)
        );
        for (s, pts) in series {
            out.push_str(&chart(s, pts));
        }
        out.push_str(
            "</div><table class=\"drift-columns\"><tr><th>column</th><th>test</th><th>threshold</th><th>checks</th>\
             <th>drifted</th><th>latest</th><th>latest decision</th><th>latest run</th></tr>",
        );
        for (s, pts) in series {
            let last = pts.last().expect("a series has a point");
            let drifted = pts.iter().filter(|p| p.column.drifted()).count();
            let _ = write!(
                out,
                "<tr data-column=\"{}\"><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{drifted}</td><td>{}</td>\
                 <td class=\"{}\">{}</td><td><a href=\"/runs/{}\">{}</a></td></tr>",
                escape(&s.column),
                escape(&s.column),
                if s.prediction { " <span class=\"muted\">(prediction)</span>" } else { "" },
                escape(&s.test),
                threshold_words(&last.column),
                pts.len(),
                last.column.value().map_or_else(|| "—".to_owned(), num),
                if last.column.drifted() { "s-failed" } else { "s-succeeded" },
                escape(&last.column.decision),
                seg(&last.run_id),
                escape(&last.run_id)
            );
        }
        out.push_str("</table></section>");
    }
    out
}

/// `p < 0.05` or `≥ 0.1`.
fn threshold_words(c: &DriftColumn) -> String {
    if c.is_p_value() { format!("p &lt; {}", num(c.threshold)) } else { format!("≥ {}", num(c.threshold)) }
}

/// A number for people: 4 decimals, or scientific when smaller than 0.001.
fn num(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 { format!("{v:.2e}") } else { dagrun_report::trim(v, 4) }
}

/// The height a value is drawn at: the distance, or −log₁₀ p (drift above the threshold's).
fn height(c: &DriftColumn, v: f64) -> f64 {
    if c.is_p_value() { -(v.max(P_FLOOR).log10()) } else { v }
}

/// One column's chart: the statistic per check (oldest left), the threshold dashed, drifted
/// points red. `data-points` counts the points drawn, `data-drifted` the drifted ones.
fn chart(s: &Series, pts: &[&DriftPoint]) -> String {
    let pts = &pts[pts.len().saturating_sub(PER_CHART)..];
    let first = &pts[pts.len() - 1].column;
    let threshold = height(first, first.threshold);
    let drawn: Vec<(usize, f64, &DriftPoint)> =
        pts.iter().enumerate().filter_map(|(i, p)| p.column.value().map(|v| (i, height(&p.column, v), *p))).collect();
    let top = drawn.iter().map(|d| d.1).fold(threshold, f64::max).max(f64::MIN_POSITIVE) * 1.15;
    let bottom = drawn.iter().map(|d| d.1).fold(0.0, f64::min);
    let x = |i: usize| {
        let n = pts.len().max(2) - 1;
        PAD + (CHART_W - 2.0 * PAD) * if pts.len() == 1 { 0.5 } else { i as f64 / n as f64 }
    };
    let y = |h: f64| CHART_H - PAD - (CHART_H - 2.0 * PAD) * (h - bottom) / (top - bottom);
    let drifted = drawn.iter().filter(|d| d.2.column.drifted()).count();
    let what = if first.is_p_value() { format!("−log₁₀ p ({})", s.test) } else { s.test.clone() };
    let mut out = format!(
        "<figure class=\"drift-column\" data-column=\"{}\" data-test=\"{}\" data-points=\"{}\" data-drifted=\"{drifted}\">\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_W}\" height=\"{CHART_H}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" \
         role=\"img\" aria-label=\"{} over time\"><rect width=\"{CHART_W}\" height=\"{CHART_H}\" fill=\"#fafafa\" stroke=\"#ddd\"/>\
         <line class=\"threshold\" x1=\"0\" x2=\"{CHART_W}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\" stroke=\"#c60\" stroke-dasharray=\"4 3\"/>",
        escape(&s.column),
        escape(&s.test),
        drawn.len(),
        escape(&s.column),
        ty = y(threshold)
    );
    if drawn.len() > 1 {
        let line: Vec<String> = drawn.iter().map(|(i, h, _)| format!("{:.1},{:.1}", x(*i), y(*h))).collect();
        let _ =
            write!(out, "<polyline fill=\"none\" stroke=\"#468\" stroke-width=\"1.5\" points=\"{}\"/>", line.join(" "));
    }
    for (i, h, p) in &drawn {
        let (class, fill) = if p.column.drifted() { ("point drifted", "#d22") } else { ("point", "#468") };
        let part = p.partition.as_deref().map(|k| format!(" · partition {k}")).unwrap_or_default();
        let _ = write!(
            out,
            "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{fill}\"><title>{} UTC · run {}{} · {} {} ({})</title></circle>",
            x(*i),
            y(*h),
            when(p.started_ms),
            escape(&p.run_id),
            escape(&part),
            if first.is_p_value() { "p" } else { "value" },
            p.column.value().map_or_else(String::new, num),
            escape(&p.column.decision)
        );
    }
    let _ = write!(
        out,
        "</svg><figcaption><b>{}</b>{} · {} · drift when {} · {} of {} drifted</figcaption></figure>",
        escape(&s.column),
        if s.prediction { " (prediction)" } else { "" },
        escape(&what),
        threshold_words(first),
        drifted,
        drawn.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(run: &str, test: &str, value: f64, decision: &str) -> DriftPoint {
        let p = test == "ks";
        DriftPoint {
            workflow: "monitor".into(),
            task: "drift".into(),
            partition: None,
            registry: None,
            model: None,
            run_id: run.into(),
            started_ms: 0,
            column: DriftColumn {
                column: "income".into(),
                test: test.into(),
                statistic: Some(if p { 0.3 } else { value }),
                p_value: p.then_some(value),
                threshold: if p { 0.05 } else { 0.1 },
                decision: decision.into(),
                ..DriftColumn::default()
            },
        }
    }

    #[test]
    fn a_chart_draws_each_point_marks_the_drifted_and_the_threshold() {
        let pts = [point("a", "wasserstein", 0.02, "no_drift"), point("b", "wasserstein", 0.5, "drift")];
        let refs: Vec<&DriftPoint> = pts.iter().collect();
        let s = Series { prediction: false, column: "income".into(), test: "wasserstein".into() };
        let svg = chart(&s, &refs);
        assert!(svg.contains("data-points=\"2\" data-drifted=\"1\""), "{svg}");
        assert_eq!(svg.matches("<circle class=\"point drifted\"").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle class=\"point\"").count(), 1, "{svg}");
        assert!(svg.contains("class=\"threshold\"") && svg.contains("<polyline"), "{svg}");
        assert!(svg.contains("drift when ≥ 0.1"), "{svg}");
    }

    #[test]
    fn p_values_are_drawn_as_minus_log10_so_drift_is_above_the_line() {
        let c = point("a", "ks", 1e-30, "drift").column;
        assert_eq!(height(&c, 0.01), 2.0);
        assert_eq!(height(&c, 0.0), 12.0, "floored");
        assert!(height(&c, 0.01) > height(&c, c.threshold), "p < threshold is above it");
        assert_eq!(num(0.00001234), "1.23e-5");
        assert_eq!(num(0.25), "0.25");
        let one = [point("a", "ks", 0.5, "no_drift")];
        let svg = chart(&Series { prediction: false, column: "x".into(), test: "ks".into() }, &[&one[0]]);
        assert!(svg.contains("data-points=\"1\"") && !svg.contains("<polyline"), "one point, no line: {svg}");
        assert!(svg.contains("drift when p &lt; 0.05"), "{svg}");
    }
}
