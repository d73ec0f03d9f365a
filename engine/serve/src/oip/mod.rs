//! The Open Inference Protocol (KServe V2) model endpoints: server and model metadata, readiness,
//! and `infer` with JSON tensors and the binary tensor data extension (Triton's, which
//! tritonclient uses by default). Requests are read by [`request`], answers written by [`response`].

mod request;
mod response;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dagrun_onnx::rows::{Rows, Schema};

use crate::api::{State, check_rows, json_response, name_version, read_body};
use crate::error::ApiError;
use crate::worker::{Output, Served};
use request::HEADER_LENGTH;
use response::{Answer, OutputSpec, Selected};

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
    metadata(&state, &name, None).await
}

pub(crate) async fn version_metadata(
    Extract(state): Extract<Arc<State>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    metadata(&state, &name, Some(&version)).await
}

pub(crate) async fn model_ready(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    ready(&state, &name, None).await
}

pub(crate) async fn version_ready(
    Extract(state): Extract<Arc<State>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ready(&state, &name, Some(&version)).await
}

pub(crate) async fn infer(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    infer_version(&state, &name, None, &headers, body).await
}

pub(crate) async fn version_infer(
    Extract(state): Extract<Arc<State>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    infer_version(&state, &name, Some(&version), &headers, body).await
}

/// The served version of `name`, if it is the one the path names (`v0003` and `3` are the same).
async fn served(state: &Arc<State>, name: &str, version: Option<&str>) -> Result<Arc<Served>, ApiError> {
    let served = state.served(name).await?;
    if let Some(asked) = version
        && !same_version(asked, &served.version)
    {
        state.metrics.unrouted(StatusCode::NOT_FOUND.as_u16());
        return Err(ApiError::not_found(format!(
            "version `{asked}` of model `{name}` is not served: dagrun serve serves the registry's current \
             version, {}; ask for it or leave the version out (/v2/models/{name}/infer)",
            served.version
        ))
        .by(&served.version, &served.digest));
    }
    Ok(served)
}

/// Whether a version in a path names `served`: `v0003`, `V3`, `0003` and `3` all name `v0003`.
pub(crate) fn same_version(asked: &str, served: &str) -> bool {
    let number = |v: &str| {
        let digits = v.strip_prefix(['v', 'V']).unwrap_or(v);
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.trim_start_matches('0').to_owned())
    };
    match (number(asked), number(served)) {
        (Some(a), Some(b)) => a == b,
        _ => asked == served,
    }
}

fn named(mut response: Response, served: &Served) -> Response {
    name_version(response.headers_mut(), &served.version, &served.digest);
    response
}

/// `{"name", "versions", "platform", "inputs": [{"name", "datatype", "shape"}], "outputs": [...]}`.
async fn metadata(state: &Arc<State>, name: &str, version: Option<&str>) -> Result<Response, ApiError> {
    let served = served(state, name, version).await?;
    let outputs = specs(&served);
    let body = serde_json::json!({
        "name": served.name,
        "versions": [served.version],
        "platform": "onnxruntime_onnx",
        "inputs": served.schema.inputs,
        "outputs": outputs,
    });
    Ok(named(json_response(StatusCode::OK, &body), &served))
}

async fn ready(state: &Arc<State>, name: &str, version: Option<&str>) -> Result<Response, ApiError> {
    let served = served(state, name, version).await?;
    let body = serde_json::json!({"name": served.name, "version": served.version, "ready": true});
    Ok(named(json_response(StatusCode::OK, &body), &served))
}

fn specs(served: &Served) -> Vec<OutputSpec> {
    response::output_specs(&served.info, served.classes.as_deref().map(Vec::as_slice))
}

/// A request, read and checked: the rows to run and the outputs to send.
#[derive(Debug)]
struct Parsed {
    id: Option<String>,
    rows: Rows,
    selected: Vec<Selected>,
}

async fn infer_version(
    state: &Arc<State>,
    name: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let served = served(state, name, version).await?;
    let specs = specs(&served);
    let result = infer_with(state, &served, &specs, headers, body).await;
    let rows = result.as_ref().map_or(0, |(_, _, output)| output.rows.rows);
    served.stats.record(result.is_ok(), rows, start.elapsed());
    let (id, selected, output) = result.map_err(|e| e.by(&served.version, &served.digest))?;
    if let Some(log) = &state.log {
        log.record(&served, &output.rows, &output.predictions);
    }
    let who = Answer { model: &served.name, version: &served.version, digest: &served.digest, id: id.as_deref() };
    let encoded = response::encode(who, &specs, &selected, &output, output.rows.rows);
    let json_len = encoded.json.len();
    let response = if encoded.binary.is_empty() {
        let mut r = encoded.json.into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    } else {
        let mut bytes = encoded.json.into_bytes();
        bytes.extend_from_slice(&encoded.binary);
        let mut r = bytes.into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        h.insert(HEADER_LENGTH, HeaderValue::from(json_len));
        r
    };
    Ok(named(response, &served))
}

async fn infer_with(
    state: &State,
    served: &Served,
    specs: &[OutputSpec],
    headers: &HeaderMap,
    body: Body,
) -> Result<(Option<String>, Vec<Selected>, Output), ApiError> {
    let bytes = read_body(headers, body, state.options.body_limit).await?;
    let header_length = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::bad_request("Inference-Header-Content-Length is not text; send the JSON part's length in bytes")
        })?),
    };
    let Parsed { id, rows, selected } = parse(&bytes, header_length, &served.schema, specs)?;
    check_rows(&rows, served)?;
    let output = served.infer(rows).await.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok((id, selected, output))
}

/// Reads a request body (`header_length`: the `Inference-Header-Content-Length` header) into the
/// rows for the model and the outputs to send.
fn parse(body: &[u8], header_length: Option<&str>, schema: &Schema, specs: &[OutputSpec]) -> Result<Parsed, ApiError> {
    let (json, binary) = request::split(body, header_length)?;
    let req = request::parse(json)?;
    let selected = response::select(specs, req.outputs.as_deref(), req.binary_output()?)?;
    let tensors = request::decode_inputs(req.inputs, binary, schema)?;
    let rows = request::to_rows(tensors, schema)?;
    Ok(Parsed { id: req.id, rows, selected })
}
