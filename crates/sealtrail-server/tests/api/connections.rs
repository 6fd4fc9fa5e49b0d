//! Connections as a slow or hostile client holds them, spoken to over raw TCP: the header,
//! idle and body timeouts close or refuse what waits too long, the connection cap keeps
//! idle sockets from taking every descriptor, an oversized `Content-Length` is refused before
//! its body is read, and stalled uploads cannot pin more body memory than the budget.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use sealtrail_server::ingest::{MAX_BATCH_BODY, MAX_EVENT_BODY};

use crate::helpers::{TestApp, event, spawn_app, spawn_app_in};

/// How long the server is given for anything it must do here. Generous, so that a loaded
/// machine does not fail a test; finite, so that a server that never does it fails the test
/// instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr)
        .await
        .expect("the server listens")
}

/// Reads until the server closes the connection (end of file, or a reset), and returns what
/// came before; fails the test if the connection is still open after [`PATIENCE`].
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buffer)).await {
            Err(_) => panic!(
                "the server kept the connection open for {PATIENCE:?}; it sent {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buffer[..n]),
            Ok(Err(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return got;
            }
            Ok(Err(error)) => panic!("reading from the server failed: {error}"),
        }
    }
}

/// One response as read off the socket.
struct Answer {
    status: u16,
    /// The status line and headers, as sent.
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {} {}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Reads one response (its body by `Content-Length`); fails the test if none comes within
/// [`PATIENCE`].
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let read = async {
        let mut got = Vec::new();
        let mut buffer = [0u8; 4096];
        let head_end = loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = stream.read(&mut buffer).await.expect("the answer is read");
            assert!(
                n > 0,
                "the server closed the connection without a whole answer: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buffer[..n]);
        };
        let head = String::from_utf8_lossy(&got[..head_end - 4]).into_owned();
        let mut body = got[head_end..].to_vec();
        let mut answer = Answer {
            status: head
                .split(' ')
                .nth(1)
                .and_then(|code| code.parse().ok())
                .unwrap_or_else(|| panic!("not an HTTP response: {head}")),
            head,
            body: Vec::new(),
        };
        let length: usize = answer.header("content-length").map_or(0, |length| {
            length.parse().expect("a numeric Content-Length")
        });
        while body.len() < length {
            let n = stream.read(&mut buffer).await.expect("the body is read");
            assert!(n > 0, "the server closed the connection mid-body");
            body.extend_from_slice(&buffer[..n]);
        }
        answer.body = body;
        answer
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .unwrap_or_else(|_| panic!("no answer within {PATIENCE:?}"))
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: sealtrail\r\n\r\n";

/// What the server sends a client whose request head did not arrive in time, before it closes
/// the connection: a 408 in the JSON error shape.
fn assert_head_too_slow(sent: &[u8], what: &str) {
    let text = String::from_utf8_lossy(sent);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{what}: no whole answer before the close: {text:?}"));
    assert!(head.starts_with("HTTP/1.1 408 "), "{what}: {head}");
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
    assert_eq!(body["error"], "request_timeout", "{what}: {body}");
    assert_eq!(body["field"], "request", "{what}: {body}");
    assert_eq!(body["rule"], "timeout", "{what}: {body}");
}

/// A client that sends half a header line and stalls — or connects and sends nothing — is
/// told 408 and disconnected once the header timeout passes.
#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_disconnected() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |s| s.header_timeout_secs = Some(1)).await;
    let mut half = connect(&app).await;
    half.write_all(b"GET /health HTTP/1.1\r\nHost: sealtrail\r\nX-Wait: ")
        .await
        .unwrap();
    let mut silent = connect(&app).await;

    assert_head_too_slow(&until_closed(&mut half).await, "half a head");
    assert_head_too_slow(&until_closed(&mut silent).await, "nothing sent");
    // A whole request on a new connection is still served.
    let mut whole = connect(&app).await;
    whole.write_all(HEALTH).await.unwrap();
    assert_eq!(read_answer(&mut whole).await.status, 200);
    drop(whole);
    app.stop().await;
}

/// A keep-alive connection serves one request after another, and is closed (without an
/// answer: it asked nothing) once it has been idle for the idle timeout.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |s| s.idle_timeout_secs = Some(1)).await;
    let mut conn = connect(&app).await;
    for _ in 0..2 {
        conn.write_all(HEALTH).await.unwrap();
        let answer = read_answer(&mut conn).await;
        assert_eq!(answer.status, 200, "{}", answer.head);
    }
    assert_eq!(String::from_utf8_lossy(&until_closed(&mut conn).await), "");
    app.stop().await;
}

/// Fresh clients without a pool: each request opens a connection of its own.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// Whether the server has closed `conn` (a read finds the end), without waiting: on loopback
/// its close has arrived by the time the server serves what it closed it for.
fn closed_by_the_server(conn: TcpStream) -> bool {
    use std::io::Read;
    let mut conn = conn.into_std().unwrap();
    conn.set_nonblocking(true).unwrap();
    match conn.read(&mut [0u8; 64]) {
        Ok(0) => true,
        Ok(n) => panic!("the server sent {n} bytes to a socket that asked nothing"),
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => true,
        Err(error) => panic!("reading from the server failed: {error}"),
    }
}

/// With room for two connections and six idle sockets open — three times the cap, and a
/// header timeout far beyond the test's patience — `/health` and an authenticated event are
/// answered: at the cap each new connection is served in place of the oldest one that has sent
/// nothing, which is closed without an answer. Never more than two are open at once.
#[tokio::test]
async fn a_server_at_its_connection_cap_keeps_serving_behind_idle_sockets() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |s| {
        s.max_connections = Some(2);
        s.header_timeout_secs = Some(300);
    })
    .await;
    assert_eq!(app.connections.limit(), 2);
    let token = app.token("acme", &["events:write"]).await;
    let mut idle = Vec::new();
    for _ in 0..6 {
        idle.push(connect(&app).await);
    }
    tokio::time::timeout(PATIENCE, app.connections.wait_until(|open| open >= 2))
        .await
        .expect("the server takes idle sockets up to its cap");

    let health = fresh_client().get(app.url("/health")).send();
    let ingest = fresh_client()
        .post(app.url("/v1/events"))
        .bearer_auth(&token)
        .json(&event(1))
        .send();
    let (health, ingest) = tokio::join!(health, ingest);
    assert_eq!(health.expect("/health is answered").status(), 200);
    let ingest = ingest.expect("the event is answered");
    assert_eq!(ingest.status(), 201, "{:?}", ingest.text().await);
    assert_eq!(app.log_size("acme"), 1);
    // Each of the eight connections after the first two took the place of an idle one.
    let shed: Vec<bool> = idle.into_iter().map(closed_by_the_server).collect();
    assert_eq!(shed, [true; 6], "which idle sockets the server closed");
    assert_eq!(
        app.connections.peak(),
        2,
        "never more than max_connections open at once"
    );
    app.stop().await;
}

/// At the cap with no connection to shed — the one there is in the middle of sending its head
/// — a new connection waits in the listen backlog (it is not refused) and is served once the
/// header timeout has ended the slow one.
#[tokio::test]
async fn a_connection_beyond_the_cap_waits_while_every_connection_is_busy() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |s| {
        s.max_connections = Some(1);
        s.header_timeout_secs = Some(1);
    })
    .await;
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: sealtrail\r\nX-Wait: ")
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, app.connections.wait_until(|open| open == 1))
        .await
        .expect("the server takes the slow connection");

    let health = fresh_client().get(app.url("/health")).send().await;
    assert_eq!(health.expect("/health is answered").status(), 200);
    assert_head_too_slow(&until_closed(&mut slow).await, "the slow head");
    assert_eq!(app.connections.peak(), 1);
    app.stop().await;
}

/// A `Content-Length` over the route's limit is answered 413, in the JSON error shape, before
/// any of the body is read: with `Expect: 100-continue` no `100 Continue` comes first, and
/// without it the server does not wait for a body that would be refused anyway.
#[tokio::test]
async fn a_content_length_over_the_routes_limit_is_refused_before_the_body() {
    let app = spawn_app().await;
    let token = app.token("acme", &["events:write"]).await;
    let cases = [
        ("/v1/events", &token, 999_999_999, true),
        ("/v1/events", &token, 999_999_999, false),
        ("/v1/events", &token, MAX_EVENT_BODY + 1, true),
        ("/v1/events/batch", &token, MAX_BATCH_BODY + 1, true),
        ("/v1/admin/tokens", &app.admin_token, 64 * 1024 + 1, false),
    ];
    for (path, token, length, expect_continue) in cases {
        let what = format!("{path} with Content-Length {length}, expect {expect_continue}");
        let mut conn = connect(&app).await;
        let expect = if expect_continue {
            "Expect: 100-continue\r\n"
        } else {
            ""
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: sealtrail\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n{expect}\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();

        let answer = read_answer(&mut conn).await;
        assert_eq!(answer.status, 413, "{what}: {}", answer.head);
        let body = answer.json();
        assert_eq!(body["error"], "payload_too_large", "{what}: {body}");
        assert_eq!(body["field"], "", "{what}: {body}");
        assert_eq!(body["rule"], "max_size", "{what}: {body}");
        // The unread body cannot be taken for a next request: the connection ends.
        assert_eq!(answer.header("connection"), Some("close"), "{what}");
        assert_eq!(
            String::from_utf8_lossy(&until_closed(&mut conn).await),
            "",
            "{what}"
        );
    }
    assert_eq!(app.log_size("acme"), 0);
    app.stop().await;
}

/// A client that sends its headers and then stalls its body is answered 408 once the body
/// timeout passes and cut off, and nothing of it is committed.
#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |s| s.body_timeout_secs = Some(1)).await;
    let token = app.token("acme", &["events:write"]).await;
    let mut conn = connect(&app).await;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: sealtrail\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"action\""
    );
    conn.write_all(head.as_bytes()).await.unwrap();

    let answer = read_answer(&mut conn).await;
    assert_eq!(answer.status, 408, "{}", answer.head);
    let body = answer.json();
    assert_eq!(body["error"], "request_timeout", "{body}");
    assert_eq!(body["field"], "", "{body}");
    assert_eq!(body["rule"], "timeout", "{body}");
    assert_eq!(String::from_utf8_lossy(&until_closed(&mut conn).await), "");
    assert_eq!(app.log_size("acme"), 0);
    app.stop().await;
}

/// An upload that has reserved all the body memory and trickles its body holds that memory
/// while it may still arrive; another request finds no room, waits as long as a body may take,
/// and is told to retry — the server does not read more bodies than it has memory for.
#[tokio::test]
async fn a_stalled_upload_cannot_take_more_body_memory_than_there_is() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir, |s| {
        s.max_body_memory_bytes = Some(MAX_BATCH_BODY as u64);
        s.body_timeout_secs = Some(1);
        // One byte a second: the 60 bytes sent below buy the upload a minute.
        s.body_min_rate = Some(1);
    })
    .await;
    let token = app.token("acme", &["events:write"]).await;
    let mut upload = connect(&app).await;
    let head = format!(
        "POST /v1/events/batch HTTP/1.1\r\nHost: sealtrail\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {MAX_BATCH_BODY}\r\nExpect: 100-continue\r\n\r\n"
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    // `100 Continue` comes once the handler reads the body: its room is reserved by then.
    let go_on = read_answer(&mut upload).await;
    assert_eq!(go_on.status, 100, "{}", go_on.head);
    upload.write_all(&[b' '; 60]).await.unwrap();

    let response = app.post_event(&token, &event(1)).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "server_busy", "{body}");
    assert_eq!(app.log_size("acme"), 0);
    // The upload finishes (a body of blanks, refused as malformed); its room is given back
    // before it is answered, so the next event is taken.
    upload
        .write_all(&vec![b' '; MAX_BATCH_BODY - 60])
        .await
        .unwrap();
    assert_eq!(read_answer(&mut upload).await.status, 400);
    let response = app.post_event(&token, &event(2)).await;
    assert_eq!(response.status(), 201);
    app.stop().await;
}
