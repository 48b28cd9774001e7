#!/usr/bin/env bash
# Peak memory on one large file: generates a gzipped JSON array of RECORDS records
# (default 1,450,000, ~1.07 GB of JSON), ingests it with /usr/bin/time -v, prints the peak RSS.
#   bash benches/memory.sh [RECORDS [EXTRA ingest-file FLAGS...]]
#   bash benches/memory.sh 1450000 --sink parquet=bench-data/memory-lake   # the Parquet sink
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS="${1:-1450000}"
shift || true
BIN="${INGESTOR_BIN:-${CARGO_TARGET_DIR:-target}/release/ingestor}"
if [ ! -x "$BIN" ]; then
    echo "no release binary at $BIN: run cargo build --release (or set INGESTOR_BIN)" >&2
    exit 1
fi
ADMIN_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB_URL="${ADMIN_URL%/*}/ingestor_memory"
psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS ingestor_memory" -qc "CREATE DATABASE ingestor_memory"
DATA="bench-data/memory-$RECORDS"
if [ ! -d "$DATA" ]; then
    "$BIN" generate --out "$DATA.tmp" --files 1 --records "$RECORDS" --gzip-level 1
    mv "$DATA.tmp" "$DATA"
fi
du -b "$DATA"/*
if ! /usr/bin/time -v env DATABASE_URL="$DB_URL" RUST_LOG=warn "$BIN" ingest-file --json "$@" "$DATA" 2> bench-data/memory.time; then
    tail -30 bench-data/memory.time >&2
    exit 1
fi
grep -E "Maximum resident set size|Elapsed \(wall clock\)" bench-data/memory.time
psql "$DB_URL" -Atc "SELECT 'rows in logs: ' || count(*) FROM logs"
