//! Safety: this start's random token, the check that a POST carries it and comes from this
//! origin, and (on a non-loopback address) the token for every page, given once as `?token=`
//! and then kept in a cookie.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{App, Page};

const COOKIE: &str = "dagrun_ui_token";

/// 128 random bits from the OS, as hex.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An `application/x-www-form-urlencoded` body (or query) as a map.
pub fn form(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(str::to_owned))
}

/// A POST must carry the token (form field `token` or header `x-dagrun-token`) and must not
/// come from another site (`Sec-Fetch-Site`, `Origin`).
pub fn post(app: &App, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(format!("a {site} request cannot approve or reject: use the page this server serves"));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        if origin != format!("http://{host}") {
            return Err(format!("a request from {origin} cannot approve or reject here"));
        }
    }
    let given = form
        .get("token")
        .cloned()
        .or_else(|| headers.get("x-dagrun-token").and_then(|v| v.to_str().ok()).map(str::to_owned));
    match given {
        Some(t) if same(&t, &app.token) => Ok(()),
        Some(_) => Err("wrong token: use the one `dagrun ui` printed when it started".to_owned()),
        None => Err("approving and rejecting need the token `dagrun ui` printed when it started".to_owned()),
    }
}

/// On a non-loopback address every page needs the token: `?token=` (then kept in a cookie) or
/// the cookie.
pub async fn pages(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if !app.private {
        // On loopback, a page is only served under a loopback name: another name resolving to
        // 127.0.0.1 (DNS rebinding) would make a foreign site same-origin with this one.
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if !loopback_host(host) {
            return Page::forbidden(format!(
                "host `{host}` is not this machine's loopback name: open http://127.0.0.1:…/"
            ))
            .into_response();
        }
        return next.run(req).await;
    }
    let query = req.uri().query().map(form).unwrap_or_default();
    let from_query = query.get("token").is_some_and(|t| same(t, &app.token));
    let from_cookie = cookie_token(req.headers()).is_some_and(|t| same(&t, &app.token));
    if !from_query && !from_cookie {
        return Page::forbidden("this address needs the token: open the link `dagrun ui` printed (…?token=…)")
            .into_response();
    }
    let mut response = next.run(req).await;
    if from_query {
        let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", app.token);
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    response
}

/// `localhost`, `127.0.0.1`, `[::1]` and the like, with or without a port.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_tokens_compare() {
        let f = form("token=ab%20c&by=a+b&x");
        assert_eq!(f.get("token").map(String::as_str), Some("ab c"));
        assert_eq!(f.get("by").map(String::as_str), Some("a b"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        let t = new_token().unwrap();
        assert_eq!(t.len(), 32);
        assert_ne!(t, new_token().unwrap());
        for ok in ["127.0.0.1:8765", "localhost:1", "LOCALHOST", "[::1]:8765", "127.0.0.2"] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example:8765", "", "10.0.0.1:8765", "127.0.0.1.evil.example"] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }
}
