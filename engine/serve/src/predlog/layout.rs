//! The columns of a model version's log file and its lines: features, `prediction`,
//! `proba_<class>`, then the `_served_at`, `_model_version`, `_model_digest` metadata. Numbers are
//! the shortest text that reads back to the same value (`f32` for single precision).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use dagrun_onnx::rows::{FeatureBuf, Rows, push_field};
use dagrun_onnx::{ClassLabel, Predictions};

/// When the request was answered (UTC, milliseconds): `2025-03-02T10:15:30.123Z`.
pub const SERVED_AT: &str = "_served_at";
/// The version that answered: `v0003`.
pub const MODEL_VERSION: &str = "_model_version";
/// The first [`DIGEST_CHARS`] hex digits of its `model.onnx`'s blake3.
pub const MODEL_DIGEST: &str = "_model_digest";
/// How much of the digest `_model_digest` holds.
pub const DIGEST_CHARS: usize = 16;

/// What the model version answering a request looks like to the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub digest: &'a str,
    /// The model's feature names, when it has them (used when there are `width` of them).
    pub features: Option<&'a [String]>,
    /// Its classes in probability-column order, when known.
    pub classes: Option<&'a [ClassLabel]>,
    pub shape: Shape,
}

/// What one request's rows and predictions look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Features per row.
    pub width: usize,
    /// Whether the predictions are class labels.
    pub classifier: bool,
    /// Probability columns (0: none).
    pub probas: usize,
}

impl Shape {
    /// The shape of `rows` and their `predictions`.
    pub fn of(rows: &Rows, predictions: &Predictions, classes: Option<&[ClassLabel]>) -> Shape {
        match predictions {
            Predictions::Values { .. } => Shape { width: rows.width, classifier: false, probas: 0 },
            Predictions::Classes { probabilities, .. } => {
                let probas = match (probabilities, classes) {
                    (None, _) => 0,
                    (Some(p), Some(c)) if p.len() == rows.rows * c.len() => c.len(),
                    (Some(p), _) => p.len() / rows.rows.max(1),
                };
                Shape { width: rows.width, classifier: true, probas }
            }
        }
    }
}

/// One model version's columns (for one [`Shape`]), and how it writes lines.
#[derive(Debug)]
pub(crate) struct Layout {
    /// Unique within the process (routes files).
    pub id: u64,
    pub name: String,
    pub version: String,
    digest: String,
    pub shape: Shape,
    /// The header line, `\n` included.
    pub header: String,
    /// Predicted labels as CSV fields, by class index.
    labels: Vec<String>,
}

impl Layout {
    pub fn new(id: u64, spec: &Spec<'_>) -> Layout {
        let shape = spec.shape;
        let mut columns: Vec<String> = match spec.features {
            Some(f) if f.len() == shape.width => f.to_vec(),
            _ => (0..shape.width).map(|j| format!("f{j}")).collect(),
        };
        let numbered = || (0..shape.probas).map(|i| i.to_string()).collect::<Vec<_>>();
        let labels: Vec<String> = spec.classes.map_or_else(numbered, |c| c.iter().map(ToString::to_string).collect());
        // Probability columns are named after the classes when there is one per class.
        let probas = if labels.len() == shape.probas { labels.clone() } else { numbered() };
        let mut taken: HashSet<String> = columns.iter().cloned().collect();
        let mut add = |columns: &mut Vec<String>, name: String| {
            let mut name = name;
            while taken.contains(&name) {
                name.insert(0, '_');
            }
            taken.insert(name.clone());
            columns.push(name);
        };
        add(&mut columns, "prediction".into());
        for label in &probas {
            add(&mut columns, format!("proba_{label}"));
        }
        for meta in [SERVED_AT, MODEL_VERSION, MODEL_DIGEST] {
            add(&mut columns, meta.into());
        }
        let mut header = Vec::new();
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                header.push(b',');
            }
            push_field(&mut header, c.as_bytes());
        }
        header.push(b'\n');
        let mut fields = Vec::new();
        let labels = labels
            .iter()
            .map(|l| {
                fields.clear();
                push_field(&mut fields, l.as_bytes());
                String::from_utf8_lossy(&fields).into_owned()
            })
            .collect();
        let digest = spec.digest.chars().take(DIGEST_CHARS).collect();
        Layout {
            id,
            name: spec.name.to_owned(),
            version: spec.version.to_owned(),
            digest,
            shape,
            header: String::from_utf8_lossy(&header).into_owned(),
            labels,
        }
    }

    /// Whether this layout is the one for `spec`.
    pub fn matches(&self, spec: &Spec<'_>) -> bool {
        self.shape == spec.shape
            && self.name == spec.name
            && self.version == spec.version
            && spec.digest.starts_with(&self.digest)
    }

    /// Appends one line per row of `rows` (answered at `at`); the number of lines.
    pub fn push_lines(&self, out: &mut Vec<u8>, at: DateTime<Utc>, rows: &Rows, predictions: &Predictions) -> usize {
        let meta = format!(",{},{},{}\n", at.format("%Y-%m-%dT%H:%M:%S%.3fZ"), csv(&self.version), self.digest);
        let mut ryu = ryu::Buffer::new();
        let n = rows.rows.min(predictions.len());
        for i in 0..n {
            for j in 0..rows.width {
                if j > 0 {
                    out.push(b',');
                }
                match &rows.values {
                    FeatureBuf::F32(v) => push_float(out, &mut ryu, f64::from(v[i * rows.width + j]), true),
                    FeatureBuf::F64(v) => push_float(out, &mut ryu, v[i * rows.width + j], false),
                }
            }
            if rows.width > 0 {
                out.push(b',');
            }
            match predictions {
                Predictions::Values { values, single_precision } => {
                    push_float(out, &mut ryu, values[i], *single_precision);
                }
                Predictions::Classes { predicted, probabilities, single_precision } => {
                    match self.labels.get(predicted[i]) {
                        Some(label) => out.extend_from_slice(label.as_bytes()),
                        None => out.extend_from_slice(predicted[i].to_string().as_bytes()),
                    }
                    let c = self.shape.probas;
                    if let Some(p) = probabilities.as_ref().filter(|_| c > 0) {
                        for &v in &p[i * c..(i + 1) * c] {
                            out.push(b',');
                            push_float(out, &mut ryu, v, *single_precision);
                        }
                    }
                }
            }
            out.extend_from_slice(meta.as_bytes());
        }
        n
    }
}

/// `text` as a CSV field.
fn csv(text: &str) -> String {
    let mut out = Vec::new();
    push_field(&mut out, text.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

/// The shortest text that reads back to the same `f32` (`single`) or `f64`; nothing (an empty
/// cell, which readers count as missing) for NaN and infinities.
fn push_float(out: &mut Vec<u8>, buf: &mut ryu::Buffer, v: f64, single: bool) {
    if v.is_finite() {
        let s = if single { buf.format(v as f32) } else { buf.format(v) };
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2025-03-02T10:15:30.123456Z".parse().unwrap()
    }

    fn spec<'a>(features: Option<&'a [String]>, classes: Option<&'a [ClassLabel]>, shape: Shape) -> Spec<'a> {
        Spec { name: "churn", version: "v0003", digest: "0123456789abcdef0123", features, classes, shape }
    }

    fn rows(values: FeatureBuf, width: usize) -> Rows {
        let len = match &values {
            FeatureBuf::F32(v) => v.len(),
            FeatureBuf::F64(v) => v.len(),
        };
        Rows { values, rows: len / width, width }
    }

    #[test]
    fn a_classifier_with_named_features_and_probabilities() {
        let features: Vec<String> = vec!["tenure".into(), "plan, tier".into()];
        let classes = [ClassLabel::Str("no".into()), ClassLabel::Str("yes \"really\"".into())];
        let shape = Shape { width: 2, classifier: true, probas: 2 };
        let layout = Layout::new(1, &spec(Some(&features), Some(&classes), shape));
        assert_eq!(
            layout.header,
            "tenure,\"plan, tier\",prediction,proba_no,\"proba_yes \"\"really\"\"\",_served_at,_model_version,_model_digest\n"
        );
        let r = rows(FeatureBuf::F32(vec![1.5, 0.1, -2.0, 3.0e-7]), 2);
        let p = Predictions::Classes {
            predicted: vec![1, 0],
            probabilities: Some(vec![0.25, 0.75, 0.9, 0.1]),
            single_precision: true,
        };
        assert_eq!(Shape::of(&r, &p, Some(&classes)), shape);
        let mut out = Vec::new();
        assert_eq!(layout.push_lines(&mut out, at(), &r, &p), 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1.5,0.1,\"yes \"\"really\"\"\",0.25,0.75,2025-03-02T10:15:30.123Z,v0003,0123456789abcdef\n\
             -2.0,3e-7,no,0.9,0.1,2025-03-02T10:15:30.123Z,v0003,0123456789abcdef\n"
        );
    }

    #[test]
    fn a_regressor_without_feature_names_in_double_precision() {
        let shape = Shape { width: 3, classifier: false, probas: 0 };
        let layout = Layout::new(2, &spec(None, None, shape));
        assert_eq!(layout.header, "f0,f1,f2,prediction,_served_at,_model_version,_model_digest\n");
        let r = rows(FeatureBuf::F64(vec![0.1, 1e300, -0.0]), 3);
        let p = Predictions::Values { values: vec![0.30000000000000004], single_precision: false };
        let mut out = Vec::new();
        layout.push_lines(&mut out, at(), &r, &p);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(line, "0.1,1e300,-0.0,0.30000000000000004,2025-03-02T10:15:30.123Z,v0003,0123456789abcdef\n");
        let back: Vec<f64> = line.split(',').take(4).map(|v| v.parse().unwrap()).collect();
        assert_eq!(back, [0.1, 1e300, -0.0, 0.30000000000000004], "round trip");
    }

    #[test]
    fn columns_never_collide_and_unknown_classes_are_numbered() {
        let features: Vec<String> = vec!["prediction".into(), "_served_at".into()];
        let shape = Shape { width: 2, classifier: true, probas: 2 };
        let layout = Layout::new(3, &spec(Some(&features), None, shape));
        assert_eq!(
            layout.header,
            "prediction,_served_at,_prediction,proba_0,proba_1,__served_at,_model_version,_model_digest\n"
        );
        // Names that do not fit the width are not used.
        let layout = Layout::new(4, &spec(Some(&features[..1]), None, Shape { width: 2, ..shape }));
        assert!(layout.header.starts_with("f0,f1,prediction,"), "{}", layout.header);
        // Classes that do not match the probabilities still name the predictions.
        let classes = [ClassLabel::Str("a".into()), ClassLabel::Str("b".into()), ClassLabel::Str("c".into())];
        let layout = Layout::new(5, &spec(None, Some(&classes), Shape { width: 1, ..shape }));
        assert!(layout.header.starts_with("f0,prediction,proba_0,proba_1,_served_at,"), "{}", layout.header);
        let r = rows(FeatureBuf::F64(vec![1.0]), 1);
        let p =
            Predictions::Classes { predicted: vec![2], probabilities: Some(vec![0.5, 0.5]), single_precision: false };
        let mut out = Vec::new();
        layout.push_lines(&mut out, at(), &r, &p);
        assert!(out.starts_with(b"1.0,c,0.5,0.5,"), "{}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn matching_a_spec() {
        let shape = Shape { width: 3, classifier: false, probas: 0 };
        let layout = Layout::new(5, &spec(None, None, shape));
        assert!(layout.matches(&spec(None, None, shape)));
        assert!(!layout.matches(&spec(None, None, Shape { width: 4, ..shape })));
        assert!(!layout.matches(&Spec { version: "v0004", ..spec(None, None, shape) }));
        assert!(!layout.matches(&Spec { digest: "ff", ..spec(None, None, shape) }));
    }
}
