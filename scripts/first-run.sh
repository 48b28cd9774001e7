#!/usr/bin/env bash
# The README's first command: the main job (`run`) over the bundled samples (the folder
# samples/logs standing in for the bucket `logs`) into the local PostgreSQL; shows
# the summary and a query to try.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo run --quiet -- run --local-buckets samples --bucket logs "$@"
echo
echo "Try:  psql \"$DATABASE_URL\" -c \"SELECT level, count(*), avg(processing_time_ms) FROM logs GROUP BY level ORDER BY 2 DESC\""
