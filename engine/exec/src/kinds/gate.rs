//! The promotion gate of `OnnxEval`: thresholds, then the comparison with the deployed champion;
//! and the words for how differently the candidate behaves from the champion (which the decision
//! does not use). Pure: no I/O, unit-tested here.

use dagrun_onnx::metrics::higher_is_better;
use dagrun_onnx::{Behaviour, Metrics};
use dagrun_workflow::{GateDef, NoChampion};

/// The gate's decision.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Judgement {
    /// Why it refused, or `None` when it passed.
    pub refusal: Option<String>,
    /// The reason in words (also for a pass).
    pub reason: String,
    /// For a refusal by a metric: which, and by how much it missed.
    pub shortfall: Option<Shortfall>,
}

/// The metric a refusal failed on, and by how much (what the payoff report lists).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Shortfall {
    /// The metric.
    pub metric: String,
    /// The candidate's value.
    pub value: f64,
    /// What it had to reach: the `min` or `max`, or the champion's value plus the margin.
    pub threshold: f64,
    /// By how much it missed, in the metric's good direction (≥ 0; 0 for a strict tie).
    pub by: f64,
}

fn short(metric: &str, value: f64, threshold: f64, by: f64) -> Option<Shortfall> {
    Some(Shortfall { metric: metric.to_owned(), value, threshold, by: by.max(0.0) })
}

/// A champion as the gate sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChampionScore<'a> {
    /// Its registry version.
    pub version: &'a str,
    /// Its metrics on the same data, or `None` when it is the candidate itself.
    pub metrics: Option<&'a Metrics>,
}

pub(crate) fn fmt(v: f64) -> String {
    format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `v` with enough digits to tell it from `other` (4 decimals unless those read the same).
fn fmt_apart(v: f64, other: f64) -> String {
    if v == other || fmt(v) != fmt(other) { fmt(v) } else { format!("{v}") }
}

fn value(m: &Metrics, name: &str) -> Result<f64, String> {
    m.get(name).ok_or_else(|| format!("the gate uses metric `{name}`, which this model's evaluation does not have"))
}

/// Applies thresholds, then the champion comparison.
pub(crate) fn judge(gate: &GateDef, cand: &Metrics, champion: Option<ChampionScore<'_>>) -> Result<Judgement, String> {
    let refuse = |r: String, shortfall| Ok(Judgement { refusal: Some(r.clone()), reason: r, shortfall });
    for (name, min) in &gate.min {
        let v = value(cand, name)?;
        if v < *min {
            return refuse(format!("{name} {} < min {}", fmt(v), fmt(*min)), short(name, v, *min, min - v));
        }
    }
    for (name, max) in &gate.max {
        let v = value(cand, name)?;
        if v > *max {
            return refuse(format!("{name} {} > max {}", fmt(v), fmt(*max)), short(name, v, *max, v - max));
        }
    }
    let pass = |reason: String| Ok(Judgement { refusal: None, reason, shortfall: None });
    let Some(c) = &gate.champion else { return pass("thresholds met".to_owned()) };
    let Some(champ) = champion else {
        if c.if_none == NoChampion::Refuse {
            return refuse(format!("no model `{}` is deployed yet and `if_none` is Refuse", c.name), None);
        }
        return pass(format!("no model `{}` deployed yet; thresholds met", c.name));
    };
    let v = value(cand, &c.metric)?;
    let Some(champ_metrics) = champ.metrics else {
        return pass(format!("the candidate is the deployed champion {} ({} {})", champ.version, c.metric, fmt(v)));
    };
    let w = value(champ_metrics, &c.metric)?;
    let higher = higher_is_better(&c.metric).unwrap_or(true);
    // How much better the candidate is, in the metric's good direction.
    let gain = if higher { v - w } else { w - v };
    let ok = if c.strict { gain > c.margin } else { gain >= c.margin };
    let (m, vs, ws) = (&c.metric, fmt_apart(v, w), fmt_apart(w, v));
    if !ok {
        let op = match (gain == 0.0, higher) {
            (true, _) => "ties",
            (false, true) => "<",
            (false, false) => ">",
        };
        let rule = if c.strict { ", strict" } else { "" };
        let threshold = if higher { w + c.margin } else { w - c.margin };
        return refuse(
            format!("{m} {vs} {op} champion {} {ws} (margin {}{rule})", champ.version, fmt(c.margin)),
            short(m, v, threshold, c.margin - gain),
        );
    }
    let verb = if gain > 0.0 { "beats" } else { "ties" };
    pass(format!("{m} {vs} {verb} champion {} {ws}", champ.version))
}

/// What the reason adds about how differently the candidate behaves from the champion it was
/// compared with: `; 118 of 1000 predictions (11.8%) differ from the champion's` (classifiers),
/// `; predictions differ from the champion's by 0.031 on average` (regressors: the mean |Δ|), or,
/// when the two cannot be compared, why not. Nothing for a behaviour with neither measure.
pub(crate) fn behaviour_note(behaviour: Result<&Behaviour, &str>) -> String {
    match behaviour {
        Ok(Behaviour { rows, changed: Some(changed), changed_share: Some(share), .. }) => {
            let percent = share * 100.0;
            let percent = if *changed > 0 && fmt(percent) == "0" { "<0.0001".to_owned() } else { fmt(percent) };
            format!("; {changed} of {rows} predictions ({percent}%) differ from the champion's")
        }
        Ok(Behaviour { mean_abs_change: Some(m), .. }) => {
            let m = if *m != 0.0 && m.abs() < 1e-3 { format!("{m:.3e}") } else { fmt(*m) };
            format!("; predictions differ from the champion's by {m} on average")
        }
        Ok(_) => String::new(),
        Err(why) => format!("; predictions not compared with the champion's: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_workflow::ChampionDef;

    fn metrics(r2: f64) -> Metrics {
        Metrics::Regression(dagrun_onnx::metrics::RegressionMetrics { rows: 10, rmse: 1.0, mae: 1.0, r2 })
    }

    fn gate(strict: bool, margin: f64) -> GateDef {
        GateDef {
            champion: Some(ChampionDef {
                registry: "registry".into(),
                name: "churn".into(),
                metric: "r2".into(),
                margin,
                if_none: NoChampion::Pass,
                strict,
            }),
            ..GateDef::default()
        }
    }

    fn champion(m: &Metrics) -> Option<ChampionScore<'_>> {
        Some(ChampionScore { version: "v0002", metrics: Some(m) })
    }

    #[test]
    fn a_tie_is_not_called_beating() {
        let (cand, champ) = (metrics(0.9), metrics(0.9));
        let j = judge(&gate(false, 0.0), &cand, champion(&champ)).unwrap();
        assert_eq!(j, Judgement { refusal: None, reason: "r2 0.9 ties champion v0002 0.9".into(), shortfall: None });
        let j = judge(&gate(false, 0.0), &metrics(0.95), champion(&champ)).unwrap();
        assert_eq!(j.reason, "r2 0.95 beats champion v0002 0.9");
    }

    #[test]
    fn a_gain_beyond_four_decimals_is_shown_with_its_digits() {
        let champ = metrics(0.9);
        let j = judge(&gate(false, 0.0), &metrics(0.90000001), champion(&champ)).unwrap();
        assert_eq!(j.reason, "r2 0.90000001 beats champion v0002 0.9");
    }

    #[test]
    fn strict_refuses_a_tie_and_passes_an_improvement() {
        let champ = metrics(0.9);
        let j = judge(&gate(true, 0.0), &metrics(0.9), champion(&champ)).unwrap();
        assert_eq!(j.refusal.as_deref(), Some("r2 0.9 ties champion v0002 0.9 (margin 0, strict)"));
        let j = judge(&gate(true, 0.0), &metrics(0.91), champion(&champ)).unwrap();
        assert_eq!(j.refusal, None);
    }

    #[test]
    fn margins_and_worse_models() {
        let champ = metrics(0.9);
        let j = judge(&gate(false, 0.05), &metrics(0.92), champion(&champ)).unwrap();
        assert_eq!(j.refusal.as_deref(), Some("r2 0.92 < champion v0002 0.9 (margin 0.05)"));
        let j = judge(&gate(false, 0.0), &metrics(0.6418), champion(&champ)).unwrap();
        assert_eq!(j.refusal.as_deref(), Some("r2 0.6418 < champion v0002 0.9 (margin 0)"));
    }

    #[test]
    fn a_refusal_names_its_metric_and_how_far_it_missed() {
        let close = |s: Option<Shortfall>| {
            s.map(|s| (s.metric, (s.value * 1e6).round(), (s.threshold * 1e6).round(), (s.by * 1e6).round()))
        };
        let g = GateDef {
            min: [("r2".to_owned(), 0.7)].into(),
            max: [("rmse".to_owned(), 0.5)].into(),
            ..GateDef::default()
        };
        let j = judge(&g, &metrics(0.62), None).unwrap();
        assert_eq!(close(j.shortfall), Some(("r2".into(), 620_000.0, 700_000.0, 80_000.0)));
        let j = judge(&g, &metrics(0.8), None).unwrap();
        assert_eq!(close(j.shortfall), Some(("rmse".into(), 1e6, 500_000.0, 500_000.0)), "rmse 1 > max 0.5");
        let champ = metrics(0.9);
        let j = judge(&gate(false, 0.05), &metrics(0.92), champion(&champ)).unwrap();
        assert_eq!(close(j.shortfall), Some(("r2".into(), 920_000.0, 950_000.0, 30_000.0)), "needed 0.9 + 0.05");
        let j = judge(&gate(false, 0.0), &metrics(0.95), champion(&champ)).unwrap();
        assert_eq!(j.shortfall, None, "a pass has none");
    }

    #[test]
    fn the_candidate_that_is_the_champion_is_not_compared_with_itself() {
        let cand = metrics(0.9);
        let j = judge(&gate(true, 0.0), &cand, Some(ChampionScore { version: "v0002", metrics: None })).unwrap();
        assert_eq!(j.refusal, None);
        assert_eq!(j.reason, "the candidate is the deployed champion v0002 (r2 0.9)");
    }

    #[test]
    fn behaviour_in_words() {
        let classes = |rows, changed: u64| Behaviour {
            rows,
            changed: Some(changed),
            changed_share: Some(changed as f64 / rows as f64),
            mean_abs_change: Some(0.1),
        };
        let note = |b: &Behaviour| behaviour_note(Ok(b));
        assert_eq!(note(&classes(1000, 118)), "; 118 of 1000 predictions (11.8%) differ from the champion's");
        assert_eq!(note(&classes(8, 1)), "; 1 of 8 predictions (12.5%) differ from the champion's");
        assert_eq!(note(&classes(1000, 0)), "; 0 of 1000 predictions (0%) differ from the champion's");
        assert_eq!(
            note(&classes(100_000_000, 1)),
            "; 1 of 100000000 predictions (<0.0001%) differ from the champion's",
            "a change is never shown as 0%"
        );
        let regressor = |m| Behaviour { rows: 4, changed: None, changed_share: None, mean_abs_change: Some(m) };
        assert_eq!(note(&regressor(0.031)), "; predictions differ from the champion's by 0.031 on average");
        assert_eq!(note(&regressor(0.0)), "; predictions differ from the champion's by 0 on average");
        assert_eq!(note(&regressor(0.0000123)), "; predictions differ from the champion's by 1.230e-5 on average");
        assert_eq!(note(&Behaviour { rows: 4, changed: None, changed_share: None, mean_abs_change: None }), "");
        assert_eq!(
            behaviour_note(Err("the classes differ")),
            "; predictions not compared with the champion's: the classes differ"
        );
    }
}
