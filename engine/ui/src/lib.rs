//! `dagrun ui`: a local web page over the history store. Server-rendered HTML (no Node, no CDN,
//! one small embedded script): workflow DAGs ([`dag`]), runs and run timelines ([`runs`]), the
//! backfill grid ([`grid`]), models, verdicts and approvals and the payoff charts ([`models`]),
//! drift per column over time and drift incidents ([`drift`]). Safe by default: loopback, a per-start token for approve/reject (and for
//! every page on another address), cross-site POSTs refused ([`guard`]).

mod dag;
mod drift;
mod grid;
mod guard;
mod html;
mod models;
mod runs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dagrun_history::{Decision, History};

pub use html::Page;

/// One workflow's graph, as its file declares it (the DAG page and the grid's columns).
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// The workflow's name.
    pub name: String,
    /// The workflow file's directory (relative registry paths resolve against it).
    pub dir: PathBuf,
    /// Its tasks in file order.
    pub tasks: Vec<Node>,
}

/// One task of a [`Graph`].
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// The tasks it depends on.
    pub upstream: Vec<String>,
    /// Its partition scheme, if partitioned.
    pub partitioned: Option<String>,
}

/// Records a person's decision and resumes the run, exactly as `dagrun approve/reject` do:
/// `(decision, run id, who)` → what happened, in words, or why not.
pub type Decide = Arc<dyn Fn(Decision, &str, &str) -> Result<String, String> + Send + Sync>;

/// What the UI serves.
pub struct UiOptions {
    /// Where to listen (port 0: any free port).
    pub addr: SocketAddr,
    /// The history store it reads.
    pub history: Arc<History>,
    /// The workflows named on the command line.
    pub graphs: Vec<Graph>,
    /// The approve/reject path.
    pub decide: Decide,
}

pub(crate) struct App {
    pub history: Arc<History>,
    pub graphs: Vec<Graph>,
    pub decide: Decide,
    pub token: String,
    /// Every page needs the token (a non-loopback address).
    pub private: bool,
}

/// A bound, not yet serving UI.
pub struct Ui {
    listener: tokio::net::TcpListener,
    app: Arc<App>,
}

impl Ui {
    /// Binds `options.addr` and makes this start's token.
    pub async fn bind(options: UiOptions) -> Result<Ui, String> {
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
        let token = guard::new_token().map_err(|e| format!("cannot make a token: {e}"))?;
        let private = !options.addr.ip().is_loopback();
        let app = App { history: options.history, graphs: options.graphs, decide: options.decide, token, private };
        Ok(Ui { listener, app: Arc::new(app) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// This start's token.
    pub fn token(&self) -> &str {
        &self.app.token
    }

    /// Whether every page needs the token (bound to a non-loopback address).
    pub fn private(&self) -> bool {
        self.app.private
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), String> {
        let app = self.app.clone();
        let router = Router::new()
            .route("/", get(index))
            .route("/ui.js", get(script))
            .route("/runs", get(run_list))
            .route("/runs/{id}", get(run_page))
            .route("/runs/{id}/events", get(runs::events))
            .route("/runs/{id}/approve", post(approve))
            .route("/runs/{id}/reject", post(reject))
            .route("/workflows/{name}", get(dag_page))
            .route("/workflows/{name}/backfill", get(grid_page))
            .route("/models", get(models_page))
            .route("/drift", get(drift_page))
            .route("/payoff", get(payoff_page))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(app.clone(), guard::pages))
            .with_state(app);
        axum::serve(self.listener, router).with_graceful_shutdown(shutdown).await.map_err(|e| e.to_string())
    }
}

type Shared = State<Arc<App>>;

/// Renders a page off the async threads (SQLite and the registry are blocking).
async fn render(app: Arc<App>, f: impl FnOnce(&App) -> Page + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(move || f(&app)).await {
        Ok(page) => page.into_response(),
        Err(e) => Page::error(format!("the page failed to render: {e}")).into_response(),
    }
}

async fn index(State(app): Shared) -> Response {
    render(app, runs::index).await
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("ui.js")).into_response()
}

async fn run_list(State(app): Shared, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    render(app, move |app| runs::list(app, q.get("workflow").map(String::as_str))).await
}

async fn run_page(State(app): Shared, Path(id): Path<String>) -> Response {
    render(app, move |app| runs::one(app, &id)).await
}

async fn dag_page(State(app): Shared, Path(name): Path<String>) -> Response {
    render(app, move |app| dag::page(app, &name)).await
}

async fn grid_page(
    State(app): Shared,
    Path(name): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    render(app, move |app| grid::page(app, &name, q.get("from").cloned(), q.get("to").cloned())).await
}

async fn models_page(State(app): Shared, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    render(app, move |app| models::page(app, q.get("model").map(String::as_str))).await
}

async fn drift_page(State(app): Shared) -> Response {
    render(app, drift::page).await
}

async fn payoff_page(State(app): Shared) -> Response {
    render(app, models::payoff).await
}

async fn approve(State(app): Shared, Path(id): Path<String>, headers: HeaderMap, body: String) -> Response {
    decide(app, Decision::Approve, id, headers, body).await
}

async fn reject(State(app): Shared, Path(id): Path<String>, headers: HeaderMap, body: String) -> Response {
    decide(app, Decision::Reject, id, headers, body).await
}

/// A decision from a form: the token and a same-origin request first, then the shared path.
async fn decide(app: Arc<App>, decision: Decision, id: String, headers: HeaderMap, body: String) -> Response {
    let form = guard::form(&body);
    if let Err(why) = guard::post(&app, &headers, &form) {
        return Page::forbidden(why).into_response();
    }
    let by = form.get("by").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or("dagrun-ui").to_owned();
    render(app, move |app| models::decided(app, decision, &id, &by)).await
}

async fn not_found() -> Response {
    Page::not_found("no such page").into_response()
}

impl std::fmt::Debug for UiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiOptions").field("addr", &self.addr).field("graphs", &self.graphs).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ui").field("addr", &self.listener.local_addr().ok()).finish_non_exhaustive()
    }
}
