//! `dagrun approve`, `reject` and `approvals` given bad input: each refusal says why and what to
//! do, with exit code 2, and records nothing.

mod common;

use common::approval_request as request;
use common::{Sandbox, stderr, stdout};
use dagrun_history::History;

#[test]
fn decisions_on_the_wrong_run_are_refused_with_the_reason() {
    let s = Sandbox::new(r#"Workflow(name: "wf", tasks: [Task(name: "a", kind: Command(run: "true"))])"#);
    let out = s.dagrun(&["approve", "20990101-000000000-aa", "--by", "ana"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "error: no state directory at ./.dagrun: nothing waits for approval there\n");

    let (_, events, code) = s.run_json(&[]);
    assert_eq!(code, 0);
    let run = events[0]["run_id"].as_str().unwrap().to_owned();
    let out = s.dagrun(&["approve", &run, "--by", "ana"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!(
            "error: run {run} is not waiting for approval (it succeeded): `dagrun approvals` lists the runs that are\n"
        )
    );
    let out = s.dagrun(&["reject", "20990101-000000000-aa", "--by", "ana"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: no run `20990101-000000000-aa` in ./.dagrun: `dagrun approvals` lists the runs waiting for approval\n"
    );

    // A request whose model changed since: the newer request is the one to decide.
    let h = History::open(&s.path(".dagrun")).unwrap();
    h.ask(&request("r-old", "aaaaaaaaaaaaaaaa"), 0).unwrap();
    h.ask(&request("r-new", "bbbbbbbbbbbbbbbb"), 0).unwrap();
    let out = s.dagrun(&["approve", "r-old", "--by", "ana"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: the model of run r-old (request #1) has changed since: run r-new asks about model bbbbbbbbbbbb now; decide that one\n"
    );
    let listed = s.dagrun(&["approvals"]);
    assert!(
        stdout(&listed).starts_with("#2   PENDING    wf · churn model bbbbbbbbbbbb · run r-new"),
        "{}",
        stdout(&listed)
    );
    // Nobody named: $USER is the decider; with neither, the command asks for --by.
    let out = s.cmd(&["reject", "r-new"]).env_remove("USER").env_remove("LOGNAME").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "error: who decides? say it with --by NAME (recorded with the decision)\n");
    let out = s.cmd(&["reject", "r-new", "--note", "too risky"]).env("USER", "bo").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = s.dagrun(&["approvals", "--all"]);
    assert!(stdout(&all).contains("      by:   bo at "), "{}", stdout(&all));
    assert!(stdout(&all).contains(": \"too risky\""), "{}", stdout(&all));
}

#[test]
fn an_approval_that_could_not_resume_is_not_recorded() {
    // The workflow needs a notification secret this shell does not have: resuming here would
    // fail, so the approval is refused and nothing changes.
    let s = Sandbox::new(
        r#"Workflow(
    name: "wf",
    notify: [Webhook(url_env: "DAGRUN_TEST_APPROVE_HOOK")],
    tasks: [Task(name: "a", kind: Command(run: "true"))],
)"#,
    );
    let run = s
        .cmd(&["run", "wf.ron"])
        .env("DAGRUN_TEST_APPROVE_HOOK", "http://127.0.0.1:9/")
        .env("DAGRUN_NOTIFY_BUDGET_MS", "0")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let h = History::open(&s.path(".dagrun")).unwrap();
    let mut req = request("r1", "aaaaaaaaaaaaaaaa");
    req.workflow_path = s.path("wf.ron");
    h.ask(&req, 0).unwrap();
    let out = s.cmd(&["approve", "r1", "--by", "ana"]).env_remove("DAGRUN_TEST_APPROVE_HOOK").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("environment variable DAGRUN_TEST_APPROVE_HOOK (`url_env` of the webhook sink) is not set"),
        "{err}"
    );
    assert!(
        err.contains("so nothing was recorded: fix it (or start the daemon that runs it), then approve again"),
        "{err}"
    );
    let listed = s.dagrun(&["approvals"]);
    assert!(stdout(&listed).starts_with("#1   PENDING"), "still waiting: {}", stdout(&listed));
    // A look at the workflow from this shell does not need the secret the daemon has.
    let status = s.cmd(&["daemon", "status", "wf.ron"]).env_remove("DAGRUN_TEST_APPROVE_HOOK").output().unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    assert!(!stdout(&status).contains("invalid"), "{}", stdout(&status));
    assert!(stdout(&status).contains("wf"), "{}", stdout(&status));
}
