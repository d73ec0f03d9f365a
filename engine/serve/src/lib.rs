//! `dagrun serve`: the deployed models of a registry behind HTTP, natively with ONNX Runtime.
//!
//! * [`Server::bind`] then [`Server::run`]: the Open Inference Protocol (KServe V2) REST API
//!   (`/v2/health/*`, `/v2/models/{name}`, `/v2/models/{name}[/versions/{v}]/infer`, JSON and the
//!   binary tensor extension), `POST /predict/{name}` for JSON rows or CSV, and `/metrics`
//!   (Prometheus text).
//! * Every answer names the model version and digest that produced it (`dagrun-model-version`,
//!   `dagrun-model-digest` headers, and the body).
//! * Hot swap ([`slot`]): each request looks at the registry's `current` pointer (one `stat`); when
//!   it moved, the new version is loaded, checked against its recorded digest, warmed and swapped in;
//!   requests already running finish on the old one. A version that fails to load is reported
//!   ([`Event::LoadFailed`]) and the old one keeps serving.
//! * Inference ([`worker`]): per version, a pool of ONNX Runtime sessions; small requests run on
//!   the HTTP thread that read them, together with those that thread read meanwhile, larger ones
//!   are queued for worker threads, which run the requests already waiting as one batch
//!   (micro-batching, up to `max_batch` rows; waiting for more only with `max_wait`).
//! * The prediction log ([`predlog`]): sampled request features and predictions appended to
//!   `<dir>/<name>/<YYYY-MM-DD>.csv`, the `current` data of a `Drift` task.
//!
//! Rows are mapped onto the model's features by [`dagrun_onnx::rows`], the code `OnnxPredict` uses.

mod api;
mod error;
mod metrics;
mod oip;
pub mod predlog;
pub mod slot;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use error::ServeError;
pub use predlog::LogOptions;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The registry directory (`<registry>/<name>/current`, `<registry>/<name>/vNNNN/model.onnx`).
    pub registry: PathBuf,
    /// The models to serve; empty: every model in the registry, and any that appears later.
    pub names: Vec<String>,
    /// Where to listen (`127.0.0.1:8080`; port 0 picks a free one).
    pub addr: SocketAddr,
    /// Threads answering HTTP ([`runtime`]); requests of up to [`worker::INLINE_ROWS`] rows run on
    /// them when a session is free.
    pub threads: usize,
    /// Worker threads (each with its own ONNX Runtime session) per served version.
    pub workers: usize,
    /// Most rows run as one batch when requests are combined.
    pub max_batch: usize,
    /// How long a worker waits for more requests to combine (zero: only those already waiting).
    pub max_wait: Duration,
    /// Largest request body accepted (larger: 413).
    pub body_limit: usize,
    /// How often the registry is looked at without requests (new versions are then warm before traffic).
    pub poll: Duration,
    /// The prediction log, if any.
    pub log: Option<LogOptions>,
    /// How long a shutdown waits for requests in flight.
    pub drain: Duration,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The tokio runtime `dagrun serve` runs on: [`ServeOptions::threads`] threads answer HTTP.
pub fn runtime(options: &ServeOptions) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(options.threads.max(1)).enable_all().build()
}

impl ServeOptions {
    /// Defaults for serving `registry` on `addr`: HTTP on half the cores (at least one: on a small
    /// machine the clients, the workers and the prediction log need the others), one worker per core, batches of up to 64 rows
    /// formed only from requests already waiting, 16 MiB bodies, a look at the registry every second.
    pub fn new(registry: impl Into<PathBuf>, addr: SocketAddr) -> ServeOptions {
        ServeOptions {
            registry: registry.into(),
            names: Vec::new(),
            addr,
            threads: (cores() / 2).max(1),
            workers: cores(),
            max_batch: 64,
            max_wait: Duration::ZERO,
            body_limit: 16 << 20,
            poll: Duration::from_secs(1),
            log: None,
            drain: Duration::from_secs(30),
        }
    }
}

/// What the service did, for whoever shows it (the CLI prints these).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Accepting connections.
    Listening {
        /// The bound address.
        addr: SocketAddr,
    },
    /// A version was loaded and warmed and now answers requests.
    Serving {
        /// The model name.
        name: String,
        /// `v0003`.
        version: String,
        /// blake3 of its `model.onnx`.
        digest: String,
        /// The version it replaced, if any.
        replaced: Option<String>,
        /// Loading, checking and warming it took this long; `None`: it was still loaded (a
        /// rollback to the version it replaced).
        load: Option<Duration>,
    },
    /// `current` names a version that cannot be served; the one before (if any) keeps serving.
    LoadFailed {
        /// The model name.
        name: String,
        /// The version `current` names (or `?` when `current` itself is unreadable).
        version: String,
        /// What is wrong.
        reason: String,
        /// The version still serving.
        still_serving: Option<String>,
    },
    /// The prediction log cannot write (disk full, permissions): its rows are dropped and counted
    /// (`dagrun_serve_prediction_log_dropped_total`) and requests are answered as usual. Reported
    /// once, and again only after writing worked in between.
    LogFailed {
        /// The file (or directory) that could not be written.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Shutting down: no new connections; requests in flight finish.
    Draining,
}

/// Where events go.
pub type Events = Arc<dyn Fn(Event) + Send + Sync>;

/// A bound service, not yet answering.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<api::State>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.listener.local_addr().ok()).finish_non_exhaustive()
    }
}

impl Server {
    /// Checks the options and the registry, loads the models to serve, and binds the address.
    /// Models that cannot be loaded yet are reported as events, not errors: they are served once
    /// a loadable version is deployed. Must be called inside a tokio runtime.
    pub async fn bind(options: ServeOptions, events: Events) -> Result<Server, ServeError> {
        let state = api::State::new(options, events).await?;
        let listener = tokio::net::TcpListener::bind(state.options.addr)
            .await
            .map_err(|source| ServeError::Bind { addr: state.options.addr, source })?;
        Ok(Server { listener, state })
    }

    /// The address the service listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Answers requests until `shutdown` completes, then stops accepting connections, lets the
    /// requests in flight finish (at most [`ServeOptions::drain`]) and flushes the prediction log.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let Server { listener, state } = self;
        (state.events)(Event::Listening { addr: listener.local_addr().map_err(ServeError::Io)? });
        let poller = tokio::spawn(slot::poll(state.clone()));
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let events = state.events.clone();
        let notified = async move {
            shutdown.await;
            events(Event::Draining);
            let _ = drained_tx.send(());
        };
        let app = api::router(state.clone());
        let serving = axum::serve(listener, app).with_graceful_shutdown(notified);
        let drain = state.options.drain;
        tokio::select! {
            r = serving => r.map_err(ServeError::Io)?,
            // Connections that never finish do not hold the shutdown up for ever.
            () = async { let _ = drained_rx.await; tokio::time::sleep(drain).await } => {}
        }
        poller.abort();
        state.close();
        Ok(())
    }
}
