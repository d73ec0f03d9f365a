//! Beyond one machine: the shared remote cache and the model registry on S3-compatible storage
//! (AWS S3, MinIO, R2, SeaweedFS). [`RemoteCache`] reads and publishes what the local store holds — objects by
//! digest, verified on the way in, and action entries published create-only (first writer
//! wins); [`RemoteRegistry`] mirrors a registry locally and publishes deploys with
//! conditional writes (no lost update). Endpoint and credentials come from the standard AWS
//! environment only. [`slurm`] and [`ray`] submit, poll and cancel jobs on existing clusters
//! (remote execution).

mod cache;
mod client;
mod error;
mod jobs;
mod probe;
pub mod ray;
mod registry;
pub mod slurm;
mod url;

pub use cache::{Published, RemoteCache, Uploaded};
pub use client::{Connection, connect, connect_with};
pub use error::RemoteError;
pub use jobs::{ExecutorError, JobState};
pub use probe::{Probe, probe};
pub use registry::{Moved, RemoteRegistry, SYNC_FILE, Synced, UNUSABLE_FILE, mirror_dir};
pub use url::RemoteUrl;
