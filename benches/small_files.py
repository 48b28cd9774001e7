#!/usr/bin/env python3
"""Small files against big files: the same number of records, `run --local-buckets`, one run.

Generates R records twice: in --big-files files and in --files small files (R / files
records each), then alternates, --runs times, over an emptied database:
  big            the big files (the big-file path: chunk transactions)
  small          the small files, grouped (`--group-files`, the default) through the
                 database's Unix socket (the default for a database on this host)
  small-tcp      the same over loopback TCP (INGESTOR_DATABASE_SOCKET=off): what a remote
                 database sees; Nagle's stall on each COPY's last write is paid per group
  small-alone    the small files one transaction each (--group-files 1), through the socket
  small-alone-tcp  the same over TCP: one stall per file (--alone-tcp; slow, off by default)
  duckdb         with --duckdb: DuckDB's `read_json_objects` over the same small files, the
                 same columns mapped in DuckDB SQL, streamed as CSV into one `COPY logs FROM
                 STDIN` by psql (one transaction, no per-file tracking, no validation, ids
                 random): what a general-purpose engine does with the same files
Prints per-run and median wall time, records/s, files/s, and the goals' ratios: small files
reach at least 1,000 files/s and half the records/s of the big files; over TCP they cost
about what they cost through the socket.

  python3 benches/small_files.py --files 5000 --records 100000 --runs 3 [--concurrency 3]

With --s3, the small files come from an S3-protocol server instead (moto, started here, as
the tests do), behind the `fault-proxy` of crates/s3kit adding --latency-ms (20) to every
request. Each round runs, in turn:
  get-loop       a plain concurrent GET loop through object_store (crates/s3kit's
                 `get-loop`, --in-flight 64): list the bucket, read every object whole
  ingest-cN      `ingestor run --bucket` at --concurrency N, for each N of --s3-concurrency
and prints files/s, the ratio to the GET loop (goal: at least 0.8 whatever --concurrency)
and the requests each made per file, by kind, as the proxy counted them.

  python3 benches/small_files.py --s3 --files 5000 --records 100000 --runs 3

Needs a release build of the workspace (`cargo build --release --workspace`), PostgreSQL on
DATABASE_URL (127.0.0.1; a database named by --database is created), psql, and for --s3
moto (`bash scripts/setup-test-s3.sh`).
"""

import argparse
import json
import os
import shutil
import statistics
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
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=5_000, help="small files")
    parser.add_argument("--big-files", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--alone-tcp", action="store_true", help="also one transaction per file over TCP")
    parser.add_argument("--duckdb", action="store_true", help="also load the small files with DuckDB (see above)")
    parser.add_argument("--duckdb-python", default=sys.executable,
                        help="a Python with the duckdb module (pip install duckdb)")
    parser.add_argument("--database", default="ingestor_small_files")
    parser.add_argument("--data", default=str(ROOT / "bench-data" / "small-files"))
    parser.add_argument("--binary", default=os.environ.get("INGESTOR_BIN", str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "ingestor")))
    parser.add_argument("--s3", action="store_true", help="the small files from an S3-protocol server behind a latency proxy")
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--in-flight", type=int, default=64, help="the GET loop's requests in flight")
    parser.add_argument("--s3-concurrency", default="1,3", help="--concurrency values of the ingestion runs")
    args = parser.parse_args()

    admin = os.environ.get("DATABASE_URL")
    if not admin:
        sys.exit("DATABASE_URL must point at PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/postgres)")
    if not sh("psql", admin, "-Atc", f"SELECT 1 FROM pg_database WHERE datname = '{args.database}'").stdout.strip():
        sh("psql", admin, "-qc", f"CREATE DATABASE {args.database}")
    url = admin.split("?")[0].rsplit("/", 1)[0] + "/" + args.database

    data = Path(args.data)
    layouts = {"big": (args.big_files, args.records // args.big_files),
               "small": (args.files, args.records // args.files)}
    for name, (files, records) in layouts.items():
        folder = data / name / "logs" / "2024"
        marker = data / name / f".{files}x{records}"
        if not marker.exists():
            shutil.rmtree(data / name, ignore_errors=True)
            folder.mkdir(parents=True)
            sh(args.binary, "generate", "--out", str(folder), "--files", str(files), "--records", str(records))
            marker.touch()

    # Migrations once, outside the timings.
    sh(args.binary, "jobs", "list", env={**os.environ, "DATABASE_URL": url})
    if args.s3:
        return s3_rounds(args, url, data / "small", layouts["small"])
    modes = [("big", "big", {}, []),
             ("small", "small", {}, []),
             ("small-tcp", "small", {"INGESTOR_DATABASE_SOCKET": "off"}, []),
             ("small-alone", "small", {}, ["--group-files", "1"])]
    if args.alone_tcp:
        modes.append(("small-alone-tcp", "small", {"INGESTOR_DATABASE_SOCKET": "off"}, ["--group-files", "1"]))
    if args.duckdb:
        check = subprocess.run([args.duckdb_python, "-c", "import duckdb"], capture_output=True)
        if check.returncode != 0:
            sys.exit(f"--duckdb: {args.duckdb_python} has no duckdb module: pip install duckdb "
                     "(or pass --duckdb-python)")
        modes.append(("duckdb", "small", {}, None))

    results = {name: [] for name, *_ in modes}
    for run in range(args.runs):
        for name, layout, env, extra in modes:
            sh("psql", url, "-qc", "TRUNCATE logs, processed_files, rejected_records; CHECKPOINT")
            files, records = layouts[layout]
            if extra is None:
                start = time.perf_counter()
                duckdb_load(args, url, data / layout)
                wall = time.perf_counter() - start
                done = files
            else:
                cmd = [args.binary, "run", "--local-buckets", str(data / layout), "--bucket", "logs",
                       "--json", "--quiet", "--concurrency", str(args.concurrency), *extra]
                start = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      env={**os.environ, "DATABASE_URL": url, **env})
                wall = time.perf_counter() - start
                if proc.returncode != 0:
                    sys.exit(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
                done = sh("psql", url, "-Atc", "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED'").stdout.strip()
            rows = sh("psql", url, "-Atc", "SELECT count(*) FROM logs").stdout.strip()
            if int(done) != files or int(rows) != files * records:
                sys.exit(f"{name}: {done} files, {rows} rows; expected {files}, {files * records}")
            results[name].append(wall)
            print(f"run {run + 1} {name:16} {wall:7.2f} s  {files * records / wall:10,.0f} records/s  "
                  f"{files / wall:8,.0f} files/s", flush=True)

    print(f"\nmedians over {args.runs} runs, {args.records:,} records, concurrency {args.concurrency}")
    median = {name: statistics.median(walls) for name, walls in results.items()}
    for name, layout, *_ in modes:
        files, records = layouts[layout]
        print(f"  {name:16} {median[name]:7.2f} s  {files * records / median[name]:10,.0f} records/s  "
              f"{files / median[name]:8,.0f} files/s")
    print("\ngoals")
    small_files_per_s = layouts["small"][0] / median["small"]
    print(f"  small files/s                      {small_files_per_s:8,.0f}  (goal >= 1,000)")
    print(f"  small records/s / big records/s    {median['big'] / median['small']:8.2f}  (goal >= 0.5)")
    print(f"  per-file cost, TCP / socket        {median['small-tcp'] / median['small']:8.2f}  (grouped; close to 1)")
    print(f"  grouped vs alone (socket)          {median['small-alone'] / median['small']:8.2f}x faster")
    if "small-alone-tcp" in median:
        print(f"  alone, TCP / socket                {median['small-alone-tcp'] / median['small-alone']:8.2f}")
    if "duckdb" in median:
        print(f"  small files/s / DuckDB files/s     {median['duckdb'] / median['small']:8.2f}  (aim > 1)")


# The built-in transform's columns, mapped in DuckDB's SQL from each record's JSON text.
DUCKDB_COLUMNS = [
    ("id", "uuid()"),
    ("timestamp", "COALESCE(TRY_CAST(json->>'timestamp' AS TIMESTAMPTZ), "
                  "epoch_ms(TRY_CAST(json->>'time' AS BIGINT)))"),
    ("level", "CASE json->>'level' WHEN '10' THEN 'trace' WHEN '20' THEN 'debug' WHEN '30' THEN 'info' "
              "WHEN '40' THEN 'warn' WHEN '50' THEN 'error' WHEN '60' THEN 'fatal' ELSE json->>'level' END"),
    ("method", "json->'req'->>'method'"),
    ("url", "json->'req'->>'url'"),
    ("query", "json->'req'->'query'"),
    ("headers", "json->'req'->'headers'"),
    ("params", "json->'req'->'params'"),
    ("context", "json->>'context'"),
    ("message", "COALESCE(json->>'message', json->>'msg')"),
    ("hostname", "json->>'hostname'"),
    ("auth_user_id", "TRY_CAST(json->>'authUserId' AS BIGINT)"),
    ("pid", "TRY_CAST(json->>'pid' AS INTEGER)"),
    ("remote_address", "json->'req'->>'remoteAddress'"),
    ("remote_port", "TRY_CAST(json->'req'->>'remotePort' AS INTEGER)"),
    ("processing_time_ms", "TRY_CAST(json->>'processingTimeMs' AS DOUBLE)"),
    ("cache_hit", "TRY_CAST(json->>'cacheHit' AS BOOLEAN)"),
    ("document_count", "TRY_CAST(json->>'documentCount' AS INTEGER)"),
    ("last_updated", "TRY_CAST(json->>'lastUpdated' AS TIMESTAMPTZ)"),
    ("raw_data", "json"),
    ("request_id", "json->'req'->>'id'"),
    ("source_bucket", "'logs'"),
    ("source_key", "filename"),
]


def duckdb_load(args, url, folder):
    """Loads the files under `folder` with DuckDB into `logs` (see the module's comment)."""
    select = ", ".join(expr for _, expr in DUCKDB_COLUMNS)
    # No progress bar: DuckDB draws it on standard output, into the CSV, with carriage returns.
    script = (
        "import duckdb, sys\n"
        "duckdb.sql('SET enable_progress_bar = false')\n"
        "duckdb.sql(sys.argv[1])\n"
    )
    # Every value quoted: PostgreSQL's CSV takes a carriage return inside a quoted field only.
    query = (f"COPY (SELECT {select} FROM read_json_objects({str(folder / '**' / '*.json.gz')!r}, "
             f"format = 'array', filename = true)) TO '/dev/stdout' (FORMAT csv, HEADER false, FORCE_QUOTE *)")
    columns = ", ".join(f'"{name}"' for name, _ in DUCKDB_COLUMNS)
    duck = subprocess.Popen([args.duckdb_python, "-c", script, query], stdout=subprocess.PIPE)
    load = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qc",
                           f"COPY logs ({columns}) FROM STDIN (FORMAT csv)"],
                          stdin=duck.stdout, capture_output=True, text=True)
    duck.stdout.close()
    if duck.wait() != 0 or load.returncode != 0:
        sys.exit(f"duckdb failed ({duck.returncode}, psql {load.returncode}):\n{load.stderr[-3000:]}")


def s3_rounds(args, url, folder, layout):
    """The S3 comparison (see the module's comment)."""
    files, records = layout
    bin_dir = Path(args.binary).parent
    loop_bin = bin_dir / "get-loop"
    if not loop_bin.exists():
        sys.exit(f"{loop_bin} is missing: run `cargo build --release --workspace`")
    with S3(bin_dir, "logs", latency_ms=args.latency_ms) as s3:
        keys = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        assert len(keys) == files, f"{len(keys)} files under {folder}, expected {files}"
        for path in keys:
            s3.put(path.relative_to(folder / "logs").as_posix(), path.read_bytes())
        endpoint = s3.endpoint
        env = {**os.environ, **s3.env(), "DATABASE_URL": url}
        concurrencies = [int(c) for c in args.s3_concurrency.split(",")]
        modes = ["get-loop"] + [f"ingest-c{c}" for c in concurrencies]
        walls = {mode: [] for mode in modes}
        requests = {}
        for run in range(args.runs):
            for mode in modes:
                s3.counts(reset=True)
                if mode == "get-loop":
                    cmd = [str(loop_bin), "--endpoint", endpoint, "--bucket", "logs", "--in-flight", str(args.in_flight)]
                else:
                    sh("psql", url, "-qc", "TRUNCATE logs, processed_files, rejected_records; CHECKPOINT")
                    cmd = [args.binary, "run", "--bucket", "logs", "--json", "--quiet",
                           "--concurrency", mode.rsplit("c", 1)[1]]
                start = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                wall = time.perf_counter() - start
                if proc.returncode != 0:
                    sys.exit(f"{mode} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
                if mode == "get-loop":
                    seen = json.loads(proc.stdout)["files"]
                    assert seen == files, f"get-loop read {seen} objects, expected {files}"
                else:
                    done = sh("psql", url, "-Atc", "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED'").stdout.strip()
                    rows = sh("psql", url, "-Atc", "SELECT count(*) FROM logs").stdout.strip()
                    if int(done) != files or int(rows) != files * records:
                        sys.exit(f"{mode}: {done} files, {rows} rows; expected {files}, {files * records}")
                counts = s3.counts()
                peak = counts.pop("peak_in_flight")
                requests[mode] = {k: v for k, v in counts.items() if v}
                walls[mode].append(wall)
                print(f"run {run + 1} {mode:12} {wall:7.2f} s  {files / wall:8,.0f} files/s  "
                      f"requests {requests[mode]}, at most {peak} in flight", flush=True)
        print(f"\nmedians over {args.runs} runs, {files:,} objects of {records} records, "
              f"{args.latency_ms} ms added to each request")
        median = {mode: statistics.median(w) for mode, w in walls.items()}
        for mode in modes:
            per_file = ", ".join(f"{k} {v / files:.3f}" for k, v in requests[mode].items())
            print(f"  {mode:12} {median[mode]:7.2f} s  {files / median[mode]:8,.0f} files/s  "
                  f"{median['get-loop'] / median[mode]:5.2f} of the GET loop  requests per file: {per_file}")
        print("\ngoal: every ingest run at least 0.80 of the GET loop's files/s")


if __name__ == "__main__":
    main()
