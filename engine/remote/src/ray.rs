//! Ray through its Jobs REST API on the dashboard port: `POST /api/jobs/` submits (with
//! resource requests and environment variables in `runtime_env.env_vars`),
//! `GET /api/jobs/{id}` polls `status` and `driver_exit_code`, `GET /api/jobs/{id}/logs` reads
//! the log, `POST /api/jobs/{id}/stop` stops it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::jobs::{ExecutorError, JobState};

/// What to submit.
#[derive(Debug, Clone, Default)]
pub struct RayJob {
    /// `submission_id`: unique per submission.
    pub submission_id: String,
    /// The shell command the job runs.
    pub entrypoint: String,
    /// `entrypoint_num_cpus`.
    pub num_cpus: Option<f64>,
    /// `entrypoint_num_gpus`.
    pub num_gpus: Option<f64>,
    /// `entrypoint_memory`, in bytes.
    pub memory: Option<u64>,
    /// `runtime_env.env_vars` (visible to whoever can read the cluster's job list).
    pub env: BTreeMap<String, String>,
    /// `metadata`.
    pub metadata: BTreeMap<String, String>,
}

/// A client of one cluster's Jobs API.
#[derive(Debug, Clone)]
pub struct RayClient {
    address: String,
    http: reqwest::Client,
}

impl RayClient {
    /// A client for `address` (`http://head:8265`); nothing is sent yet.
    pub fn new(address: &str) -> Result<RayClient, ExecutorError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ExecutorError::Unreachable { address: address.to_owned(), message: e.to_string() })?;
        Ok(RayClient { address: address.trim_end_matches('/').to_owned(), http })
    }

    /// The address it talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value, ExecutorError> {
        let resp = req.send().await.map_err(|e| ExecutorError::Unreachable {
            address: self.address.clone(),
            message: format!("{what}: {}", without_url(e)),
        })?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let short: String = body.chars().take(500).collect();
            return Err(ExecutorError::Api {
                address: self.address.clone(),
                what: what.to_owned(),
                message: format!("{status}: {short}"),
            });
        }
        serde_json::from_str(&body).map_err(|e| ExecutorError::Api {
            address: self.address.clone(),
            what: what.to_owned(),
            message: format!("not JSON ({e})"),
        })
    }

    /// Submits the job; its submission id.
    pub async fn submit(&self, job: &RayJob) -> Result<String, ExecutorError> {
        let mut body = json!({
            "entrypoint": job.entrypoint,
            "submission_id": job.submission_id,
            "runtime_env": {"env_vars": job.env},
            "metadata": job.metadata,
        });
        for (field, v) in [("entrypoint_num_cpus", job.num_cpus), ("entrypoint_num_gpus", job.num_gpus)] {
            if let Some(v) = v {
                body[field] = json!(v);
            }
        }
        if let Some(m) = job.memory {
            body["entrypoint_memory"] = json!(m);
        }
        let url = format!("{}/api/jobs/", self.address);
        let v = self.send(self.http.post(url).json(&body), "POST /api/jobs/").await.map_err(|e| match e {
            // The answer could quote the request: the environment's values never go further.
            ExecutorError::Api { message, .. } => {
                let message =
                    job.env.values().filter(|v| v.len() >= 4).fold(message, |m, v| m.replace(v.as_str(), "***"));
                ExecutorError::Refused { executor: "Ray", message }
            }
            e => e,
        })?;
        Ok(v["submission_id"].as_str().unwrap_or(&job.submission_id).to_owned())
    }

    /// The job's state now.
    pub async fn state(&self, id: &str) -> Result<JobState, ExecutorError> {
        let url = format!("{}/api/jobs/{id}", self.address);
        match self.send(self.http.get(url), &format!("GET /api/jobs/{id}")).await {
            Ok(v) => Ok(parse_state(&v)),
            Err(ExecutorError::Api { message, .. }) if message.starts_with("404") => Ok(JobState::Gone),
            Err(e) => Err(e),
        }
    }

    /// The job's log so far.
    pub async fn logs(&self, id: &str) -> Result<String, ExecutorError> {
        let url = format!("{}/api/jobs/{id}/logs", self.address);
        let v = self.send(self.http.get(url), &format!("GET /api/jobs/{id}/logs")).await?;
        Ok(v["logs"].as_str().unwrap_or("").to_owned())
    }

    /// Asks the cluster to stop the job; whether it was still running.
    pub async fn stop(&self, id: &str) -> Result<bool, ExecutorError> {
        let url = format!("{}/api/jobs/{id}/stop", self.address);
        let v = self.send(self.http.post(url), &format!("POST /api/jobs/{id}/stop")).await?;
        Ok(v["stopped"].as_bool().unwrap_or(false))
    }
}

/// A client error and its causes, without the request's URL (the address is in the message).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// `status`, `message` and `driver_exit_code` of a `JobDetails` object.
pub fn parse_state(v: &Value) -> JobState {
    let status = v["status"].as_str().unwrap_or("");
    let exit = v["driver_exit_code"].as_i64().map_or("none".to_owned(), |c| c.to_string());
    // Its first line only: Ray appends the end of the job's log, which dagrun attaches itself.
    let first = v["message"].as_str().unwrap_or("").lines().next().unwrap_or("");
    let message: String = first.trim_end_matches(':').chars().take(200).collect();
    let detail = format!("status={status} driver_exit_code={exit} message={message:?}");
    match status {
        "PENDING" => JobState::Pending,
        "RUNNING" => JobState::Running,
        "SUCCEEDED" => JobState::Succeeded,
        "STOPPED" => JobState::Cancelled { detail },
        _ => JobState::Failed { detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_and_exit_code() {
        assert_eq!(parse_state(&json!({"status": "RUNNING"})), JobState::Running);
        assert_eq!(parse_state(&json!({"status": "SUCCEEDED", "driver_exit_code": 0})), JobState::Succeeded);
        assert_eq!(
            parse_state(&json!({"status": "FAILED", "driver_exit_code": 3, "message": "boom"})),
            JobState::Failed { detail: "status=FAILED driver_exit_code=3 message=\"boom\"".into() }
        );
        assert!(matches!(parse_state(&json!({"status": "STOPPED"})), JobState::Cancelled { .. }));
        let long = json!({"status": "FAILED", "driver_exit_code": 1, "message": "Job entrypoint command failed with exit code 1, last available logs:\nline 1\nline 2"});
        assert_eq!(
            parse_state(&long),
            JobState::Failed {
                detail: "status=FAILED driver_exit_code=1 message=\"Job entrypoint command failed with exit code 1, last available logs\"".into()
            }
        );
    }
}
