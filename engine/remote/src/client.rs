//! Connecting to an S3-compatible store from the standard AWS environment: `AWS_ENDPOINT_URL`
//! (any S3-compatible server; `http://` allowed), `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
//! (/ `AWS_SESSION_TOKEN`), `AWS_REGION`, or a profile in `~/.aws/credentials` (`AWS_PROFILE`).
//! Timeouts are short so an unreachable remote costs seconds, not minutes.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::{RemoteError, RemoteUrl};

/// A connected remote: the store client and where it points.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The client, rooted at the bucket (keys include the URL's prefix).
    pub store: Arc<dyn ObjectStore>,
    /// Where it points.
    pub url: RemoteUrl,
}

/// Builds a client for `url` from the process environment. Nothing is sent yet: an
/// unreachable server or wrong credentials show on the first request.
pub fn connect(url: &RemoteUrl) -> Result<Connection, RemoteError> {
    let vars: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("AWS_")).collect();
    connect_with(url, &vars)
}

/// [`connect`] with the `AWS_*` variables given instead of read from the process (tests, and
/// a caller that keeps settings per remote). An empty value counts as unset (CI files pass
/// `${{ secrets.X }}`, empty when the secret is not defined).
pub fn connect_with(url: &RemoteUrl, vars: &[(impl AsRef<str>, impl AsRef<str>)]) -> Result<Connection, RemoteError> {
    let vars: Vec<(&str, &str)> =
        vars.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).filter(|(_, v)| !v.trim().is_empty()).collect();
    connect_set(url, &vars)
}
/// [`connect_with`] on the non-empty variables.
fn connect_set(url: &RemoteUrl, vars: &[(&str, &str)]) -> Result<Connection, RemoteError> {
    let var = |name: &str| vars.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
    let config = |why: String| RemoteError::Config { url: url.to_string(), why };
    let mut builder = AmazonS3Builder::new().with_bucket_name(&url.bucket);
    for (k, v) in vars {
        if let Ok(key) = k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, *v);
        }
    }
    let endpoint = var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL"));
    if let Some(e) = &endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(config(format!("AWS_ENDPOINT_URL={e:?} must start with http:// or https://")));
        }
        // A custom endpoint (MinIO, SeaweedFS, R2) takes path-style requests.
        builder = builder.with_endpoint(e);
    }
    if var("AWS_REGION").is_none() && var("AWS_DEFAULT_REGION").is_none() {
        builder = builder.with_region("us-east-1");
    }
    if var("AWS_ACCESS_KEY_ID").is_none() {
        match profile_credentials(&var) {
            Some((id, secret, token)) => {
                builder = builder
                    .with_config(AmazonS3ConfigKey::AccessKeyId, id)
                    .with_config(AmazonS3ConfigKey::SecretAccessKey, secret);
                if let Some(t) = token {
                    builder = builder.with_config(AmazonS3ConfigKey::Token, t);
                }
            }
            None if endpoint.is_some() || !on_aws_hint(&var) => {
                return Err(config(
                    "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials (AWS_PROFILE)"
                        .into(),
                ));
            }
            None => {}
        }
    }
    let client = ClientOptions::new()
        .with_allow_http(endpoint.as_ref().is_some_and(|e| e.starts_with("http://")))
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(600));
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(15),
    };
    let store = builder.with_client_options(client).with_retry(retry).build().map_err(|e| config(e.to_string()))?;
    Ok(Connection { store: Arc::new(store), url: url.clone() })
}

/// Whether the environment says credentials come from the platform (web identity or a
/// container role); otherwise a missing key is an error rather than a slow metadata probe.
fn on_aws_hint(var: &impl Fn(&str) -> Option<String>) -> bool {
    ["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        .iter()
        .any(|v| var(v).is_some())
}

/// The access key, secret and session token of `AWS_PROFILE` (default `default`) in
/// `AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`.
fn profile_credentials(var: &impl Fn(&str) -> Option<String>) -> Option<(String, String, Option<String>)> {
    let path = var("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".into());
    parse_profile(&text, &profile)
}

/// One profile's keys from an AWS credentials file (INI: `[name]`, `key = value`).
fn parse_profile(text: &str, profile: &str) -> Option<(String, String, Option<String>)> {
    let (mut inside, mut id, mut secret, mut token) = (false, None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
        } else if inside && let Some((k, v)) = line.split_once('=') {
            let v = Some(v.trim().to_owned());
            match k.trim() {
                "aws_access_key_id" => id = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
    }
    Some((id?, secret?, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_variables_count_as_unset() {
        let url: RemoteUrl = "s3://bucket".parse().unwrap();
        let vars = [("AWS_ENDPOINT_URL", ""), ("AWS_ACCESS_KEY_ID", "id"), ("AWS_SECRET_ACCESS_KEY", "secret")];
        assert!(connect_with(&url, &vars).is_ok(), "an empty endpoint is no endpoint");
        let vars =
            [("AWS_ENDPOINT_URL", "localhost:9000"), ("AWS_ACCESS_KEY_ID", "id"), ("AWS_SECRET_ACCESS_KEY", "s")];
        let e = connect_with(&url, &vars).unwrap_err().to_string();
        assert!(e.contains("must start with http://"), "{e}");
        let vars = [("AWS_ENDPOINT_URL", "http://127.0.0.1:1"), ("AWS_ACCESS_KEY_ID", " "), ("AWS_PROFILE", "none")];
        let e = connect_with(&url, &vars).unwrap_err().to_string();
        assert!(e.contains("no credentials"), "{e}");
    }

    #[test]
    fn reads_the_named_profile_only() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[ci]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token = T\n";
        assert_eq!(parse_profile(text, "default"), Some(("A".into(), "B".into(), None)));
        assert_eq!(parse_profile(text, "ci"), Some(("C".into(), "D".into(), Some("T".into()))));
        assert_eq!(parse_profile(text, "other"), None);
        assert_eq!(parse_profile("[x]\naws_access_key_id = A\n", "x"), None, "a secret is needed too");
    }
}
