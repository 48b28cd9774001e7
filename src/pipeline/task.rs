//! What a pass shares (the pool, the transform, the sinks, the settings) and what it is
//! given to do: one file at a time.

use std::sync::Arc;

use sqlx::PgPool;

use crate::limit::Limits;
use crate::sink::SinkPlan;
use crate::sink::delta::DeltaSink;
use crate::sink::parquet::Lake;
use crate::sink::postgres::partitions::DayPartitions;
use crate::source::SourceRef;
use crate::transform::{PlanCache, PlanKind, TransformSql};

use super::settings::Settings;

/// Everything the pipeline needs, shared by all files of a pass.
pub struct Ingest {
    pub pool: PgPool,
    pub transform: TransformSql,
    /// The PostgreSQL sink (`--sink postgres`, the default).
    pub postgres: Option<SinkPlan>,
    /// The Parquet sink (`--sink parquet=URL`).
    pub lake: Option<Arc<Lake>>,
    /// The Delta sink (`--sink delta=URL`); at most one of `lake` and `delta`.
    pub delta: Option<Arc<DeltaSink>>,
    /// The day partitions of the target table, when it is partitioned by day.
    pub partitions: Option<Arc<DayPartitions>>,
    pub settings: Settings,
    pub limits: Arc<Limits>,
    /// How the transform runs over a file (row-wise, or once per file).
    pub kind: PlanKind,
    /// The transform gives one row for each record (a projection): small files of a group
    /// go through it together.
    pub one_row_each: bool,
    /// The transform, planned once and reused file after file.
    pub plans: Arc<PlanCache>,
}

impl Ingest {
    /// The transform runs once per file: a file is one transaction, its output committed
    /// with its completion.
    pub fn whole_file(&self) -> bool {
        self.kind.is_whole_file()
    }

    /// A lake (Parquet or Delta) gets the output: each file is one transaction, its lake
    /// output published with its completion.
    pub fn has_lake(&self) -> bool {
        self.lake.is_some() || self.delta.is_some()
    }

    /// Where this run writes, as jobs record it when they complete: `postgres:<table>`
    /// `parquet:<url>` and `delta:<url>`. An object COMPLETED for other destinations is not silently
    /// taken as done (see `jobs::other_destinations`).
    pub fn destinations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(plan) = &self.postgres {
            out.push(format!("postgres:{}", plan.table.quoted));
        }
        if let Some(lake) = &self.lake {
            out.push(format!("parquet:{}", lake.display()));
        }
        if let Some(delta) = &self.delta {
            out.push(format!("delta:{}", delta.display()));
        }
        out
    }
}

/// One file to ingest.
#[derive(Debug, Clone)]
pub struct FileTask {
    /// `processed_files.bucket` (`local` for `ingest-file`).
    pub bucket: String,
    /// `processed_files.s3_key` (the canonical path for `ingest-file`).
    pub key: String,
    /// How errors and logs name the file (`s3://bucket/key` or the path).
    pub display: String,
    pub source: SourceRef,
    pub size: Option<u64>,
}
