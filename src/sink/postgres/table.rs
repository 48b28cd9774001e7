//! The target table as PostgreSQL describes it, and the check that a transform's output
//! can be written into it. The check runs before any file is read, so a typo in a
//! transform or a table costs nothing but an error message.

use std::fmt::Write as _;

use arrow::datatypes::Schema;
use sqlx::PgPool;

use super::encode::{CopyColumn, CopyEncoder};
use super::ident::quote_ident;
use super::partitions::{Kind, Layout};
use super::pgtype::PgType;

/// Errors found while checking the target table: configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("table {0} does not exist (run `ingestor migrate` for the built-in `logs`)")]
    NoTable(String),
    #[error(
        "the transform's output column \"{column}\" has no column in table {table} \
         (its columns: {available}); output names are case-sensitive: quote camelCase aliases, e.g. AS \"{column}\""
    )]
    MissingColumn {
        column: String,
        table: String,
        available: String,
    },
    #[error("column \"{column}\" of table {table} has type {pg_type}, which ingestor cannot write")]
    Unsupported {
        column: String,
        table: String,
        pg_type: String,
    },
    #[error(
        "the transform's output column \"{column}\" is {arrow_type}, which cannot be written into column \"{column}\" of type {pg_type} in table {table}"
    )]
    Incompatible {
        column: String,
        table: String,
        arrow_type: String,
        pg_type: String,
    },
    #[error(
        "column \"{column}\" of table {table} is NOT NULL without a default, but the transform does not produce it"
    )]
    RequiredMissing { column: String, table: String },
    #[error(
        "table {table} is partitioned by {key}, and the transform does not output column \"{column}\", \
         which has no default: no partition would take its rows"
    )]
    PartitionKeyMissing {
        table: String,
        key: String,
        column: String,
    },
    #[error(
        "table {table} is partitioned by {key} and has no partition: every row would be \
         refused; create its partitions (or a DEFAULT partition) first"
    )]
    NoPartitions { table: String, key: String },
    #[error("the transform produces column \"{0}\" twice")]
    DuplicateOutput(String),
    #[error("cannot read the columns of table {table}: {source}")]
    Database {
        table: String,
        #[source]
        source: sqlx::Error,
    },
}

/// One column of the target table.
#[derive(Debug, Clone)]
pub struct TableColumn {
    pub name: String,
    pub type_name: String,
    pub typname: String,
    /// NOT NULL without a default: the transform must produce it.
    pub required: bool,
    /// NOT NULL, with or without a default: a value the encoder would write as NULL there
    /// fails instead (the COPY names the column, so its default never applies).
    pub not_null: bool,
    /// The column has a default (or is an identity or generated column).
    pub has_default: bool,
}

/// A table as the database describes it.
#[derive(Debug, Clone)]
pub struct TargetTable {
    /// As the user named it.
    pub name: String,
    /// Quoted for SQL (`"schema"."table"` or `"table"`).
    pub quoted: String,
    pub columns: Vec<TableColumn>,
    /// Plain or partitioned, as the catalog says.
    pub layout: Layout,
}

/// How a transform's output is written: the COPY statement and its encoder.
#[derive(Debug, Clone)]
pub struct SinkPlan {
    pub table: TargetTable,
    pub copy_sql: String,
    pub encoder: CopyEncoder,
    /// The table has `source_bucket` and `source_key` columns (needed by `--force`).
    pub has_source_columns: bool,
    /// The table is partitioned by day: the output's column of record ids, whose days
    /// decide which partitions a chunk needs (`partitions::DayPartitions`).
    pub day_column: Option<usize>,
}

const COLUMNS_SQL: &str = include_str!("../../../sql/sink/table_columns.sql");

impl TargetTable {
    /// Reads the columns of `name` (`table` or `schema.table`, case-sensitive).
    pub async fn load(pool: &PgPool, name: &str) -> Result<Self, SinkError> {
        let quoted = match name.split_once('.') {
            Some((schema, table)) => format!("{}.{}", quote_ident(schema), quote_ident(table)),
            None => quote_ident(name),
        };
        let database = |source| SinkError::Database {
            table: name.to_string(),
            source,
        };
        let mut conn = pool.acquire().await.map_err(database)?;
        let rows: Vec<(String, String, String, bool, bool, bool)> = sqlx::query_as(COLUMNS_SQL)
            .bind(&quoted)
            .fetch_all(&mut *conn)
            .await
            .map_err(database)?;
        let layout = Layout::load(&mut conn, &quoted).await.map_err(database)?;
        let (false, Some(layout)) = (rows.is_empty(), layout) else {
            return Err(SinkError::NoTable(name.to_string()));
        };
        let columns = rows
            .into_iter()
            .map(
                |(name, type_name, typname, required, not_null, has_default)| TableColumn {
                    name,
                    type_name,
                    typname,
                    required,
                    not_null,
                    has_default,
                },
            )
            .collect();
        Ok(Self {
            name: name.to_string(),
            quoted,
            columns,
            layout,
        })
    }

    /// Checks that `output` can be written into this table and plans the COPY.
    pub fn plan(&self, output: &Schema) -> Result<SinkPlan, SinkError> {
        let mut encoded = Vec::new();
        let mut copy_columns = String::new();
        for (index, field) in output.fields().iter().enumerate() {
            let name = field.name();
            if output.fields().iter().filter(|f| f.name() == name).count() > 1 {
                return Err(SinkError::DuplicateOutput(name.clone()));
            }
            let column = self.column(name).ok_or_else(|| SinkError::MissingColumn {
                column: name.clone(),
                table: self.name.clone(),
                available: self.column_list(),
            })?;
            let pg =
                PgType::from_typname(&column.typname).ok_or_else(|| SinkError::Unsupported {
                    column: name.clone(),
                    table: self.name.clone(),
                    pg_type: column.type_name.clone(),
                })?;
            if !pg.accepts(field.data_type()) {
                return Err(SinkError::Incompatible {
                    column: name.clone(),
                    table: self.name.clone(),
                    arrow_type: field.data_type().to_string(),
                    pg_type: column.type_name.clone(),
                });
            }
            if !copy_columns.is_empty() {
                copy_columns.push_str(", ");
            }
            copy_columns.push_str(&quote_ident(name));
            encoded.push(CopyColumn {
                index,
                pg,
                name: name.clone(),
                not_null: column.not_null,
            });
        }
        if let Some(missing) = self
            .columns
            .iter()
            .find(|c| c.required && output.field_with_name(&c.name).is_err())
        {
            return Err(SinkError::RequiredMissing {
                column: missing.name.clone(),
                table: self.name.clone(),
            });
        }
        let day_column = self.check_partitioning(output)?;
        let mut copy_sql = String::new();
        let _ = write!(
            copy_sql,
            "COPY {} ({copy_columns}) FROM STDIN (FORMAT binary)",
            self.quoted
        );
        Ok(SinkPlan {
            table: self.clone(),
            copy_sql,
            encoder: CopyEncoder::from_columns(encoded),
            has_source_columns: self.column("source_bucket").is_some()
                && self.column("source_key").is_some(),
            day_column,
        })
    }

    /// For a partitioned table: every key column is produced (or has a default) and some
    /// partition can take rows, unless the table is partitioned by day (ingestor creates
    /// those partitions). Returns the output's id column for a table partitioned by day.
    fn check_partitioning(&self, output: &Schema) -> Result<Option<usize>, SinkError> {
        let Kind::Partitioned(key) = &self.layout.kind else {
            return Ok(None);
        };
        for name in &key.columns {
            let produced = output.field_with_name(name).is_ok();
            let defaulted = self.column(name).is_some_and(|c| c.has_default);
            if !produced && !defaulted && !key.has_default {
                return Err(SinkError::PartitionKeyMissing {
                    table: self.name.clone(),
                    key: key.describe(),
                    column: name.clone(),
                });
            }
        }
        if key.by_day() {
            return Ok(output.index_of("id").ok());
        }
        if key.partitions == 0 {
            return Err(SinkError::NoPartitions {
                table: self.name.clone(),
                key: key.describe(),
            });
        }
        Ok(None)
    }

    fn column(&self, name: &str) -> Option<&TableColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
