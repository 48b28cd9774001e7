//! An HTTP/1.1 proxy on 127.0.0.1 in front of an S3-protocol server: it adds a fixed latency
//! to every request (a remote region, seen from a laptop), injects faults into the requests
//! a [`Decide`] picks, and counts requests by kind (GET, HEAD, LIST, PUT, ...).
//!
//! The counts are also served by the proxy itself: `GET /_proxy/counts` answers them as
//! JSON without forwarding, `POST /_proxy/reset` sets them to zero (for the benches, which
//! start the proxy as the `fault-proxy` program).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to a request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answers 503 Slow Down.
    ServiceUnavailable,
    /// Closes the connection without an answer.
    Drop,
    /// Forwards the request, then cuts the response off after its headers and a few bytes.
    CutResponse,
    /// Forwards the request, then cuts the response off after its headers and `n` bytes
    /// of its body (the connection is closed).
    CutAfter(usize),
    /// Forwards the response without its ETag header (a store without etags), its body
    /// cut off after `n` bytes if given.
    NoEtag(Option<usize>),
}

/// Decides the fault of each request from its head (`GET /bucket/key?... HTTP/1.1` and
/// the headers); None forwards it untouched.
pub type Decide = Arc<dyn Fn(&str) -> Option<Fault> + Send + Sync>;

/// The kind of an S3 request, from its method and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Get,
    Head,
    /// A GET of a bucket (no key): ListObjects.
    List,
    Put,
    Delete,
    Post,
    Other,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Get,
        Kind::Head,
        Kind::List,
        Kind::Put,
        Kind::Delete,
        Kind::Post,
        Kind::Other,
    ];

    /// The kind of the request whose first line is `line` (`GET /bucket/key?x HTTP/1.1`),
    /// for path-style addressing.
    pub fn of(line: &str) -> Kind {
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or("");
        let target = parts.next().unwrap_or("");
        let path = target.split('?').next().unwrap_or("");
        // `/bucket` or `/bucket/`: the bucket itself.
        let has_key = path
            .trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(_, key)| !key.is_empty());
        match method {
            "GET" if has_key => Kind::Get,
            "GET" => Kind::List,
            "HEAD" => Kind::Head,
            "PUT" => Kind::Put,
            "DELETE" => Kind::Delete,
            "POST" => Kind::Post,
            _ => Kind::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Get => "get",
            Kind::Head => "head",
            Kind::List => "list",
            Kind::Put => "put",
            Kind::Delete => "delete",
            Kind::Post => "post",
            Kind::Other => "other",
        }
    }
}

/// Requests seen, by kind, faults injected, and the most requests in flight at once.
#[derive(Default)]
pub struct Counts {
    by_kind: [AtomicU64; 7],
    faults: AtomicU64,
    in_flight: AtomicU64,
    peak: AtomicU64,
}

impl Counts {
    fn add(&self, kind: Kind) {
        let i = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(6);
        self.by_kind[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of `kind` so far.
    pub fn get(&self, kind: Kind) -> u64 {
        let i = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(6);
        self.by_kind[i].load(Ordering::Relaxed)
    }

    /// Faults injected so far.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// The most requests the proxy held at once (received, not yet answered).
    pub fn peak_in_flight(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn reset(&self) {
        for count in &self.by_kind {
            count.store(0, Ordering::Relaxed);
        }
        self.faults.store(0, Ordering::Relaxed);
        self.peak
            .store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// `{"get":N,"head":N,...,"faults":N,"peak_in_flight":N}`
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        for kind in Kind::ALL {
            out.push_str(&format!("\"{}\":{},", kind.name(), self.get(kind)));
        }
        out.push_str(&format!(
            "\"faults\":{},\"peak_in_flight\":{}}}",
            self.faults(),
            self.peak_in_flight()
        ));
        out
    }
}

/// A request being handled; counted out when dropped.
struct InFlight<'a>(&'a Counts);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a proxy behaves.
#[derive(Clone)]
pub struct Options {
    /// The S3-protocol server's port on 127.0.0.1.
    pub upstream: u16,
    /// Added before each request is forwarded.
    pub latency: Duration,
    /// The port to listen on (0: any free one).
    pub port: u16,
    pub decide: Decide,
}

impl Options {
    /// Forwards everything untouched, at once.
    pub fn new(upstream: u16) -> Self {
        Self {
            upstream,
            latency: Duration::ZERO,
            port: 0,
            decide: Arc::new(|_| None),
        }
    }
}

/// A running proxy; stops on drop.
pub struct FaultProxy {
    pub port: u16,
    /// Faults injected so far (the same as `counts.faults()`).
    pub injected: Arc<AtomicUsize>,
    pub counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy that injects `faults` into every `every`-th request, in turn.
    pub async fn start(upstream: u16, every: usize, faults: Vec<Fault>) -> Self {
        let seen = AtomicUsize::new(0);
        let decide = move |_: &str| {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            n.is_multiple_of(every)
                .then(|| faults[(n / every) % faults.len()])
        };
        Self::start_with(upstream, Arc::new(decide)).await
    }

    /// A proxy whose faults `decide` chooses request by request.
    pub async fn start_with(upstream: u16, decide: Decide) -> Self {
        Self::launch(Options {
            decide,
            ..Options::new(upstream)
        })
        .await
        .expect("cannot bind the proxy on 127.0.0.1")
    }

    /// Starts a proxy as `options` say.
    pub async fn launch(options: Options) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", options.port)).await?;
        let port = listener.local_addr()?.port();
        let injected = Arc::new(AtomicUsize::new(0));
        let counts = Arc::new(Counts::default());
        let shared = Arc::new(Shared {
            options,
            injected: Arc::clone(&injected),
            counts: Arc::clone(&counts),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = serve(client, &shared).await;
                });
            }
        });
        Ok(Self {
            port,
            injected,
            counts,
            task,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    options: Options,
    injected: Arc<AtomicUsize>,
    counts: Arc<Counts>,
}

/// Reads one HTTP request (headers and Content-Length body). None at end of stream.
async fn read_request(
    client: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        if let Some(end) = head_end(buffer) {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            let total = end + 4 + length;
            while buffer.len() < total {
                if !read_more(client, buffer).await? {
                    return Ok(None);
                }
            }
            let request: Vec<u8> = buffer.drain(..total).collect();
            return Ok(Some(request));
        }
        if !read_more(client, buffer).await? {
            return Ok(None);
        }
    }
}

async fn read_more(client: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 65536];
    let n = client.read(&mut chunk).await?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

/// Where the head of an HTTP message ends (the `\r\n\r\n`).
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Rewrites the request to close the upstream connection after its response.
fn with_connection_close(request: &[u8]) -> Vec<u8> {
    let end = head_end(request).unwrap_or(request.len());
    let head = String::from_utf8_lossy(&request[..end]);
    let mut out = String::new();
    for line in head.split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(request.get(end + 4..).unwrap_or_default());
    bytes
}

/// The response without its ETag header.
fn without_etag(response: &[u8]) -> Vec<u8> {
    let end = head_end(response).unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..end]);
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("etag:"))
        .collect();
    let mut out = kept.join("\r\n").into_bytes();
    out.extend_from_slice(&response[end..]);
    out
}

/// The response's headers and the first `n` bytes of its body.
fn cut_after(response: &[u8], n: usize) -> &[u8] {
    let body = head_end(response).map(|p| p + 4).unwrap_or(0);
    &response[..(body + n).min(response.len())]
}

/// Answers a request to the proxy itself (`/_proxy/...`); false when it is not one.
async fn answer_own(client: &mut TcpStream, line: &str, counts: &Counts) -> std::io::Result<bool> {
    let target = line.split(' ').nth(1).unwrap_or("");
    let body = match target {
        "/_proxy/counts" => counts.to_json(),
        "/_proxy/reset" => {
            counts.reset();
            counts.to_json()
        }
        _ => return Ok(false),
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    Ok(true)
}

async fn serve(mut client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let options = &shared.options;
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut client, &mut buffer).await? {
        let end = head_end(&request).unwrap_or(request.len());
        let head = String::from_utf8_lossy(&request[..end]).into_owned();
        let line = head.lines().next().unwrap_or("");
        if answer_own(&mut client, line, &shared.counts).await? {
            continue;
        }
        shared.counts.add(Kind::of(line));
        let _in_flight = shared.counts.enter();
        if !options.latency.is_zero() {
            tokio::time::sleep(options.latency).await;
        }
        let fault = (options.decide)(&head);
        if let Some(fault) = fault {
            shared.injected.fetch_add(1, Ordering::SeqCst);
            shared.counts.faults.fetch_add(1, Ordering::Relaxed);
            match fault {
                Fault::ServiceUnavailable => {
                    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                    let response = format!(
                        "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    client.write_all(response.as_bytes()).await?;
                    return Ok(());
                }
                Fault::Drop => return Ok(()),
                Fault::CutResponse | Fault::CutAfter(_) | Fault::NoEtag(_) => {}
            }
        }
        let mut up = TcpStream::connect(("127.0.0.1", options.upstream)).await?;
        let _ = up.set_nodelay(true);
        up.write_all(&with_connection_close(&request)).await?;
        let mut response = Vec::new();
        up.read_to_end(&mut response).await?;
        let cut = match fault {
            Some(Fault::CutResponse) => Some(100),
            Some(Fault::CutAfter(n)) => Some(n),
            Some(Fault::NoEtag(n)) => {
                response = without_etag(&response);
                n
            }
            _ => None,
        };
        if let Some(n) = cut {
            client.write_all(cut_after(&response, n)).await?;
            return Ok(());
        }
        let closes = String::from_utf8_lossy(&response[..response.len().min(2048)])
            .to_ascii_lowercase()
            .contains("connection: close");
        client.write_all(&response).await?;
        if closes {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn requests_are_sorted_by_kind() {
        assert_eq!(Kind::of("GET /logs/a/b.json.gz HTTP/1.1"), Kind::Get);
        assert_eq!(
            Kind::of("GET /logs?list-type=2&prefix=a HTTP/1.1"),
            Kind::List
        );
        assert_eq!(Kind::of("GET /logs/?list-type=2 HTTP/1.1"), Kind::List);
        assert_eq!(Kind::of("HEAD /logs/a HTTP/1.1"), Kind::Head);
        assert_eq!(Kind::of("PUT /logs/a HTTP/1.1"), Kind::Put);
        assert_eq!(Kind::of("POST /logs?delete HTTP/1.1"), Kind::Post);
    }
}
