//! The small HTTP server of `--metrics-addr`: `/metrics` (Prometheus text format),
//! `/healthz` and `/readyz` (see [`crate::health`]); any other path is 404.
//!
//! It is our own on purpose (no hyper): one request per connection, GET or HEAD only, a
//! request head of at most 8 KiB read within 5 seconds, then `Connection: close`. That is
//! what a Prometheus scrape and a Kubernetes probe send. Routing ([`respond`]) is a pure
//! function of the request head, tested without sockets.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::health::health;

/// The longest request head read; a longer one is answered 431.
const MAX_HEAD: usize = 8 << 10;

/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// HEAD: the headers only.
    pub head_only: bool,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            head_only: false,
        }
    }

    /// `Ok` as 200 "ok", a reason as 503 with the reason on one line.
    fn check(result: Result<(), String>) -> Self {
        match result {
            Ok(()) => Self::text(200, "ok\n"),
            Err(reason) => Self::text(503, format!("{}\n", one_line(&reason))),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        };
        let allow = if self.status == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len(),
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// A reason as one printable line.
fn one_line(text: &str) -> String {
    crate::text::printable(text.trim()).into_owned()
}

/// The response to a request whose head is `head` (its request line at least).
pub fn respond(head: &[u8], now: Instant) -> Response {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Response::text(400, "bad request\n");
    };
    if !version.starts_with("HTTP/") {
        return Response::text(400, "bad request\n");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Response::text(405, "only GET and HEAD\n"),
    };
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let mut response = match path {
        "/metrics" => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: crate::metrics::render(),
            head_only: false,
        },
        "/healthz" => Response::check(health().liveness()),
        "/readyz" => Response::check(health().readiness(now)),
        _ => Response::text(
            404,
            format!(
                "not found: {}; this address serves /metrics, /healthz and /readyz\n",
                one_line(path)
            ),
        ),
    };
    response.head_only = head_only;
    response
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until the process ends; returns
/// the address bound (a port of 0 picks a free one).
pub async fn serve(addr: &str) -> std::io::Result<std::net::SocketAddr> {
    crate::metrics::install();
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(answer(stream));
        }
    });
    Ok(local)
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream) {
    let response = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => respond(&head, Instant::now()),
        Ok(Ok(None)) => Response::text(431, "request head too large\n"),
        // A client that sent nothing in time, or went away.
        Ok(Err(_)) | Err(_) => return,
    };
    let _ = stream.write_all(&response.to_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The request head (up to its blank line, or what came before the client stopped
/// sending); None when it is longer than [`MAX_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(Some(head));
        }
        head.extend_from_slice(&buffer[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Response {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: kube-probe/1.31\r\n\r\n"
        );
        respond(head.as_bytes(), Instant::now())
    }

    #[test]
    fn metrics_are_served_on_their_path_only() {
        let metrics = get("/metrics");
        assert_eq!(metrics.status, 200);
        assert!(metrics.body.contains("# TYPE ingestor_files_total counter"));
        assert_eq!(get("/metrics?name=x").status, 200);
        for path in ["/", "/metrics/", "/favicon.ico", "/healthz/x", "/READYZ"] {
            let response = get(path);
            assert_eq!(response.status, 404, "{path}");
            assert!(response.body.contains("/metrics, /healthz and /readyz"));
        }
    }

    #[test]
    fn health_paths_answer_with_a_one_line_body() {
        // Whatever the process's state, the body is one line and the status 200 or 503.
        for path in ["/healthz", "/readyz"] {
            let response = get(path);
            assert!(
                [200, 503].contains(&response.status),
                "{path}: {response:?}"
            );
            assert_eq!(response.body.lines().count(), 1, "{response:?}");
            assert!(response.body.ends_with('\n'));
        }
    }

    #[test]
    fn head_has_no_body_and_other_methods_are_refused() {
        let head = respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", Instant::now());
        assert_eq!(head.status, 200);
        let bytes = String::from_utf8(head.to_bytes()).unwrap();
        assert!(bytes.ends_with("\r\n\r\n"), "{bytes}");
        assert!(bytes.contains(&format!("Content-Length: {}", head.body.len())));

        let post = respond(b"POST /metrics HTTP/1.1\r\n\r\n", Instant::now());
        assert_eq!(post.status, 405);
        assert!(
            String::from_utf8(post.to_bytes())
                .unwrap()
                .contains("Allow: GET, HEAD\r\n")
        );
        assert_eq!(respond(b"garbage\r\n\r\n", Instant::now()).status, 400);
        assert_eq!(respond(b"", Instant::now()).status, 400);
    }

    #[test]
    fn an_odd_path_is_shown_escaped() {
        let response = get("/\u{1b}[31m");
        assert_eq!(response.status, 404);
        assert!(!response.body.contains('\u{1b}'), "{:?}", response.body);
    }

    #[test]
    fn responses_say_their_status_and_length() {
        let bytes = String::from_utf8(Response::text(503, "shutting down\n").to_bytes()).unwrap();
        assert!(
            bytes.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{bytes}"
        );
        assert!(bytes.contains("Content-Length: 14\r\n"), "{bytes}");
        assert!(bytes.ends_with("\r\n\r\nshutting down\n"), "{bytes}");
    }
}
