//! The HTTP surface: routes, the shared state, `POST /predict/{name}`, health, `/metrics`, and what
//! every answer carries (the version and digest that produced it). The Open Inference Protocol's
//! model endpoints are in [`crate::oip`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dagrun_contracts::registry;
use dagrun_onnx::rows::{self, JsonRowsError, Rows};
use dagrun_onnx::{ClassLabel, Predictions};
use serde_json::Value;

use crate::error::{ApiError, ServeError};
use crate::metrics::Metrics;
use crate::predlog::PredLog;
use crate::slot::Slot;
use crate::worker::{Batching, Output, Served};
use crate::{Events, ServeOptions};

/// Most worker threads (sessions) per model: more only costs memory and start-up time.
const MAX_WORKERS: usize = 256;

/// What every request handler shares.
pub(crate) struct State {
    pub options: ServeOptions,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    pub log: Option<PredLog>,
}

impl State {
    pub async fn new(options: ServeOptions, events: Events) -> Result<Arc<State>, ServeError> {
        if !options.registry.is_dir() {
            return Err(ServeError::NoRegistry(options.registry.clone()));
        }
        if options.workers == 0 || options.workers > MAX_WORKERS {
            return Err(ServeError::Options(format!(
                "--workers {}: from 1 to {MAX_WORKERS} (each worker is an ONNX Runtime session of every model)",
                options.workers
            )));
        }
        if options.max_batch == 0 {
            return Err(ServeError::Options("--max-batch 0: at least 1 row".into()));
        }
        for name in &options.names {
            registry::validate_name(name).map_err(|_| ServeError::BadName(name.clone()))?;
            if !registry::model_dir(&options.registry, name).is_dir() {
                let known = registry::names(&options.registry);
                return Err(ServeError::NoModel {
                    name: name.clone(),
                    registry: options.registry.clone(),
                    known: if known.is_empty() { "none".into() } else { known.join(", ") },
                });
            }
        }
        dagrun_onnx::runtime::init()?;
        let metrics = Arc::new(Metrics::default());
        let log = match &options.log {
            Some(o) => Some(PredLog::start(o, metrics.clone(), events.clone())?),
            None => None,
        };
        let names = if options.names.is_empty() { registry::names(&options.registry) } else { options.names.clone() };
        let slots = names.iter().map(|n| (n.clone(), Arc::new(Slot::new(n)))).collect();
        let state = Arc::new(State { options, events, metrics, slots: RwLock::new(slots), log });
        for slot in state.slots() {
            // Failures are reported as events; the name is served once a loadable version is deployed.
            let _ = slot.refresh(&state, true).await;
        }
        Ok(state)
    }

    pub fn batching(&self) -> Batching {
        Batching { workers: self.options.workers, max_batch: self.options.max_batch, max_wait: self.options.max_wait }
    }

    pub fn slots(&self) -> Vec<Arc<Slot>> {
        self.slots.read().expect("slots lock").values().cloned().collect()
    }

    /// Serving every model of the registry: adds names that appeared since.
    pub fn discover(&self) {
        if !self.options.names.is_empty() {
            return;
        }
        for name in registry::names(&self.options.registry) {
            self.slot_for(&name);
        }
    }

    fn slot_for(&self, name: &str) -> Option<Arc<Slot>> {
        if let Some(s) = self.slots.read().expect("slots lock").get(name) {
            return Some(s.clone());
        }
        let known = self.options.names.is_empty()
            && registry::validate_name(name).is_ok()
            && registry::model_dir(&self.options.registry, name).is_dir();
        known.then(|| {
            self.slots
                .write()
                .expect("slots lock")
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(Slot::new(name)))
                .clone()
        })
    }

    /// The slot of a model name, or 404 naming the served ones.
    pub fn slot(&self, name: &str) -> Result<Arc<Slot>, ApiError> {
        self.slot_for(name).ok_or_else(|| {
            let served: Vec<String> = self.slots.read().expect("slots lock").keys().cloned().collect();
            let list = if served.is_empty() { "none".to_owned() } else { served.join(", ") };
            ApiError::not_found(format!("no model `{name}` is served here; served: {list}"))
        })
    }

    /// The version to answer with, counting a refusal before one was chosen.
    pub async fn served(self: &Arc<Self>, name: &str) -> Result<Arc<Served>, ApiError> {
        let result = match self.slot(name) {
            Ok(slot) => slot.get(self).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            self.metrics.unrouted(e.status.as_u16());
        }
        result
    }

    /// Stops serving: the workers end once the last request holding a version is answered.
    pub fn close(&self) {
        for slot in self.slots() {
            slot.close();
        }
        if let Some(log) = &self.log {
            log.close();
        }
    }
}

pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v2", get(crate::oip::server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(crate::oip::model_metadata))
        .route("/v2/models/{name}/ready", get(crate::oip::model_ready))
        .route("/v2/models/{name}/infer", post(crate::oip::infer))
        .route("/v2/models/{name}/versions/{version}", get(crate::oip::version_metadata))
        .route("/v2/models/{name}/versions/{version}/ready", get(crate::oip::version_ready))
        .route("/v2/models/{name}/versions/{version}/infer", post(crate::oip::version_infer))
        .route("/predict/{name}", post(predict))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn live() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({ "live": true }))
}

/// Ready when every model to serve has a version loaded: the names given with `--name`, or (serving
/// the whole registry) every model deployed. A directory without `current` (a model staged but not
/// deployed yet, or no model at all) does not hold the service up.
async fn ready(Extract(state): Extract<Arc<State>>) -> Response {
    let named = !state.options.names.is_empty();
    let deployed = |name: &str| registry::current_file(&state.options.registry, name).exists();
    let waiting: Vec<String> = state
        .slots()
        .iter()
        .filter(|s| s.served().is_none() && (named || deployed(&s.name)))
        .map(|s| s.name.clone())
        .collect();
    let status = if waiting.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_response(status, &serde_json::json!({ "ready": waiting.is_empty(), "not_loaded": waiting }))
}

async fn metrics(Extract(state): Extract<Arc<State>>) -> Response {
    let mut r = state.metrics.render().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such endpoint; try POST /predict/{name}, POST /v2/models/{name}/infer, GET /v2/models/{name}, /metrics",
    )
}

/// A known path with the wrong method: a JSON error like every other refusal (axum's is empty),
/// the `Allow` header naming the right one.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} {} is not allowed: POST /predict/{{name}} and /v2/models/{{name}}/infer, GET the others",
            uri.path()
        ),
    )
}

/// How long the rest of a body over the limit is read (and dropped) before the 413 is sent.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// How much of a body over the limit is read (and dropped) before the 413 is sent, at least: a
/// body a few times over a small limit is still answered cleanly.
const DRAIN_BYTES: usize = 16 << 20;

/// Reads a body of at most `limit` bytes (413 past it).
///
/// Past the limit, the rest of the body is still read and dropped (up to [`DRAIN_BYTES`] or twice
/// the limit, whichever is more, for at most [`DRAIN_TIME`]) before answering: a server that answers and closes while the
/// client is still sending resets the connection, and the client sees a broken pipe instead of
/// the 413. A client waiting for `100 Continue` has sent nothing: it gets the 413 at once.
pub(crate) async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over the limit of {limit} bytes (dagrun serve --max-body)"),
        )
    };
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING).filter(|v| v.as_bytes() != b"identity") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {encoding:?} is not supported: send the request uncompressed"),
        ));
    }
    let waits_to_send = headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let drain_up_to = if waits_to_send { 0 } else { limit.saturating_mul(2).max(DRAIN_BYTES) as u64 };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > limit as u64) {
        if n <= drain_up_to {
            drain(body, n).await;
        }
        return Err(too_large());
    }
    let mut body = body;
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        if bytes.len() + data.len() > limit {
            drain(body, drain_up_to.saturating_sub((bytes.len() + data.len()) as u64)).await;
            return Err(too_large());
        }
        bytes.extend_from_slice(&data);
    }
    Ok(Bytes::from(bytes))
}

/// Reads and drops up to `up_to` more bytes of `body` (for at most [`DRAIN_TIME`]).
async fn drain(mut body: Body, up_to: u64) {
    use http_body_util::BodyExt;
    let mut read = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while read < up_to {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
                _ => break,
            }
        }
    })
    .await;
}

/// `POST /predict/{name}`: JSON rows (`[{"f0": 1.2, ...}]`, `[[1.2, ...]]` or one object) or CSV
/// (`Content-Type: text/csv`, a header row first).
async fn predict(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let served = state.served(&name).await?;
    let result = predict_with(&state, &served, &headers, body).await;
    let rows = result.as_ref().map_or(0, |output| output.rows.rows);
    served.stats.record(result.is_ok(), rows, start.elapsed());
    let output = result.map_err(|e| e.by(&served.version, &served.digest))?;
    let body = predictions_json(&served, &output, output.rows.rows);
    if let Some(log) = &state.log {
        log.record(&served, &output.rows, &output.predictions);
    }
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    name_version(h, &served.version, &served.digest);
    Ok(response)
}

async fn predict_with(state: &State, served: &Served, headers: &HeaderMap, body: Body) -> Result<Output, ApiError> {
    let bytes = read_body(headers, body, state.options.body_limit).await?;
    let csv = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| {
        // Media types are case-insensitive (`Text/CSV; charset=utf-8`).
        t.trim_start().get(..8).is_some_and(|m| m.eq_ignore_ascii_case("text/csv"))
    });
    let rows = if csv { csv_rows(bytes, served)? } else { json_rows(&bytes, served)? };
    check_rows(&rows, served)?;
    served.infer(rows).await.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
}

fn csv_rows(bytes: Bytes, served: &Served) -> Result<Rows, ApiError> {
    rows::from_csv(bytes.to_vec(), &served.schema).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn json_rows(bytes: &[u8], served: &Served) -> Result<Rows, ApiError> {
    rows::from_json(bytes, &served.schema).map_err(|e| match e {
        JsonRowsError::Malformed(e) => {
            let start = bytes.trim_ascii_start();
            let looks_like_csv = !start.starts_with(b"[") && !start.starts_with(b"{");
            let hint = if looks_like_csv { "; for CSV send `Content-Type: text/csv`" } else { "" };
            ApiError::bad_request(format!("malformed JSON: {e}{hint}"))
        }
        JsonRowsError::Rows(message) => ApiError::bad_request(message),
    })
}

/// Rows the model can take: at least one, the right width, every value finite.
pub(crate) fn check_rows(rows: &Rows, served: &Served) -> Result<(), ApiError> {
    if rows.rows == 0 {
        return Err(ApiError::bad_request("empty batch: send at least one row"));
    }
    if let Some(w) = served.schema.width
        && rows.width != w
    {
        return Err(ApiError::bad_request(format!("rows have {} features; the model takes {w}", rows.width)));
    }
    if let Some((i, j)) = rows.first_not_finite() {
        let feature = served.schema.features.as_ref().map_or_else(|| format!("#{j}"), |f| format!("`{}`", f[j]));
        let value = rows.get(i, j);
        let why = if value.is_nan() {
            "a missing value (NaN or an empty field); the model needs a number"
        } else if served.schema.single_precision {
            "not a finite number: the model takes float32 (at most ±3.4e38)"
        } else {
            "not a finite number"
        };
        return Err(ApiError::bad_request(format!("row {i}, feature {feature}: {value} is {why}")));
    }
    Ok(())
}

/// `{"model", "version", "digest", "rows", "predictions": [...], "classes": [...], "probabilities": [[...]]}`.
fn predictions_json(served: &Served, out: &Output, rows: usize) -> String {
    let mut s = String::with_capacity(128 + rows * 32);
    let _ = write!(
        s,
        "{{\"model\":{},\"version\":{},\"digest\":\"{}\",\"rows\":{rows},\"predictions\":[",
        Value::from(served.name.as_str()),
        Value::from(served.version.as_str()),
        served.digest
    );
    let classes = out.classes.as_deref().map_or(&[][..], Vec::as_slice);
    match &out.predictions {
        Predictions::Values { values, single_precision } => {
            join(&mut s, values, |s, &v| push_float(s, v, *single_precision));
            s.push(']');
        }
        Predictions::Classes { predicted, probabilities, single_precision } => {
            join(&mut s, predicted, |s, &i| push_label(s, &classes[i]));
            s.push_str("],\"classes\":[");
            join(&mut s, classes, push_label);
            s.push(']');
            if let Some(p) = probabilities {
                s.push_str(",\"probabilities\":[");
                let c = classes.len().max(1);
                join(&mut s, &p.chunks(c).collect::<Vec<_>>(), |s, row| {
                    s.push('[');
                    join(s, row, |s, &v| push_float(s, v, *single_precision));
                    s.push(']');
                });
                s.push(']');
            }
        }
    }
    s.push('}');
    s
}

fn join<T>(s: &mut String, items: &[T], mut each: impl FnMut(&mut String, &T)) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        each(s, item);
    }
}

pub(crate) fn push_label(s: &mut String, label: &ClassLabel) {
    match label {
        ClassLabel::Int(i) => {
            let _ = write!(s, "{i}");
        }
        ClassLabel::Str(t) => s.push_str(&Value::from(t.as_str()).to_string()),
    }
}

/// A number as JSON: the shortest text that reads back to the same `f32` (single precision) or
/// `f64`; non-finite values (which JSON cannot hold) as `null`.
pub(crate) fn push_float(s: &mut String, v: f64, single: bool) {
    if !v.is_finite() {
        s.push_str("null");
    } else if single {
        let _ = write!(s, "{}", v as f32);
    } else {
        let _ = write!(s, "{v}");
    }
}

/// Names the version and digest that answered (`dagrun-model-version`, `dagrun-model-digest`).
pub(crate) fn name_version(headers: &mut HeaderMap, version: &str, digest: &str) {
    if let (Ok(v), Ok(d)) = (HeaderValue::from_str(version), HeaderValue::from_str(digest)) {
        headers.insert("dagrun-model-version", v);
        headers.insert("dagrun-model-digest", d);
    }
}

pub(crate) fn json_body(v: &Value) -> String {
    v.to_string()
}

pub(crate) fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, json_body(v)).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
