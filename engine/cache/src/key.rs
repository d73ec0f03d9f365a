//! The cache-key contract: one struct lists everything a task can see, hashed canonically.
//!
//! Changing what goes into [`KeyInputs`] or how it is encoded changes every key; bump
//! [`KEY_SCHEMA`] when doing so on purpose. `tests::pinned_key` fails on any accidental change.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::{ActionKey, Digest, ManifestDigest, ObjectDigest};

/// Version of the key encoding; part of every key.
pub const KEY_SCHEMA: u32 = 1;

/// Everything a task can see. Two runs with equal `KeyInputs` produce the same outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInputs {
    /// Task kind (`command`, `wasm`, `onnx-eval`).
    pub kind: String,
    /// The code: digest of the command line and its env, or of the plugin's wasm bytes.
    pub code: Digest,
    /// Digest of the canonical JSON of the task's params.
    pub params: Digest,
    /// Every named input and the digests of what it resolved to.
    pub inputs: BTreeMap<String, InputDigest>,
    /// Declared output names and paths (a task writing elsewhere is a different task).
    pub outputs: BTreeMap<String, String>,
    /// Output manifests of ordering-only (`after`) upstream tasks.
    pub upstream: BTreeMap<String, ManifestDigest>,
    /// Partition key, for partitioned tasks.
    pub partition: Option<String>,
}

/// What one named input resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputDigest {
    /// Files (one for `File`, any number for `Glob`) as `(path as written/matched, digest)`.
    Files(Vec<(String, ObjectDigest)>),
    /// One output of several partitions of an upstream task: `(partition key, digest)`, oldest first.
    Partitions {
        /// Upstream task.
        task: String,
        /// Its output name.
        output: String,
        /// Each partition's output digest.
        parts: Vec<(String, ObjectDigest)>,
    },
    /// Another task's named output.
    Output {
        /// Upstream task.
        task: String,
        /// Its output name.
        output: String,
        /// The output's content digest.
        digest: ObjectDigest,
    },
}

impl KeyInputs {
    /// The cache key: blake3 over a length-prefixed, tagged encoding of every field.
    pub fn key(&self) -> ActionKey {
        let mut e = Encoder(blake3::Hasher::new());
        e.str("dagrun-key");
        e.u64(u64::from(KEY_SCHEMA));
        e.str(&self.kind);
        e.bytes(&self.code.0);
        e.bytes(&self.params.0);
        e.u64(self.inputs.len() as u64);
        for (name, input) in &self.inputs {
            e.str(name);
            match input {
                InputDigest::Files(files) => {
                    e.u64(0);
                    e.u64(files.len() as u64);
                    for (path, d) in files {
                        e.str(path);
                        e.bytes(&d.0.0);
                    }
                }
                InputDigest::Output { task, output, digest } => {
                    e.u64(1);
                    e.str(task);
                    e.str(output);
                    e.bytes(&digest.0.0);
                }
                InputDigest::Partitions { task, output, parts } => {
                    e.u64(2);
                    e.str(task);
                    e.str(output);
                    e.u64(parts.len() as u64);
                    for (key, d) in parts {
                        e.str(key);
                        e.bytes(&d.0.0);
                    }
                }
            }
        }
        e.u64(self.outputs.len() as u64);
        for (name, path) in &self.outputs {
            e.str(name);
            e.str(path);
        }
        e.u64(self.upstream.len() as u64);
        for (task, d) in &self.upstream {
            e.str(task);
            e.bytes(&d.0.0);
        }
        match &self.partition {
            None => e.u64(0),
            Some(p) => {
                e.u64(1);
                e.str(p);
            }
        }
        ActionKey(Digest(*e.0.finalize().as_bytes()))
    }

    /// What differs between a previous run's inputs and these, in the order a user cares about.
    pub fn changes_since(&self, old: &KeyInputs) -> Vec<Change> {
        let mut out = Vec::new();
        if self.kind != old.kind || self.code != old.code {
            out.push(Change::Code);
        }
        if self.params != old.params {
            out.push(Change::Params);
        }
        for (name, new) in &self.inputs {
            match old.inputs.get(name) {
                None => out.push(Change::InputAdded(name.clone())),
                Some(prev) if prev != new => {
                    out.push(Change::InputChanged { name: name.clone(), detail: describe_input_change(prev, new) })
                }
                Some(_) => {}
            }
        }
        for name in old.inputs.keys().filter(|n| !self.inputs.contains_key(*n)) {
            out.push(Change::InputRemoved(name.clone()));
        }
        for (task, d) in &self.upstream {
            if old.upstream.get(task) != Some(d) {
                out.push(Change::Upstream(task.clone()));
            }
        }
        if self.outputs != old.outputs {
            out.push(Change::Outputs);
        }
        if self.partition != old.partition {
            out.push(Change::Partition);
        }
        out
    }
}

fn describe_input_change(old: &InputDigest, new: &InputDigest) -> String {
    match (old, new) {
        (InputDigest::Files(a), InputDigest::Files(b)) => {
            let old: BTreeMap<_, _> = a.iter().map(|(p, d)| (p.as_str(), d)).collect();
            let new: BTreeMap<_, _> = b.iter().map(|(p, d)| (p.as_str(), d)).collect();
            let mut parts = Vec::new();
            for (p, d) in &new {
                match old.get(p) {
                    None => parts.push(format!("{p} added")),
                    Some(o) if o != d => parts.push(format!("{p} changed")),
                    Some(_) => {}
                }
            }
            for p in old.keys().filter(|p| !new.contains_key(*p)) {
                parts.push(format!("{p} removed"));
            }
            parts.join(", ")
        }
        (_, InputDigest::Output { task, output, .. }) => format!("output `{output}` of `{task}` changed"),
        (InputDigest::Partitions { parts: a, .. }, InputDigest::Partitions { task, output, parts: b }) => {
            let old: BTreeMap<_, _> = a.iter().map(|(k, d)| (k.as_str(), d)).collect();
            let changed: Vec<&str> =
                b.iter().filter(|(k, d)| old.get(k.as_str()) != Some(&d)).map(|(k, _)| k.as_str()).collect();
            match changed.len() {
                0 => format!("the window of `{task}` partitions moved"),
                1..=3 => format!("output `{output}` of `{task}` changed in {}", changed.join(", ")),
                n => format!("output `{output}` of `{task}` changed in {n} partitions"),
            }
        }
        _ => "now a different kind of input".to_owned(),
    }
}

/// One reason a task's key differs from its last run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The command line / env or plugin bytes changed.
    Code,
    /// Params changed.
    Params,
    /// A new input.
    InputAdded(String),
    /// An input was removed.
    InputRemoved(String),
    /// An input's content changed.
    InputChanged {
        /// Input name.
        name: String,
        /// Which files, or which upstream output.
        detail: String,
    },
    /// An `after` upstream produced different outputs.
    Upstream(String),
    /// Declared output paths changed.
    Outputs,
    /// Different partition.
    Partition,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Code => f.write_str("code changed"),
            Change::Params => f.write_str("params changed"),
            Change::InputAdded(n) => write!(f, "input `{n}` added"),
            Change::InputRemoved(n) => write!(f, "input `{n}` removed"),
            Change::InputChanged { name, detail } => write!(f, "input `{name}` changed: {detail}"),
            Change::Upstream(t) => write!(f, "upstream `{t}` output changed"),
            Change::Outputs => f.write_str("declared outputs changed"),
            Change::Partition => f.write_str("partition changed"),
        }
    }
}

/// Canonical JSON: object keys sorted, no whitespace. Used for the params digest.
pub fn canonical_json(v: &serde_json::Value) -> String {
    let mut s = String::new();
    write_canonical(v, &mut s);
    s
}

/// [`canonical_json`] of the object with these entries, written without building it.
pub fn canonical_json_object<'a>(entries: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>) -> String {
    let mut s = String::new();
    write_canonical_object(entries, &mut s);
    s
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(m) => write_canonical_object(m, out),
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn write_canonical_object<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
    out: &mut String,
) {
    let mut entries: Vec<_> = entries.into_iter().collect();
    entries.sort_by_key(|(k, _)| *k);
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String(k.clone()).to_string());
        out.push(':');
        write_canonical(v, out);
    }
    out.push('}');
}

struct Encoder(blake3::Hasher);

impl Encoder {
    fn u64(&mut self, v: u64) {
        self.0.update(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.update(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> KeyInputs {
        KeyInputs {
            kind: "command".into(),
            code: Digest::of(b"python train.py"),
            params: Digest::of(canonical_json(&serde_json::json!({"b": 1, "a": [true, null]})).as_bytes()),
            inputs: BTreeMap::from([
                ("data".into(), InputDigest::Files(vec![("data/a.csv".into(), ObjectDigest(Digest::of(b"a")))])),
                (
                    "model".into(),
                    InputDigest::Output {
                        task: "train".into(),
                        output: "model".into(),
                        digest: ObjectDigest(Digest::of(b"m")),
                    },
                ),
            ]),
            outputs: BTreeMap::from([("report".into(), "out/report.txt".into())]),
            upstream: BTreeMap::from([("prep".into(), ManifestDigest(Digest::of(b"p")))]),
            partition: None,
        }
    }

    /// The key contract. If this fails you changed what a cache key means: bump KEY_SCHEMA
    /// (every cache entry becomes a miss) and update the pinned value.
    #[test]
    fn pinned_key() {
        assert_eq!(fixture().key().0.to_hex(), "6d464221c914f29bc7683db8e5909af858c00922e9ec8393bb9781592d5765a9");
    }

    /// A partitioned task reading several partitions of an upstream output: pins how the
    /// partition and a `Partitions` input are encoded (the first fixture has neither).
    fn partitioned_fixture() -> KeyInputs {
        let mut k = fixture();
        k.inputs.insert(
            "days".into(),
            InputDigest::Partitions {
                task: "ingest".into(),
                output: "rows".into(),
                parts: vec![
                    ("2025-01-01".into(), ObjectDigest(Digest::of(b"d1"))),
                    ("2025-01-02".into(), ObjectDigest(Digest::of(b"d2"))),
                ],
            },
        );
        k.partition = Some("2025-01-02".into());
        k
    }

    #[test]
    fn pinned_partitioned_key() {
        assert_eq!(
            partitioned_fixture().key().0.to_hex(),
            "15269ce99e5b88527dafadcaedc09a142d5b3450e3ecad71b2630a4c336e43f1"
        );
    }

    #[test]
    fn every_part_of_a_partitions_input_changes_the_key() {
        let base = partitioned_fixture();
        let k = base.key();
        type Parts = Vec<(String, ObjectDigest)>;
        let edit = |f: &dyn Fn(&mut String, &mut String, &mut Parts)| {
            let mut v = base.clone();
            let Some(InputDigest::Partitions { task, output, parts }) = v.inputs.get_mut("days") else {
                unreachable!()
            };
            f(task, output, parts);
            v
        };
        let variants = [
            edit(&|t, _, _| *t = "ingest2".into()),
            edit(&|_, o, _| *o = "rows2".into()),
            edit(&|_, _, p| p.reverse()),
            edit(&|_, _, p| p[0].0 = "2024-12-31".into()),
            edit(&|_, _, p| p[1].1 = ObjectDigest(Digest::of(b"d3"))),
            edit(&|_, _, p| p.truncate(1)),
            // The same task and output as one `Output` input is a different input.
            {
                let mut v = base.clone();
                v.inputs.insert(
                    "days".into(),
                    InputDigest::Output {
                        task: "ingest".into(),
                        output: "rows".into(),
                        digest: ObjectDigest(Digest::of(b"d1")),
                    },
                );
                v
            },
            {
                let mut v = base.clone();
                v.partition = Some("2025-01-03".into());
                v
            },
        ];
        for v in variants {
            assert_ne!(v.key(), k, "{v:?}");
        }
    }

    #[test]
    fn every_field_changes_the_key() {
        let base = fixture();
        let k = base.key();
        let mut variants = Vec::new();
        let mut v = base.clone();
        v.kind = "wasm".into();
        variants.push(v);
        let mut v = base.clone();
        v.code = Digest::of(b"python train2.py");
        variants.push(v);
        let mut v = base.clone();
        v.params = Digest::of(b"{}");
        variants.push(v);
        let mut v = base.clone();
        v.inputs.insert("extra".into(), InputDigest::Files(vec![]));
        variants.push(v);
        let mut v = base.clone();
        v.outputs.insert("x".into(), "x".into());
        variants.push(v);
        let mut v = base.clone();
        v.upstream.clear();
        variants.push(v);
        let mut v = base.clone();
        v.partition = Some("2025-01-01".into());
        variants.push(v);
        for v in variants {
            assert_ne!(v.key(), k, "{v:?}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a = serde_json::json!({"z": 1, "a": {"y": 2, "b": [1.5]}});
        assert_eq!(canonical_json(&a), r#"{"a":{"b":[1.5],"y":2},"z":1}"#);
    }

    #[test]
    fn explains_changes() {
        let old = fixture();
        let mut new = fixture();
        new.params = Digest::of(b"x");
        new.inputs.insert(
            "data".into(),
            InputDigest::Files(vec![("data/a.csv".into(), ObjectDigest(Digest::of(b"changed")))]),
        );
        let changes: Vec<String> = new.changes_since(&old).iter().map(ToString::to_string).collect();
        assert_eq!(changes, vec!["params changed", "input `data` changed: data/a.csv changed"]);
    }
}
