"""Several ``pipdepot serve`` nodes over one mirror, behind a real nginx as the load balancer.

Every node is a :class:`tests.depot.Depot` with its own port, its own log and its own local
scratch (``XDG_CACHE_HOME`` and ``HOME``: an S3 store spools under the user's cache, and two
nodes must never share a spool), and the same ``--mirror``: a directory, or an
``s3://BUCKET/PREFIX`` with the AWS variables that reach it. nginx spreads requests over the
nodes round-robin and skips a dead one (``proxy_next_upstream error timeout http_502``), so a
node can be SIGKILLed and restarted under load. Everything is stopped by its PID.

:func:`render_balancer` writes the nginx configuration docs/SCALE.md quotes (a test checks
that the two agree).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.depot import Depot, free_port

__all__ = ["Balancer", "Nodes", "node_port", "render_balancer"]

#: Nodes listen below the kernel's ephemeral range (``ip_local_port_range``): a port picked there is
#: free when the node starts, but once the node is killed the kernel may give it to an outgoing
#: connection, and the restarted node could not listen on it again.
_NODE_PORTS = range(20000, 32000)
#: nginx gives up on a node that does not accept a connection within this, and tries the next.
CONNECT_TIMEOUT = "2s"
#: A node that failed is left out of the rotation this long, then tried again.
FAIL_TIMEOUT = "2s"


def node_port() -> int:
    """A free loopback port outside the ephemeral range, so a node can be restarted on it.

    :raises RuntimeError: none found in a few hundred tries.
    """
    for _ in range(500):
        port = random.choice(_NODE_PORTS)  # noqa: S311 (not a secret)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_NODE_PORTS}")


def render_balancer(ports: list[int], listen: str, access_log: str) -> str:
    """The nginx ``http {}`` block contents that put the nodes on ``ports`` behind ``listen``.

    >>> "server 127.0.0.1:3142 max_fails=1 fail_timeout=2s;" in render_balancer([3141, 3142], "8080", "off")
    True
    """
    servers = "".join(
        f"    server 127.0.0.1:{port} max_fails=1 fail_timeout={FAIL_TIMEOUT};\n" for port in ports
    )
    return (
        "# pipdepot nodes behind one address: include inside nginx's http { } block.\n"
        "upstream pipdepot_nodes {\n"
        f"{servers}"
        "    keepalive 16;\n"
        "}\n"
        "\n"
        "log_format pipdepot_nodes '$remote_addr [$time_local] \"$request\" $status $body_bytes_sent '\n"
        "                          'upstream=$upstream_addr upstream_status=$upstream_status';\n"
        "\n"
        "server {\n"
        f"    listen {listen};\n"
        "    server_name _;\n"
        f"    access_log {access_log} pipdepot_nodes;\n"
        "\n"
        "    proxy_http_version 1.1;\n"
        '    proxy_set_header Connection "";\n'
        "    proxy_set_header Host $http_host;\n"
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "    # Stream misses as the node sends them; a download is never buffered to disk by nginx.\n"
        "    proxy_buffering off;\n"
        f"    proxy_connect_timeout {CONNECT_TIMEOUT};\n"
        "    proxy_read_timeout 300s;\n"
        "    # A node that refuses, resets or times out before it answered: the request goes to the next.\n"
        "    # Once a response has begun, nginx cannot move it: a node killed mid-response cuts it short.\n"
        "    proxy_next_upstream error timeout http_502;\n"
        "    proxy_next_upstream_timeout 10s;\n"
        "\n"
        "    location / {\n"
        "        proxy_pass http://pipdepot_nodes;\n"
        "    }\n"
        "}\n"
    )


@dataclass
class Balancer:
    """A real nginx (``nginx -c <conf> -p <directory>``, not a daemon), stopped by its PID."""

    directory: Path
    ports: list[int]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    def start(self) -> Balancer:
        """Write the configuration and start nginx; return once it answers ``/+health``.

        :raises RuntimeError: nginx is missing, exited, or did not answer (its stderr is quoted).
        """
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.directory.mkdir(parents=True, exist_ok=True)
        block = render_balancer(self.ports, f"127.0.0.1:{self.port}", str(self.access_log))
        (self.directory / "nodes.conf").write_text(block)
        temp = " ".join(
            f"{kind}_temp_path {self.directory / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, workers would otherwise be nobody, who cannot enter pytest's 0700 directories.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (self.directory / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\n{user}pid {self.directory / 'nginx.pid'};\n"
            f"error_log {self.directory / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n    {temp}\n    include {self.directory / 'nodes.conf'};\n}}\n"
        )
        with (self.directory / "nginx.out").open("wb") as out:
            self.process = subprocess.Popen(
                [binary, "-c", str(self.directory / "nginx.conf"), "-p", str(self.directory)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/+health", timeout=1):
                    return self
            except (OSError, urllib.error.URLError):
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not start: {(self.directory / 'nginx.out').read_text()}")

    def stop(self) -> None:
        """SIGTERM (nginx's fast stop: its workers go too, open downloads are cut), by PID."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def upstreams(self) -> list[str]:
        """Per logged request, ``$upstream_addr``: every node nginx tried, in order (``a, b``)."""
        if not self.access_log.exists():
            return []
        return [
            line.split(" upstream=", 1)[1].split(" upstream_status=", 1)[0]
            for line in self.access_log.read_text().splitlines()
            if " upstream=" in line
        ]


@dataclass
class Nodes:
    """``count`` nodes over one mirror behind a :class:`Balancer`; :meth:`start`, then :meth:`stop`."""

    directory: Path
    #: ``--mirror``: a directory path, or ``s3://BUCKET/PREFIX``.
    mirror: str
    upstream: str
    count: int = 3
    #: Variables every node gets (the AWS variables of an S3 store).
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    depots: list[Depot] = field(default_factory=list)
    balancer: Balancer | None = None

    @property
    def url(self) -> str:
        assert self.balancer is not None
        return self.balancer.url

    @property
    def index(self) -> str:
        """The one address clients use: nginx's."""
        return f"{self.url}/simple/"

    def node_env(self, number: int) -> dict[str, str]:
        """Node ``number``'s own HOME and XDG_CACHE_HOME (its S3 spool), plus the shared variables."""
        home = self.directory / f"node-{number}" / "home"
        cache = self.directory / f"node-{number}" / "cache"
        home.mkdir(parents=True, exist_ok=True)
        cache.mkdir(parents=True, exist_ok=True)
        return {**self.env, "HOME": str(home), "XDG_CACHE_HOME": str(cache)}

    def start(self) -> Nodes:
        """Start every node, then nginx in front of them; on any failure stop what started."""
        try:
            for number in range(self.count):
                depot = Depot(
                    Path(self.mirror),
                    self.directory / f"node-{number}.log",
                    ("--upstream", self.upstream, *self.args),
                    port=node_port(),
                    env=self.node_env(number),
                    location=self.mirror,
                )
                self.depots.append(depot)
                depot.start()
            self.balancer = Balancer(self.directory / "nginx", [d.port for d in self.depots])
            self.balancer.start()
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, number: int) -> None:
        """SIGKILL node ``number``: no clean-up of any kind, as a crash or an OOM kill."""
        self.depots[number].stop(signal.SIGKILL)

    def restart(self, number: int) -> None:
        """Start node ``number`` again on its port, with its scratch as the killed process left it."""
        self.depots[number].start()

    def stop(self) -> None:
        """nginx first (no new requests), then every node (SIGTERM, SIGKILL after 20 s)."""
        if self.balancer is not None:
            self.balancer.stop()
        for depot in self.depots:
            depot.stop()

    def logs(self) -> str:
        """Every node's log, for a failure message."""
        return "\n".join(f"--- node {n}:\n{d.log_text()[-4000:]}" for n, d in enumerate(self.depots))
