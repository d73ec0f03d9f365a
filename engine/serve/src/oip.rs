//! The Open Inference Protocol (KServe V2) model endpoints: server and model metadata, readiness,
//! and `infer` with JSON tensors and the binary tensor data extension.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::api::{State, json_response};
use crate::error::ApiError;

pub(crate) async fn server_metadata() -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({"name": "dagrun", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"]}),
    )
}

pub(crate) async fn model_metadata(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let served = state.served(&name).await?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({"name": served.name, "versions": [served.version]})))
}

pub(crate) async fn version_metadata(
    Extract(state): Extract<Arc<State>>,
    Path((name, _version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    model_metadata(Extract(state), Path(name)).await
}

pub(crate) async fn model_ready(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let served = state.served(&name).await?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({"name": served.name, "ready": true})))
}

pub(crate) async fn version_ready(
    Extract(state): Extract<Arc<State>>,
    Path((name, _version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    model_ready(Extract(state), Path(name)).await
}

pub(crate) async fn infer(
    Extract(_state): Extract<Arc<State>>,
    Path(_name): Path<String>,
    _headers: HeaderMap,
    _body: Body,
) -> Result<Response, ApiError> {
    Err(ApiError::new(StatusCode::NOT_IMPLEMENTED, "not yet"))
}

pub(crate) async fn version_infer(
    Extract(state): Extract<Arc<State>>,
    Path((name, _version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    infer(Extract(state), Path(name), headers, body).await
}
