//! The webhook HTTP server (placeholder with the agreed API; replaced by the real server).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// A webhook route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Workflow name.
    pub workflow: String,
    /// Hook name.
    pub name: String,
    /// The env var holding the token.
    pub token_env: String,
    /// The token, if set.
    pub token: Option<String>,
}

/// The routes, replaced on reload.
pub type Routes = Arc<std::sync::RwLock<Vec<Route>>>;

/// An accepted request.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Workflow name.
    pub workflow: String,
    /// Hook name.
    pub name: String,
    /// Delivery id header.
    pub delivery_id: Option<String>,
    /// blake3 hex of the body.
    pub body_digest: String,
    /// `partition` of the body.
    pub partition: Option<String>,
    /// `reason` of the body.
    pub reason: Option<String>,
}

/// The sink's answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Recorded.
    Accepted {
        /// Event id.
        event: i64,
    },
    /// Recorded before.
    Duplicate {
        /// Event id.
        event: i64,
    },
    /// Could not record.
    Unavailable(String),
}

/// A log line of the server.
#[derive(Debug, Clone)]
pub enum HookLog {
    /// A refused request.
    Refused {
        /// Workflow.
        workflow: String,
        /// Hook.
        name: String,
        /// HTTP status.
        status: u16,
        /// Why.
        why: String,
        /// Peer.
        peer: SocketAddr,
    },
}

/// Where the server hands requests.
pub trait Sink: Send + Sync + 'static {
    /// Records a delivery.
    fn deliver(&self, d: Delivery) -> Answer;
    /// Wakes the daemon.
    fn wake(&self);
    /// Logs.
    fn log(&self, line: HookLog);
}

/// Serves until `shutdown`.
pub async fn serve(
    _listener: tokio::net::TcpListener,
    _routes: Routes,
    _sink: Arc<dyn Sink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    shutdown.await;
    Ok(())
}
