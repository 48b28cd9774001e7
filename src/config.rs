//! Resolved configuration: turns what the user typed into live objects (the database pool,
//! object stores, the checked sink). Nothing else reads environment variables but the S3
//! store builder ([`crate::source::store`]), which it calls.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::cli::{ArchiveArg, PipelineArgs, SinkArg};
use crate::limit::Limits;
use crate::pipeline::{Ingest, Settings};
use crate::retention::{Archive, Columns};
use crate::sink::TargetTable;
use crate::sink::delta::DeltaSink;
use crate::sink::parquet::{self as lake, Lake, LakeOptions};
use crate::sink::postgres::partitions::DayPartitions;
use crate::source::listing::Listing;
use crate::transform::{PlanCache, Transform, TransformSql};

pub use crate::jobs::MIGRATOR;
pub use crate::source::store::{s3_listing, s3_store, sqs_client};

/// Connects to the database and applies pending migrations.
pub async fn connect(database_url: Option<&str>, max_connections: u32) -> anyhow::Result<PgPool> {
    connect_with(database_url, max_connections, &[], Duration::from_secs(10)).await
}

/// The pool of `retention`: its sessions give up waiting for a lock after `lock_timeout`
/// (each statement is then tried again), so a detach or a drop never queues for long.
pub async fn connect_retention(
    database_url: Option<&str>,
    lock_timeout: Duration,
) -> anyhow::Result<PgPool> {
    let ms = lock_timeout.as_millis().max(1).to_string();
    connect_with(
        database_url,
        2,
        &[("lock_timeout", ms)],
        Duration::from_secs(10),
    )
    .await
}

/// The pool of a command that ingests (`run`, `ingest-file`): its sessions end a
/// transaction left idle for twice the lease (`idle_in_transaction_session_timeout`), so a
/// frozen worker cannot hold a row lock forever; past its lease it has lost the file anyway.
/// A connection is waited for at most `reconnect_secs` (1-10 s), so that the reconnect
/// bound is kept.
pub async fn connect_worker(
    database_url: Option<&str>,
    max_connections: u32,
    lease_secs: f64,
    reconnect_secs: f64,
) -> anyhow::Result<PgPool> {
    let acquire = Duration::from_secs_f64(reconnect_secs.clamp(1.0, 10.0));
    let idle = idle_timeout(lease_secs).as_millis().to_string();
    connect_with(
        database_url,
        max_connections,
        &[("idle_in_transaction_session_timeout", idle)],
        acquire,
    )
    .await
}

/// `idle_in_transaction_session_timeout` for a lease of `lease_secs`: twice the lease,
/// at least a second.
pub fn idle_timeout(lease_secs: f64) -> Duration {
    Duration::from_secs_f64((2.0 * lease_secs).max(1.0))
}

/// A pool whose sessions have the `settings` (PostgreSQL parameters, e.g.
/// `idle_in_transaction_session_timeout` in milliseconds).
async fn connect_with(
    database_url: Option<&str>,
    max_connections: u32,
    settings: &[(&str, String)],
    acquire_timeout: Duration,
) -> anyhow::Result<PgPool> {
    let Some(url) = database_url else {
        bail!("no database: set DATABASE_URL or pass --database-url");
    };
    let mut options = PgConnectOptions::from_str(url)
        .with_context(|| format!("invalid database URL {}", redact_url(url)))?;
    if !settings.is_empty() {
        options = options.options(settings.iter().map(|(k, v)| (*k, v.as_str())));
    }
    if let Some(local) = local_socket(&options, &SocketChoice::from_env()?) {
        match <sqlx::PgConnection as sqlx::Connection>::connect_with(&local).await {
            Ok(probe) => {
                let _ = sqlx::Connection::close(probe).await;
                tracing::debug!(socket = %local.get_socket().map(|p| p.display().to_string()).unwrap_or_default(), "database on this host: connected through its Unix socket");
                options = local;
            }
            // Another authentication method on the socket (peer, say): TCP as asked.
            Err(e) => tracing::debug!(error = %e, "the database's Unix socket refused; using TCP"),
        }
    }
    // One direct connection first: an unreachable or misconfigured database fails at once
    // with the server's own message, instead of after the pool's acquire timeout.
    let probe = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options)
        .await
        .with_context(|| format!("cannot connect to the database at {}", redact_url(url)))?;
    let _ = sqlx::Connection::close(probe).await;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to the database at {}", redact_url(url)))?;
    MIGRATOR
        .run(&pool)
        .await
        .context("cannot apply the database migrations")?;
    Ok(pool)
}

/// How bucket `bucket` is listed and read, and how logs name it: the folder
/// `local_buckets/bucket` (listed by our own walk, which follows no symlink unless
/// `follow_symlinks`, and read through object_store's local store) or the S3 bucket.
pub fn bucket_listing(
    bucket: &str,
    local_buckets: Option<&std::path::Path>,
    follow_symlinks: bool,
    s3_timeout_secs: Option<u64>,
) -> anyhow::Result<(Listing, String)> {
    match local_buckets {
        Some(root) => {
            let folder = root.join(bucket);
            let folder = folder
                .canonicalize()
                .with_context(|| format!("bucket folder {} does not exist", folder.display()))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(&folder)?;
            let display = folder.display().to_string();
            let listing = Listing::Local {
                root: folder,
                follow_symlinks,
                store: Arc::new(store),
            };
            Ok((listing, display))
        }
        None => Ok((
            s3_listing(bucket, s3_timeout_secs)?,
            format!("s3://{bucket}"),
        )),
    }
}

/// Whether a database on this host is reached through its Unix socket
/// (`INGESTOR_DATABASE_SOCKET`: `auto`, the default, or `off`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketChoice {
    /// When the URL names a loopback host and asks for no TLS, and a PostgreSQL socket
    /// for its port exists in one of these folders.
    Auto(Vec<PathBuf>),
    Off,
}

/// Where PostgreSQL puts its socket on Debian, Red Hat and from source.
const SOCKET_DIRS: [&str; 3] = ["/var/run/postgresql", "/run/postgresql", "/tmp"];

impl SocketChoice {
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("INGESTOR_DATABASE_SOCKET").as_deref() {
            Err(_) | Ok("" | "auto") => {
                Ok(Self::Auto(SOCKET_DIRS.iter().map(PathBuf::from).collect()))
            }
            Ok("off") => Ok(Self::Off),
            Ok(other) => bail!("INGESTOR_DATABASE_SOCKET must be auto or off, not {other:?}"),
        }
    }
}

/// The same database through its Unix socket, when `options` reach it over loopback TCP
/// and `choice` allows it: no TCP means no Nagle stalls (sqlx 0.9.0 does not set
/// `TCP_NODELAY`; a COPY's last small write waited ~40 ms for the server's delayed ACK)
/// and no TCP stack on either side. None when the URL names a socket or another host,
/// asks for TLS, or no socket file exists.
pub fn local_socket(options: &PgConnectOptions, choice: &SocketChoice) -> Option<PgConnectOptions> {
    let SocketChoice::Auto(dirs) = choice else {
        return None;
    };
    let loopback = matches!(
        options.get_host(),
        "127.0.0.1" | "localhost" | "::1" | "[::1]"
    );
    let plain = matches!(
        options.get_ssl_mode(),
        sqlx::postgres::PgSslMode::Disable | sqlx::postgres::PgSslMode::Prefer
    );
    if options.get_socket().is_some() || !loopback || !plain {
        return None;
    }
    let file = format!(".s.PGSQL.{}", options.get_port());
    let dir = dirs.iter().find(|dir| dir.join(&file).exists())?;
    Some(options.clone().socket(dir))
}

/// The URL with any password replaced, for messages: in the user information
/// (`user:secret@host`) and in query parameters (`?password=secret`, `sslpassword=`).
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            _ => base.to_string(),
        },
        None => base.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                    format!("{key}=***")
                }
                _ => param.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Resolves the transform and the target table, checking one against the other before any
/// file is read.
pub async fn ingest(pool: PgPool, args: &PipelineArgs) -> anyhow::Result<Ingest> {
    let transform = match &args.transform {
        Some(path) => TransformSql::from_file(path)?,
        None => TransformSql::builtin(),
    };
    let mut settings = Settings {
        // A chunk is cut at batch boundaries: a batch never spans two chunks.
        batch_records: args.batch_records.min(args.chunk_records) as usize,
        chunk_records: args.chunk_records as usize,
        chunk_bytes: args.chunk_mib as usize * (1 << 20),
        lease: Duration::from_secs_f64(args.lease_secs.max(0.5)),
        group_files: args.group_files as usize,
        ..Settings::default()
    };
    let lake_urls: Vec<&str> = args
        .sinks
        .iter()
        .filter_map(|s| match s {
            SinkArg::Parquet(url) => Some(url.as_str()),
            SinkArg::Postgres | SinkArg::Delta(_) => None,
        })
        .collect();
    let delta_urls: Vec<&str> = args
        .sinks
        .iter()
        .filter_map(|s| match s {
            SinkArg::Delta(url) => Some(url.as_str()),
            SinkArg::Postgres | SinkArg::Parquet(_) => None,
        })
        .collect();
    anyhow::ensure!(
        lake_urls.len() + delta_urls.len() <= 1,
        "at most one lake: one --sink parquet=URL or one --sink delta=URL (beside postgres)"
    );
    if !lake_urls.is_empty() || !delta_urls.is_empty() {
        // A source object's Parquet output is published in one piece, so the file is one
        // transaction (still streamed: memory does not grow with it).
        settings.chunk_records = usize::MAX;
        settings.chunk_bytes = usize::MAX;
    }
    let planned = Transform::plan(&transform, settings.batch_records).await?;
    let postgres = if args.sinks.contains(&SinkArg::Postgres) {
        let table = TargetTable::load(&pool, &args.table).await?;
        let plan = table.plan(&planned.output_schema()).with_context(|| {
            format!(
                "transform {} does not fit table {}",
                transform.origin, args.table
            )
        })?;
        Some(plan)
    } else {
        None
    };
    let lake_options = LakeOptions {
        row_group_rows: args.parquet_row_group_rows as usize,
        row_group_bytes: args.parquet_row_group_mib as usize * (1 << 20),
        zstd_level: args.parquet_zstd_level,
        ..LakeOptions::default()
    };
    let lake = match lake_urls.first() {
        Some(url) => {
            let lake = Lake::new(
                lake::location(url, args.s3_timeout_secs)?,
                lake_options,
                planned.output_schema(),
            )
            .with_context(|| format!("transform {} and --sink parquet={url}", transform.origin))?;
            Some(Arc::new(lake))
        }
        None => None,
    };
    let delta = match delta_urls.first() {
        Some(url) => {
            let sink = DeltaSink::open(
                url,
                planned.output_schema(),
                lake_options,
                args.s3_timeout_secs,
            )
            .await
            .with_context(|| format!("transform {} and --sink delta={url}", transform.origin))?;
            Some(Arc::new(sink))
        }
        None => None,
    };
    anyhow::ensure!(
        postgres.is_some() || lake.is_some() || delta.is_some(),
        "no sink: give --sink postgres and/or --sink parquet=URL or delta=URL"
    );
    let partitions = match postgres.as_ref().and_then(|p| p.day_column.map(|_| p)) {
        Some(plan) => Some(day_partitions(&pool, &plan.table).await),
        None => None,
    };
    let limits = Limits::new(args.max_records_per_sec, args.max_bytes_per_sec);
    let kind = planned.kind().clone();
    let one_row_each = planned.one_row_each();
    tracing::info!(transform = %transform.origin, plan = %kind, "transform planned");
    let plans = Arc::new(PlanCache::new(transform.clone(), settings.batch_records));
    plans.give_back(planned);
    Ok(Ingest {
        pool,
        transform,
        postgres,
        lake,
        delta,
        partitions,
        settings,
        limits: Arc::new(limits),
        kind,
        one_row_each,
        plans,
    })
}

/// The day partitions of `table` (partitioned by day), with today's and the next days'
/// created now. A failure there is only logged: every chunk creates the days it needs.
async fn day_partitions(pool: &PgPool, table: &TargetTable) -> Arc<DayPartitions> {
    let days = Arc::new(DayPartitions::new(pool, table.layout.clone()));
    let today = chrono::Utc::now().date_naive();
    if let Err(e) = days.prepare(today).await {
        tracing::warn!(error = %e, "cannot create the days ahead; each chunk creates the days it needs");
    }
    days
}

/// The archive of `retention --archive` for rows of `table`: a Parquet lake, or a Delta
/// table of the table's columns (created on first use, refused if its schema differs).
pub async fn archive(
    arg: &ArchiveArg,
    table: &TargetTable,
    s3_timeout_secs: Option<u64>,
) -> anyhow::Result<Archive> {
    let columns = Columns::new(
        table
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.typname.as_str())),
    );
    match arg {
        ArchiveArg::Parquet(url) => {
            let lake = Lake::new(
                lake::location(url, s3_timeout_secs)?,
                LakeOptions::default(),
                columns.schema(),
            )
            .with_context(|| format!("--archive parquet={url} for table {}", table.name))?;
            Ok(Archive::Parquet(Arc::new(lake)))
        }
        ArchiveArg::Delta(url) => {
            let sink = DeltaSink::open(
                url,
                columns.schema(),
                LakeOptions::default(),
                s3_timeout_secs,
            )
            .await
            .with_context(|| format!("--archive delta={url} for table {}", table.name))?;
            Ok(Archive::Delta(Arc::new(sink)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=disable&password=secret&PassWord=x"),
            "postgres://u@h/db?sslmode=disable&password=***&PassWord=***"
        );
        assert_eq!(
            redact_url("postgres://u:secret@h/db?password=secret"),
            "postgres://u:***@h/db?password=***"
        );
    }
}
