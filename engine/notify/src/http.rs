//! The HTTP sinks: a JSON POST to the URL in an environment variable (Slack's incoming webhook
//! or a generic webhook with extra headers from another variable), 2xx or a failure whose text
//! names the variable and host only. reqwest's errors carry the URL: it is stripped, and
//! every secret the attempt read is redacted from the text as well.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::{AttemptError, EnvSource, secs};

/// One client for a round of deliveries: no redirects (a 3xx is a failure: a secret URL is
/// never forwarded), rustls with the bundled roots.
pub(crate) fn client(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("dagrun/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up HTTP: {}", e.without_url()))
}

/// A request's target: the URL read from `var`, what may be said of it, and the secrets.
struct Target {
    var: String,
    url: reqwest::Url,
    host: String,
    secrets: Vec<String>,
}

fn target(env: &EnvSource, var: &str) -> Result<Target, AttemptError> {
    let value = env.get(var).ok_or_else(|| AttemptError::MissingEnv { var: var.to_owned() })?;
    let bad = |why: &str| AttemptError::BadUrl { var: var.to_owned(), why: why.to_owned() };
    // url's parse errors never quote the input.
    let url = reqwest::Url::parse(value.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("not http or https"));
    }
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return Err(bad("no host")),
    };
    let mut secrets = vec![value.trim().to_owned(), url.as_str().to_owned()];
    secrets.extend(url.query().map(str::to_owned));
    secrets.extend(url.password().map(str::to_owned));
    secrets.push(url.username().to_owned());
    if url.path() != "/" {
        secrets.push(url.path().to_owned());
        // Tokens are long; short segments (`v1`, `hooks`) may be words an error uses.
        let segments = url.path_segments().into_iter().flatten();
        secrets.extend(segments.filter(|s| s.len() >= 8).map(str::to_owned));
    }
    Ok(Target { var: var.to_owned(), url, host, secrets })
}

/// The headers in `var`: one `Name: value` per line (blank lines and `#` comments skipped).
/// Errors give the line number, never a value. Returns the headers and their values (secrets).
pub(crate) fn parse_headers(text: &str, var: &str) -> Result<(HeaderMap, Vec<String>), AttemptError> {
    let mut map = HeaderMap::new();
    let mut values = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why| AttemptError::BadHeader { var: var.to_owned(), line: i + 1, why };
        let (name, value) = line.split_once(':').ok_or_else(|| bad("no `:`"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad("not a valid header name"))?;
        let value = value.trim();
        let header = HeaderValue::from_str(value).map_err(|_| bad("not a valid header value"))?;
        values.push(value.to_owned());
        map.append(name, header);
    }
    Ok((map, values))
}

/// Which receiver: Slack answers errors with a short code in the body worth showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Slack,
    Webhook,
}

/// POSTs `body` (JSON) to the URL in `url_var` with the headers in `headers_var`, within
/// `limit`.
pub(crate) async fn post(
    client: &reqwest::Client,
    env: &EnvSource,
    url_var: &str,
    headers_var: Option<&str>,
    body: String,
    limit: Duration,
    flavor: Flavor,
) -> Result<(), AttemptError> {
    let t = target(env, url_var)?;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut secrets = t.secrets.clone();
    if let Some(var) = headers_var {
        let text = env.get(var).ok_or_else(|| AttemptError::MissingEnv { var: var.to_owned() })?;
        let (extra, values) = parse_headers(&text, var)?;
        for (name, value) in &extra {
            headers.insert(name.clone(), value.clone());
        }
        secrets.extend(values);
    }
    let send = client.post(t.url.clone()).headers(headers).body(body).timeout(limit).send();
    // reqwest's timeout covers the whole request; this one also covers a stalled body read.
    let outcome = tokio::time::timeout(limit + Duration::from_millis(200), async {
        let resp = send.await?;
        let status = resp.status();
        let code = if flavor == Flavor::Slack && !status.is_success() { slack_code(resp).await } else { None };
        Ok::<_, reqwest::Error>((status, code))
    })
    .await;
    let fail =
        |why: String| AttemptError::Send { var: t.var.clone(), host: t.host.clone(), why: redact(why, &secrets) };
    match outcome {
        Err(_) => Err(fail(format!("timed out after {}", secs(limit)))),
        Ok(Err(e)) => Err(fail(describe(e, limit))),
        Ok(Ok((status, _))) if status.is_success() => Ok(()),
        Ok(Ok((status, code))) => Err(AttemptError::Status {
            var: t.var.clone(),
            host: t.host.clone(),
            status: status.as_u16(),
            code: code.map(|c| format!(" ({c})")).unwrap_or_default(),
        }),
    }
}

/// Slack's error code (`no_service`, `invalid_payload`, ...) from a refused request's body:
/// only a short lowercase word, which cannot be a secret.
async fn slack_code(mut resp: reqwest::Response) -> Option<String> {
    let mut body = Vec::new();
    while body.len() <= 64 {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    let text = std::str::from_utf8(&body).ok()?.trim();
    let word = (1..=60).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    word.then(|| text.to_owned())
}

/// A reqwest error without its URL: what went wrong, down to the OS's words.
fn describe(e: reqwest::Error, limit: Duration) -> String {
    use std::error::Error as _;
    if e.is_timeout() {
        let what = if e.is_connect() { "connecting timed out" } else { "timed out" };
        return format!("{what} after {}", secs(limit));
    }
    let connect = e.is_connect();
    let e = e.without_url();
    let top = e.to_string();
    let mut inner = None;
    let mut src = e.source();
    while let Some(s) = src {
        inner = Some(s.to_string());
        src = s.source();
    }
    match (connect, inner) {
        (true, Some(i)) => format!("cannot connect: {i}"),
        (true, None) => "cannot connect".to_owned(),
        (false, Some(i)) if i != top => format!("{top}: {i}"),
        (false, _) => top,
    }
}

/// `text` with every secret (of 4 characters or more) replaced by `…`.
pub(crate) fn redact(mut text: String, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| s.chars().count() >= 4).collect();
    // The longest first, so that a URL goes before its path.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in secrets {
        if text.contains(s.as_str()) {
            text = text.replace(s.as_str(), "…");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_one_per_line_and_errors_never_show_values() {
        let (map, values) = parse_headers("Authorization: Bearer t0ken\n\n# a comment\nX-Team:  ml ", "H").unwrap();
        assert_eq!(map["authorization"], "Bearer t0ken");
        assert_eq!(map["x-team"], "ml");
        assert_eq!(values, vec!["Bearer t0ken", "ml"]);
        let e = parse_headers("A: b\nBearer s3cret-value\n", "H").unwrap_err().to_string();
        assert_eq!(e, "line 2 of $H: no `:` (expected one `Name: value` per line)");
        let e = parse_headers("Bad Name: s3cret-value", "H").unwrap_err().to_string();
        assert_eq!(e, "line 1 of $H: not a valid header name (expected one `Name: value` per line)");
        let e = parse_headers("A: s3cret\u{7f}value", "H").unwrap_err().to_string();
        assert!(e.contains("line 1 of $H: not a valid header value") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn a_url_gives_its_host_and_its_secrets() {
        let env = EnvSource::map([("U", "https://hooks.example.com/services/T0/B0/XyZsecret?k=qsecret")]);
        let t = target(&env, "U").unwrap();
        assert_eq!(t.host, "hooks.example.com");
        let text = redact(format!("failed for {} and XyZsecret and k=qsecret", t.url), &t.secrets);
        assert_eq!(text, "failed for … and … and …");
        let env = EnvSource::map([("U", "http://127.0.0.1:4567/x")]);
        assert_eq!(target(&env, "U").unwrap().host, "127.0.0.1:4567");
    }

    #[test]
    fn a_bad_or_missing_url_names_the_variable_only() {
        let env = EnvSource::map([("U", "not a url s3cret"), ("F", "ftp://h/s3cret")]);
        let e = target(&env, "U").err().unwrap().to_string();
        assert!(e.starts_with("$U does not hold an http(s) URL (") && !e.contains("s3cret"), "{e}");
        let e = target(&env, "F").err().unwrap().to_string();
        assert_eq!(e, "$F does not hold an http(s) URL (not http or https)");
        assert!(matches!(target(&env, "NONE"), Err(AttemptError::MissingEnv { .. })));
    }
}
