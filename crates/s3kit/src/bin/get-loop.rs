//! A plain concurrent GET loop through object_store: lists a bucket (or a prefix), then
//! reads every object whole, N requests in flight. What reading the objects alone reaches:
//! the small-files bench compares ingestion from S3 with it.
//!
//!   get-loop --endpoint URL --bucket B [--prefix P] [--in-flight 64]
//!
//! Credentials and region come from the usual AWS_* variables (defaults suit a local test
//! server). Prints one JSON line: files, bytes, and the seconds listing and reading took.

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

fn usage() -> ! {
    eprintln!("usage: get-loop --endpoint URL --bucket B [--prefix P] [--in-flight N]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let (mut endpoint, mut bucket, mut prefix, mut in_flight) = (None, None, None, 64usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else { usage() };
        match flag.as_str() {
            "--endpoint" => endpoint = Some(value),
            "--bucket" => bucket = Some(value),
            "--prefix" => prefix = Some(value),
            "--in-flight" => in_flight = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let (Some(endpoint), Some(bucket)) = (endpoint, bucket) else {
        usage()
    };
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let store: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_bucket_name(&bucket)
            .with_region(env("AWS_REGION", "us-east-1"))
            .with_access_key_id(env("AWS_ACCESS_KEY_ID", "test"))
            .with_secret_access_key(env("AWS_SECRET_ACCESS_KEY", "test"))
            .build()
            .unwrap_or_else(|e| {
                eprintln!("get-loop: {e}");
                std::process::exit(1)
            }),
    );
    let started = Instant::now();
    let prefix = prefix.map(Path::from);
    let keys: Vec<Path> = store
        .list(prefix.as_ref())
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .unwrap_or_else(|e| {
            eprintln!("get-loop: cannot list {bucket}: {e}");
            std::process::exit(1)
        });
    let listed = started.elapsed();
    let bytes: u64 = futures::stream::iter(keys.iter())
        .map(|key| {
            let store = Arc::clone(&store);
            async move {
                let body = store.get(key).await?.bytes().await?;
                Ok::<_, object_store::Error>(body.len() as u64)
            }
        })
        .buffer_unordered(in_flight)
        .try_fold(0, |sum, n| async move { Ok(sum + n) })
        .await
        .unwrap_or_else(|e| {
            eprintln!("get-loop: {e}");
            std::process::exit(1)
        });
    let total = started.elapsed();
    println!(
        "{{\"files\":{},\"bytes\":{bytes},\"in_flight\":{in_flight},\"list_seconds\":{:.3},\"seconds\":{:.3}}}",
        keys.len(),
        listed.as_secs_f64(),
        total.as_secs_f64()
    );
}
