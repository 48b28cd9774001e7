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
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, what):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not start listening on 127.0.0.1:{port}")


def proxy_counts(port, reset=False):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("POST" if reset else "GET", "/_proxy/reset" if reset else "/_proxy/counts")
    return json.loads(conn.getresponse().read())


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

    proxy_bin = Path(args.binary).parent / "fault-proxy"
    if not proxy_bin.exists():
        sys.exit(f"{proxy_bin} is missing: run `cargo build --release --workspace`")
    moto = Path(os.environ.get("INGESTOR_TEST_MOTO", Path.home() / ".cache/ingestor-s3/bin/moto_server"))
    if not moto.exists():
        sys.exit(f"the S3 test server is missing at {moto}: run `bash scripts/setup-test-s3.sh`")

    rows = []
    for count in [int(n) for n in args.objects.split(",")]:
        moto_port = free_port()
        children = [subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(moto_port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        try:
            wait_for(moto_port, "moto_server")
            conn = http.client.HTTPConnection("127.0.0.1", moto_port)
            conn.request("PUT", "/logs")
            conn.getresponse().read()
            keys = [f"logs/host-{i % 50:02}/{i:07}.json" for i in range(count)]
            for key in keys:
                conn.request("PUT", f"/logs/{key}", body=b"[]")
                conn.getresponse().read()
            proxy = subprocess.Popen([str(proxy_bin), "--upstream", str(moto_port)], stdout=subprocess.PIPE, text=True)
            children.append(proxy)
            proxy_port = int(proxy.stdout.readline().strip().rsplit(":", 1)[1])
            env = {**os.environ, "DATABASE_URL": url, "AWS_ENDPOINT": f"http://127.0.0.1:{proxy_port}",
                   "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                   "RUST_LOG": "info"}
            for mode, reconcile in (("full", "0"), ("incremental", "3600")):
                sh("psql", url, "-qc", "TRUNCATE processed_files, listing_marks")
                sh("psql", url, "-qc", "INSERT INTO processed_files (bucket, s3_key, status, processed_at) "
                   f"SELECT 'logs', 'logs/host-' || lpad((i % 50)::text, 2, '0') || '/' || lpad(i::text, 7, '0') || '.json', "
                   f"'COMPLETED', now() FROM generate_series(0, {count - 1}) AS i")
                proxy_counts(proxy_port, reset=True)
                child = subprocess.Popen([args.binary, "run", "--bucket", "logs", "--follow", "--interval", "0.5",
                                          "--reconcile-interval", reconcile, "--json"],
                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                time.sleep(args.seconds)
                child.send_signal(signal.SIGTERM)
                _, stderr = child.communicate(timeout=60)
                lists = proxy_counts(proxy_port)["list"]
                passes = [l for l in stderr.splitlines() if "discovery done" in l]
                first_pages = -(-count // 1000)
                steady = (lists - first_pages) / max(len(passes) - 1, 1)
                rows.append((count, mode, len(passes), lists, steady))
                print(f"{count:>8,} objects  {mode:12} {len(passes):3} passes  {lists:5} LIST requests  "
                      f"{steady:7.2f} per steady-state pass", flush=True)
        finally:
            for child in reversed(children):
                child.terminate()
                child.wait()
    print("\nLIST requests per steady-state pass (the first pass taken out)")
    print("| objects | every pass lists the whole prefix | incremental (default with --follow) |")
    print("|---|---|---|")
    for count in sorted({r[0] for r in rows}):
        by = {r[1]: r[4] for r in rows if r[0] == count}
        print(f"| {count:,} | {by['full']:.2f} | {by['incremental']:.2f} |")


if __name__ == "__main__":
    main()
