"""What the S3 benches share: a moto server and the fault proxy of crates/s3kit, started
and stopped here, and the proxy's request counts."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


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
    """The proxy's counts by kind (`get`, `list`, ..., `peak_in_flight`); zeroed if `reset`."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("POST" if reset else "GET", "/_proxy/reset" if reset else "/_proxy/counts")
    return json.loads(conn.getresponse().read())


class S3:
    """moto on a free port with bucket `bucket`, and `fault-proxy` (from `bin_dir`) in front
    of it adding `latency_ms`; both stopped on exit. `put(key, bytes)` goes to moto directly."""

    def __init__(self, bin_dir, bucket, latency_ms=0):
        self.bin_dir, self.bucket, self.latency_ms = Path(bin_dir), bucket, latency_ms
        self.children = []

    def __enter__(self):
        proxy_bin = self.bin_dir / "fault-proxy"
        if not proxy_bin.exists():
            sys.exit(f"{proxy_bin} is missing: run `cargo build --release --workspace`")
        moto = Path(os.environ.get("INGESTOR_TEST_MOTO", Path.home() / ".cache/ingestor-s3/bin/moto_server"))
        if not moto.exists():
            sys.exit(f"the S3 test server is missing at {moto}: run `bash scripts/setup-test-s3.sh`")
        port = free_port()
        self.children.append(subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(port, "moto_server")
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.conn.request("PUT", f"/{self.bucket}")
        self.conn.getresponse().read()
        proxy = subprocess.Popen([str(proxy_bin), "--upstream", str(port), "--latency-ms", str(self.latency_ms)],
                                 stdout=subprocess.PIPE, text=True)
        self.children.append(proxy)
        self.proxy_port = int(proxy.stdout.readline().strip().rsplit(":", 1)[1])
        self.endpoint = f"http://127.0.0.1:{self.proxy_port}"
        return self

    def put(self, key, body):
        self.conn.request("PUT", f"/{self.bucket}/{key}", body=body)
        response = self.conn.getresponse()
        response.read()
        assert response.status == 200, f"PUT {key}: {response.status}"

    def env(self):
        """Environment for a process reading the bucket through the proxy."""
        return {"AWS_ENDPOINT": self.endpoint, "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}

    def counts(self, reset=False):
        return proxy_counts(self.proxy_port, reset)

    def __exit__(self, *_):
        for child in reversed(self.children):
            child.terminate()
            child.wait()
