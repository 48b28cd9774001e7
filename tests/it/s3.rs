//! A real S3-protocol server for the tests (moto, started here on 127.0.0.1 on a free port;
//! installed by `scripts/setup-test-s3.sh`); the fault-injecting proxy in front of it comes
//! from `ingestor-s3kit`.

use std::net::TcpListener as StdListener;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// The fault-injecting proxy lives in `ingestor-s3kit`, where the benches use it too.
pub use ingestor_s3kit::{Fault, FaultProxy};
