//! What the end-to-end tests of the `dagrun` binary share: a temp-dir sandbox and output helpers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_dagrun");

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(workflow: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wf.ron"), workflow).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn write(&self, p: &str, content: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(self.dir.path()).env("NO_COLOR", "1").env_remove("DAGRUN_STATE_DIR");
        c.stdin(Stdio::null());
        c
    }

    pub fn dagrun(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// `dagrun run wf.ron --json ARGS`: task → status, plus the exit code.
    pub fn run_json(&self, args: &[&str]) -> (BTreeMap<String, String>, Vec<Value>, i32) {
        let mut all = vec!["run", "wf.ron", "--json"];
        all.extend_from_slice(args);
        let out = self.dagrun(&all);
        let events: Vec<Value> = String::from_utf8(out.stdout.clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect();
        let statuses = events
            .iter()
            .filter(|e| e["event"] == "task_finished")
            .map(|e| (e["task"].as_str().unwrap().to_owned(), e["status"].as_str().unwrap().to_owned()))
            .collect();
        (statuses, events, out.status.code().unwrap_or(-1))
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn statuses(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}
