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
Prints per-run and median wall time, records/s, files/s, and the goals' ratios: small files
reach at least 1,000 files/s and half the records/s of the big files; over TCP they cost
about what they cost through the socket.

  python3 benches/small_files.py --files 5000 --records 100000 --runs 3 [--concurrency 3]

Needs a release build (`cargo build --release`), PostgreSQL on DATABASE_URL (127.0.0.1; a
database named by --database is created) and psql.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

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
    parser.add_argument("--database", default="ingestor_small_files")
    parser.add_argument("--data", default=str(ROOT / "bench-data" / "small-files"))
    parser.add_argument("--binary", default=os.environ.get("INGESTOR_BIN", str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "ingestor")))
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

    modes = [("big", "big", {}, []),
             ("small", "small", {}, []),
             ("small-tcp", "small", {"INGESTOR_DATABASE_SOCKET": "off"}, []),
             ("small-alone", "small", {}, ["--group-files", "1"])]
    if args.alone_tcp:
        modes.append(("small-alone-tcp", "small", {"INGESTOR_DATABASE_SOCKET": "off"}, ["--group-files", "1"]))

    # Migrations once, outside the timings.
    sh(args.binary, "jobs", "list", env={**os.environ, "DATABASE_URL": url})
    results = {name: [] for name, *_ in modes}
    for run in range(args.runs):
        for name, layout, env, extra in modes:
            sh("psql", url, "-qc", "TRUNCATE logs, processed_files, rejected_records; CHECKPOINT")
            files, records = layouts[layout]
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


if __name__ == "__main__":
    main()
