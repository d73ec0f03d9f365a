//! The daemon's HTTP server: authenticated webhooks (`POST /hooks/{workflow}/{name}`) handed
//! to a [`Sink`] that writes them to the durable event log, plus `POST /v1/wake` and
//! `GET /v1/health`.
//!
//! Every response is JSON. A webhook is refused before anything is delivered when its route is
//! unknown (404), its token is not configured (503) or not presented correctly (401), its body
//! is too large (413), too slow (408) or not an empty body or a JSON object (400). Requests in
//! flight are bounded ([`ServeOptions::max_in_flight`]) and shutdown is graceful.

mod conn;
mod handler;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::Semaphore;

/// One webhook the daemon serves: `Webhook(name, token_env)` of workflow `workflow`.
#[derive(Clone, PartialEq, Eq)]
pub struct Route {
    /// The workflow's `name`.
    pub workflow: String,
    /// The hook's name in its URL.
    pub name: String,
    /// The environment variable the token is read from (named in error messages).
    pub token_env: String,
    /// The token; `None` when the variable is unset (the hook then answers 503).
    pub token: Option<String>,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("workflow", &self.workflow)
            .field("name", &self.name)
            .field("token_env", &self.token_env)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The webhooks served; the daemon replaces the vector when a workflow file is reloaded.
pub type Routes = Arc<RwLock<Vec<Route>>>;

/// An authenticated webhook call, to be written to the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The workflow the hook belongs to.
    pub workflow: String,
    /// The hook's name.
    pub name: String,
    /// The sender's delivery id (`X-Delivery-Id`, `X-GitHub-Delivery`, `X-Gitlab-Event-UUID` or
    /// `Idempotency-Key`), for de-duplicating retries.
    pub delivery_id: Option<String>,
    /// blake3 (hex) of the raw body.
    pub body_digest: String,
    /// The body's `partition` field.
    pub partition: Option<String>,
    /// The body's `reason` field.
    pub reason: Option<String>,
}

/// What the [`Sink`] did with a [`Delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Written as event `event` (202).
    Accepted {
        /// The event's id in the log.
        event: i64,
    },
    /// The delivery id was seen before, as event `event` (200, nothing new written).
    Duplicate {
        /// The earlier event's id.
        event: i64,
    },
    /// It could not be recorded, e.g. the event log failed (503; the sender should retry).
    Unavailable(String),
    /// The request asks for something the workflow cannot do, e.g. a partition it does not
    /// have (400, nothing recorded; retrying the same request will not help).
    Rejected(String),
}

/// Something the server reports for the daemon to print. Never contains a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookLog {
    /// A webhook call refused with `status` (nothing delivered).
    Refused {
        /// The workflow in the URL.
        workflow: String,
        /// The hook name in the URL.
        name: String,
        /// The HTTP status answered.
        status: u16,
        /// Why, in words.
        why: String,
        /// The caller.
        peer: SocketAddr,
    },
    /// A webhook call delivered to the sink (`duplicate`: a retry of an earlier delivery).
    Delivered {
        /// The workflow.
        workflow: String,
        /// The hook name.
        name: String,
        /// The event id the sink answered.
        event: i64,
        /// Whether the sink recognised the delivery id.
        duplicate: bool,
        /// The sender's delivery id.
        delivery_id: Option<String>,
        /// The caller.
        peer: SocketAddr,
    },
    /// A request turned away (503) because [`ServeOptions::max_in_flight`] were in flight for
    /// longer than [`ServeOptions::queue_timeout`].
    Busy {
        /// The request's path.
        path: String,
        /// The caller.
        peer: SocketAddr,
    },
}

impl fmt::Display for HookLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookLog::Refused { workflow, name, status, why, peer } => {
                write!(f, "webhook {workflow}/{name} from {peer} refused ({status}): {why}")
            }
            HookLog::Delivered { workflow, name, event, duplicate, delivery_id, peer } => {
                let what = if *duplicate { "duplicate of event" } else { "accepted as event" };
                write!(f, "webhook {workflow}/{name} from {peer} {what} {event}")?;
                match delivery_id {
                    Some(id) => write!(f, " (delivery {id})"),
                    None => Ok(()),
                }
            }
            HookLog::Busy { path, peer } => {
                write!(f, "{path} from {peer} turned away (503): too many requests in flight")
            }
        }
    }
}

/// Where the server hands webhooks; implemented by the daemon.
pub trait Sink: Send + Sync + 'static {
    /// Record a delivery in the durable log. Blocking: the server calls it on a blocking thread.
    fn deliver(&self, d: Delivery) -> Answer;
    /// `POST /v1/wake`: look at the log for new events. Called on the async runtime: must not
    /// block (e.g. notify a channel).
    fn wake(&self);
    /// Report a [`HookLog`] line. Called on the async runtime: must not block for long.
    fn log(&self, line: HookLog);
}

/// Limits of the server; [`ServeOptions::default`] is what [`serve`] uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// The largest webhook body accepted (64 KiB); larger: 413.
    pub body_limit: usize,
    /// How long a webhook body may take to arrive, in total (10 s); longer: 408.
    pub body_timeout: Duration,
    /// Requests handled at once (64); more wait for a slot.
    pub max_in_flight: usize,
    /// How long a request waits for a slot (5 s) before it is answered 503 with `Retry-After`.
    pub queue_timeout: Duration,
    /// Connections open at once (256); more wait to be accepted.
    pub max_connections: usize,
    /// A connection that moves no byte for this long is closed (30 s): slow or stalled
    /// clients, idle keep-alives.
    pub idle_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            body_limit: 64 * 1024,
            body_timeout: Duration::from_secs(10),
            max_in_flight: 64,
            queue_timeout: Duration::from_secs(5),
            max_connections: 256,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// What every handler shares.
struct Shared {
    routes: Routes,
    sink: Arc<dyn Sink>,
    options: ServeOptions,
    slots: Arc<Semaphore>,
}

/// Serve webhooks on `listener` with [`ServeOptions::default`] until `shutdown` completes, then
/// stop accepting connections and return once the requests in flight are answered.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Routes,
    sink: Arc<dyn Sink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, routes, sink, shutdown, ServeOptions::default()).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    routes: Routes,
    sink: Arc<dyn Sink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    let listener = conn::Guarded::new(listener, options.max_connections, options.idle_timeout);
    let app = router(routes, sink, options);
    axum::serve(listener, app.into_make_service_with_connect_info::<conn::Peer>())
        .with_graceful_shutdown(shutdown)
        .await
}

fn router(routes: Routes, sink: Arc<dyn Sink>, options: ServeOptions) -> Router {
    let slots = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
    let shared = Arc::new(Shared { routes, sink, options, slots });
    Router::new()
        .route("/hooks/{workflow}/{name}", post(handler::hook))
        .route("/v1/wake", post(wake))
        .route("/v1/health", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), limit_in_flight))
        .with_state(shared)
}

/// Holds one of [`ServeOptions::max_in_flight`] slots while a request is handled.
async fn limit_in_flight(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn::Peer(peer)): ConnectInfo<conn::Peer>,
    request: Request,
    next: Next,
) -> Response {
    let slot = tokio::time::timeout(shared.options.queue_timeout, shared.slots.clone().acquire_owned()).await;
    match slot {
        Ok(Ok(_permit)) => next.run(request).await,
        _ => {
            shared.sink.log(HookLog::Busy { path: request.uri().path().to_string(), peer });
            let mut response =
                error(StatusCode::SERVICE_UNAVAILABLE, "too many requests in flight: retry in a moment".into());
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            response
        }
    }
}

async fn wake(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.sink.wake();
    StatusCode::NO_CONTENT
}

async fn health() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

async fn not_found(request: Request) -> Response {
    error(StatusCode::NOT_FOUND, format!("no such endpoint: {}", request.uri().path()))
}

async fn method_not_allowed(request: Request) -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, format!("{} is not allowed on {}", request.method(), request.uri().path()))
}

/// A JSON error answer: `{"status": "error", "error": message}`.
fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(json!({"status": "error", "error": message}))).into_response()
}
