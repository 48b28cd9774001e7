//! Parquet input: a lake written by ingestor (or any Parquet file with the records'
//! original JSON in a `raw_data` or `_raw` column) read back as the JSON records it was
//! made from, so that it goes through the same decode stage and any transform as a log
//! file does. Row `i` of the file is record `i` (checkpoints, rejects, ids).

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryFutureExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{
    AsyncFileReader, MetadataSuffixFetch, ParquetRecordBatchStreamBuilder,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use tokio::sync::mpsc::Sender;

use crate::decode::validate::validate;

use super::counting::ByteCounter;
use super::location::SourceRef;
use crate::events;
use crate::limit::Limits;

/// Columns that hold a record's original text, in order of preference.
pub const RAW_COLUMNS: [&str; 2] = ["raw_data", "_raw"];

/// Rows read from the file at once.
const BATCH_ROWS: usize = 4096;

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Streams the records of the Parquet file `source` into `out` as one JSON array. A value
/// that is not valid JSON is sent as a JSON string, so it is rejected on its own instead of
/// breaking the framing of the records after it. The JSON sent counts as bytes read (the
/// `--max-bytes-per-sec` limit and `ingestor_read_bytes_total`).
pub async fn read_parquet(
    source: &SourceRef,
    counter: &ByteCounter,
    limits: &Limits,
    out: &Sender<std::io::Result<Bytes>>,
) -> std::io::Result<()> {
    let reader: Box<dyn AsyncFileReader> = match source {
        SourceRef::Local(path) => Box::new(tokio::fs::File::open(path).await?),
        SourceRef::Object { store, path } => Box::new(ObjectReader {
            store: Arc::clone(store),
            path: path.clone(),
        }),
    };
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await
        .map_err(|e| invalid(format!("not a readable Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let Some(column) = RAW_COLUMNS.iter().find_map(|c| schema.index_of(c).ok()) else {
        let found: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(invalid(format!(
            "a Parquet input needs a column raw_data (or _raw) with each record's original \
             JSON; this file has: {}",
            found.join(", ")
        )));
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [column]);
    let mut batches = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| invalid(format!("cannot read Parquet: {e}")))?;
    if out.send(Ok(Bytes::from_static(b"["))).await.is_err() {
        return Ok(());
    }
    let mut first = true;
    while let Some(batch) = batches
        .try_next()
        .await
        .map_err(|e| invalid(format!("cannot read Parquet: {e}")))?
    {
        let values = batch.column(0);
        let mut json = Vec::with_capacity(values.get_buffer_memory_size() + values.len());
        for row in 0..values.len() {
            if !first {
                json.push(b',');
            }
            first = false;
            match text(values.as_ref(), row)? {
                None => json.extend_from_slice(b"null"),
                Some(value) if validate(value.as_bytes()).is_ok() => {
                    json.extend_from_slice(value.as_bytes())
                }
                Some(value) => {
                    json.extend_from_slice(serde_json::Value::from(value).to_string().as_bytes())
                }
            }
        }
        let read = json.len() as u64;
        counter.add(read);
        events::bytes_read(read);
        limits.take_bytes(read).await;
        if out.send(Ok(json.into())).await.is_err() {
            return Ok(());
        }
    }
    let _ = out.send(Ok(Bytes::from_static(b"]"))).await;
    Ok(())
}

/// The text of `row`, None when NULL.
fn text(values: &dyn Array, row: usize) -> std::io::Result<Option<&str>> {
    if values.is_null(row) {
        return Ok(None);
    }
    Ok(Some(match values.data_type() {
        DataType::Utf8 => values.as_string::<i32>().value(row),
        DataType::LargeUtf8 => values.as_string::<i64>().value(row),
        DataType::Utf8View => values.as_string_view().value(row),
        other => {
            return Err(invalid(format!(
                "the Parquet column with the original records is {other}, not text"
            )));
        }
    }))
}

/// Range reads of one object, for the Parquet reader (footer by a suffix request, then
/// the column chunks it needs).
struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
}

fn store_error(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.store
            .get_range(&self.path, range)
            .map_err(store_error)
            .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(store_error)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_via_suffix_and_finish(self)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl MetadataSuffixFetch for &mut ObjectReader {
    fn fetch_suffix(&mut self, suffix: usize) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let options = GetOptions {
            range: Some(GetRange::Suffix(suffix as u64)),
            ..Default::default()
        };
        async move {
            let result = self
                .store
                .get_opts(&self.path, options)
                .await
                .map_err(store_error)?;
            result.bytes().await.map_err(store_error)
        }
        .boxed()
    }
}
