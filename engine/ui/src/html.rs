//! The page frame (navigation, style, the embedded script) and the shared helpers: escaping,
//! times and durations for people, the 403/404/500 pages.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use dagrun_contracts::html::escape;

/// A rendered page and its status.
#[derive(Debug)]
pub struct Page {
    /// The HTTP status.
    pub status: StatusCode,
    /// The whole document.
    pub html: String,
}

impl Page {
    /// A 200 page: `body` inside the frame.
    pub fn ok(title: &str, body: &str) -> Page {
        Page { status: StatusCode::OK, html: frame(title, body) }
    }

    /// A 404 page saying what was not found.
    pub fn not_found(what: impl std::fmt::Display) -> Page {
        let body = format!("<h1>Not found</h1><p class=\"problem\">{}</p>", escape(&what.to_string()));
        Page { status: StatusCode::NOT_FOUND, html: frame("not found", &body) }
    }

    /// A 403 page saying why.
    pub fn forbidden(why: impl std::fmt::Display) -> Page {
        let body = format!("<h1>Forbidden</h1><p class=\"problem\">{}</p>", escape(&why.to_string()));
        Page { status: StatusCode::FORBIDDEN, html: frame("forbidden", &body) }
    }

    /// A 500 page (the history store failed).
    pub fn error(why: impl std::fmt::Display) -> Page {
        let body = format!("<h1>Error</h1><p class=\"problem\">{}</p>", escape(&why.to_string()));
        Page { status: StatusCode::INTERNAL_SERVER_ERROR, html: frame("error", &body) }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], self.html).into_response()
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222}\
nav{background:#233;padding:.6em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}\
main{padding:1em 1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;font-size:.9em}\
th{background:#eee}.problem{color:#a00}.muted{color:#777}\
.s-succeeded,.s-ran{background:#cfc}.s-cached{background:#cdf}.s-failed{background:#fbb}\
.s-refused{background:#fdb}.s-waiting,.s-running{background:#ffc}.s-none{background:#f4f4f4}\
.grid td{width:1.2em;height:1em;padding:0}.bar{height:1em;display:inline-block}\
.lane{position:relative;display:inline-block;vertical-align:middle;width:400px;height:1em;background:#f6f6f6}\
.lane .bar{position:absolute;top:0}\
.charts{display:flex;flex-wrap:wrap;gap:.8em;margin-bottom:.8em}.charts figure{margin:0}figcaption{font-size:.8em}";

/// The frame every page shares.
fn frame(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{} · dagrun</title><style>{STYLE}</style></head>\
         <body><nav><a href=\"/\">dagrun</a><a href=\"/runs\">runs</a><a href=\"/models\">models</a>\
         <a href=\"/drift\">drift</a><a href=\"/payoff\">payoff</a></nav><main>{body}</main>\
         <script src=\"/ui.js\"></script></body></html>",
        escape(title)
    )
}

/// A Unix-ms time as `2026-11-28 18:57:03` (UTC).
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| "?".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// A URL path segment (ids and names are plain, but a `%`, `/` or `?` must not break links).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.@~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A status as a CSS class (`s-failed`), for the known ones.
pub fn class(status: &str) -> &'static str {
    match status {
        "succeeded" => "s-succeeded",
        "ran" => "s-ran",
        "cached" => "s-cached",
        "failed" | "interrupted" | "killed" => "s-failed",
        "refused" | "alerted" | "held" | "skipped" => "s-refused",
        "waiting" => "s-waiting",
        "running" => "s-running",
        _ => "s-none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_times() {
        assert_eq!(seg("train@2025-01-01"), "train@2025-01-01");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
        assert_eq!(when(0), "1970-01-01 00:00:00");
        assert!(Page::not_found("<x>").html.contains("&lt;x&gt;"));
    }
}
