//! Tests of the server's limits: body size and time, requests in flight, graceful shutdown.

use std::time::{Duration, Instant};

use axum::body::Bytes;

use super::super::handler::{BodyError, Chunks, read_body};
use super::*;

/// The head of a request to the `new-data` hook, authenticated, ending with `extra` headers.
fn head(extra: &str) -> String {
    format!("POST /hooks/retrain/new-data HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\n{extra}\r\n")
}

fn status_of(response: &str) -> u16 {
    response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {response:?}"))
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_before_the_body_is_read() {
    let server = Server::default().await;
    // The body is never sent: the answer comes from the headers alone.
    let response = raw(server.addr, head("Content-Length: 65537\r\nConnection: close\r\n").as_bytes()).await;
    assert_eq!(status_of(&response), 413, "{response}");
    assert!(response.to_ascii_lowercase().contains("content-type: application/json"), "{response}");
    assert!(response.contains("\"limit\":65536"), "{response}");
    // Exactly the limit is fine (a body of spaces is an empty body).
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut request = head("Content-Length: 65536\r\nConnection: close\r\n").into_bytes();
    request.extend(std::iter::repeat_n(b' ', 65536));
    stream.write_all(&request).await.unwrap();
    assert_eq!(status_of(&read_all(&mut stream).await), 202);
    assert_eq!(
        refused(&server.sink),
        vec![(413, "the body is 65537 bytes; webhook bodies are limited to 65536 bytes".into())]
    );
    assert_eq!(server.sink.deliveries().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let server = Server::default().await;
    let mut request = head("Transfer-Encoding: chunked\r\nConnection: close\r\n").into_bytes();
    for _ in 0..64 {
        request.extend_from_slice(b"400\r\n");
        request.extend(std::iter::repeat_n(b' ', 1024));
        request.extend_from_slice(b"\r\n");
    }
    // The byte over the limit is the last one sent, so the server has read everything when it
    // answers (nothing unread that would turn its close into a reset).
    request.extend_from_slice(b"1\r\nx");
    let response = raw(server.addr, &request).await;
    assert_eq!(status_of(&response), 413, "{response}");
    assert!(server.sink.deliveries().is_empty());
    assert_eq!(refused(&server.sink).len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_slow_body_is_cut_off_with_408() {
    let timeout = Duration::from_millis(800);
    let server = Server::start(ServeOptions { body_timeout: timeout, ..ServeOptions::default() }).await;
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head("Content-Length: 1000\r\nConnection: close\r\n").as_bytes()).await.unwrap();
    // Byte by byte, then nothing: the server reads each as it comes and is left waiting.
    for byte in b"{\"pa" {
        stream.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = read_all(&mut stream).await;
    assert_eq!(status_of(&response), 408, "{response}");
    assert!(started.elapsed() >= timeout);
    assert!(server.sink.deliveries().is_empty());
    assert!(matches!(&server.sink.logs()[..], [HookLog::Refused { status: 408, .. }]));
    // Other requests were served meanwhile and after.
    assert_eq!(send(client().get(server.url("/v1/health"))).await.0, 200);
    server.stop().await;
}

/// A body that sends a byte every 10 ms, forever.
struct Drip;

impl Chunks for Drip {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, String>> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Some(Ok(Bytes::from_static(b"x")))
    }
}

#[tokio::test]
async fn the_body_timeout_is_a_deadline_not_an_idle_timeout() {
    let started = Instant::now();
    let read = read_body(Drip, 1 << 20, Duration::from_millis(300)).await;
    assert!(matches!(read, Err(BodyError::Timeout)), "{read:?}");
    assert!(started.elapsed() < PATIENCE);
}

/// A body of 1 KiB chunks, forever, counting how many were taken.
struct Endless(usize);

impl Chunks for Endless {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, String>> {
        self.0 += 1;
        Some(Ok(Bytes::from(vec![b' '; 1024])))
    }
}

#[tokio::test]
async fn reading_stops_at_the_limit() {
    let mut body = Endless(0);
    let read = read_body(&mut body, 64 * 1024, PATIENCE).await;
    assert!(matches!(read, Err(BodyError::TooLarge)), "{read:?}");
    assert_eq!(body.0, 65);
    let read = read_body(vec![Bytes::from_static(b"{}"), Bytes::from_static(b" ")], 3, PATIENCE).await;
    assert_eq!(read.unwrap(), b"{} ");
}

impl Chunks for &mut Endless {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, String>> {
        (**self).next_chunk().await
    }
}

impl Chunks for Vec<Bytes> {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, String>> {
        (!self.is_empty()).then(|| Ok(self.remove(0)))
    }
}

#[tokio::test]
async fn requests_over_the_in_flight_limit_are_turned_away() {
    let options =
        ServeOptions { max_in_flight: 1, queue_timeout: Duration::from_millis(300), ..ServeOptions::default() };
    let server = Server::start(options).await;
    let (mut entered, release) = server.sink.gate();
    let first = tokio::spawn(server.hook("/hooks/retrain/new-data").send());
    tokio::time::timeout(PATIENCE, entered.recv()).await.unwrap().unwrap();
    // The one slot is held by the first request, inside `deliver`.
    let response = client().get(server.url("/v1/health")).send().await.unwrap();
    assert_eq!(response.headers().get("retry-after").unwrap(), "1");
    let (status, body) = answer(response).await;
    assert_eq!((status, &body["status"]), (503, &json!("error")));
    assert!(matches!(&server.sink.logs()[..], [HookLog::Busy { path, .. }] if path == "/v1/health"));
    release.send(()).unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!(answer(first).await, (202, json!({"status": "accepted", "event": 1})));
    assert_eq!(send(client().get(server.url("/v1/health"))).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_finishes_requests_in_flight() {
    let mut server = Server::default().await;
    let (mut entered, release) = server.sink.gate();
    let in_flight = tokio::spawn(server.hook("/hooks/retrain/new-data").send());
    tokio::time::timeout(PATIENCE, entered.recv()).await.unwrap().unwrap();
    server.stop.take().unwrap().send(()).unwrap();
    // The listener closes soon after the signal.
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(server.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting connections after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!server.task.is_finished(), "serve returned with a request in flight");
    release.send(()).unwrap();
    let response = tokio::time::timeout(PATIENCE, in_flight).await.unwrap().unwrap().unwrap();
    assert_eq!(answer(response).await, (202, json!({"status": "accepted", "event": 1})));
    tokio::time::timeout(PATIENCE, server.task).await.unwrap().unwrap().unwrap();
    assert_eq!(server.sink.deliveries().len(), 1);
}

#[tokio::test]
async fn a_stalled_connection_is_closed_after_the_idle_time_and_others_still_work() {
    let options = ServeOptions { idle_timeout: Duration::from_millis(300), ..ServeOptions::default() };
    let server = Server::start(options).await;
    // Half a request line, then nothing: closed by the server (EOF or reset), not held forever.
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(b"POST /hooks/retrain/new-da").await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the stalled connection was not closed: {closed:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // A normal request meanwhile and afterwards is answered.
    let response = raw(server.addr, head("Content-Length: 0\r\nConnection: close\r\n").as_bytes()).await;
    assert_eq!(status_of(&response), 202, "{response}");
    server.stop().await;
}
