//! End to end into PostgreSQL: generated gzipped JSON files -> `ingestor` pipeline -> `logs`,
//! timed per pass over the same files into an emptied table. Needs DATABASE_URL (a server
//! where a database `ingestor_bench_criterion` may be created).
//!
//! `cargo bench --bench e2e`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ingestor::app::{LOCAL_BUCKET, run_tasks};
use ingestor::cli::PipelineArgs;
use ingestor::pipeline::FileTask;
use ingestor::progress::FileCounts;
use ingestor::sample::{SampleConfig, write_sample_dir};
use ingestor::source::SourceRef;

/// Records per pass, in FILES files.
const RECORDS: u64 = 100_000;
const FILES: usize = 4;
const DATABASE: &str = "ingestor_bench_criterion";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
}

fn e2e(c: &mut Criterion) {
    let admin = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must point at PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/postgres)",
    );
    let url = format!(
        "{}/{DATABASE}",
        admin.rsplit_once('/').expect("a database URL").0
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = SampleConfig {
        records: RECORDS / FILES as u64,
        ..SampleConfig::default()
    };
    let stats = write_sample_dir(&config, dir.path(), FILES).unwrap();
    let args = Args::parse_from(["bench", "--concurrency", "2", "--quiet"]).pipeline;
    let ingest = runtime.block_on(async {
        let admin_pool = sqlx::PgPool::connect(&admin).await.unwrap();
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(DATABASE)
                .fetch_optional(&admin_pool)
                .await
                .unwrap();
        if exists.is_none() {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
                .execute(&admin_pool)
                .await
                .unwrap();
        }
        let pool = ingestor::config::connect(Some(&url), 8).await.unwrap();
        Arc::new(ingestor::config::ingest(pool, &args).await.unwrap())
    });
    let mut paths: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let tasks: Vec<FileTask> = paths
        .into_iter()
        .map(|path| {
            let key = path.to_string_lossy().into_owned();
            FileTask {
                bucket: LOCAL_BUCKET.into(),
                display: key.clone(),
                key,
                source: SourceRef::Local(path),
                size: None,
            }
        })
        .collect();

    let mut group = c.benchmark_group("e2e");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::ElementsAndBytes {
        elements: stats.records,
        bytes: stats.json_bytes,
    });
    group.bench_function("gz_json_to_logs", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                runtime.block_on(async {
                    sqlx::query("TRUNCATE logs, processed_files, rejected_records")
                        .execute(&ingest.pool)
                        .await
                        .unwrap();
                });
                let start = Instant::now();
                let summary = runtime
                    .block_on(run_tasks(
                        Arc::clone(&ingest),
                        tasks.clone(),
                        false,
                        2,
                        &FileCounts::default(),
                    ))
                    .unwrap();
                total += start.elapsed();
                assert_eq!(summary.records_ingested, stats.records);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, e2e);
criterion_main!(benches);
