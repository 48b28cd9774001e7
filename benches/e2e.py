#!/usr/bin/env python3
"""End-to-end benchmark: ingestor against the database's own COPY ceiling, same rows, same run.

Generates N records in F gzipped JSON-array files, then alternates, RUNS times:
  (a) `ingestor ingest-file` of the files into an empty `logs`;
  (b) `psql \\copy logs FROM` the same final rows pre-rendered in PostgreSQL's binary COPY
      format (taken from (a) by `\\copy logs TO`), the single-stream ceiling.
Prints per-run figures and medians: records/s, ratio to the ceiling, client CPU seconds,
database CPU seconds (postmaster + children, from /proc), peak client RSS.

One pair of runs (--warmup) goes first and is not counted: after a quiet spell (a build, a
bench) the first runs of a series were up to a fifth slower, the first loader of the pair
most (ratios 1.12-1.22 in the first runs against 1.28-1.38 later in the same series; the
database's CPU per row was higher in them, `ingestor`'s most). After a release build even one
pair was not enough: use --warmup 3 there.

  python3 benches/e2e.py --records 1000000 --files 20 --runs 3 [--concurrency 3] [--parquet] [--delta]

With --versus OTHER_BINARY (repeatable) each round also runs that binary over an emptied table
of its own database (`<database>_v1`, ... migrated by that binary, so builds with different
migrations compare), between the first binary and the ceiling: an A/B of a change in the same
rounds, each with its own medians and ratios.

With --partitioned each round also loads a `logs` partitioned by day (its own database,
`<database>_parts`, made by `ingestor migrate --partition-by day`) with the same binary, the
plain and the partitioned table alternating which goes first; the summary adds the ratio of
their median records/s (issue 21: within 10%). TRUNCATE keeps the day partitions, so after
the warm-up round the days exist, as they do in steady state (one creation per day).

  python3 benches/e2e.py --records 1000000 --files 20 --runs 5 --warmup 3 --partitioned

With --parquet it then writes the same files to a Parquet lake (`--sink parquet=DIR`, no
database rows), RUNS times, and compares records/s, client CPU and bytes on disk per million
records with the PostgreSQL table (heap, TOAST and indexes) and the gzipped input.

With --delta it then writes the same files to a Delta table (`--sink delta=DIR` alone, then
`--sink postgres,delta=DIR`), RUNS times each, alternating: records/s, client CPU, peak RSS
and bytes on disk per million records.

Needs a release build (`cargo build --release`), PostgreSQL on DATABASE_URL (a database
named by --database, created if missing) and psql. Everything talks to 127.0.0.1 only.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("id, timestamp, level, method, url, query, headers, params, context, message, hostname, "
           "auth_user_id, pid, remote_address, remote_port, processing_time_ms, cache_hit, "
           "document_count, last_updated, raw_data, request_id, source_bucket, source_key, source_index")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def postmaster_pid():
    out = sh("psql", ADMIN_URL, "-Atc", "SHOW data_directory").stdout.strip()
    with open(Path(out) / "postmaster.pid") as f:
        return int(f.readline())


def cpu_seconds(pid):
    """utime+stime of `pid` and of its reaped children, plus its live children."""
    def stat(p):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        return [int(x) for x in fields[11:15]]  # utime stime cutime cstime
    total = sum(stat(pid))
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            total += sum(stat(int(child))[:2])
        except (FileNotFoundError, ProcessLookupError):
            pass  # the child exited meanwhile
    return total / CLK_TCK


def psql(sql, url=None):
    sh("psql", url or DB_URL, "-v", "ON_ERROR_STOP=1", "-qc", sql)


def reset(url=None):
    psql("TRUNCATE logs, processed_files, rejected_records; CHECKPOINT", url)


def database(name):
    """The URL of database `name` on the server of DATABASE_URL, created if missing."""
    if not sh("psql", ADMIN_URL, "-Atc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'").stdout.strip():
        sh("psql", ADMIN_URL, "-qc", f"CREATE DATABASE {name}")
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time -v; returns wall s, client CPU s, peak RSS MB, stdout."""
    db_before = cpu_seconds(PG_PID)
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    db_cpu = cpu_seconds(PG_PID) - db_before
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", proc.stderr).group(1))
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", proc.stderr).group(1))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 1024
    return wall, user + system, db_cpu, rss, proc.stdout


def main():
    global ADMIN_URL, DB_URL, PG_PID
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="uncounted pairs of runs first")
    parser.add_argument("--parquet", action="store_true", help="also measure the Parquet sink")
    parser.add_argument("--delta", action="store_true", help="also measure the Delta sink, alone and with PostgreSQL")
    parser.add_argument("--partitioned", action="store_true",
                        help="also load a logs partitioned by day in the same rounds, alternating order")
    parser.add_argument("--database", default="ingestor_bench")
    parser.add_argument("--data", default=str(ROOT / "bench-data"))
    parser.add_argument("--binary", default=os.environ.get("INGESTOR_BIN", str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "ingestor")))
    parser.add_argument("--versus", action="append", default=[], metavar="BINARY",
                        help="another ingestor binary, run in the same rounds (A/B of a change)")
    parser.add_argument("extra", nargs="*", help="extra ingest-file flags")
    args = parser.parse_args()

    ADMIN_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    DB_URL = database(args.database)
    PG_PID = postmaster_pid()
    env = dict(os.environ, DATABASE_URL=DB_URL, RUST_LOG="warn")
    binary = args.binary
    sh(binary, "migrate", env=env)
    # Each --versus binary loads its own database (same server), migrated by itself: builds
    # whose migrations differ can be compared.
    envs = [env]
    for i, other in enumerate(args.versus, 1):
        other_env = dict(env, DATABASE_URL=database(f"{args.database}_v{i}"))
        sh(other, "migrate", env=other_env)
        envs.append(other_env)
    binaries = [binary, *args.versus]
    if args.partitioned:
        parts_env = dict(env, DATABASE_URL=database(f"{args.database}_parts"))
        sh(binary, "migrate", "--partition-by", "day", env=parts_env)
        envs.append(parts_env)
        binaries.append(binary)

    data = Path(args.data) / f"{args.records}-{args.files}"
    if not data.exists():
        tmp = data.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        sh(binary, "generate", "--out", str(tmp), "--files", str(args.files),
           "--records", str(args.records // args.files), "--gzip-level", "6")
        tmp.rename(data)
    json_bytes = None
    rendered = Path(args.data) / f"{args.records}-{args.files}.pgcopy"

    rows = []
    for run in range(-args.warmup, args.runs):
        ours = [None] * len(binaries)
        order = list(range(len(binaries)))
        if args.partitioned and run % 2:
            order.reverse()  # the plain and the partitioned table take turns going first
        for i in order:
            candidate, candidate_env = binaries[i], envs[i]
            url = candidate_env["DATABASE_URL"]
            reset(url)
            wall, cpu, db_cpu, rss, out = timed([candidate, "ingest-file", "--json", "--concurrency", str(args.concurrency), *args.extra, str(data)], candidate_env)
            count = int(sh("psql", url, "-Atc", "SELECT count(*) FROM logs").stdout)
            if not rendered.exists():
                sh("psql", DB_URL, "-qc", f"\\copy logs ({COLUMNS}) TO '{rendered}' (FORMAT binary)")
            reset(url)
            ours[i] = dict(wall=wall, cpu=cpu, db=db_cpu, rss=rss, rate=count / wall)
        reset()
        cwall, ccpu, cdb, crss, _ = timed(["psql", DB_URL, "-v", "ON_ERROR_STOP=1", "-qc",
                                           f"\\copy logs ({COLUMNS}) FROM '{rendered}' (FORMAT binary)"])
        ceiling = dict(wall=cwall, cpu=ccpu, db=cdb, rss=crss, rate=count / cwall)
        table_bytes = int(sh("psql", DB_URL, "-Atc", "SELECT pg_total_relation_size('logs')").stdout)
        if run < 0:
            rates = ", ".join(f"{o['rate']:,.0f}" for o in ours)
            print(f"warm-up: ingestor {rates} rec/s, psql \\copy binary {ceiling['rate']:,.0f} rec/s (not counted)", flush=True)
            continue
        rows.append((ours, ceiling, count))
        for i, o in enumerate(ours):
            name = "ingestor" if i == 0 else (
                "ingestor, day partitions" if args.partitioned and i == len(ours) - 1 else f"versus {i}")
            print(f"run {run + 1}: {name} {o['rate']:,.0f} rec/s ({o['wall']:.1f} s, client CPU {o['cpu']:.1f} s, "
                  f"db CPU {o['db']:.1f} s, RSS {o['rss']:.0f} MB) | ratio {o['rate'] / ceiling['rate']:.2f}", flush=True)
        print(f"run {run + 1}: psql \\copy binary {ceiling['rate']:,.0f} rec/s ({cwall:.1f} s, db CPU {cdb:.1f} s)", flush=True)

    count = rows[0][2]
    per_m = 1_000_000 / count
    ceil = lambda key: statistics.median(r[1][key] for r in rows)
    print()
    print(f"{count:,} records, {args.files} files, {args.runs} runs, concurrency {args.concurrency} (medians)")
    print("| loader | records/s | x ceiling | client CPU s / M records | database CPU s / M records | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    print(f"| psql \\copy, binary, pre-rendered (ceiling) | {ceil('rate'):,.0f} | 1.00 | {ceil('cpu') * per_m:.1f} | {ceil('db') * per_m:.1f} | {ceil('rss'):.0f} |")
    for i, candidate in enumerate(binaries):
        med = lambda key: statistics.median(r[0][i][key] for r in rows)
        ratios = [r[0][i]['rate'] / r[1]['rate'] for r in rows]
        name = "ingestor ingest-file (gz JSON -> logs)" if i == 0 else f"versus {i}: {candidate}"
        if args.partitioned and i == len(binaries) - 1:
            name = "ingestor ingest-file (gz JSON -> logs partitioned by day)"
        runs = ", ".join(f"{x:.2f}" for x in ratios)
        print(f"| {name} | {med('rate'):,.0f} | {statistics.median(ratios):.2f} (runs: {runs}) | {med('cpu') * per_m:.1f} | {med('db') * per_m:.1f} | {med('rss'):.0f} |")
    if args.partitioned:
        plain = statistics.median(r[0][0]["rate"] for r in rows)
        parts = statistics.median(r[0][-1]["rate"] for r in rows)
        per_round = ", ".join(f"{r[0][-1]['rate'] / r[0][0]['rate']:.2f}" for r in rows)
        print(f"\nday partitions / plain table, median records/s: {parts / plain:.3f} (rounds: {per_round})")
    if args.parquet:
        parquet(args, env, data, count, table_bytes)
    if args.delta:
        delta(args, env, data, count)


def parquet(args, env, data, count, table_bytes):
    """The Parquet sink over the same files: throughput and bytes on disk."""
    lake = Path(args.data) / "lake"
    runs = []
    for run in range(args.runs):
        shutil.rmtree(lake, ignore_errors=True)
        psql("TRUNCATE processed_files, rejected_records")
        wall, cpu, _, rss, _ = timed([args.binary, "ingest-file", "--json", "--concurrency", str(args.concurrency),
                                      "--sink", f"parquet={lake}", *args.extra, str(data)], env)
        size = sum(f.stat().st_size for f in lake.rglob("*.parquet"))
        runs.append(dict(rate=count / wall, cpu=cpu, rss=rss, size=size))
        print(f"parquet run {run + 1}: {count / wall:,.0f} rec/s ({wall:.1f} s, client CPU {cpu:.1f} s, RSS {rss:.0f} MB), {size / 1e6:.1f} MB on disk", flush=True)
    med = lambda key: statistics.median(r[key] for r in runs)
    per_m = 1_000_000 / count
    gz = sum(f.stat().st_size for f in data.rglob("*.gz"))
    print()
    print("| where the records are | records/s written | client CPU s / M records | MB per M records |")
    print("|---|---|---|---|")
    print(f"| gzipped JSON input | | | {gz * per_m / 1e6:.0f} |")
    print(f"| PostgreSQL `logs` (heap + TOAST + indexes) | see above | see above | {table_bytes * per_m / 1e6:.0f} |")
    print(f"| Parquet lake, ZSTD (`--sink parquet=DIR`) | {med('rate'):,.0f} | {med('cpu') * per_m:.1f} | {med('size') * per_m / 1e6:.0f} |")


def delta(args, env, data, count):
    """The Delta sink over the same files, alone and beside PostgreSQL, alternating."""
    table = Path(args.data) / "delta"
    modes = [("`--sink delta=DIR`", f"delta={table}"), ("`--sink postgres,delta=DIR`", f"postgres,delta={table}")]
    runs = {name: [] for name, _ in modes}
    for run in range(args.runs):
        for name, sink in modes:
            shutil.rmtree(table, ignore_errors=True)
            reset()
            wall, cpu, db_cpu, rss, _ = timed([args.binary, "ingest-file", "--json", "--concurrency", str(args.concurrency),
                                               "--sink", sink, *args.extra, str(data)], env)
            size = sum(f.stat().st_size for f in table.rglob("*.parquet"))
            runs[name].append(dict(rate=count / wall, cpu=cpu, db=db_cpu, rss=rss, size=size))
            print(f"{name} run {run + 1}: {count / wall:,.0f} rec/s ({wall:.1f} s, client CPU {cpu:.1f} s, "
                  f"db CPU {db_cpu:.1f} s, RSS {rss:.0f} MB), {size / 1e6:.1f} MB of Parquet", flush=True)
    per_m = 1_000_000 / count
    print()
    print("| sink | records/s | client CPU s / M records | peak RSS MB | Delta MB per M records |")
    print("|---|---|---|---|---|")
    for name, _ in modes:
        med = lambda key: statistics.median(r[key] for r in runs[name])
        rates = ", ".join(f"{r['rate'] / 1000:.1f}k" for r in runs[name])
        print(f"| {name} | {med('rate'):,.0f} (runs: {rates}) | {med('cpu') * per_m:.1f} | {med('rss'):.0f} | {med('size') * per_m / 1e6:.0f} |")


if __name__ == "__main__":
    main()
