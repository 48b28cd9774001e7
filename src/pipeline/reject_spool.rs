//! The rejected records of a chunk, held until the chunk commits, in bounded memory.
//!
//! A chunk's rejects are inserted in its transaction, after its COPY. With a Parquet sink a
//! whole file is one chunk, and a file of bad lines can reject millions of records: held
//! in memory they grew with the file (761 MB for a 139 MB file), and one INSERT of all of
//! them ran into PostgreSQL's 1 GiB limit on a statement's parameters. Past
//! `memory_bytes` of record text they are written to an unnamed temporary file, and they
//! are inserted in statements of at most `insert_bytes` of text each.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use sqlx::PgConnection;

use crate::decode::Reject;
use crate::jobs::{self, Lease};

/// Record text kept in memory before the rejects go to a temporary file.
const MEMORY_BYTES: usize = 16 << 20;
/// Record text per INSERT statement at most.
const INSERT_BYTES: usize = 8 << 20;
/// Rejects per INSERT statement at most.
const INSERT_ROWS: usize = 10_000;

/// Rejected records waiting for their chunk's transaction.
pub struct RejectSpool {
    memory: Vec<Reject>,
    memory_bytes: usize,
    spill: Option<BufWriter<File>>,
    spilled: u64,
    limits: SpoolLimits,
}

/// How much a spool holds in memory and inserts at once.
#[derive(Debug, Clone, Copy)]
pub struct SpoolLimits {
    pub memory_bytes: usize,
    pub insert_bytes: usize,
    pub insert_rows: usize,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        Self {
            memory_bytes: MEMORY_BYTES,
            insert_bytes: INSERT_BYTES,
            insert_rows: INSERT_ROWS,
        }
    }
}

fn size(reject: &Reject) -> usize {
    reject.raw.len() + reject.error.len() + 32
}

impl RejectSpool {
    pub fn new(limits: SpoolLimits) -> Self {
        Self {
            memory: Vec::new(),
            memory_bytes: 0,
            spill: None,
            spilled: 0,
            limits,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.memory.is_empty() && self.spilled == 0
    }

    /// Record text held in memory now.
    #[cfg(test)]
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Takes the rejects of one piece.
    pub fn append(&mut self, rejects: &mut Vec<Reject>) -> std::io::Result<()> {
        for reject in rejects.drain(..) {
            self.memory_bytes += size(&reject);
            self.memory.push(reject);
        }
        if self.memory_bytes > self.limits.memory_bytes {
            self.spill_memory()?;
        }
        Ok(())
    }

    fn spill_memory(&mut self) -> std::io::Result<()> {
        if self.spill.is_none() {
            self.spill = Some(BufWriter::new(tempfile::tempfile()?));
        }
        let out = self.spill.as_mut().expect("spill file");
        for reject in self.memory.drain(..) {
            write_reject(out, &reject)?;
            self.spilled += 1;
        }
        self.memory_bytes = 0;
        Ok(())
    }

    /// Inserts every reject into `rejected_records` in `conn` (the chunk's transaction), in
    /// statements of bounded size: the spilled ones first (they came first), then those in
    /// memory.
    pub async fn insert(self, conn: &mut PgConnection, lease: &Lease) -> Result<(), SpoolError> {
        let Self {
            memory,
            spill,
            spilled,
            limits,
            ..
        } = self;
        let mut batch = InsertBatch::new(limits);
        if let Some(spill) = spill {
            let mut file = spill.into_inner().map_err(|e| e.into_error())?;
            file.seek(SeekFrom::Start(0))?;
            let mut input = BufReader::new(file);
            for _ in 0..spilled {
                batch.push(read_reject(&mut input)?, conn, lease).await?;
            }
        }
        for reject in memory {
            batch.push(reject, conn, lease).await?;
        }
        batch.flush(conn, lease).await
    }
}

/// Rejects gathered for one INSERT, sent when the limits are reached.
struct InsertBatch {
    rejects: Vec<Reject>,
    bytes: usize,
    limits: SpoolLimits,
}

impl InsertBatch {
    fn new(limits: SpoolLimits) -> Self {
        Self {
            rejects: Vec::new(),
            bytes: 0,
            limits,
        }
    }

    async fn push(
        &mut self,
        reject: Reject,
        conn: &mut PgConnection,
        lease: &Lease,
    ) -> Result<(), SpoolError> {
        self.bytes += size(&reject);
        self.rejects.push(reject);
        if self.bytes >= self.limits.insert_bytes || self.rejects.len() >= self.limits.insert_rows {
            self.flush(conn, lease).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, conn: &mut PgConnection, lease: &Lease) -> Result<(), SpoolError> {
        if !self.rejects.is_empty() {
            jobs::insert_rejects(conn, lease, &self.rejects).await?;
            self.rejects.clear();
            self.bytes = 0;
        }
        Ok(())
    }
}

/// Why rejects could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("cannot spool rejected records to a temporary file: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

fn write_reject(out: &mut impl Write, reject: &Reject) -> std::io::Result<()> {
    out.write_all(&reject.index.to_le_bytes())?;
    out.write_all(&reject.offset.to_le_bytes())?;
    for text in [&reject.raw, &reject.error] {
        out.write_all(&(text.len() as u64).to_le_bytes())?;
        out.write_all(text.as_bytes())?;
    }
    Ok(())
}

fn read_u64(input: &mut impl Read) -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    input.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

fn read_text(input: &mut impl Read) -> std::io::Result<String> {
    let len = read_u64(input)? as usize;
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(std::io::Error::other)
}

fn read_reject(input: &mut impl Read) -> std::io::Result<Reject> {
    Ok(Reject {
        index: read_u64(input)?,
        offset: read_u64(input)?,
        raw: read_text(input)?,
        error: read_text(input)?,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::PgPool;

    use super::*;

    fn reject(index: u64) -> Reject {
        Reject {
            index,
            offset: index * 10,
            raw: format!("not json {index} {}", "x".repeat(100)),
            error: "invalid JSON".into(),
        }
    }

    /// Issue 14 item 6: rejects beyond the memory bound go to disk, come back whole and in
    /// order, and are inserted in statements of bounded size.
    #[sqlx::test(migrator = "crate::jobs::MIGRATOR")]
    async fn rejects_past_the_memory_bound_are_spilled_and_all_inserted(pool: PgPool) {
        let limits = SpoolLimits {
            memory_bytes: 4096,
            insert_bytes: 8192,
            insert_rows: 50,
        };
        let mut spool = RejectSpool::new(limits);
        for piece in 0..100u64 {
            let mut rejects: Vec<Reject> = (0..20).map(|i| reject(piece * 20 + i)).collect();
            spool.append(&mut rejects).unwrap();
            assert!(
                spool.memory_bytes() <= limits.memory_bytes,
                "memory stays bounded"
            );
        }
        assert!(spool.spilled > 0);
        let lease = Lease {
            bucket: "b".into(),
            key: "k".into(),
            token: uuid::Uuid::new_v4(),
            duration: Duration::from_secs(60),
            attempts: 1,
        };
        let mut conn = pool.acquire().await.unwrap();
        spool.insert(&mut conn, &lease).await.unwrap();
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT source_index, raw FROM rejected_records ORDER BY source_index")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(rows.len(), 2000);
        assert!(rows.iter().enumerate().all(|(i, r)| r.0 == i as i64));
        assert_eq!(rows[1999].1, reject(1999).raw);
    }
}
