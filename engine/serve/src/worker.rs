//! One served model version: a pool of ONNX Runtime sessions, worker threads and the queue requests
//! wait in. A small request runs on the HTTP thread that read it (no hand-off to another thread and
//! back): it lets the requests already read by that thread join it (one yield to the runtime), then
//! runs them all as one batch with a free session. Larger requests are queued, and a worker takes
//! every request already waiting (up to `max_batch` rows, or waits up to `max_wait` for more) and
//! runs them as one batch with a session from the same pool. Either way, under load many requests
//! cost one inference call, and an idle service answers each at once.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use dagrun_contracts::registry;
use dagrun_onnx::rows::{Rows, Schema};
use dagrun_onnx::{ClassLabel, ModelInfo, ModelKind, ModelOptions, OnnxModel, Predictions};
use tokio::sync::oneshot;

use crate::metrics::{Metrics, VersionStats};

/// What one request gets back.
#[derive(Debug, Clone)]
pub struct Output {
    /// Its rows' predictions.
    pub predictions: Predictions,
    /// The classes in probability-column order (classifiers).
    pub classes: Option<Arc<Vec<ClassLabel>>>,
    /// The rows it was asked about, handed back (for the prediction log; no copy is made).
    pub rows: Rows,
}

/// The most rows a request may have to run on the thread that read it (bigger ones go to a worker,
/// so a connection's thread is never held for long).
pub const INLINE_ROWS: usize = 64;

struct Job {
    rows: Rows,
    reply: oneshot::Sender<Result<Output, String>>,
}

/// How workers batch.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Worker threads (sessions).
    pub workers: usize,
    /// Most rows in one combined batch.
    pub max_batch: usize,
    /// How long to wait for more requests to combine.
    pub max_wait: Duration,
}

/// A loaded, warmed model version answering requests.
pub struct Served {
    /// The model name.
    pub name: String,
    /// `v0003`.
    pub version: String,
    /// blake3 (hex) of its `model.onnx`.
    pub digest: String,
    /// What it takes.
    pub schema: Schema,
    /// What dagrun made of it.
    pub info: ModelInfo,
    /// Its classes, in probability-column order (classifiers, once known).
    pub classes: Option<Arc<Vec<ClassLabel>>>,
    queue: Sender<Job>,
    sessions: Sessions,
    /// Small requests gathering on an HTTP thread to run as one batch, and their rows.
    gathering: Mutex<Option<(Vec<Job>, usize)>>,
    max_batch: usize,
    metrics: Arc<Metrics>,
    /// Whether small requests may run on the thread that read them (not when asked to wait for company).
    inline: bool,
    pub(crate) stats: Arc<VersionStats>,
}

/// The version's sessions not running a batch now: every worker and every inline request takes one
/// and gives it back (a session is used by one thread at a time).
#[derive(Clone)]
struct Sessions {
    free: Sender<OnnxModel>,
    take: Receiver<OnnxModel>,
}

/// A session taken from the pool; given back when dropped (even if the inference panicked).
struct Taken<'a> {
    model: Option<OnnxModel>,
    pool: &'a Sessions,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(model) = self.model.take() {
            let _ = self.pool.free.send(model);
        }
    }
}

impl std::ops::Deref for Taken<'_> {
    type Target = OnnxModel;
    fn deref(&self) -> &OnnxModel {
        self.model.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Taken<'_> {
    fn deref_mut(&mut self) -> &mut OnnxModel {
        self.model.as_mut().expect("held until dropped")
    }
}

impl Sessions {
    /// A free session, if one is free now.
    fn try_take(&self) -> Option<Taken<'_>> {
        self.take.try_recv().ok().map(|m| Taken { model: Some(m), pool: self })
    }

    /// The next session given back (`None`: the pool is gone).
    fn take(&self) -> Option<Taken<'_>> {
        self.take.recv().ok().map(|m| Taken { model: Some(m), pool: self })
    }
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served").field("name", &self.name).field("version", &self.version).finish_non_exhaustive()
    }
}

impl Served {
    /// Loads `<registry>/<name>/<version>/model.onnx` into one session per worker, checks its bytes
    /// against the digest in `metadata.json` (when there is one) and warms every session with a row
    /// of zeros. Blocking: call it off the async threads.
    pub(crate) fn load(
        registry: &Path,
        name: &str,
        version: &str,
        batching: Batching,
        metrics: Arc<Metrics>,
    ) -> Result<Served, String> {
        let path = registry::model_file(registry, name, version);
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let digest = blake3::hash(&bytes).to_hex().to_string();
        registry::check_version(registry, name, version, &digest).map_err(|e| e.to_string())?;
        drop(bytes);
        let options = ModelOptions { intra_threads: Some(1), ..Default::default() };
        let mut models = Vec::new();
        for _ in 0..batching.workers.max(1) {
            let mut model = OnnxModel::load(&path, &options).map_err(|e| e.to_string())?;
            warm(&mut model)?;
            models.push(model);
        }
        let first = &models[0];
        let (schema, info) = (first.schema(), first.info().clone());
        let classes = first.classes().map(|c| Arc::new(c.to_vec()));
        let (queue, rx) = crossbeam_channel::unbounded::<Job>();
        let (free, take) = crossbeam_channel::bounded(models.len());
        let sessions = Sessions { free, take };
        for i in 0..models.len() {
            let (rx, sessions, metrics) = (rx.clone(), sessions.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("serve-{name}-{version}-{i}"))
                .spawn(move || work(&sessions, rx, batching, &metrics))
                .map_err(|e| format!("cannot start a worker thread: {e}"))?;
        }
        models.into_iter().for_each(|m| sessions.free.send(m).expect("room for every session"));
        Ok(Served {
            name: name.to_owned(),
            version: version.to_owned(),
            digest: digest.clone(),
            schema,
            info,
            classes,
            queue,
            sessions,
            gathering: Mutex::new(None),
            max_batch: batching.max_batch,
            metrics: metrics.clone(),
            inline: batching.max_wait.is_zero(),
            stats: metrics.version(name, version),
        })
    }

    /// Classifier or regressor.
    pub fn kind(&self) -> Option<ModelKind> {
        self.info.kind
    }

    /// Runs `rows` (already checked against [`Served::schema`]) and waits for the predictions; the
    /// rows come back in the [`Output`].
    pub async fn infer(&self, rows: Rows) -> Result<Output, String> {
        let (reply, answer) = oneshot::channel();
        let job = Job { rows, reply };
        if self.inline && job.rows.rows <= INLINE_ROWS.min(self.max_batch) {
            self.gather(job).await;
        } else {
            self.queue.send(job).map_err(|_| "the model's workers stopped".to_owned())?;
        }
        answer.await.map_err(|_| "the model's worker stopped while running the request".to_owned())?
    }

    /// Runs a small request on this thread: the first one to come leads (it yields once, so the
    /// requests this thread has read meanwhile join it, up to `max_batch` rows) and runs them all
    /// as one batch with a free session, or hands them to the workers when none is free. A request
    /// that does not fit in the gathering batch goes to the workers.
    async fn gather(&self, job: Job) {
        {
            let mut gathering = self.gathering.lock().expect("gathering lock");
            match gathering.as_mut() {
                None => {
                    let rows = job.rows.rows;
                    *gathering = Some((vec![job], rows));
                }
                Some((jobs, rows))
                    if *rows + job.rows.rows <= self.max_batch && jobs[0].rows.width == job.rows.width =>
                {
                    *rows += job.rows.rows;
                    jobs.push(job);
                    return;
                }
                Some(_) => return self.to_workers(vec![job]),
            }
        }
        // Led here: should this request be dropped (its client gone) before the batch runs, the
        // guard hands the batch to the workers, so no request that joined it is left waiting.
        let lead = Lead(self);
        tokio::task::yield_now().await;
        let Some(mut jobs) = lead.take() else { return };
        match self.sessions.try_take() {
            Some(mut model) => {
                let mut classes = self.classes.clone();
                run_batch(&mut model, &mut jobs, &mut None, &mut classes, &self.metrics);
            }
            None => self.to_workers(jobs),
        }
    }

    /// Queues `jobs` for the worker threads (if they stopped, each job's caller is told so).
    fn to_workers(&self, jobs: Vec<Job>) {
        jobs.into_iter().for_each(|j| drop(self.queue.send(j)));
    }

    /// The gathering batch's requests, now closed to others.
    fn close_gathering(&self) -> Option<Vec<Job>> {
        self.gathering.lock().expect("gathering lock").take().map(|(jobs, _)| jobs)
    }
}

/// The request leading a gathering batch; dropped before it ran the batch, it queues it.
struct Lead<'a>(&'a Served);

impl Lead<'_> {
    /// The gathered requests, now closed to others.
    fn take(self) -> Option<Vec<Job>> {
        let jobs = self.0.close_gathering();
        std::mem::forget(self);
        jobs
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Some(jobs) = self.0.close_gathering() {
            self.0.to_workers(jobs);
        }
    }
}

/// Runs the model once on a row of zeros, so the first request does not pay for ONNX Runtime's
/// lazy initialisation, and the classes are known.
fn warm(model: &mut OnnxModel) -> Result<(), String> {
    let Some(width) = model.feature_count() else { return Ok(()) };
    let zeros = vec![0.0f64; width];
    model.predict(&zeros, 1, width, 0).map(drop).map_err(|e| format!("warm-up failed: {e}"))
}

/// A worker: takes a request, adds those already waiting (same width, up to `max_batch` rows),
/// runs them as one batch and answers each with its rows. Ends when the version is dropped.
fn work(sessions: &Sessions, rx: Receiver<Job>, batching: Batching, metrics: &Metrics) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut combined: Option<Rows> = None;
    let mut held: Option<Job> = None;
    let mut classes: Option<Arc<Vec<ClassLabel>>> = None;
    loop {
        let first = match held.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let width = first.rows.width;
        let mut rows = first.rows.rows;
        jobs.push(first);
        let deadline = Instant::now() + batching.max_wait;
        while rows < batching.max_batch {
            let next = match rx.try_recv() {
                Ok(j) => j,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) if batching.max_wait.is_zero() => break,
                Err(TryRecvError::Empty) => match rx.recv_deadline(deadline) {
                    Ok(j) => j,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                },
            };
            if next.rows.width != width || rows + next.rows.rows > batching.max_batch {
                held = Some(next);
                break;
            }
            rows += next.rows.rows;
            jobs.push(next);
        }
        let Some(mut model) = sessions.take() else { return };
        run_batch(&mut model, &mut jobs, &mut combined, &mut classes, metrics);
    }
}

/// Runs `jobs` (same width) as one batch and answers each with its rows' predictions; if the
/// combined batch fails, each is run alone, so one request's rows never fail another's.
fn run_batch(
    model: &mut OnnxModel,
    jobs: &mut Vec<Job>,
    combined: &mut Option<Rows>,
    classes: &mut Option<Arc<Vec<ClassLabel>>>,
    metrics: &Metrics,
) {
    let result = if jobs.len() == 1 {
        let r = &jobs[0].rows;
        model.predict(r.values.view(), r.rows, r.width, 0)
    } else {
        let width = jobs[0].rows.width;
        let all = combined.get_or_insert_with(|| Rows::new(width, model.takes_f32()));
        all.clear();
        all.width = width;
        jobs.iter().for_each(|j| all.append(&j.rows));
        model.predict(all.values.view(), all.rows, width, 0)
    };
    if classes.is_none() {
        *classes = model.classes().map(|c| Arc::new(c.to_vec()));
    }
    if result.is_err() && jobs.len() > 1 {
        for job in std::mem::take(jobs) {
            let r = model.predict(job.rows.values.view(), job.rows.rows, job.rows.width, 0);
            answer(&mut vec![job], r, classes.as_ref());
        }
        return;
    }
    if result.is_ok() && jobs.len() > 1 {
        metrics.combined_batches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    answer(jobs, result, classes.as_ref());
}

fn answer(jobs: &mut Vec<Job>, result: dagrun_onnx::Result<Predictions>, classes: Option<&Arc<Vec<ClassLabel>>>) {
    let n_classes = classes.map_or(0, |c| c.len());
    match result {
        Ok(predictions) if jobs.len() == 1 => {
            let job = jobs.pop().expect("one job");
            let _ = job.reply.send(Ok(Output { predictions, classes: classes.cloned(), rows: job.rows }));
        }
        Ok(predictions) => {
            let mut start = 0;
            for job in jobs.drain(..) {
                let end = start + job.rows.rows;
                let part = predictions.slice(start..end, n_classes);
                start = end;
                let _ = job.reply.send(Ok(Output { predictions: part, classes: classes.cloned(), rows: job.rows }));
            }
        }
        Err(e) => {
            let reason = e.to_string();
            for job in jobs.drain(..) {
                let _ = job.reply.send(Err(reason.clone()));
            }
        }
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
