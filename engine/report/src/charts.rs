//! The report's charts as inline SVG (`plotters`' SVG backend): saved hours per day, deploys
//! prevented per day, time to recovery per drift incident. Each returns an `<svg>` element
//! ready to embed in HTML (no `xmlns`: an HTML parser puts it in the SVG namespace, and the page
//! names no URL at all), or `None` when there is nothing to draw.

use plotters::prelude::*;

use dagrun_history::Report;

const WIDTH: u32 = 760;
const HEIGHT: u32 = 280;
const CACHE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const MANUAL: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const BLOCKED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const OPEN: RGBColor = RGBColor(0x99, 0x99, 0x99);
const HOUR: f64 = 3_600_000.0;

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Renders `draw` onto an SVG string and makes it embeddable.
fn svg(draw: impl FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Drawn) -> Option<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        draw(root.clone()).ok()?;
        root.present().ok()?;
    }
    Some(out.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1))
}

/// Labels for an axis of day indexes: the day (`11-28`) on whole indexes only.
fn day_label(days: &[String]) -> impl Fn(&f64) -> String + '_ {
    move |x: &f64| {
        let i = x.round();
        if (x - i).abs() > 1e-9 || i < 0.0 {
            return String::new();
        }
        days.get(i as usize).map(|d| d.get(5..).unwrap_or(d).to_owned()).unwrap_or_default()
    }
}

/// Hours saved per day: the cache's compute time and the manual effort replaced, two lines
/// (never stacked: they are different kinds of time).
pub fn saved_hours(r: &Report) -> Option<String> {
    if r.days.is_empty() {
        return None;
    }
    let cache: Vec<(f64, f64)> =
        r.days.iter().enumerate().map(|(i, d)| (i as f64, d.cache_saved_ms as f64 / HOUR)).collect();
    let manual: Vec<(f64, f64)> =
        r.days.iter().enumerate().map(|(i, d)| (i as f64, d.manual_minutes as f64 / 60.0)).collect();
    let with_manual = r.total.saved.manual.is_some();
    let top = cache.iter().chain(if with_manual { &manual[..] } else { &[] }).map(|p| p.1).fold(0.0, f64::max);
    let names: Vec<String> = r.days.iter().map(|d| d.day.clone()).collect();
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption("Hours saved per day", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5..(r.days.len() as f64 - 0.5).max(0.5), 0.0..nice_top(top))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(0)
            .x_labels(r.days.len().clamp(2, 8))
            .x_label_formatter(&day_label(&names))
            .y_desc("hours")
            .draw()?;
        chart
            .draw_series(LineSeries::new(cache, CACHE.stroke_width(2)))?
            .label("compute saved by the cache")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], CACHE.stroke_width(2)));
        if with_manual {
            chart
                .draw_series(LineSeries::new(manual, MANUAL.stroke_width(2)))?
                .label("manual effort replaced (estimate)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], MANUAL.stroke_width(2)));
        }
        chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).border_style(BLACK).draw()?;
        Ok(())
    })
}

/// Deploys prevented per day (gate refusals, rejected approvals, refused deploys), as bars.
pub fn prevented(r: &Report) -> Option<String> {
    if r.prevented.is_empty() || r.days.is_empty() {
        return None;
    }
    let values: Vec<f64> = r.days.iter().map(|d| d.prevented as f64).collect();
    let names: Vec<String> = r.days.iter().map(|d| d.day.clone()).collect();
    bars("Deploys prevented per day", "deploys prevented", &values, &[], &names)
}

/// Time to recovery per drift incident (hours), oldest first; an open incident's bar (grey) is
/// the time so far.
pub fn recovery(r: &Report) -> Option<String> {
    let lines = &r.drift.incidents;
    if lines.is_empty() {
        return None;
    }
    let values: Vec<f64> =
        lines.iter().map(|i| i.recovery_ms.unwrap_or((r.until_ms - i.detected_ms).max(0)) as f64 / HOUR).collect();
    let open: Vec<bool> = lines.iter().map(|i| i.recovery_ms.is_none()).collect();
    let names: Vec<String> = lines.iter().map(|i| format!("#{} {}", i.id, i.model)).collect();
    bars("Time to recovery per drift incident (grey: still open)", "hours", &values, &open, &names)
}

fn bars(caption: &str, y: &str, values: &[f64], grey: &[bool], names: &[String]) -> Option<String> {
    let top = values.iter().copied().fold(0.0, f64::max);
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5..(values.len() as f64 - 0.5).max(0.5), 0.0..nice_top(top))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .max_light_lines(0)
            .x_labels(values.len().clamp(2, 10))
            .x_label_formatter(&|x: &f64| {
                let i = x.round();
                if (x - i).abs() > 1e-9 || i < 0.0 {
                    return String::new();
                }
                let n = names.get(i as usize).cloned().unwrap_or_default();
                n.get(5..).filter(|_| n.len() == 10 && n.as_bytes()[4] == b'-').map(str::to_owned).unwrap_or(n)
            })
            .y_desc(y)
            .draw()?;
        chart.draw_series(values.iter().enumerate().map(|(i, v)| {
            let colour = if grey.get(i).copied().unwrap_or(false) { OPEN } else { BLOCKED };
            Rectangle::new([(i as f64 - 0.35, 0.0), (i as f64 + 0.35, *v)], colour.filled())
        }))?;
        Ok(())
    })
}

/// The y axis' top: a little above the highest value, and 1 when everything is 0.
fn nice_top(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 { max * 1.15 } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_history::report::{Day, Facts, IncidentLine, ReportQuery, compute};

    fn report() -> Report {
        let q = ReportQuery { workflow: None, since_ms: 0, until_ms: 172_800_000, manual_minutes: None };
        let mut r = compute(&Facts::default(), &q);
        r.days = vec![
            Day { day: "1970-01-01".into(), runs: 2, cache_saved_ms: 1_800_000, manual_minutes: 60, prevented: 1 },
            Day { day: "1970-01-02".into(), runs: 1, cache_saved_ms: 0, manual_minutes: 30, prevented: 0 },
        ];
        r
    }

    #[test]
    fn charts_are_embeddable_svg_without_urls_and_absent_without_data() {
        let mut r = report();
        let s = saved_hours(&r).unwrap();
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"), "{s}");
        assert!(!s.contains("http"), "no namespace URL, no link: {s}");
        assert!(s.contains("Hours saved per day") && s.contains("01-02"));
        assert_eq!(prevented(&r), None, "nothing prevented: no chart");
        assert_eq!(recovery(&r), None, "no incidents: no chart");
        r.drift.incidents.push(IncidentLine {
            id: 7,
            workflow: "w".into(),
            registry: "/r".into(),
            model: "churn".into(),
            detected_ms: 0,
            resolved_ms: None,
            resolution: None,
            recovery_ms: None,
            alerts: 1,
        });
        let s = recovery(&r).unwrap();
        assert!(s.contains("#7 churn") && s.contains("#999999"), "an open incident is grey: {s}");
        r.days.clear();
        assert_eq!(saved_hours(&r), None);
    }
}
