//! The log with its writer thread, on a temp dir with a settable clock: sampling, days, files
//! with other columns, restarts, a full queue and write errors.

use std::path::Path;
use std::sync::Mutex;

use dagrun_onnx::ClassLabel;
use dagrun_onnx::rows::FeatureBuf;

use super::*;
use crate::Event;

/// A started log, its counters, its events and its clock.
struct Log {
    log: PredLog,
    metrics: Arc<Metrics>,
    events: Arc<Mutex<Vec<Event>>>,
    now: Arc<Mutex<DateTime<Utc>>>,
}

fn start(dir: &Path, sample: f64, now: &str) -> Log {
    let metrics = Arc::new(Metrics::default());
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let sink: Events = Arc::new(move |e| seen.lock().unwrap().push(e));
    let now = Arc::new(Mutex::new(now.parse().unwrap()));
    let at = now.clone();
    let clock: Clock = Arc::new(move || *at.lock().unwrap());
    let options = LogOptions { dir: dir.to_path_buf(), sample };
    let log = PredLog::start_with(&options, metrics.clone(), sink, clock).unwrap();
    Log { log, metrics, events, now }
}

impl Log {
    fn set_time(&self, t: &str) {
        *self.now.lock().unwrap() = t.parse().unwrap();
    }

    /// One request of `n` rows to a classifier `version` with `width` features.
    fn request(&self, version: &str, width: usize, n: usize) {
        let features: Vec<String> = (0..width).map(|j| format!("x{j}")).collect();
        let classes = [ClassLabel::Int(0), ClassLabel::Int(1)];
        let values = (0..n * width).map(|v| v as f64 / 4.0).collect();
        let rows = Rows { values: FeatureBuf::F64(values), rows: n, width };
        let predictions = Predictions::Classes {
            predicted: (0..n).map(|i| i % 2).collect(),
            probabilities: Some((0..n).flat_map(|i| if i % 2 == 1 { [0.25, 0.75] } else { [0.5, 0.5] }).collect()),
            single_precision: false,
        };
        let spec = Spec {
            name: "churn",
            version,
            digest: "00112233445566778899",
            features: Some(&features),
            classes: Some(&classes),
            shape: Shape::of(&rows, &predictions, Some(&classes)),
        };
        if self.log.sampled() {
            self.log.submit(&spec, &rows, &predictions);
        }
    }

    fn close(self) -> (u64, u64, Vec<Event>) {
        self.log.close();
        let events = self.events.lock().unwrap().clone();
        (self.metrics.log_rows.load(Relaxed), self.metrics.log_dropped.load(Relaxed), events)
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn every_request_is_logged_at_share_1_and_none_at_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = start(dir.path(), 1.0, "2025-03-02T10:15:30.5Z");
    log.request("v0001", 2, 3);
    log.request("v0001", 2, 1);
    assert_eq!(log.close(), (4, 0, vec![]));
    assert_eq!(
        read(&dir.path().join("churn/2025-03-02.csv")),
        "x0,x1,prediction,proba_0,proba_1,_served_at,_model_version,_model_digest\n\
         0.0,0.25,0,0.5,0.5,2025-03-02T10:15:30.500Z,v0001,0011223344556677\n\
         0.5,0.75,1,0.25,0.75,2025-03-02T10:15:30.500Z,v0001,0011223344556677\n\
         1.0,1.25,0,0.5,0.5,2025-03-02T10:15:30.500Z,v0001,0011223344556677\n\
         0.0,0.25,0,0.5,0.5,2025-03-02T10:15:30.500Z,v0001,0011223344556677\n"
    );
    let none = tempfile::tempdir().unwrap();
    let log = start(none.path(), 0.0, "2025-03-02T10:15:30Z");
    for _ in 0..100 {
        log.request("v0001", 2, 1);
    }
    assert_eq!(log.close(), (0, 0, vec![]));
    assert_eq!(files(&none.path().join("churn")), Vec::<String>::new());
}

#[test]
fn a_share_logs_whole_requests() {
    let dir = tempfile::tempdir().unwrap();
    let log = start(dir.path(), 0.5, "2025-03-02T10:00:00Z");
    for _ in 0..400 {
        log.request("v0001", 2, 3);
    }
    let (rows, dropped, _) = log.close();
    assert_eq!(dropped, 0);
    assert_eq!(rows % 3, 0, "all rows of a sampled request");
    // 400 requests at 1/2: 200 expected, outside 120..280 with a probability below 1e-15.
    assert!((120 * 3..=280 * 3).contains(&rows), "{rows} rows");
    assert_eq!(read(&dir.path().join("churn/2025-03-02.csv")).lines().count() as u64, rows + 1);
}

#[test]
fn a_new_utc_day_starts_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = start(dir.path(), 1.0, "2025-03-02T23:59:59.999Z");
    log.request("v0001", 2, 2);
    log.set_time("2025-03-03T00:00:00Z");
    log.request("v0001", 2, 1);
    log.set_time("2025-03-02T23:59:59.999Z"); // queued before midnight, written after
    log.request("v0001", 2, 1);
    assert_eq!(log.close().0, 4);
    let day = dir.path().join("churn");
    assert_eq!(files(&day), ["2025-03-02.csv", "2025-03-03.csv"]);
    let first = read(&day.join("2025-03-02.csv"));
    assert_eq!(first.lines().count(), 4, "{first}");
    assert!(first.lines().skip(1).all(|l| l.contains(",2025-03-02T23:59:59.999Z,")), "{first}");
    let second = read(&day.join("2025-03-03.csv"));
    assert_eq!(second.lines().count(), 2, "{second}");
    assert!(second.ends_with(",2025-03-03T00:00:00.000Z,v0001,0011223344556677\n"), "{second}");
}

#[test]
fn other_columns_go_to_the_versions_file_and_restarts_append() {
    let dir = tempfile::tempdir().unwrap();
    let day = dir.path().join("churn");
    let log = start(dir.path(), 1.0, "2025-03-02T08:00:00Z");
    log.request("v0001", 2, 1);
    log.request("v0002", 3, 2); // a new version with another feature
    log.request("v0003", 2, 1); // the columns of v0001 again: the day's file
    assert_eq!(log.close().0, 4);
    assert_eq!(files(&day), ["2025-03-02.csv", "2025-03-02.v0002.csv"]);
    let main = read(&day.join("2025-03-02.csv"));
    assert_eq!(main.lines().count(), 3, "{main}");
    assert!(main.lines().nth(2).unwrap().contains(",v0003,"));
    let v2 = read(&day.join("2025-03-02.v0002.csv"));
    assert!(v2.starts_with("x0,x1,x2,prediction,"), "{v2}");
    assert_eq!(v2.lines().count(), 3);

    // After a restart each layout finds its file again: one header each, no mixing.
    let log = start(dir.path(), 1.0, "2025-03-02T09:00:00Z");
    log.request("v0002", 3, 1);
    log.request("v0001", 2, 1);
    log.close();
    assert_eq!(files(&day), ["2025-03-02.csv", "2025-03-02.v0002.csv"]);
    for (name, width, lines) in [("2025-03-02.csv", 2, 4), ("2025-03-02.v0002.csv", 3, 4)] {
        let text = read(&day.join(name));
        assert_eq!(text.lines().count(), lines, "{name}: {text}");
        assert_eq!(text.matches("prediction").count(), 1, "{name}: one header");
        assert!(text.lines().all(|l| l.split(',').count() == width + 6), "{name}: {text}");
    }
}

#[test]
fn a_file_torn_by_a_crash_is_repaired_before_appending() {
    let dir = tempfile::tempdir().unwrap();
    let log = start(dir.path(), 1.0, "2025-03-02T08:00:00Z");
    log.request("v0001", 2, 2);
    log.close();
    let path = dir.path().join("churn/2025-03-02.csv");
    let whole = read(&path);
    std::fs::write(&path, format!("{whole}9.5,1")).unwrap(); // killed mid-line
    let log = start(dir.path(), 1.0, "2025-03-02T08:00:01Z");
    log.request("v0001", 2, 1);
    log.close();
    let text = read(&path);
    assert!(text.starts_with(&whole), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.lines().all(|l| l.split(',').count() == 8), "{text}");
}

#[test]
fn a_full_queue_drops_and_counts_rows() {
    let metrics = Arc::new(Metrics::default());
    // A queue of two that nobody reads: the writer is stuck.
    let (queue, rx) = crossbeam_channel::bounded(2);
    let log = PredLog::with_queue(1.0, metrics.clone(), Arc::new(Utc::now), queue);
    let features: Vec<String> = vec!["a".into()];
    let rows = Rows { values: FeatureBuf::F64(vec![1.0, 2.0, 3.0]), rows: 3, width: 1 };
    let predictions = Predictions::Values { values: vec![0.5; 3], single_precision: false };
    let shape = Shape::of(&rows, &predictions, None);
    let spec = Spec { name: "m", version: "v0001", digest: "ab", features: Some(&features), classes: None, shape };
    for _ in 0..5 {
        log.submit(&spec, &rows, &predictions);
    }
    assert_eq!(metrics.log_dropped.load(Relaxed), 9, "3 requests of 3 rows");
    assert_eq!(rx.len(), 2);
}

#[test]
fn a_queue_past_its_budget_of_values_drops_rows() {
    let metrics = Arc::new(Metrics::default());
    let (queue, rx) = crossbeam_channel::bounded(10);
    let log = PredLog::with_queue(1.0, metrics.clone(), Arc::new(Utc::now), queue);
    let request = |rows: usize, width: usize| {
        let r = Rows { values: FeatureBuf::F32(vec![0.5; rows * width]), rows, width };
        let p = Predictions::Values { values: vec![1.0; rows], single_precision: true };
        let shape = Shape::of(&r, &p, None);
        let spec = Spec { name: "m", version: "v0001", digest: "ab", features: None, classes: None, shape };
        log.submit(&spec, &r, &p);
    };
    request(QUEUE_VALUES / 1024 + 1, 1024); // alone in the queue: taken, however large
    request(1, 4);
    assert_eq!((rx.len(), metrics.log_dropped.load(Relaxed)), (1, 1), "past the budget");
    let Ok(Msg::Entry(big)) = rx.try_recv() else { panic!("an entry") };
    log.queued.fetch_sub(big.weight, Relaxed); // what the writer does
    request(1, 4);
    assert_eq!((rx.len(), metrics.log_dropped.load(Relaxed)), (1, 1), "room again");
}

#[test]
fn write_errors_drop_rows_are_reported_once_and_logging_resumes() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the model's directory should be: every open fails, even for root.
    std::fs::write(dir.path().join("churn"), "").unwrap();
    let log = start(dir.path(), 1.0, "2025-03-02T08:00:00Z");
    for _ in 0..3 {
        log.request("v0001", 2, 2);
    }
    let (rows, dropped, events) = log.close();
    assert_eq!((rows, dropped), (0, 6));
    assert_eq!(events.len(), 1, "reported once: {events:?}");
    let Event::LogFailed { path, reason } = &events[0] else { panic!("{events:?}") };
    assert_eq!(path, &dir.path().join("churn/2025-03-02.csv"));
    assert!(!reason.is_empty());

    std::fs::remove_file(dir.path().join("churn")).unwrap();
    let log = start(dir.path(), 1.0, "2025-03-02T08:00:00Z");
    log.request("v0001", 2, 2);
    assert_eq!(log.close(), (2, 0, vec![]));
}

#[test]
fn a_directory_that_cannot_be_created_or_a_bad_share_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let events: Events = Arc::new(|_| {});
    let options = LogOptions { dir: file.join("log"), sample: 1.0 };
    let e = PredLog::start(&options, Arc::new(Metrics::default()), events.clone()).unwrap_err();
    assert!(e.to_string().starts_with(&format!("prediction log {}: ", file.join("log").display())), "{e}");
    let options = LogOptions { dir: dir.path().join("log"), sample: f64::NAN };
    assert!(PredLog::start(&options, Arc::new(Metrics::default()), events).is_err());
}
