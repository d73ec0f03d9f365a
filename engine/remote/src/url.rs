//! Where a remote lives: `s3://bucket/prefix` parsed and checked, printed without secrets.

use std::fmt;
use std::str::FromStr;

use crate::RemoteError;

/// A remote location: an S3(-compatible) bucket and a key prefix inside it. Credentials and the
/// endpoint never appear here: they come from the standard AWS environment variables.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteUrl {
    /// The bucket.
    pub bucket: String,
    /// The prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl RemoteUrl {
    /// The object key of `rest` under the prefix.
    pub fn key(&self, rest: &str) -> String {
        if self.prefix.is_empty() { rest.to_owned() } else { format!("{}/{rest}", self.prefix) }
    }
}

impl FromStr for RemoteUrl {
    type Err = RemoteError;

    fn from_str(s: &str) -> Result<RemoteUrl, RemoteError> {
        let (bucket, prefix) =
            dagrun_workflow::remote::parse_s3_location(s).map_err(|why| RemoteError::Url { url: s.to_owned(), why })?;
        Ok(RemoteUrl { bucket, prefix })
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_prefix() {
        let u: RemoteUrl = "s3://team-cache/dagrun/ci/".parse().unwrap();
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("team-cache", "dagrun/ci"));
        assert_eq!(u.to_string(), "s3://team-cache/dagrun/ci");
        assert_eq!(u.key("v1/x"), "dagrun/ci/v1/x");
        let bare: RemoteUrl = "s3://models".parse().unwrap();
        assert_eq!(bare.key("v1/x"), "v1/x");
        assert_eq!(bare.to_string(), "s3://models");
    }

    #[test]
    fn refuses_what_is_not_an_s3_location() {
        for (url, says) in [
            ("/tmp/cache", "only S3 locations"),
            ("gs://bucket", "only S3 locations"),
            ("s3://", "bucket name"),
            ("s3://UPPER/x", "bucket name"),
            ("s3://ab", "bucket name"),
            ("s3://-bucket", "bucket name"),
            ("s3://bucket/a/../b", "prefix"),
            ("s3://bucket/a//b", "prefix"),
        ] {
            let e = url.parse::<RemoteUrl>().unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(url), "{url}: {e}");
        }
    }
}
