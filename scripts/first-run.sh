#!/usr/bin/env bash
# The README's first command: ingest the bundled samples into the local PostgreSQL and show
# the summary and a query to try.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cargo run --quiet -- ingest-file samples/ "$@"
echo
echo "Try:  psql \"$DATABASE_URL\" -c \"SELECT level, count(*), avg(processing_time_ms) FROM logs GROUP BY level ORDER BY 2 DESC\""
