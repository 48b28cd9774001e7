#!/usr/bin/env python3
"""LIST requests per steady-state pass of `run --follow`, with and without incremental listing.

For each --objects count (1,000 and 10,000 by default; 100,000 is an optional run outside CI),
starts an S3-protocol server (moto, as the tests do), puts that many small objects under
`logs/`, records them as COMPLETED in `processed_files` by SQL (as a finished backfill leaves
them), and runs `ingestor run --follow --interval 0.5` for --seconds through the `fault-proxy`
of crates/s3kit, which counts requests by kind:
  full          --reconcile-interval 0: every pass lists the whole prefix
  incremental   the default (--reconcile-interval 3600): the first pass lists the whole
                prefix, later ones only the keys after the listing mark
Prints passes, LIST requests, and LIST requests per steady-state pass (the first pass, a
full listing in both modes, taken out).

  python3 benches/listing.py [--objects 1000,10000] [--seconds 8]

Needs a release build of the workspace (`cargo build --release --workspace`), PostgreSQL
on DATABASE_URL (127.0.0.1; the database --database is created), psql and moto
(`bash scripts/setup-test-s3.sh`).
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from s3util import S3

ROOT = Path(__file__).resolve().parent.parent


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", default="1000,10000")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--database", default="ingestor_listing")
    parser.add_argument("--binary", default=os.environ.get("INGESTOR_BIN", str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "ingestor")))
    args = parser.parse_args()

    admin = os.environ.get("DATABASE_URL")
    if not admin:
        sys.exit("DATABASE_URL must point at PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/postgres)")
    if not sh("psql", admin, "-Atc", f"SELECT 1 FROM pg_database WHERE datname = '{args.database}'").stdout.strip():
        sh("psql", admin, "-qc", f"CREATE DATABASE {args.database}")
    url = admin.split("?")[0].rsplit("/", 1)[0] + "/" + args.database
    sh(args.binary, "jobs", "list", env={**os.environ, "DATABASE_URL": url})

    rows = []
    for count in [int(n) for n in args.objects.split(",")]:
        with S3(Path(args.binary).parent, "logs") as s3:
            for i in range(count):
                s3.put(f"logs/host-{i % 50:02}/{i:07}.json", b"[]")
            env = {**os.environ, **s3.env(), "DATABASE_URL": url, "RUST_LOG": "info"}
            for mode, reconcile in (("full", "0"), ("incremental", "3600")):
                sh("psql", url, "-qc", "TRUNCATE processed_files, listing_marks")
                sh("psql", url, "-qc", "INSERT INTO processed_files (bucket, s3_key, status, processed_at) "
                   f"SELECT 'logs', 'logs/host-' || lpad((i % 50)::text, 2, '0') || '/' || lpad(i::text, 7, '0') || '.json', "
                   f"'COMPLETED', now() FROM generate_series(0, {count - 1}) AS i")
                s3.counts(reset=True)
                child = subprocess.Popen([args.binary, "run", "--bucket", "logs", "--follow", "--interval", "0.5",
                                          "--reconcile-interval", reconcile, "--json"],
                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                time.sleep(args.seconds)
                child.send_signal(signal.SIGTERM)
                _, stderr = child.communicate(timeout=60)
                lists = s3.counts()["list"]
                passes = [l for l in stderr.splitlines() if "discovery done" in l]
                first_pages = -(-count // 1000)
                steady = (lists - first_pages) / max(len(passes) - 1, 1)
                rows.append((count, mode, len(passes), lists, steady))
                print(f"{count:>8,} objects  {mode:12} {len(passes):3} passes  {lists:5} LIST requests  "
                      f"{steady:7.2f} per steady-state pass", flush=True)
    print("\nLIST requests per steady-state pass (the first pass taken out)")
    print("| objects | every pass lists the whole prefix | incremental (default with --follow) |")
    print("|---|---|---|")
    for count in sorted({r[0] for r in rows}):
        by = {r[1]: r[4] for r in rows if r[0] == count}
        print(f"| {count:,} | {by['full']:.2f} | {by['incremental']:.2f} |")


if __name__ == "__main__":
    main()
