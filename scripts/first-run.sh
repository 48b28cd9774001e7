#!/usr/bin/env bash
# The README's first command: the main job (`run`) over the bundled samples (the folder
# samples/logs standing in for the bucket `logs`) into the local PostgreSQL; shows
# the summary and a query to try.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# cargo's own progress stays on screen: the first build compiles ~400 crates and takes
# minutes (13 measured on 2 cores); later runs start at once.
echo "Building ingestor (the first build takes several minutes; cargo shows its progress)..."
cargo build --bin ingestor
echo
cargo run --quiet --bin ingestor -- run --local-buckets samples --bucket logs "$@"
echo
echo "Try:  psql \"$DATABASE_URL\" -c \"SELECT level, count(*), avg(processing_time_ms) FROM logs GROUP BY level ORDER BY 2 DESC\""
