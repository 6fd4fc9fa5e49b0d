//! The bytes of a connection, for the one case where they must be touched: hyper's own answers.
//!
//! hyper refuses some requests before any handler sees them — a request line or header that is
//! not HTTP/1.1 (400), a request target of 64 KiB or more (414), a request head with more
//! headers or bytes than its parser holds (431) — and answers with a head and an empty body.
//! The API's rule is that every error is the JSON error shape ([`super::ApiError`]), so
//! [`JsonRefusals`] wraps each connection's stream (in [`crate::connections`]) and, when hyper
//! writes one of those automatic answers, writes the same status with a JSON body instead.
//!
//! An automatic answer is recognised by its whole write: a status line of 400, 414 or 431,
//! `connection: close`, `content-length: 0`, no `content-type`, and nothing after the head.
//! No answer of the API's own looks like that (its errors all carry a JSON body and a
//! `content-type`), and no body can either: bodies are JSON, whose canonical form escapes CR
//! and LF, or tiles of hashes, written apart from the head that precedes them. hyper closes
//! the connection after such an answer, so nothing follows it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ApiError;

/// The peer address of a connection, as handlers find it (`ConnectInfo<Peer>`, which
/// [`crate::connections`] puts on each request).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// A connection's stream whose automatic refusals by hyper are rewritten as JSON errors.
pub struct JsonRefusals<IO> {
    inner: IO,
    /// A rewritten answer being written, and how much of it is out.
    rewriting: Option<Rewrite>,
}

struct Rewrite {
    bytes: Vec<u8>,
    written: usize,
}

impl<IO> JsonRefusals<IO> {
    pub fn new(inner: IO) -> JsonRefusals<IO> {
        JsonRefusals {
            inner,
            rewriting: None,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for JsonRefusals<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> JsonRefusals<IO> {
    /// Writes what remains of a rewritten answer; ready once all of it is out.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rewrite) = &mut self.rewriting {
            if rewrite.written == rewrite.bytes.len() {
                self.rewriting = None;
                break;
            }
            let n = ready!(
                Pin::new(&mut self.inner).poll_write(cx, &rewrite.bytes[rewrite.written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            rewrite.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for JsonRefusals<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rewriting.is_none() {
            match rewritten(buf) {
                Some(bytes) => this.rewriting = Some(Rewrite { bytes, written: 0 }),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        // hyper offers the same buffer again after `Pending`: it is consumed whole once the
        // rewritten answer is out.
        ready!(this.poll_rewrite(cx))?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut filled = bufs.iter().filter(|buf| !buf.is_empty());
        match (filled.next(), filled.next()) {
            // An automatic answer is a head alone, so it is one buffer.
            (Some(only), None) if self.rewriting.is_some() || rewritten(only).is_some() => {
                self.poll_write(cx, only)
            }
            _ => Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_rewrite(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_rewrite(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The JSON answer that replaces `written`, if `written` is one of hyper's automatic refusals.
fn rewritten(written: &[u8]) -> Option<Vec<u8>> {
    // hyper's automatic answers are a status line and three short headers.
    if written.len() > 256 || !written.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(written).ok()?;
    let status_line = head.strip_prefix("HTTP/1.1 ")?;
    let status = status_line.get(..3)?.parse::<u16>().ok()?;
    let lower = head.to_ascii_lowercase();
    if !lower.contains("\r\nconnection: close\r\n")
        || !lower.contains("\r\ncontent-length: 0\r\n")
        || lower.contains("\r\ncontent-type:")
    {
        return None;
    }
    let error = refusal(StatusCode::from_u16(status).ok()?)?;
    let body = serde_json::to_vec(&error).ok()?;
    let date = head
        .split("\r\n")
        .find(|line| line.to_ascii_lowercase().starts_with("date:"));
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        error.status.as_u16(),
        error.status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if let Some(date) = date {
        answer.push_str(date);
        answer.push_str("\r\n");
    }
    answer.push_str("\r\n");
    let mut bytes = answer.into_bytes();
    bytes.extend_from_slice(&body);
    Some(bytes)
}

/// The API's error for a status hyper answers by itself.
fn refusal(status: StatusCode) -> Option<ApiError> {
    Some(match status {
        StatusCode::BAD_REQUEST => ApiError::new(
            status,
            "bad_request",
            "the request is not valid HTTP/1.1: its request line or a header is malformed",
        )
        .at("request", "http_syntax"),
        StatusCode::URI_TOO_LONG => ApiError::uri_too_long(super::MAX_URI_BYTES),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::headers_too_large(
            "",
            format!(
                "the request head is too large: at most {} headers of {} bytes in all",
                super::MAX_HEADERS,
                super::MAX_HEADER_BYTES
            ),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const AUTOMATIC_414: &[u8] = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 14:00:38 GMT\r\n\r\n";

    fn split(answer: &[u8]) -> (String, serde_json::Value) {
        let at = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8(answer[..at].to_vec()).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&answer[at..]).unwrap();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .unwrap();
        assert_eq!(length.parse::<usize>().unwrap(), answer.len() - at);
        (head, body)
    }

    #[test]
    fn hypers_automatic_refusals_become_json_errors() {
        for (written, status, rule) in [
            (AUTOMATIC_414, 414, "max_length"),
            (
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 14:00:38 GMT\r\n\r\n",
                431,
                "max_size",
            ),
            (
                b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Thu, 03 Dec 2026 14:00:38 GMT\r\n\r\n",
                400,
                "http_syntax",
            ),
        ] {
            let answer = rewritten(written).expect("an automatic refusal is rewritten");
            let (head, body) = split(&answer);
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert!(head.contains("content-type: application/json\r\n"), "{head}");
            assert!(head.contains("connection: close\r\n"), "{head}");
            assert!(head.contains("date: Thu, 03 Dec 2026 14:00:38 GMT\r\n"), "{head}");
            assert_eq!(body["rule"], rule, "{body}");
            assert!(body["message"].as_str().unwrap().len() > 10, "{body}");
            assert!(body["error"].is_string() && body.get("field").is_some(), "{body}");
        }
    }

    #[test]
    fn nothing_else_is_touched() {
        for written in [
            // The API's own errors carry a body and a content-type.
            &b"HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"[..],
            // Kept-alive answers, other statuses, bodies, and anything with bytes after the head.
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\nX",
            b"{\"events\":[]}",
            b"",
        ] {
            assert_eq!(rewritten(written), None, "{}", String::from_utf8_lossy(written));
        }
    }

    /// Through a real stream pair, with a reader that takes few bytes at a time: the whole
    /// rewritten answer arrives, and other writes pass unchanged.
    #[tokio::test]
    async fn the_rewritten_answer_is_written_whole() {
        let (client, server) = tokio::io::duplex(7);
        let mut server = JsonRefusals::new(server);
        let writer = tokio::spawn(async move {
            server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
            server.write_all(AUTOMATIC_414).await.unwrap();
            server.shutdown().await.unwrap();
        });
        let mut client = client;
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        writer.await.unwrap();
        let rest = received
            .strip_prefix(&b"HTTP/1.1 200 OK\r\n"[..])
            .expect("an ordinary write passes unchanged");
        let (head, body) = split(rest);
        assert!(head.starts_with("HTTP/1.1 414 "), "{head}");
        assert_eq!(body["error"], "uri_too_long");
    }
}
