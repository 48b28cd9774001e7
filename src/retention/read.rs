//! A table's rows as Arrow batches, for the archive: each column read as the Arrow type the
//! Parquet sink writes for it (text, json, jsonb and uuid as strings; timestamps as
//! microseconds without a time zone, UTC; integers, floats, booleans and dates as they
//! are; any other type as its text).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::sink::postgres::quote_ident;

/// How a column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    /// Microseconds since the epoch (timestamptz, timestamp); infinities as NULL.
    Micros,
    /// Days since the epoch (date); infinities as NULL.
    Days,
}

impl Kind {
    fn of(typname: &str) -> Self {
        match typname {
            "int2" => Self::Int16,
            "int4" => Self::Int32,
            "int8" => Self::Int64,
            "float4" => Self::Float32,
            "float8" => Self::Float64,
            "bool" => Self::Bool,
            "timestamptz" | "timestamp" => Self::Micros,
            "date" => Self::Days,
            _ => Self::Text,
        }
    }

    fn arrow(self) -> DataType {
        match self {
            Self::Text => DataType::Utf8,
            Self::Int16 => DataType::Int16,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float32 => DataType::Float32,
            Self::Float64 => DataType::Float64,
            Self::Bool => DataType::Boolean,
            Self::Micros => DataType::Timestamp(TimeUnit::Microsecond, None),
            Self::Days => DataType::Date32,
        }
    }

    /// The select-list expression reading column `quoted` as this kind.
    fn select(self, quoted: &str) -> String {
        match self {
            Self::Text => format!("{quoted}::text"),
            Self::Micros => format!(
                "CASE WHEN isfinite({quoted}) THEN floor(extract(epoch FROM {quoted}) * 1000000)::int8 END"
            ),
            Self::Days => {
                format!("CASE WHEN isfinite({quoted}) THEN {quoted} - DATE '1970-01-01' END")
            }
            _ => quoted.to_string(),
        }
    }
}

/// The columns of a table, read for the archive.
#[derive(Debug, Clone)]
pub struct Columns {
    columns: Vec<(String, Kind)>,
    schema: SchemaRef,
}

impl Columns {
    /// `(name, pg_type.typname)` of each column, in order.
    pub fn new<'a>(columns: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let columns: Vec<(String, Kind)> = columns
            .into_iter()
            .map(|(name, typname)| (name.to_string(), Kind::of(typname)))
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, kind)| Field::new(name, kind.arrow(), true))
            .collect();
        Self {
            columns,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The query reading every row of `table` (quoted), in id order: the same rows give
    /// the same files.
    pub fn select(&self, table: &str, order_by: &str) -> String {
        let list: Vec<String> = self
            .columns
            .iter()
            .map(|(name, kind)| {
                let quoted = quote_ident(name);
                format!("{} AS {quoted}", kind.select(&quoted))
            })
            .collect();
        format!(
            "SELECT {} FROM ONLY {table} ORDER BY {}",
            list.join(", "),
            quote_ident(order_by)
        )
    }

    /// An empty batch builder.
    pub fn batcher(&self) -> Batcher {
        let builders = self
            .columns
            .iter()
            .map(|(_, kind)| match kind {
                Kind::Text => Builder::Text(StringBuilder::new()),
                Kind::Int16 => Builder::Int16(Int16Builder::new()),
                Kind::Int32 => Builder::Int32(Int32Builder::new()),
                Kind::Int64 => Builder::Int64(Int64Builder::new()),
                Kind::Float32 => Builder::Float32(Float32Builder::new()),
                Kind::Float64 => Builder::Float64(Float64Builder::new()),
                Kind::Bool => Builder::Bool(BooleanBuilder::new()),
                Kind::Micros => Builder::Micros(TimestampMicrosecondBuilder::new()),
                Kind::Days => Builder::Days(Date32Builder::new()),
            })
            .collect();
        Batcher {
            builders,
            schema: self.schema(),
            rows: 0,
        }
    }
}

enum Builder {
    Text(StringBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Micros(TimestampMicrosecondBuilder),
    Days(Date32Builder),
}

/// Rows gathered into one Arrow batch.
pub struct Batcher {
    builders: Vec<Builder>,
    schema: SchemaRef,
    rows: usize,
}

impl Batcher {
    /// Appends one row of the query [`Columns::select`] made.
    pub fn push(&mut self, row: &PgRow) -> sqlx::Result<()> {
        for (i, builder) in self.builders.iter_mut().enumerate() {
            match builder {
                Builder::Text(b) => b.append_option(row.try_get::<Option<&str>, _>(i)?),
                Builder::Int16(b) => b.append_option(row.try_get::<Option<i16>, _>(i)?),
                Builder::Int32(b) => b.append_option(row.try_get::<Option<i32>, _>(i)?),
                Builder::Int64(b) => b.append_option(row.try_get::<Option<i64>, _>(i)?),
                Builder::Float32(b) => b.append_option(row.try_get::<Option<f32>, _>(i)?),
                Builder::Float64(b) => b.append_option(row.try_get::<Option<f64>, _>(i)?),
                Builder::Bool(b) => b.append_option(row.try_get::<Option<bool>, _>(i)?),
                Builder::Micros(b) => b.append_option(row.try_get::<Option<i64>, _>(i)?),
                Builder::Days(b) => b.append_option(row.try_get::<Option<i32>, _>(i)?),
            }
        }
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rows so far as a batch; the builders start empty again.
    pub fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|builder| -> ArrayRef {
                match builder {
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Int16(b) => Arc::new(b.finish()),
                    Builder::Int32(b) => Arc::new(b.finish()),
                    Builder::Int64(b) => Arc::new(b.finish()),
                    Builder::Float32(b) => Arc::new(b.finish()),
                    Builder::Float64(b) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::Micros(b) => Arc::new(b.finish()),
                    Builder::Days(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.rows = 0;
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_read_as_the_lake_writes_them() {
        let columns = Columns::new([
            ("id", "uuid"),
            ("timestamp", "timestamptz"),
            ("raw_data", "jsonb"),
            ("pid", "int4"),
            ("amount", "numeric"),
        ]);
        let types: Vec<DataType> = columns
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [
                DataType::Utf8,
                DataType::Timestamp(TimeUnit::Microsecond, None),
                DataType::Utf8,
                DataType::Int32,
                DataType::Utf8
            ]
        );
        let sql = columns.select("\"public\".\"logs_p20241105\"", "id");
        assert!(
            sql.starts_with("SELECT \"id\"::text AS \"id\", CASE WHEN isfinite(\"timestamp\")")
        );
        assert!(sql.ends_with("FROM ONLY \"public\".\"logs_p20241105\" ORDER BY \"id\""));
    }
}
