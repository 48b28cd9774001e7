//! The lake itself: where it is, how its files are named and written, and the errors of
//! writing to it.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::transform::object_hash;

/// The column whose UTC day partitions the lake.
pub const PARTITION_COLUMN: &str = "timestamp";

/// The partition of rows whose timestamp is NULL (Hive's convention).
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Errors of the Parquet sink; each names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("parquet sink: {0}")]
    Config(String),
    #[error("cannot write Parquet file {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("parquet sink: {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parquet sink: {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot split rows by day: {0}")]
    Partition(#[from] arrow::error::ArrowError),
    #[error("the Parquet writer stopped")]
    Stopped,
}

/// Where the lake is.
#[derive(Debug, Clone)]
pub enum LakeLocation {
    /// A local folder: files are renamed into place.
    Local(PathBuf),
    /// An object store (S3): files are uploaded when complete.
    Store {
        url: String,
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

/// Writer settings, chosen by measurement (README, "Parquet").
#[derive(Debug, Clone, Copy)]
pub struct LakeOptions {
    /// Rows per row group at most. Default 131,072.
    pub row_group_rows: usize,
    /// Encoded bytes per row group at most (bounds the writer's memory). Default 64 MiB.
    pub row_group_bytes: usize,
    /// ZSTD level. Default 3.
    pub zstd_level: i32,
    /// Day writers open at once per source object (each holds a descriptor and its file's
    /// footer metadata). Default [`OPEN_DAYS`].
    pub open_days: usize,
}

/// Day writers open at once per source object by default: more than the days a log file
/// usually spans, few enough that descriptors and memory stay small at any concurrency.
pub const OPEN_DAYS: usize = 32;

impl Default for LakeOptions {
    fn default() -> Self {
        Self {
            row_group_rows: 128 * 1024,
            row_group_bytes: 64 << 20,
            zstd_level: 3,
            open_days: OPEN_DAYS,
        }
    }
}

/// A configured Parquet sink.
#[derive(Debug, Clone)]
pub struct Lake {
    pub location: LakeLocation,
    pub options: LakeOptions,
    /// The transform's output schema: the schema of every file.
    pub schema: SchemaRef,
    /// Where unfinished files are written.
    pub spool: PathBuf,
}

impl Lake {
    /// A sink for `location` writing `schema`; checks that the schema has a
    /// [`PARTITION_COLUMN`] of a timestamp or date type.
    pub fn new(
        location: LakeLocation,
        options: LakeOptions,
        schema: SchemaRef,
    ) -> Result<Self, LakeError> {
        check_day_source(&schema).map_err(|e| LakeError::Config(format!("the lake is {e}")))?;
        if ZstdLevel::try_new(options.zstd_level).is_err() {
            return Err(LakeError::Config(format!(
                "ZSTD level {} is out of range (1-22)",
                options.zstd_level
            )));
        }
        let spool = match &location {
            LakeLocation::Local(root) => root.join("_ingestor_tmp"),
            LakeLocation::Store { url, .. } => std::env::temp_dir()
                .join("ingestor-spool")
                .join(format!("{:016x}", object_hash("lake", url))),
        };
        std::fs::create_dir_all(&spool).map_err(|source| LakeError::Io {
            path: spool.display().to_string(),
            source,
        })?;
        Ok(Self {
            location,
            options,
            schema,
            spool,
        })
    }

    /// How logs and errors name the lake.
    pub fn display(&self) -> String {
        match &self.location {
            LakeLocation::Local(root) => root.display().to_string(),
            LakeLocation::Store { url, .. } => url.clone(),
        }
    }

    /// The Parquet writer properties of a file made from `source`.
    pub fn properties(&self, source: &str) -> WriterProperties {
        let level = ZstdLevel::try_new(self.options.zstd_level).expect("checked by Lake::new");
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(self.options.row_group_rows.max(1)))
            .set_max_row_group_bytes(Some(self.options.row_group_bytes.max(1)))
            .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
                "ingestor.source".into(),
                source.to_string(),
            )]))
            .build()
    }

    /// The store path of `relative` (for [`LakeLocation::Store`]).
    pub(super) fn object_path(prefix: &str, relative: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(relative)
        } else {
            ObjectPath::from(format!("{prefix}/{relative}"))
        }
    }
}

/// Checks that `schema` has the column whose UTC day partitions a lake ([`PARTITION_COLUMN`],
/// a timestamp or a date); the error says why not, to follow "the lake is" or "the table is".
pub fn check_day_source(schema: &SchemaRef) -> Result<(), String> {
    match schema
        .field_with_name(PARTITION_COLUMN)
        .map(|f| f.data_type())
    {
        Ok(DataType::Timestamp(..) | DataType::Date32 | DataType::Date64) => Ok(()),
        Ok(other) => Err(format!(
            "partitioned by the day of column `{PARTITION_COLUMN}`, which the transform \
             outputs as {other}, not a timestamp"
        )),
        Err(_) => Err(format!(
            "partitioned by the day of column `{PARTITION_COLUMN}`, which the transform does \
             not output"
        )),
    }
}

/// The stem of every Parquet file made from one source object: its file name without the
/// usual log extensions, then a stable hash of bucket and key (two objects with the same
/// file name in different folders never share a name).
pub fn stem(bucket: &str, key: &str) -> String {
    let mut name = key.rsplit('/').next().unwrap_or(key);
    for extension in [
        ".gz", ".zst", ".bz2", ".xz", ".json", ".jsonl", ".ndjson", ".log", ".parquet",
    ] {
        name = name.strip_suffix(extension).unwrap_or(name);
    }
    let name: String = name
        .chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .take(80)
        .collect();
    format!("{name}-{:016x}", object_hash(bucket, key))
}

/// `date=DAY/STEM.parquet` (`date=DAY/STEM-PART.parquet` for parts after the first): a
/// file's path relative to the lake's root.
pub fn relative_path(day: &str, stem: &str, part: u32) -> String {
    match part {
        0 => format!("date={day}/{stem}.parquet"),
        part => format!("date={day}/{stem}-{part}.parquet"),
    }
}

/// Parses `URL` of `--sink parquet=URL`: `s3://bucket/prefix`, `file:///path` or a path;
/// `s3_timeout_secs` bounds each S3 request (`--s3-timeout-secs`).
pub fn location(url: &str, s3_timeout_secs: Option<u64>) -> anyhow::Result<LakeLocation> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "--sink parquet={url}: no bucket");
        return Ok(LakeLocation::Store {
            url: url.trim_end_matches('/').to_string(),
            store: crate::source::store::s3_store(bucket, s3_timeout_secs)?,
            prefix: prefix.trim_matches('/').to_string(),
        });
    }
    let path = url.strip_prefix("file://").unwrap_or(url);
    anyhow::ensure!(
        !path.is_empty(),
        "--sink parquet=URL needs a folder or s3:// URL"
    );
    let root = PathBuf::from(path);
    std::fs::create_dir_all(&root)
        .map_err(|e| anyhow::anyhow!("cannot create the lake folder {}: {e}", root.display()))?;
    Ok(LakeLocation::Local(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_deterministic_and_tell_objects_apart() {
        let a = stem("logs", "2024/11/05/app-1.json.gz");
        assert_eq!(a, stem("logs", "2024/11/05/app-1.json.gz"));
        assert!(a.starts_with("app-1-"), "{a}");
        assert_ne!(a, stem("logs", "2024/11/06/app-1.json.gz"));
        assert_ne!(a, stem("other", "2024/11/05/app-1.json.gz"));
        assert!(stem("b", "weird name?.json").starts_with("weird_name_-"));
        for compressed in ["app-1.ndjson.zst", "app-1.log.bz2", "app-1.json.xz"] {
            assert!(stem("b", compressed).starts_with("app-1-"), "{compressed}");
        }
        assert_eq!(
            relative_path("2024-11-05", "x", 0),
            "date=2024-11-05/x.parquet"
        );
        assert_eq!(
            relative_path("2024-11-05", "x", 2),
            "date=2024-11-05/x-2.parquet"
        );
    }
}
