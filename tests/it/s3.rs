//! A real S3-protocol server for the tests (moto, started here on 127.0.0.1 on a free port;
//! installed by `scripts/setup-test-s3.sh`), and a fault-injecting HTTP proxy in front of it.

use std::net::TcpListener as StdListener;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start listening on 127.0.0.1:{port}");
}

/// A moto S3 server, killed on drop.
pub struct S3Server {
    child: tokio::process::Child,
    pub port: u16,
}

impl S3Server {
    pub async fn start() -> Self {
        let moto = std::env::var("INGESTOR_TEST_MOTO").unwrap_or_else(|_| {
            format!(
                "{}/.cache/ingestor-s3/bin/moto_server",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        assert!(
            std::path::Path::new(&moto).exists(),
            "the S3 test server is missing at {moto}: run `bash scripts/setup-test-s3.sh` (or set INGESTOR_TEST_MOTO)"
        );
        let port = free_port();
        let child = tokio::process::Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {moto}: {e}"));
        wait_for_port(port, "moto_server").await;
        Self { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` and returns a store for it.
    pub async fn bucket(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let status = String::from_utf8_lossy(&response);
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "CreateBucket failed: {status}"
        );
        store(&self.endpoint(), bucket)
    }

    /// Environment for an `ingestor` process talking to `endpoint`.
    pub fn env(endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", endpoint.to_string()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

pub fn store(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap(),
    )
}

pub async fn put(store: &Arc<dyn ObjectStore>, key: &str, bytes: Vec<u8>) {
    store
        .put(&ObjectPath::from(key), PutPayload::from(bytes))
        .await
        .unwrap();
}

/// Puts `key` as given, byte for byte (object_store's `Path` refuses keys with `//`, `.`/`..`
/// segments or control characters; S3 and moto take them).
pub async fn put_raw(port: u16, bucket: &str, key: &str, bytes: &[u8]) {
    let mut path = String::new();
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_~".contains(&byte) {
            path.push(byte as char);
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "PUT /{bucket}/{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let status = String::from_utf8_lossy(&response);
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "PUT {key:?} failed: {status}"
    );
}

/// What the proxy does to the n-th request.
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

/// An HTTP proxy on 127.0.0.1 that injects `faults` into every `every`-th request, in turn.
pub struct FaultProxy {
    pub port: u16,
    pub injected: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let injected = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&injected);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (decide, counter) = (Arc::clone(&decide), Arc::clone(&counter));
                tokio::spawn(async move {
                    let _ = serve(client, upstream, decide.as_ref(), &counter).await;
                });
            }
        });
        Self {
            port,
            injected,
            task,
        }
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

/// Reads one HTTP request (headers and Content-Length body). None at end of stream.
async fn read_request(
    client: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
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
                let mut chunk = [0u8; 65536];
                let n = client.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(None);
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            let request: Vec<u8> = buffer.drain(..total).collect();
            return Ok(Some(request));
        }
        let mut chunk = [0u8; 65536];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// Rewrites the request to close the upstream connection after its response.
fn with_connection_close(request: &[u8]) -> Vec<u8> {
    let end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
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
    bytes.extend_from_slice(&request[end + 4..]);
    bytes
}

/// The response without its ETag header.
fn without_etag(response: &[u8]) -> Vec<u8> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
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
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(0);
    &response[..(head_end + n).min(response.len())]
}

async fn serve(
    mut client: TcpStream,
    upstream: u16,
    decide: &(dyn Fn(&str) -> Option<Fault> + Send + Sync),
    injected: &AtomicUsize,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut client, &mut buffer).await? {
        let head_end = request
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(request.len());
        let fault = decide(&String::from_utf8_lossy(&request[..head_end]));
        if let Some(fault) = fault {
            injected.fetch_add(1, Ordering::SeqCst);
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
        let mut up = TcpStream::connect(("127.0.0.1", upstream)).await?;
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
