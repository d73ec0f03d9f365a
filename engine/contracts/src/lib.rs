//! The on-disk contracts between the dagrun engine and its plugins, defined once.
//!
//! * [`verdict`]: `verdict.json`, what the `OnnxEval` gate decided (written by the engine, read
//!   by the deploy plugin).
//! * [`approval`]: `approval.json`, how an `Approval` step let a model through (automatically
//!   or a person), read by the deploy plugin and recorded in the registry.
//! * [`drift`]: `drift.json`, what a `Drift` task found per column and for the dataset.
//! * [`performance`]: `performance.json`, how a model's metrics on fresh labelled data compare
//!   with its baseline.
//! * [`registry`]: the model registry layout (`<registry>/<name>/current`,
//!   `<registry>/<name>/vNNNN/{model.onnx,verdict.json,metadata.json}`) and the filesystem
//!   operations on it (read, list, move `current`, promote).
//! * [`promotions`]: when each version was promoted, whether a person approved it, and the
//!   version before it (the circuit breaker, the drift cooldown, rollbacks).
//! * [`html`]: escaping text for the HTML files dagrun writes.
//! * [`table`] (feature `csv`): the one CSV reader (RFC 4180: quoted fields may hold commas,
//!   quotes and newlines) for the tables the engine writes and the plugins read.
//!
//! Builds for the host and for `wasm32-wasip2` (std, serde, thiserror; `std::fs` works in WASI).
//! Every versioned file is checked on read: a newer version than this build understands is a
//! clear error ([`ContractError::NewerVersion`]), not a confusing parse failure.

pub mod approval;
pub mod drift;
mod error;
pub mod html;
pub mod performance;
pub mod promotions;
pub mod registry;
#[cfg(feature = "csv")]
pub mod table;
pub mod verdict;

pub use approval::{APPROVAL_VERSION, ApprovalDecision, ApprovalRecord};
pub use error::{ContractError, check_version};
pub use registry::{Metadata, ModelVersion, Promotion, REGISTRY_VERSION};
pub use verdict::{Behaviour, Decision, Scored, VERDICT_VERSION, Verdict};
