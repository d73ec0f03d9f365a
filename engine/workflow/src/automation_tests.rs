//! Unit tests of schedules, triggers and concurrency: what loads, and each error's location.

use std::path::PathBuf;

use super::*;
use crate::{Source, Workflow};

const TASKS: &str = r#"tasks: [Task(name: "t", kind: Command(run: "true"))]"#;

fn load(fields: &str) -> Result<Workflow, Vec<Diagnostic>> {
    let src = format!("Workflow(\n    name: \"w\",\n    {fields}\n    {TASKS},\n)");
    Workflow::from_source(Source::new("w.ron", src), PathBuf::from("/wf"))
}

fn errors(fields: &str) -> Vec<String> {
    load(fields).unwrap_err().iter().map(|d| format!("{d}")).collect()
}

#[test]
fn a_workflow_without_automation_has_none() {
    let wf = load("").unwrap();
    assert!(wf.automation.is_empty());
    assert_eq!(wf.automation.concurrency, Concurrency::Coalesce);
}

#[test]
fn schedules_load_in_short_and_long_form() {
    let wf = load(r#"schedule: Cron("0 3 * * 1"),"#).unwrap();
    let s = wf.automation.schedule.unwrap();
    assert_eq!((s.expr.as_str(), s.timezone, s.catchup), ("0 3 * * 1", chrono_tz::UTC, Catchup::Latest));
    let wf = load(r#"schedule: Cron(expr: "@daily", catchup: All(max: 3), timezone: "Europe/Berlin"),"#).unwrap();
    let s = wf.automation.schedule.unwrap();
    assert_eq!((s.timezone, s.catchup), (chrono_tz::Europe::Berlin, Catchup::All { max: 3 }));
    let s = load(r#"schedule: Cron(expr: "@hourly", catchup: None),"#).unwrap().automation.schedule.unwrap();
    assert_eq!(s.catchup, Catchup::None);
    let s = load(r#"schedule: Cron(expr: "@hourly", catchup: All()),"#).unwrap().automation.schedule.unwrap();
    assert_eq!(s.catchup, Catchup::All { max: 10 });
}

#[test]
fn an_invalid_cron_expression_points_at_it_with_an_example() {
    let e = load(r#"schedule: Cron("0 25 * * *"),"#).unwrap_err();
    assert_eq!(e[0].location(), "w.ron:3:20");
    assert!(e[0].message.starts_with("invalid cron expression `0 25 * * *`"), "{}", e[0].message);
    assert!(e[0].help.as_deref().unwrap().contains("\"0 3 * * 1\""));
    assert_eq!(
        errors(r#"schedule: Cron(expr: "every monday"),"#)[0].split(':').take(3).collect::<Vec<_>>(),
        ["w.ron", "3", "26"]
    );
    // Seconds are not standard cron.
    assert!(load(r#"schedule: Cron("0 0 3 * * 1"),"#).is_err());
}

#[test]
fn an_unknown_time_zone_suggests_the_closest() {
    let e = load(r#"schedule: Cron(expr: "@daily", timezone: "Europe/Berln"),"#).unwrap_err();
    assert_eq!(format!("{}", e[0]), "w.ron:3:46: unknown time zone `Europe/Berln`");
    assert!(e[0].help.as_deref().unwrap().contains("\"Europe/Berlin\""), "{:?}", e[0].help);
}

#[test]
fn catchup_is_bounded() {
    let e = errors(r#"schedule: Cron(expr: "@daily", catchup: All(max: 0)),"#);
    assert_eq!(e, ["w.ron:3:45: `All(max: 0)` must run between 1 and 1000 missed ticks"]);
    assert!(load(r#"schedule: Cron(expr: "@daily", catchup: All(max: 1001)),"#).is_err());
}

#[test]
fn triggers_load() {
    let wf = load(
        r#"triggers: [
        FileLanded(glob: "landing/{date}.csv", settle: "500ms"),
        Webhook(name: "new-data", token_env: "NEW_DATA_TOKEN"),
        TaskOutcome(workflow: "drift", task: "check", when: Json(output: "report", pointer: "/drifted", equals: true)),
        TaskOutcome(workflow: "drift", task: "check"),
    ],
    concurrency: Skip,"#,
    )
    .unwrap();
    let a = wf.automation;
    assert_eq!(a.concurrency, Concurrency::Skip);
    assert_eq!(
        a.triggers[0],
        Trigger::FileLanded { glob: "landing/{date}.csv".into(), settle: Duration::from_millis(500) }
    );
    assert!(matches!(&a.triggers[1], Trigger::Webhook(w) if w.token_env == "NEW_DATA_TOKEN"));
    assert!(
        matches!(&a.triggers[2], Trigger::TaskOutcome { when: Outcome::Json { equals, .. }, .. } if *equals == serde_json::json!(true))
    );
    assert!(matches!(&a.triggers[3], Trigger::TaskOutcome { when: Outcome::Succeeded, .. }));
    assert_eq!(watch_glob("landing/{date}/{hour}.csv"), "landing/*/*.csv");
}

#[test]
fn a_glob_outside_the_workflow_directory_is_refused() {
    for glob in ["../elsewhere/*.csv", "/data/*.csv", "a/../../b", ".dagrun/*"] {
        let e = errors(&format!(r#"triggers: [FileLanded(glob: "{glob}")],"#));
        assert_eq!(e.len(), 1, "{glob}: {e:?}");
        assert!(e[0].starts_with("w.ron:3:33: file trigger glob"), "{glob}: {e:?}");
    }
    assert_eq!(errors(r#"triggers: [FileLanded(glob: "a/[")],"#).len(), 1);
}

#[test]
fn bad_trigger_fields_are_each_reported() {
    let e = errors(
        r#"triggers: [
        FileLanded(glob: "in/*.csv", settle: "soon"),
        Webhook(name: "new data", token_env: "T"),
        Webhook(name: "hook", token_env: "my-secret"),
        Webhook(name: "hook", token_env: "T2"),
        TaskOutcome(workflow: "w", task: "t"),
        TaskOutcome(workflow: "x", task: "t", when: Json(output: "o", pointer: "drifted", equals: true)),
    ],"#,
    );
    assert_eq!(
        e,
        [
            "w.ron:4:46: invalid settle time `soon`",
            "w.ron:5:23: invalid webhook name `new data`",
            "w.ron:6:42: `my-secret` is not an upper-case environment variable name",
            "w.ron:7:23: webhook `hook` is defined twice",
            "w.ron:8:31: workflow `w` triggers itself",
            "w.ron:9:53: `drifted` is not a JSON pointer",
        ]
    );
}

#[test]
fn unknown_trigger_kinds_and_fields_are_type_errors() {
    assert!(load(r#"triggers: [Email(to: "x")],"#).is_err());
    assert!(load(r#"triggers: [FileLanded(path: "x")],"#).is_err());
    assert!(load(r#"concurrency: Parallel,"#).is_err());
}

#[test]
fn cron_mistakes_are_explained_in_our_words() {
    let e = errors(r#"schedule: Cron("0 3 31 2 *"),"#);
    assert_eq!(e, ["w.ron:3:20: cron expression `0 3 31 2 *` never fires"]);
    let e = errors(r#"schedule: Cron("every monday"),"#);
    assert_eq!(e, ["w.ron:3:20: invalid cron expression `every monday`: it has 2 field(s); a cron expression has 5"]);
    let e = errors(r#"schedule: Cron("@reboot"),"#);
    assert!(e[0].ends_with("`@reboot` is not one of the aliases @hourly, @daily, @weekly, @monthly, @yearly"), "{e:?}");
    // February 29 does exist (in leap years).
    assert!(load(r#"schedule: Cron("0 0 29 2 *"),"#).is_ok());
}

#[test]
fn a_token_pasted_as_token_env_is_refused() {
    let e = errors(r#"triggers: [Webhook(name: "h", token_env: "ghp_1234567890abcdefABCDEF")],"#);
    assert_eq!(e, ["w.ron:3:46: `ghp_1234567890abcdefABCDEF` is not an upper-case environment variable name"]);
}

#[test]
fn a_file_trigger_on_the_workflows_own_output_is_refused() {
    let src = |glob: &str| {
        format!(
            r#"Workflow(name: "w", triggers: [FileLanded(glob: "{glob}")], partitions: {{"d": Daily(start: "2025-01-01")}},
            tasks: [Task(name: "summ", kind: Command(run: "true"), outputs: {{"o": "data/summary-{{date}}.csv"}}, partitioned: "d")])"#
        )
    };
    let load = |glob: &str| Workflow::from_source(Source::new("w.ron", src(glob)), PathBuf::from("/wf"));
    for glob in ["data/*.csv", "**/*.csv", "data/{date}*", "./data/*.csv", "data//*.csv"] {
        let e = load(glob).unwrap_err();
        assert_eq!(e[0].code, "dagrun::trigger-on-output", "{glob}");
        assert!(e[0].message.contains("matches output `o` of task `summ`"), "{}", e[0].message);
    }
    let w = load("landing/*.csv").unwrap();
    assert!(is_output(&w.tasks, "data/summary-2025-03-05.csv"));
    assert!(is_output(&w.tasks, "./data/summary-x.csv"));
    assert!(!is_output(&w.tasks, "data/raw.csv"));
    // Another directory, or a pattern that cannot be the output, is fine.
    assert!(load("landing/*.csv").is_ok());
    assert!(load("data/raw-*.csv").is_ok());
}

#[test]
fn a_time_zone_abbreviation_suggests_the_zone_people_mean() {
    let e = load(r#"schedule: Cron(expr: "@daily", timezone: "PST"),"#).unwrap_err();
    assert!(e[0].help.as_deref().unwrap().contains("\"America/Los_Angeles\""), "{:?}", e[0].help);
}

#[test]
fn a_fixed_offset_abbreviation_is_refused_with_the_place_to_write() {
    let e = load(r#"schedule: Cron(expr: "@daily", timezone: "EST"),"#).unwrap_err();
    assert_eq!(e[0].message, "`EST` is a fixed offset without daylight saving time");
    assert!(e[0].help.as_deref().unwrap().contains("America/New_York"));
}

#[test]
fn a_public_variable_is_no_token() {
    let e = errors(r#"triggers: [Webhook(name: "h", token_env: "HOME")],"#);
    assert_eq!(e, ["w.ron:3:46: `HOME` holds no secret"]);
}

#[test]
fn an_equals_that_is_not_json_is_reported() {
    let e = errors(
        r#"triggers: [TaskOutcome(workflow: "x", task: "t", when: Json(output: "o", pointer: "/a", equals: {[1]: 2}))],"#,
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].ends_with("`equals` is not a JSON value"), "{e:?}");
}
