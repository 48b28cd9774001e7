//! What the catalog says about a table's partitioning: its kind and key, its partitions and
//! their bounds, and the tables an interrupted retention run left detached.

use sqlx::PgConnection;

use super::day::{IdRange, Slot, uuid_value};
use crate::sink::postgres::quote_ident;

/// A table as `pg_class` and `pg_partitioned_table` describe it.
#[derive(Debug, Clone)]
pub struct Layout {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    pub kind: Kind,
}

/// Plain, partitioned, or another kind of relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Partitioned(PartitionKey),
    /// A view, a foreign table...: `pg_class.relkind`.
    Other(String),
}

/// How a partitioned table routes rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKey {
    /// `r` range, `l` list, `h` hash.
    pub strategy: String,
    /// The key's columns, in order; an expression in the key has no name here.
    pub columns: Vec<String>,
    /// The type names (`pg_type.typname`) of `columns`.
    pub types: Vec<String>,
    /// Columns and expressions in the key.
    pub width: i32,
    pub has_default: bool,
    pub partitions: i64,
}

impl PartitionKey {
    /// Partitioned by `RANGE (id)` with `id` a uuid and no DEFAULT partition: the layout
    /// `migrate --partition-by day` makes, whose day partitions ingestor creates as rows
    /// need them (see docs/partitions.md).
    pub fn by_day(&self) -> bool {
        self.strategy == "r"
            && self.width == 1
            && self.columns == ["id"]
            && self.types == ["uuid"]
            && !self.has_default
    }

    /// A readable form for messages: `RANGE (id)`.
    pub fn describe(&self) -> String {
        let strategy = match self.strategy.as_str() {
            "r" => "RANGE",
            "l" => "LIST",
            "h" => "HASH",
            other => other,
        };
        let mut parts: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        for _ in self.columns.len()..self.width.max(0) as usize {
            parts.push("(an expression)".into());
        }
        format!("{strategy} ({})", parts.join(", "))
    }
}

impl Layout {
    /// The table named `quoted` (`"schema"."name"` or `"name"`), None when there is none.
    pub async fn load(conn: &mut PgConnection, quoted: &str) -> sqlx::Result<Option<Self>> {
        type Row = (
            String,
            i64,
            String,
            String,
            Option<String>,
            i32,
            Vec<String>,
            Vec<String>,
            bool,
            i64,
        );
        let row: Option<Row> =
            sqlx::query_as(include_str!("../../../../sql/sink/partitioning.sql"))
                .bind(quoted)
                .fetch_optional(conn)
                .await?;
        Ok(row.map(
            |(relkind, oid, schema, name, strategy, width, columns, types, has_default, count)| {
                let kind = match (relkind.as_str(), strategy) {
                    ("r", _) => Kind::Plain,
                    ("p", Some(strategy)) => Kind::Partitioned(PartitionKey {
                        strategy,
                        columns,
                        types,
                        width,
                        has_default,
                        partitions: count,
                    }),
                    (other, _) => Kind::Other(other.to_string()),
                };
                Layout {
                    oid,
                    schema,
                    name,
                    kind,
                }
            },
        ))
    }

    /// The key, when the table is partitioned by day (see [`PartitionKey::by_day`]).
    pub fn by_day(&self) -> Option<&PartitionKey> {
        match &self.kind {
            Kind::Partitioned(key) if key.by_day() => Some(key),
            _ => None,
        }
    }

    /// `"schema"."name"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// `"schema"."relation"` for a relation in this table's schema.
    pub fn sibling(&self, name: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(name))
    }
}

/// A partition's bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// `FROM (lo) TO (hi)` over one uuid column; None is MINVALUE / MAXVALUE.
    Range {
        lo: Option<u128>,
        hi: Option<u128>,
    },
    Default,
    /// A bound of another shape (list, hash, several columns).
    Other(String),
}

impl Bound {
    /// Parses `pg_get_expr(relpartbound)` for a one-uuid-column range key.
    pub fn parse(text: &str) -> Self {
        if text == "DEFAULT" {
            return Self::Default;
        }
        let parsed = text
            .strip_prefix("FOR VALUES FROM (")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|rest| rest.split_once(") TO ("))
            .and_then(|(lo, hi)| Some((value(lo, "MINVALUE")?, value(hi, "MAXVALUE")?)));
        match parsed {
            Some((lo, hi)) => Self::Range { lo, hi },
            None => Self::Other(text.to_string()),
        }
    }

    /// True when every id of `range` falls in this bound.
    pub fn covers(&self, range: IdRange) -> bool {
        let Self::Range { lo, hi } = self else {
            return false;
        };
        let from = lo.is_none_or(|lo| lo <= range.lo);
        let to = match (hi, range.hi) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(hi), Some(end)) => end <= *hi,
        };
        from && to
    }

    /// True when some id of `range` falls in this bound.
    pub fn overlaps(&self, range: IdRange) -> bool {
        let Self::Range { lo, hi } = self else {
            return false;
        };
        let starts_before_end = match (lo, range.hi) {
            (None, _) | (_, None) => true,
            (Some(lo), Some(end)) => *lo < end,
        };
        let ends_after_start = hi.is_none_or(|hi| hi > range.lo);
        starts_before_end && ends_after_start
    }

    /// The slot whose range this bound is exactly, if any.
    pub fn slot(&self) -> Option<Slot> {
        let Self::Range { lo, hi } = self else {
            return None;
        };
        let slot = match lo {
            None => Slot::Undated,
            Some(lo) => Slot::of_millis((lo >> 80) as i64),
        };
        let range = slot.range();
        let exact_lo = match slot {
            Slot::Undated => lo.is_none(),
            Slot::Day(_) => *lo == Some(range.lo),
        };
        (exact_lo && *hi == range.hi).then_some(slot)
    }
}

/// One bound value: `'uuid'`, or the infinite keyword (None).
fn value(text: &str, infinite: &str) -> Option<Option<u128>> {
    if text == infinite {
        return Some(None);
    }
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(Some(uuid_value(inner)?))
}

/// One partition of a partitioned table.
#[derive(Debug, Clone)]
pub struct Partition {
    pub schema: String,
    pub name: String,
    pub bound: Bound,
    /// A `DETACH ... CONCURRENTLY` was interrupted: rows no longer go there, and no other
    /// partition may take its range until `DETACH ... FINALIZE` completes it.
    pub pending: bool,
    pub oid: i64,
    /// The planner's estimate (`reltuples`), 0 when never analysed.
    pub estimated_rows: i64,
}

impl Partition {
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// The partitions of the table `oid`.
pub async fn partitions(conn: &mut PgConnection, oid: i64) -> sqlx::Result<Vec<Partition>> {
    let rows: Vec<(String, String, Option<String>, bool, i64, i64)> =
        sqlx::query_as(include_str!("../../../../sql/sink/partitions.sql"))
            .bind(oid)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(
            |(schema, name, bound, pending, oid, estimated_rows)| Partition {
                schema,
                name,
                bound: Bound::parse(bound.as_deref().unwrap_or_default()),
                pending,
                oid,
                estimated_rows,
            },
        )
        .collect())
}

/// A table a retention run detached and did not drop.
#[derive(Debug, Clone)]
pub struct Detached {
    pub name: String,
    pub slot: Slot,
    pub oid: i64,
    pub estimated_rows: i64,
}

/// The comment a retention run sets on a partition before detaching it: it finds the
/// table again if the run stops before dropping it.
pub fn detaching_comment(parent_oid: i64, slot: Slot) -> String {
    format!("ingestor retention: detached from {parent_oid} day {slot}")
}

/// The comment a day partition gets when ingestor creates it.
pub fn created_comment(parent: &str, slot: Slot) -> String {
    format!("ingestor: partition of {parent} for day {slot}")
}

/// Tables of `layout`'s schema that a retention run detached from it and did not drop.
pub async fn detached(conn: &mut PgConnection, layout: &Layout) -> sqlx::Result<Vec<Detached>> {
    let rows: Vec<(String, String, i64, i64)> =
        sqlx::query_as(include_str!("../../../../sql/sink/detached.sql"))
            .bind(layout.oid)
            .bind(&layout.schema)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, comment, oid, estimated_rows)| {
            let day = comment.rsplit(' ').next()?;
            let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
            Some(Detached {
                name,
                slot: Slot::of_date(date),
                oid,
                estimated_rows,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_as_postgresql_prints_them() {
        let day = Slot::Day(20_032);
        let printed = format!("FOR VALUES {}", day.bounds_sql());
        let bound = Bound::parse(&printed);
        assert_eq!(bound.slot(), Some(day));
        assert!(bound.covers(day.range()));
        assert!(!bound.covers(Slot::Day(20_033).range()));
        let undated = Bound::parse(&format!("FOR VALUES {}", Slot::Undated.bounds_sql()));
        assert_eq!(undated.slot(), Some(Slot::Undated));
        assert!(!undated.covers(Slot::Day(0).range()));
        assert_eq!(Bound::parse("DEFAULT"), Bound::Default);
        let wide = Bound::parse("FOR VALUES FROM (MINVALUE) TO (MAXVALUE)");
        assert!(wide.covers(day.range()));
        assert_eq!(wide.slot(), None);
        assert!(matches!(
            Bound::parse("FOR VALUES IN ('a')"),
            Bound::Other(_)
        ));
    }
}
