//! What can stop the service from starting ([`ServeError`]), and what a request can be refused
//! with ([`ApiError`]: a status and a JSON body `{"error": "..."}` naming the problem).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Why the service cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The registry directory is missing or not a directory.
    #[error("registry {} is not a directory (deploy a model first, or pass --registry DIR)", .0.display())]
    NoRegistry(PathBuf),
    /// A name given with `--name` is not a valid model name.
    #[error("`{0}` is not a model name (letters, digits, `-` and `_`)")]
    BadName(String),
    /// A name given with `--name` has no directory in the registry.
    #[error("no model `{name}` in registry {}; models there: {known}", .registry.display())]
    NoModel {
        /// The name.
        name: String,
        /// The registry.
        registry: PathBuf,
        /// The models it has.
        known: String,
    },
    /// The options contradict each other.
    #[error("invalid option: {0}")]
    Options(String),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// ONNX Runtime cannot be found or loaded.
    #[error(transparent)]
    Runtime(#[from] dagrun_onnx::OrtError),
    /// The prediction log directory cannot be written.
    #[error("prediction log {}: {source}", .path.display())]
    Log {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed: {0}")]
    Io(#[source] std::io::Error),
}

/// A refused request: its status and what to tell the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The version that was asked (headers name it when known).
    pub served: Option<(String, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), served: None }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// Names the version and digest that refused the request.
    pub fn by(mut self, version: &str, digest: &str) -> ApiError {
        self.served = Some((version.to_owned(), digest.to_owned()));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let Some((version, digest)) = &self.served {
            body["model_version"] = version.as_str().into();
            body["model_digest"] = digest.as_str().into();
        }
        let mut response = (self.status, crate::api::json_body(&body)).into_response();
        if let Some((version, digest)) = &self.served {
            crate::api::name_version(response.headers_mut(), version, digest);
        }
        response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
        response
    }
}
