//! The Delta table itself: where it is, opening or creating it with the transform's
//! schema, and the check that an existing table has exactly that schema.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake_core::kernel::schema::cast::normalize_for_delta;
use deltalake_core::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
};
use deltalake_core::{DeltaTable, DeltaTableBuilder, DeltaTableError, StructType, TableProperty};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tokio::sync::Mutex;
use url::Url;

use crate::sink::parquet::{LakeOptions, PARTITION_COLUMN, check_day_source};

/// The partition column of the table: the UTC day of the output's `timestamp`.
pub const DATE_COLUMN: &str = "date";

/// How long the table keeps an object's `txn` entry (its idempotency key): a run that
/// died between its Delta commit and its job's completion is retried within minutes
/// (a lease), far within this, and a run pending for more than a day replaces the object's
/// rows instead of trusting the key (sql/jobs/delta_prepare.sql). Older entries leave
/// checkpoints, which therefore hold the objects of two days, not of the table's life
/// (docs/delta.md).
pub const TXN_RETENTION: &str = "interval 2 days";

/// Errors of the Delta sink; each names the table.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    #[error("delta sink: {0}")]
    Config(String),
    #[error("delta table {table}: {source}")]
    Table {
        table: String,
        #[source]
        source: DeltaTableError,
    },
    #[error(
        "delta table {table} has another schema than the transform's output ({difference}); \
         write to a new table, or change the transform to match"
    )]
    Schema { table: String, difference: String },
    #[error("delta table {table}: the writer stopped: {cause}")]
    Stopped { table: String, cause: String },
}

/// A configured Delta sink: the table, opened (and created on first use).
pub struct DeltaSink {
    /// The table as given (`s3://bucket/prefix` or a folder), for logs and errors.
    display: String,
    /// The table, refreshed before each run checks or commits.
    table: Mutex<DeltaTable>,
    /// The transform's output: the table's columns but `date`.
    pub schema: SchemaRef,
    pub options: LakeOptions,
}

impl std::fmt::Debug for DeltaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaSink")
            .field("table", &self.display)
            .finish()
    }
}

impl DeltaSink {
    /// Opens the table at `url` (`s3://bucket/prefix`, `file:///path` or a path), creating
    /// it with `schema` plus the `date` partition column if there is none; an existing
    /// table with another schema is refused, naming the difference.
    pub async fn open(
        url: &str,
        schema: SchemaRef,
        options: LakeOptions,
        s3_timeout_secs: Option<u64>,
    ) -> Result<Self, DeltaError> {
        check_partition_source(&schema)?;
        if ZstdLevel::try_new(options.zstd_level).is_err() {
            return Err(DeltaError::Config(format!(
                "ZSTD level {} is out of range (1-22)",
                options.zstd_level
            )));
        }
        let display = url.trim_end_matches('/').to_string();
        let mut table = open_table(url, s3_timeout_secs)?;
        let err = |source| DeltaError::Table {
            table: display.clone(),
            source,
        };
        match table.load().await {
            Ok(()) => {}
            Err(DeltaTableError::NotATable(_)) => match create(table, &schema).await {
                Ok(created) => table = created,
                Err(first) => {
                    // Another worker created the table at the same moment: use theirs.
                    table = open_table(url, s3_timeout_secs)?;
                    if table.load().await.is_err() {
                        return Err(err(first));
                    }
                }
            },
            Err(e) => return Err(err(e)),
        }
        let sink = Self {
            display,
            table: Mutex::new(table),
            schema,
            options,
        };
        sink.check_schema().await?;
        Ok(sink)
    }

    /// How logs, errors and jobs name the table.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The table, refreshed to its latest version.
    pub async fn latest(&self) -> Result<DeltaTable, DeltaError> {
        let mut table = self.table.lock().await;
        table
            .update_state()
            .await
            .map_err(|source| DeltaError::Table {
                table: self.display.clone(),
                source,
            })?;
        Ok(table.clone())
    }

    /// The Parquet writer properties of the table's files (shared with the Parquet sink:
    /// ZSTD level, row group limits).
    pub fn properties(&self) -> WriterProperties {
        let level = ZstdLevel::try_new(self.options.zstd_level).expect("checked by open");
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(self.options.row_group_rows.max(1)))
            .set_max_row_group_bytes(Some(self.options.row_group_bytes.max(1)))
            .build()
    }

    /// The schema the table must have: the transform's output and the `date` column.
    pub fn table_schema(&self) -> SchemaRef {
        with_date(&self.schema)
    }

    async fn check_schema(&self) -> Result<(), DeltaError> {
        let table = self.table.lock().await;
        let state = table.snapshot().map_err(|source| DeltaError::Table {
            table: self.display.clone(),
            source,
        })?;
        let found = state.snapshot().schema();
        let wanted = kernel_schema(&self.table_schema()).map_err(|source| DeltaError::Table {
            table: self.display.clone(),
            source,
        })?;
        if let Some(difference) = difference(&wanted, &found) {
            return Err(DeltaError::Schema {
                table: self.display.clone(),
                difference,
            });
        }
        let partitions: Vec<String> = state
            .metadata()
            .partition_columns()
            .iter()
            .map(|c| c.to_string())
            .collect();
        if partitions != [DATE_COLUMN] {
            return Err(DeltaError::Schema {
                table: self.display.clone(),
                difference: format!(
                    "it is partitioned by {partitions:?}, the sink writes by [\"{DATE_COLUMN}\"]"
                ),
            });
        }
        Ok(())
    }
}

/// The table at `url`, not loaded yet. S3 tables use this process's S3 settings (the
/// same as the input's) and commit with conditional puts (`If-None-Match`), which S3 and
/// most S3-compatible servers honour; no lock service is needed.
pub fn open_table(url: &str, s3_timeout_secs: Option<u64>) -> Result<DeltaTable, DeltaError> {
    let config = |e: String| DeltaError::Config(format!("{url}: {e}"));
    let builder = if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, _) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(config("no bucket".into()));
        }
        register_s3();
        let store = crate::source::store::s3_store(bucket, s3_timeout_secs)
            .map_err(|e| config(format!("{e:#}")))?;
        let location = Url::parse(&format!("{}/", url.trim_end_matches('/')))
            .map_err(|e| config(e.to_string()))?;
        DeltaTableBuilder::from_url(location.clone())
            .map_err(|e| config(e.to_string()))?
            .with_storage_backend(store, location)
    } else {
        let path = url.strip_prefix("file://").unwrap_or(url);
        if path.is_empty() {
            return Err(config("needs a folder or s3:// URL".into()));
        }
        std::fs::create_dir_all(path)
            .map_err(|e| config(format!("cannot create the table folder: {e}")))?;
        let absolute = std::fs::canonicalize(path)
            .map_err(|e| config(format!("cannot resolve the table folder: {e}")))?;
        let location = Url::from_directory_path(&absolute)
            .map_err(|()| config("not an absolute folder".into()))?;
        DeltaTableBuilder::from_url(location).map_err(|e| config(e.to_string()))?
    };
    builder.build().map_err(|e| config(e.to_string()))
}

/// Creates the table with `schema` plus `date`, partitioned by `date`. Another worker
/// creating it at the same moment is fine: the loser loads the winner's table.
async fn create(table: DeltaTable, schema: &SchemaRef) -> Result<DeltaTable, DeltaTableError> {
    let fields = kernel_schema(&with_date(schema))?;
    table
        .create()
        .with_columns(fields.fields().cloned())
        .with_partition_columns([DATE_COLUMN])
        .with_configuration_property(
            TableProperty::SetTransactionRetentionDuration,
            Some(TXN_RETENTION),
        )
        .with_comment("written by ingestor")
        .await
}

/// `schema` and the `date` partition column.
pub fn with_date(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(DATE_COLUMN, DataType::Date32, true));
    Arc::new(Schema::new(fields))
}

/// The Delta schema of an Arrow schema, as the writer normalizes it (views to plain
/// strings and binaries, and so on).
fn kernel_schema(schema: &SchemaRef) -> Result<StructType, DeltaTableError> {
    let normalized = normalize_for_delta(schema);
    Ok(normalized.try_into_kernel()?)
}

/// The first difference between the wanted and the found schema, said for a person.
fn difference(wanted: &StructType, found: &StructType) -> Option<String> {
    let mut out = Vec::new();
    for field in wanted.fields() {
        match found.field(field.name()) {
            None => out.push(format!(
                "column `{}` is missing from the table",
                field.name()
            )),
            Some(have) if have.data_type() != field.data_type() => out.push(format!(
                "column `{}` is {} in the table, {} in the transform",
                field.name(),
                have.data_type(),
                field.data_type()
            )),
            Some(_) => {}
        }
    }
    for field in found.fields() {
        if wanted.field(field.name()).is_none() {
            out.push(format!(
                "the table has column `{}`, which the transform does not output",
                field.name()
            ));
        }
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// The `date` column is derived from the output's `timestamp`.
fn check_partition_source(schema: &SchemaRef) -> Result<(), DeltaError> {
    check_day_source(schema).map_err(|e| DeltaError::Config(format!("the table is {e}")))?;
    if schema.field_with_name(DATE_COLUMN).is_ok() {
        return Err(DeltaError::Config(format!(
            "the transform outputs a column `{DATE_COLUMN}`, which is the table's partition \
             column (the day of `{PARTITION_COLUMN}`): rename it"
        )));
    }
    Ok(())
}

/// Delta's plain log store for `s3://` tables: commits are conditional puts.
#[derive(Debug, Default)]
struct S3LogStoreFactory;

impl LogStoreFactory for S3LogStoreFactory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake_core::DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn register_s3() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        logstore_factories().insert(
            Url::parse("s3://").expect("a URL"),
            Arc::new(S3LogStoreFactory),
        );
    });
}
