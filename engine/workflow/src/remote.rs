//! The grammar of a remote location (`s3://bucket/prefix`), shared by the workflow's
//! `remote_cache` field (checked at load) and `dagrun-remote`, which connects to it.

/// `s3://bucket/prefix` split into bucket and prefix (without leading or trailing `/`; may be
/// empty), or why it is not a usable location, with how to write one.
pub fn parse_s3_location(s: &str) -> Result<(String, String), String> {
    let rest = s.strip_prefix("s3://").ok_or(
        "only S3 locations are supported: write s3://BUCKET/PREFIX (endpoint and credentials come from \
         AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
    )?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !valid_bucket {
        return Err("the bucket name must be 3 to 63 lowercase letters, digits, `-` or `.`, starting and ending \
                    with a letter or digit"
            .to_owned());
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
        return Err("the prefix must not contain `.`, `..` or empty path segments".to_owned());
    }
    if prefix.chars().any(char::is_control) {
        return Err("the prefix must not contain control characters".to_owned());
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}
