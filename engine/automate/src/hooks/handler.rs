//! `POST /hooks/{workflow}/{name}`: find the route, check the token, read the body within its
//! size and time limits, parse it, and hand the delivery to the sink.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{Answer, Delivery, HookLog, Shared, error};

/// The headers a delivery id is taken from, first present wins.
const DELIVERY_HEADERS: [&str; 4] = ["x-delivery-id", "x-github-delivery", "x-gitlab-event-uuid", "idempotency-key"];

/// The longest delivery id accepted, in bytes.
const MAX_DELIVERY_ID: usize = 200;

/// Why a webhook call is refused: its status, a message, and extra JSON fields.
#[derive(Debug)]
pub(super) struct Refusal {
    status: StatusCode,
    why: String,
    extra: Map<String, Value>,
}

impl Refusal {
    fn new(status: StatusCode, why: impl Into<String>) -> Self {
        Refusal { status, why: why.into(), extra: Map::new() }
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("status".into(), "error".into());
        body.insert("error".into(), self.why.into());
        body.extend(self.extra);
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The handler of `POST /hooks/{workflow}/{name}`.
pub(super) async fn hook(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(super::conn::Peer(peer)): ConnectInfo<super::conn::Peer>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Path((workflow, name))) = path else {
        return error(StatusCode::BAD_REQUEST, "the URL is not /hooks/<workflow>/<name> in UTF-8".into());
    };
    let outcome = match admit(&shared, &workflow, &name, &headers, body).await {
        Ok(delivery) => deliver(&shared, delivery, peer).await,
        Err(refusal) => Err(refusal),
    };
    outcome.unwrap_or_else(|refusal| {
        let (status, why) = (refusal.status.as_u16(), refusal.why.clone());
        shared.sink.log(HookLog::Refused { workflow, name, status, why, peer });
        refusal.into_response()
    })
}

/// Every check before delivery, cheapest first; the body is read last.
async fn admit(
    shared: &Shared,
    workflow: &str,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Delivery, Refusal> {
    let (token, token_env) = find_route(shared, workflow, name)?;
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "webhook `{name}` of workflow `{workflow}` is disabled until the environment variable \
                 `{token_env}` is set (non-empty) for the daemon"
            ),
        ));
    };
    authenticate(headers, &token)?;
    let limit = shared.options.body_limit;
    if let Some(length) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > limit as u64
    {
        return Err(too_large(limit, Some(length)));
    }
    let delivery_id = delivery_id(headers)?;
    let raw = match read_body(body, limit, shared.options.body_timeout).await {
        Ok(raw) => raw,
        Err(BodyError::TooLarge) => return Err(too_large(limit, None)),
        Err(BodyError::Timeout) => {
            let secs = shared.options.body_timeout.as_secs_f64();
            return Err(Refusal::new(StatusCode::REQUEST_TIMEOUT, format!("the body did not arrive within {secs} s")));
        }
        Err(BodyError::Broken(e)) => {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, format!("could not read the body: {e}")));
        }
    };
    let (partition, reason) = parse_body(&raw)?;
    let body_digest = blake3::hash(&raw).to_hex().to_string();
    Ok(Delivery { workflow: workflow.into(), name: name.into(), delivery_id, body_digest, partition, reason })
}

/// The route's token and token variable, or 404 naming the workflow's hooks.
fn find_route(shared: &Shared, workflow: &str, name: &str) -> Result<(Option<String>, String), Refusal> {
    let routes = shared.routes.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(route) = routes.iter().find(|r| r.workflow == workflow && r.name == name) {
        return Ok((route.token.clone(), route.token_env.clone()));
    }
    let mut known: Vec<&str> = routes.iter().filter(|r| r.workflow == workflow).map(|r| r.name.as_str()).collect();
    known.sort_unstable();
    known.dedup();
    let why = if known.is_empty() {
        format!("workflow `{workflow}` has no webhooks on this daemon")
    } else {
        format!("workflow `{workflow}` has no webhook `{name}`; its webhooks: {}", known.join(", "))
    };
    Err(Refusal::new(StatusCode::NOT_FOUND, why).with("known_hooks", json!(known)))
}

/// 401 unless `Authorization: Bearer`, `X-Dagrun-Token` or `X-Gitlab-Token` (first present)
/// carries `token`, compared in constant time.
fn authenticate(headers: &HeaderMap, token: &str) -> Result<(), Refusal> {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| {
        let v = v.as_bytes().trim_ascii();
        let (scheme, rest) = v.split_at(v.iter().position(|b| *b == b' ')?);
        scheme.eq_ignore_ascii_case(b"bearer").then(|| rest.trim_ascii())
    });
    let presented = bearer
        .or_else(|| headers.get("x-dagrun-token").map(|v| v.as_bytes().trim_ascii()))
        .or_else(|| headers.get("x-gitlab-token").map(|v| v.as_bytes().trim_ascii()));
    match presented {
        None => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "no token: send `Authorization: Bearer <token>` or `X-Dagrun-Token: <token>`",
        )),
        // blake3::Hash compares in constant time; hashing first also hides the length.
        Some(presented) if blake3::hash(presented) != blake3::hash(token.as_bytes()) => {
            Err(Refusal::new(StatusCode::UNAUTHORIZED, "wrong token"))
        }
        Some(_) => Ok(()),
    }
}

/// The sender's delivery id, from the first of [`DELIVERY_HEADERS`] present.
fn delivery_id(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let Some((name, value)) = DELIVERY_HEADERS.iter().find_map(|h| Some((*h, headers.get(*h)?))) else {
        return Ok(None);
    };
    let id = value.as_bytes().trim_ascii();
    if id.is_empty() || id.len() > MAX_DELIVERY_ID || !id.iter().all(|b| (b' '..=b'~').contains(b)) {
        let why = format!("header `{name}` must be 1 to {MAX_DELIVERY_ID} printable ASCII characters");
        return Err(Refusal::new(StatusCode::BAD_REQUEST, why));
    }
    Ok(Some(String::from_utf8_lossy(id).into_owned()))
}

fn too_large(limit: usize, declared: Option<u64>) -> Refusal {
    let why = match declared {
        Some(length) => format!("the body is {length} bytes; webhook bodies are limited to {limit} bytes"),
        None => format!("the body is larger than the limit of {limit} bytes"),
    };
    Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, why).with("limit", json!(limit))
}

/// The body's `partition` and `reason`: an empty body has neither; otherwise it must be a JSON
/// object whose `partition` and `reason`, when present and not null, are strings.
pub(super) fn parse_body(raw: &[u8]) -> Result<(Option<String>, Option<String>), Refusal> {
    if raw.trim_ascii().is_empty() {
        return Ok((None, None));
    }
    let value: Value = serde_json::from_slice(raw).map_err(|e| {
        Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {e}"))
            .with("line", json!(e.line()))
            .with("column", json!(e.column()))
    })?;
    let Value::Object(mut object) = value else {
        let what = json_kind(&value);
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be a JSON object (or empty), not {what}"),
        ));
    };
    let mut field = |key: &str| match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => {
            let why = format!("`{key}` must be a string, not {}", json_kind(&other));
            Err(Refusal::new(StatusCode::BAD_REQUEST, why))
        }
    };
    Ok((field("partition")?, field("reason")?))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Hands `delivery` to the sink on a blocking thread and answers as it says.
async fn deliver(shared: &Shared, delivery: Delivery, peer: SocketAddr) -> Result<Response, Refusal> {
    let sink = shared.sink.clone();
    let (workflow, name, delivery_id) =
        (delivery.workflow.clone(), delivery.name.clone(), delivery.delivery_id.clone());
    let answer = tokio::task::spawn_blocking(move || sink.deliver(delivery)).await;
    let (status, event, duplicate) = match answer {
        Ok(Answer::Accepted { event }) => (StatusCode::ACCEPTED, event, false),
        Ok(Answer::Duplicate { event }) => (StatusCode::OK, event, true),
        Ok(Answer::Rejected(why)) => return Err(Refusal::new(StatusCode::BAD_REQUEST, why)),
        Ok(Answer::Unavailable(why)) => {
            let why = format!("the webhook could not be recorded, retry later: {why}");
            return Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE, why));
        }
        Err(_) => {
            let why = "internal error while recording the webhook (the daemon's sink failed)";
            return Err(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, why));
        }
    };
    shared.sink.log(HookLog::Delivered { workflow, name, event, duplicate, delivery_id, peer });
    let word = if duplicate { "duplicate" } else { "accepted" };
    Ok((status, axum::Json(json!({"status": word, "event": event}))).into_response())
}

/// Why a body could not be read.
#[derive(Debug)]
pub(super) enum BodyError {
    /// More than the limit arrived.
    TooLarge,
    /// It did not arrive in time.
    Timeout,
    /// The connection or its framing failed.
    Broken(String),
}

/// A source of body chunks: the request [`Body`], or a test's.
pub(super) trait Chunks: Send {
    /// The next chunk, `None` at the end.
    fn next_chunk(&mut self) -> impl Future<Output = Option<Result<Bytes, String>>> + Send;
}

impl Chunks for Body {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, String>> {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut *self).poll_frame(cx)).await?;
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some(Ok(data)),
                    Err(_trailers) => continue,
                },
                Err(e) => return Some(Err(e.to_string())),
            }
        }
    }
}

/// Reads at most `limit` bytes (never buffering more), all within `timeout`.
pub(super) async fn read_body(mut body: impl Chunks, limit: usize, timeout: Duration) -> Result<Vec<u8>, BodyError> {
    let read = async {
        let mut raw = Vec::new();
        while let Some(chunk) = body.next_chunk().await {
            let chunk = chunk.map_err(BodyError::Broken)?;
            if raw.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge);
            }
            raw.extend_from_slice(&chunk);
        }
        Ok(raw)
    };
    tokio::time::timeout(timeout, read).await.unwrap_or(Err(BodyError::Timeout))
}
