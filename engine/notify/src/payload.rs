//! What each sink receives, as pure functions of the notification: the webhook JSON (also a
//! command's stdin) and the Slack incoming-webhook message. Same notification, same bytes.

use dagrun_history::{Fact, Notification};
use serde::Serialize;
use serde_json::{Value, json};

/// The `version` of the webhook payload; bumped only when a field changes meaning or goes away
/// (new fields may be added within a version).
pub const WEBHOOK_VERSION: u32 = 1;

/// The webhook payload, its fields in this order (docs/notifications.md shows an example).
#[derive(Serialize)]
struct WebhookPayload<'a> {
    version: u32,
    event: &'static str,
    workflow: &'a str,
    run_id: Option<&'a str>,
    at_ms: i64,
    title: &'a str,
    facts: &'a [Fact],
    action: Option<&'a str>,
    details: &'a Value,
}

/// The JSON body of a `Webhook` sink (and the stdin of a `Command` sink): `version`, `event`,
/// `workflow`, `run_id`, `at_ms`, `title`, `facts` (a list of `{"name", "value"}` in display
/// order), `action`, `details`.
pub fn webhook_body(n: &Notification) -> String {
    let p = WebhookPayload {
        version: WEBHOOK_VERSION,
        event: n.event.as_str(),
        workflow: &n.workflow,
        run_id: n.run_id.as_deref(),
        at_ms: n.at_ms,
        title: &n.title,
        facts: &n.facts,
        action: n.action.as_deref(),
        details: &n.details,
    };
    serde_json::to_string(&p).expect("a notification serializes")
}

/// Slack's limits: a header's text, a field's text, fields per section, sections of facts.
const HEADER_MAX: usize = 150;
const FIELD_MAX: usize = 2000;
const FIELDS_PER_SECTION: usize = 10;
const FACT_SECTIONS: usize = 4;

/// The Slack incoming-webhook message: `text` (the title, shown in notifications and where
/// blocks are not) and `blocks`: a header with the title, the facts as fields (`*name*\nvalue`,
/// ten per section, at most forty), the action as a code span, and a context line naming the
/// workflow, run, event and time.
pub fn slack_payload(n: &Notification) -> Value {
    let title = if n.title.trim().is_empty() { n.event.as_str() } else { n.title.as_str() };
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip(title, HEADER_MAX), "emoji": true}
    })];
    let shown = FIELDS_PER_SECTION * FACT_SECTIONS;
    for chunk in n.facts[..n.facts.len().min(shown)].chunks(FIELDS_PER_SECTION) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|f| {
                let text = format!("*{}*\n{}", escape(&f.name), escape(&f.value));
                json!({"type": "mrkdwn", "text": clip(&text, FIELD_MAX)})
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if n.facts.len() > shown {
        let more = format!("… and {} more (the webhook payload has them all)", n.facts.len() - shown);
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]}));
    }
    if let Some(action) = &n.action {
        let text = clip(&format!("To act: `{}`", code(action)), FIELD_MAX);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context(n)}]}));
    json!({"text": escape(title), "blocks": blocks})
}

/// `workflow *self-heal* · run `2026…` · model_deployed · <date>`.
fn context(n: &Notification) -> String {
    let run = n.run_id.as_ref().map(|r| format!(" · run `{}`", code(r))).unwrap_or_default();
    let text = format!("workflow *{}*{run} · {} · {}", escape(&n.workflow), n.event.as_str(), slack_date(n.at_ms));
    clip(&text, FIELD_MAX)
}

/// A Slack date token: shown in the reader's time zone, with the UTC time as its fallback.
fn slack_date(at_ms: i64) -> String {
    let s = at_ms.div_euclid(1000);
    let (y, mo, d, h) = dagrun_workflow::partition::civil(s);
    let min = s.rem_euclid(3600) / 60;
    format!("<!date^{s}^{{date_num}} {{time}}|{y:04}-{mo:02}-{d:02} {h:02}:{min:02} UTC>")
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped (else `<...>` is taken for a link).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Text for a code span: escaped, and without backticks (mrkdwn cannot escape them).
fn code(s: &str) -> String {
    escape(s).replace('`', "'")
}

/// At most `max` characters, the last one `…` when cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagrun_workflow::heal::NotifyEvent;

    fn note() -> Notification {
        Notification {
            event: NotifyEvent::ApprovalNeeded,
            workflow: "self-heal".into(),
            run_id: Some("20261128T1203-ab12".into()),
            at_ms: 1_795_867_380_000,
            title: "self-heal: approval needed for churn (model a1b2c3d4)".into(),
            facts: vec![
                Fact { name: "accuracy".into(), value: "0.912 (champion 0.874)".into() },
                Fact { name: "changed predictions".into(), value: "14% > 10%".into() },
            ],
            action: Some("dagrun approve 20261128T1203-ab12".into()),
            details: json!({"digest": "a1b2c3d4", "model": "churn"}),
        }
    }

    #[test]
    fn the_slack_message_is_exact() {
        let expected = json!({
            "text": "self-heal: approval needed for churn (model a1b2c3d4)",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text",
                    "text": "self-heal: approval needed for churn (model a1b2c3d4)", "emoji": true}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*accuracy*\n0.912 (champion 0.874)"},
                    {"type": "mrkdwn", "text": "*changed predictions*\n14% &gt; 10%"}
                ]},
                {"type": "section", "text": {"type": "mrkdwn", "text": "To act: `dagrun approve 20261128T1203-ab12`"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text":
                    "workflow *self-heal* · run `20261128T1203-ab12` · approval_needed · \
                     <!date^1795867380^{date_num} {time}|2026-11-28 12:03 UTC>"}]}
            ]
        });
        assert_eq!(slack_payload(&note()), expected);
    }

    #[test]
    fn a_slack_message_without_run_action_or_facts_keeps_header_and_context() {
        let mut n = note();
        (n.run_id, n.action, n.facts) = (None, None, Vec::new());
        let v = slack_payload(&n);
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            blocks[1]["elements"][0]["text"],
            "workflow *self-heal* · approval_needed · <!date^1795867380^{date_num} {time}|2026-11-28 12:03 UTC>"
        );
    }

    #[test]
    fn slack_limits_are_kept() {
        let mut n = note();
        n.title = "x".repeat(400);
        n.facts = (0..45).map(|i| Fact { name: format!("f{i}"), value: "v".repeat(3000) }).collect();
        let v = slack_payload(&n);
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["text"]["text"].as_str().unwrap().chars().count(), HEADER_MAX);
        let sections: Vec<&Value> = blocks.iter().filter(|b| b["fields"].is_array()).collect();
        assert_eq!(sections.len(), 4);
        assert!(sections.iter().all(|s| s["fields"].as_array().unwrap().len() == 10));
        assert!(sections[0]["fields"][0]["text"].as_str().unwrap().chars().count() <= FIELD_MAX);
        assert_eq!(blocks[5]["elements"][0]["text"], "… and 5 more (the webhook payload has them all)");
    }

    #[test]
    fn mrkdwn_is_escaped_and_code_spans_have_no_backticks() {
        let mut n = note();
        n.action = Some("echo `<x>` & go".into());
        let v = slack_payload(&n);
        assert_eq!(v["blocks"][2]["text"]["text"], "To act: `echo '&lt;x&gt;' &amp; go`");
    }

    #[test]
    fn the_webhook_body_is_exact() {
        assert_eq!(
            webhook_body(&note()),
            "{\"version\":1,\"event\":\"approval_needed\",\"workflow\":\"self-heal\",\"run_id\":\"20261128T1203-ab12\",\
             \"at_ms\":1795867380000,\"title\":\"self-heal: approval needed for churn (model a1b2c3d4)\",\
             \"facts\":[{\"name\":\"accuracy\",\"value\":\"0.912 (champion 0.874)\"},\
             {\"name\":\"changed predictions\",\"value\":\"14% > 10%\"}],\
             \"action\":\"dagrun approve 20261128T1203-ab12\",\"details\":{\"digest\":\"a1b2c3d4\",\"model\":\"churn\"}}"
        );
    }
}
