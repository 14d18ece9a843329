"""The benchmark harness behind ``bench/run``: pipdepot against devpi-server, proxpi, nginx and PyPI direct.

Everything it needs lives under the work directory (default ``bench/.work/``): one venv per contender
(installed from PyPI, pipdepot from this repository), the servers' data directories, logs and the nginx
config. Results go to ``bench/results/<part>.json``; ``bench/run report`` turns them into the tables of
``docs/BENCHMARKS.md`` and ``docs/benchmarks.png``.

Every server listens on 127.0.0.1 on a free port, is started by this script and stopped by its PID.
Every client (pip, uv) runs isolated from the machine's pip configuration. Every load is bounded in time.
Only the standard library is used here, so any Python 3.11 can run it; the tools venv adds pip, uv,
matplotlib and py-spy.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fnmatch
import gzip
import hashlib
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PARTS = ("pages", "files", "startup", "installs", "offline")
CONTENDERS = ("pipdepot", "devpi", "proxpi", "nginx", "direct")
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
)
HTML_ACCEPT = "text/html"
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
DEAD = "http://127.0.0.1:9"
TOOLS = ("pip", "uv", "matplotlib", "py-spy")
PEERS = {"devpi": ("devpi-server",), "proxpi": ("proxpi", "gunicorn")}
Json = dict[str, Any]
#: Every server this process started, so none outlives it.
STARTED: list[Server] = []


def log(message: str) -> None:
    """Progress on stderr, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without what steers pip, uv or the servers (the machine has a site-wide pip config)."""
    drop = ("PIP_", "UV_", "PIPDEPOT_", "DIB_", "PROXPI_", "DEVPI", "PYPI_MIRROR_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "VIRTUAL_ENV"}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def run(
    argv: list[str], *, timeout: float = 1800, env: dict[str, str] | None = None, tail: int = 2000
) -> Json:
    """Run a command, timed; never raises on failure."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=timeout, env=env or clean_env()
        )
        rc, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = -1, str(exc.stdout or ""), f"timeout after {timeout} s"
    return {
        "rc": rc,
        "seconds": round(time.perf_counter() - start, 3),
        "stdout": out[-tail:],
        "stderr": err[-tail:],
    }


# -- configuration --------------------------------------------------------------------------------


@dataclass
class Bench:
    """What to run and where, from the command line."""

    parts: list[str]
    contenders: list[str]
    work: Path
    results: Path
    requirements: Path
    smoke: bool
    repeats: int
    wrk_seconds: int
    wrk_connections: int
    curl_count: int
    small: str
    large: str
    big_file: str
    probes: list[str]
    upstream: str | None
    tools_python: Path | None
    pipdepot_python: Path | None
    profile: bool
    command: str
    doc: Path
    plot: Path
    report: bool
    _reinstalled: bool = False
    _tools: Path | None = None

    @property
    def names(self) -> list[str]:
        """The normalized names of the requirement set."""
        names = []
        for line in self.requirements.read_text().splitlines():
            line = line.split("#", 1)[0].strip()  # noqa: PLW2901
            if line:
                names.append(normalize(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0]))
        return names

    def data(self, name: str) -> Path:
        """A server's data directory."""
        path = self.work / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def logs(self) -> Path:
        """Where server logs go."""
        path = self.work / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- venvs ----------------------------------------------------------------------------------

    def tools(self) -> Path:
        """The Python of the tools venv (pip, uv, matplotlib, py-spy)."""
        if self.tools_python is not None:
            return self.tools_python
        if self._tools is not None:
            return self._tools
        venv = self.work / "venvs" / "tools"
        python = venv / "bin" / "python"
        if not (venv / ".ready").exists():
            log("creating the tools venv (pip, uv, matplotlib, py-spy)")
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "-U", *TOOLS], check=True, env=clean_env()
            )
            (venv / ".ready").write_text("\n".join(TOOLS))
        self._tools = python
        return python

    def uv(self) -> Path:
        """The uv binary beside the tools Python."""
        uv = self.tools().parent / "uv"
        if not uv.exists():
            found = shutil.which("uv")
            if found is None:
                raise SystemExit("uv is not installed beside the tools Python")
            return Path(found)
        return uv

    def venv(self, name: str, packages: tuple[str, ...], *, reinstall: str | None = None) -> Path:
        """The bin directory of a contender's venv, made with uv from PyPI (or this repository)."""
        venv = self.work / "venvs" / name
        ready = venv / ".ready"
        if ready.exists() and reinstall is None:
            return venv / "bin"
        if not ready.exists():
            log(f"creating the {name} venv: {' '.join(packages)}")
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run(
                [str(self.uv()), "venv", "--no-config", "-q", "--python", sys.executable, str(venv)],
                check=True,
                env=clean_env(),
            )
        argv = [
            str(self.uv()),
            "pip",
            "install",
            "--no-config",
            "-q",
            "--python",
            str(venv / "bin" / "python"),
        ]
        if reinstall is not None:
            argv += ["--reinstall-package", reinstall]
        subprocess.run([*argv, *packages], check=True, env=clean_env())
        ready.write_text("\n".join(packages))
        return venv / "bin"

    def pipdepot_py(self) -> Path:
        """pipdepot's Python: this repository installed into its own venv, once per invocation."""
        if self.pipdepot_python is not None:
            return self.pipdepot_python
        if not self._reinstalled:
            log("installing pipdepot from this repository into its venv")
            self.venv("pipdepot", (str(REPO),), reinstall="pipdepot")
            self._reinstalled = True
        return self.work / "venvs" / "pipdepot" / "bin" / "python"

    def upstream_simple(self) -> str:
        """The upstream index pipdepot and the saved pages come from (PyPI unless --upstream)."""
        if self.upstream is not None:
            return self.upstream
        out = subprocess.run(
            [str(self.pipdepot_py()), "-c", "import pypi_simple; print(pypi_simple.PYPI_SIMPLE_ENDPOINT)"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()


# -- servers --------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    tree = _children()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def peak_rss(pid: int) -> Json:
    """VmHWM of every process of the server, in MiB: their sum and the largest."""
    values = []
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            lines = Path(f"/proc/{each}/status").read_text().splitlines()
            values += [int(line.split()[1]) / 1024 for line in lines if line.startswith("VmHWM:")]
    return {
        "sum_mib": round(sum(values), 1),
        "max_mib": round(max(values, default=0), 1),
        "processes": len(values),
    }


@dataclass
class Server:
    """One running contender, started and stopped by this script."""

    name: str
    argv: list[str]
    health: str
    index: str
    log: Path
    port: int
    env: dict[str, str] = field(default_factory=clean_env)
    process: subprocess.Popen[bytes] | None = None
    ready_s: float | None = None
    rss: Json | None = None

    @property
    def base(self) -> str:
        """The server's address."""
        return f"http://127.0.0.1:{self.port}"

    def page(self, project: str) -> str:
        """The URL of a project's page."""
        return f"{self.base}{self.index}{project}/"

    def start(self, timeout: float = 120) -> Server:
        """Spawn and wait for the first 200 on the health URL."""
        log(f"starting {self.name} on port {self.port}")
        with self.log.open("ab") as out:
            out.write(f"\n=== {dt.datetime.now(dt.UTC).isoformat()} {shlex.join(self.argv)}\n".encode())
            out.flush()
            begin = time.perf_counter()
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        STARTED.append(self)
        deadline = begin + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                break
            try:
                status, _, _ = fetch(self.base + self.health, timeout=2)
            except OSError:
                status = 0
            if status == 200:
                self.ready_s = round(time.perf_counter() - begin, 3)
                return self
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer 200 on {self.health}; see {self.log}")

    def stop(self) -> Json | None:
        """SIGTERM to our own PID (gunicorn and nginx masters stop their workers); peak RSS first."""
        if self.process is None:
            return self.rss
        if self.process.poll() is None:
            self.rss = peak_rss(self.process.pid)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        log(f"stopped {self.name} (peak RSS {self.rss})")
        self.process = None
        return self.rss

    def __enter__(self) -> Server:  # noqa: PYI034 (Server is final here)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def make_server(b: Bench, kind: str, data: Path, *, mode: str = "online", tag: str = "") -> Server:
    """A contender's server over ``data``; ``mode`` is online, dead (upstream unreachable) or offline."""
    port = free_port()
    logfile = b.logs() / f"{kind}{tag}.log"
    if kind == "pipdepot":
        home = b.work / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home))
        return Server(kind, pipdepot_argv(b, data, port, mode), "/+health", "/simple/", logfile, port, env)
    if kind == "devpi":
        bindir = b.venv("devpi", PEERS["devpi"])
        argv = [str(bindir / "devpi-server"), "--serverdir", str(data), "--host", "127.0.0.1"]
        argv += ["--port", str(port)]
        if mode == "offline":
            argv.append("--offline-mode")
        return Server(kind, argv, "/+api", "/root/pypi/+simple/", logfile, port)
    if kind == "proxpi":
        bindir = b.venv("proxpi", PEERS["proxpi"])
        argv = [str(bindir / "gunicorn"), "--preload", "--bind", f"127.0.0.1:{port}", "--threads", "8"]
        argv.append("proxpi.server:app")
        env = clean_env(PROXPI_CACHE_DIR=str(data))
        if mode == "dead":
            env["PROXPI_INDEX_URL"] = f"{DEAD}/"
        return Server(kind, argv, "/health", "/index/", logfile, port, env)
    if kind == "nginx":
        conf = nginx_conf(b, data, port)
        return Server(
            kind, ["nginx", "-e", str(conf.parent / "error.log"), "-c", str(conf)], "/", "/", logfile, port
        )
    raise ValueError(kind)


def pipdepot_argv(b: Bench, data: Path, port: int, mode: str) -> list[str]:
    """``pipdepot serve`` for a mode: online, dead (upstream unreachable, TTL 0), offline, longttl."""
    argv = [str(b.pipdepot_py()), "-m", "pipdepot", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--mirror", str(data)]
    if mode == "dead":
        argv += ["--upstream", f"{DEAD}/simple/", "--ttl", "0"]
    elif mode == "offline":
        argv += ["--offline"]
    else:
        if b.upstream is not None:
            argv += ["--upstream", b.upstream]
        if mode == "longttl":  # every stored page counts as fresh: served from disk, upstream untouched
            argv += ["--ttl", str(365 * 86400)]
    return argv


def devpi_init(b: Bench, data: Path) -> float | None:
    """``devpi-init`` for a new server dir; its seconds (None if it was there already)."""
    if data.exists():
        return None
    bindir = b.venv("devpi", PEERS["devpi"])
    result = run([str(bindir / "devpi-init"), "--serverdir", str(data)], timeout=300)
    if result["rc"] != 0:
        raise RuntimeError(f"devpi-init failed: {result['stderr']}")
    return float(result["seconds"])


def nginx_conf(b: Bench, mirror: Path, port: int) -> Path:
    """nginx over pipdepot's mirror tree, and the saved upstream pages at /upstream/ and /upstream-json/."""
    directory = b.work / "nginx"
    (directory / "tmp").mkdir(parents=True, exist_ok=True)
    pages = b.work / "data" / "upstream-pages"
    temp = " ".join(
        f"{kind}_temp_path {directory / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""user root;
worker_processes 2;
daemon off;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  {temp}
  server {{
    listen 127.0.0.1:{port};
    root {mirror};
    index index.html;
    location ~ /\\. {{ return 404; }}
    location /upstream/ {{ alias {pages}/html/; gzip_static on; }}
    location /upstream-json/ {{
      alias {pages}/json/; index index.json; gzip_static on;
      types {{ }} default_type application/vnd.pypi.simple.v1+json;
    }}
  }}
}}
"""
    )
    return conf


# -- HTTP helpers ---------------------------------------------------------------------------------


def fetch(
    url: str, headers: dict[str, str] | None = None, *, method: str = "GET", timeout: float = 120
) -> tuple[int, dict[str, str], bytes]:
    """One request; status, lower-cased headers and the raw (still encoded) body."""
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.netloc, timeout=timeout)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def decoded(headers: dict[str, str], body: bytes) -> bytes:
    """The body with its Content-Encoding undone (gzip only)."""
    return gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body


def page_files(url: str) -> list[str]:
    """The absolute file URLs a project page lists (JSON when offered, else the HTML links)."""
    status, headers, body = fetch(url, {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"})
    if status != 200:
        raise RuntimeError(f"{url}: HTTP {status}")
    body = decoded(headers, body)
    if "json" in headers.get("content-type", ""):
        return [urllib.parse.urljoin(url, f["url"]) for f in json.loads(body)["files"]]
    hrefs = [h.decode() for h in re.findall(rb'href="([^"]+)"', body)]
    return [urllib.parse.urljoin(url, h.split("#", 1)[0]) for h in hrefs]


def find_file(url: str, pattern: str) -> str:
    """The URL of the file matching ``pattern`` on the page at ``url``."""
    for file_url in page_files(url):
        if fnmatch.fnmatch(urllib.parse.unquote(file_url.rsplit("/", 1)[-1]), pattern):
            return file_url
    raise RuntimeError(f"no file matching {pattern} on {url}")


# -- wrk and curl ---------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
_SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        return float("nan")
    return round(float(match[1]) * _UNITS[match[2]], 3)


def parse_wrk(output: str) -> Json:
    """req/s, p50, p99, errors and transfer from ``wrk --latency``."""
    result: Json = {"req_s": None, "p50_ms": None, "p99_ms": None, "non_2xx": 0, "socket_errors": 0}
    if match := re.search(r"Requests/sec:\s+([\d.]+)", output):
        result["req_s"] = round(float(match[1]), 1)
    if match := re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", output):
        result["transfer_mb_s"] = round(float(match[1]) * _SIZES.get(match[2], 1) / 1e6, 1)
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        if match := re.search(rf"^\s+{pct}%\s+(\S+)", output, re.MULTILINE):
            result[key] = _ms(match[1])
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        result["non_2xx"] = int(match[1])
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        result["socket_errors"] = sum(int(g) for g in match.groups())
    if match := re.search(r"(\d+) requests in", output):
        result["requests"] = int(match[1])
    return result


def wrk(url: str, headers: dict[str, str], *, seconds: int, connections: int, threads: int = 2) -> Json:
    """A bounded wrk run."""
    argv = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv += ["--timeout", "10s"]
    for key, value in headers.items():
        argv += ["-H", f"{key}: {value}"]
    done = run([*argv, url], timeout=seconds + 60)
    result = parse_wrk(done["stdout"])
    result["command"] = shlex.join([*argv, url])
    if result["req_s"] is None:
        result["error"] = done["stderr"] or done["stdout"]
    return result


# -- parts ----------------------------------------------------------------------------------------


def ensure_warm(b: Bench, kind: str) -> Path:
    """The data dir of a contender after one uv install of the set and the benchmark pages through it."""
    data = b.data(f"{kind}-warm")
    marker = data / ".bench-warm"
    if marker.exists():
        return data
    log(f"warming {kind}")
    shutil.rmtree(data, ignore_errors=True)
    init = devpi_init(b, data) if kind == "devpi" else None
    with make_server(b, kind, data, tag="-warm").start() as server:
        attempts = []
        for _ in range(3):  # devpi's cold uv install may fail with 404s; its second run succeeds
            attempts.append(install(b, "uv", server.base + server.index))
            if attempts[-1]["rc"] == 0:
                break
        for project in (b.small, b.large):
            for accept in (HTML_ACCEPT, JSON_ACCEPT):
                fetch(server.page(project), {"Accept": accept})
        fetch(find_file(server.page(b.large), b.big_file))
    if attempts[-1]["rc"] != 0:
        raise RuntimeError(f"warming {kind} failed: {attempts[-1]['stderr']}")
    marker.write_text(json.dumps({"init_s": init, "installs": [a["seconds"] for a in attempts]}))
    return data


def save_upstream_pages(b: Bench) -> Path:
    """Upstream's own HTML and JSON of the benchmark pages as static files, with .gz beside them."""
    root = b.data("upstream-pages")
    upstream = b.upstream_simple()
    for project in (b.small, b.large):
        for kind, accept in (("html", HTML_ACCEPT), ("json", JSON_ACCEPT)):
            target = root / kind / project / ("index.html" if kind == "html" else "index.json")
            if target.exists():
                continue
            status, headers, body = fetch(
                f"{upstream}{project}/", {"Accept": accept, "Accept-Encoding": "gzip"}
            )
            if status != 200:
                raise RuntimeError(f"upstream page {project}: HTTP {status}")
            target.parent.mkdir(parents=True, exist_ok=True)
            body = decoded(headers, body)
            target.write_bytes(body)
            Path(f"{target}.gz").write_bytes(gzip.compress(body, compresslevel=6, mtime=0))
    return root


def page_info(url: str, headers: dict[str, str]) -> Json:
    """One request: what the page looks like (status, type, sizes, files, encoding)."""
    start = time.perf_counter()
    status, got, body = fetch(url, headers)
    elapsed = round((time.perf_counter() - start) * 1000, 2)
    info: Json = {
        "status": status,
        "ms": elapsed,
        "content_type": got.get("content-type"),
        "content_encoding": got.get("content-encoding"),
        "bytes_sent": len(body),
        "cache": got.get("x-pipdepot-cache"),
    }
    if status == 200:
        text = decoded(got, body)
        info["bytes"] = len(text)
        if "json" in (got.get("content-type") or ""):
            info["files"] = len(json.loads(text)["files"])
        else:
            info["files"] = text.count(b"<a ")
    return info


def page_targets(b: Bench, kind: str, server: Server) -> list[tuple[str, str, dict[str, str]]]:
    """(variant, URL, headers) for the page benchmark."""
    gz = {"Accept-Encoding": "gzip"}
    targets = []
    for label, project in (("small", b.small), ("large", b.large)):
        if kind == "nginx":
            targets += [
                (f"{label}_upstream_html_gzip_static", f"{server.base}/upstream/{project}/", gz),
                (f"{label}_upstream_html_identity", f"{server.base}/upstream/{project}/", {}),
                (f"{label}_upstream_json_gzip_static", f"{server.base}/upstream-json/{project}/", gz),
                (f"{label}_tree_html_identity", f"{server.base}/{project}/", {}),
            ]
        else:
            targets += [
                (f"{label}_html_gzip", server.page(project), {"Accept": HTML_ACCEPT, **gz}),
                (f"{label}_json_gzip", server.page(project), {"Accept": JSON_ACCEPT, **gz}),
            ]
    if kind != "nginx":
        targets.append(("small_html_gzip_c1", server.page(b.small), {"Accept": HTML_ACCEPT, **gz}))
    return targets


_RENDER_PROBE = r"""
import cProfile, io, json, pstats, sys, time
from pipdepot.core import pages
from pipdepot.core.project import ProjectState
path = sys.argv[1]
def once():
    t = [time.perf_counter()]
    data = open(path, "rb").read(); t.append(time.perf_counter())
    state = ProjectState.from_json(data); t.append(time.perf_counter())
    files = pages.page_files(state, local_only=False); t.append(time.perf_counter())
    html = pages.render_project_html(state, files); t.append(time.perf_counter())
    body = pages.render_project_json(state, files); t.append(time.perf_counter())
    pages.RenderedPage.of(html, "text/html"); t.append(time.perf_counter())
    pages.RenderedPage.of(body, pages.JSON_TYPE); t.append(time.perf_counter())
    steps = ["read", "from_json", "page_files", "render_html", "render_json", "gzip_html", "gzip_json"]
    out = {s: round((t[i + 1] - t[i]) * 1000, 2) for i, s in enumerate(steps)}
    out["files"] = len(files)
    out["state_bytes"] = len(data)
    out["html_bytes"] = len(html)
    out["json_bytes"] = len(body)
    return out
first = once()
runs = [once() for _ in range(5)]
profile = cProfile.Profile()
profile.enable(); once(); profile.disable()
text = io.StringIO()
pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(18)
def total(r, keys):
    return round(sum(r[k] for k in keys), 2)
json_path = ["read", "from_json", "page_files", "render_json", "gzip_json"]
html_path = ["read", "from_json", "page_files", "render_html", "gzip_html"]
print(json.dumps({
    "first": first,
    "best": {k: min(r[k] for r in runs) for k in first},
    "cold_json_page_ms": {"first": total(first, json_path), "best": min(total(r, json_path) for r in runs)},
    "cold_html_page_ms": {"first": total(first, html_path), "best": min(total(r, html_path) for r in runs)},
    "profile": text.getvalue()[-6000:],
}))
"""


def cold_render(b: Bench, data: Path) -> Json:
    """The large page rendered cold: first request after an offline restart, and in-process timings."""
    result: Json = {}
    state = data / ".pipdepot" / "projects" / f"{b.large}.json"
    probe = run([str(b.pipdepot_py()), "-c", _RENDER_PROBE, str(state)], timeout=300, tail=10**7)
    if probe["rc"] == 0:
        result["in_process"] = json.loads(probe["stdout"])
    else:
        result["in_process"] = {"error": probe["stderr"]}
    # A restart reads nothing but the state file of the page asked for: the first request is a cold render.
    # "longttl": the stored page is fresh, so the whole upstream page is rendered and upstream is not asked.
    # "offline": pipdepot lists only the files it has locally (a page of a few files).
    for mode in ("longttl", "offline"):
        for fmt, accept in (("json", JSON_ACCEPT), ("html", HTML_ACCEPT)):
            with make_server(b, "pipdepot", data, mode=mode, tag="-cold-render").start() as server:
                first = page_info(server.page(b.large), {"Accept": accept, "Accept-Encoding": "gzip"})
                second = page_info(server.page(b.large), {"Accept": accept, "Accept-Encoding": "gzip"})
            result[f"{mode}_first_request_{fmt}"] = first
            result[f"{mode}_second_request_{fmt}"] = second
    return result


def attempt(out: Json, key: str, action: Any) -> None:  # noqa: ANN401 (a callable returning Json)
    """``out[key] = action()``; a failure is recorded there instead of ending the part."""
    try:
        out[key] = action()
    except Exception as exc:  # noqa: BLE001 (one contender failing must not lose the others' numbers)
        log(f"{key} failed: {exc!r}")
        out[key] = {"error": repr(exc)}
    finally:
        kill_leftovers()


def part_pages(b: Bench) -> Json:
    """Warm cached project pages under wrk; the cold render of the large page."""
    out: Json = {}
    for kind in b.contenders:
        if kind != "direct":
            attempt(out, kind, lambda k=kind: pages_of(b, k))
    return out


def pages_of(b: Bench, kind: str) -> Json:
    """The pages part for one contender."""
    if kind == "nginx":
        data = ensure_warm(b, "pipdepot")
        save_upstream_pages(b)
    else:
        data = ensure_warm(b, kind)
    entry: Json = {"variants": {}}
    with make_server(b, kind, data, tag="-pages").start() as server:
        entry["ready_s"] = server.ready_s
        for variant, url, headers in page_targets(b, kind, server):
            info = page_info(url, headers)  # primes in-memory caches (proxpi keeps its index in memory)
            info = page_info(url, headers)
            connections = 1 if variant.endswith("_c1") else b.wrk_connections
            log(f"wrk {kind} {variant} -c{connections}")
            load = wrk(url, headers, seconds=b.wrk_seconds, connections=connections)
            if kind == "pipdepot" and b.profile and variant == "small_html_gzip":
                entry["profile"] = profile_under_load(b, server, url, headers)
            entry["variants"][variant] = {"page": info, **load}
    entry["rss"] = server.rss
    if kind == "pipdepot":
        attempt(entry, "cold_render", lambda: cold_render(b, data))
    return entry


def profile_under_load(b: Bench, server: Server, url: str, headers: dict[str, str]) -> Json:
    """py-spy over the server while wrk loads one page: where the time goes."""
    if server.process is None:
        return {"error": "server not running"}
    py_spy = b.tools().parent / "py-spy"
    target = b.results / "profiles"
    target.mkdir(parents=True, exist_ok=True)
    raw = target / "pipdepot-small-page.txt"
    seconds = max(b.wrk_seconds, 5)
    spy = subprocess.Popen(
        [str(py_spy), "record", "--pid", str(server.process.pid), "--duration", str(seconds), "--rate", "200",
         "--format", "raw", "--output", str(raw), "--nonblocking"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(0.5)
    load = wrk(url, headers, seconds=seconds, connections=b.wrk_connections)
    output = spy.communicate(timeout=seconds + 60)[0].decode(errors="replace")
    result: Json = {"load": load, "py_spy": output[-1000:], "raw": str(raw)}
    if raw.exists():
        result["top_self"] = top_frames(raw)
    return result


def top_frames(raw: Path, count: int = 20) -> list[tuple[str, float]]:
    """The functions with the most samples on top of the stack (self time), as a share of all samples."""
    own: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if not samples.isdigit():
            continue
        n = int(samples)
        total += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:count]
    return [(name, round(100 * n / max(total, 1), 1)) for name, n in ranked]


def part_files(b: Bench) -> Json:
    """The large cached wheel: curl x N sequential, wrk -c8, and HEAD/Range correctness."""
    out: Json = {}
    for kind in b.contenders:
        if kind != "direct":
            attempt(out, kind, lambda k=kind: files_of(b, k))
    return out


def files_of(b: Bench, kind: str) -> Json:
    """The files part for one contender."""
    data = ensure_warm(b, "pipdepot" if kind == "nginx" else kind)
    with make_server(b, kind, data, tag="-files").start() as server:
        page = f"{server.base}/{b.large}/" if kind == "nginx" else server.page(b.large)
        url = find_file(page, b.big_file)
        entry = file_checks(url)
        entry["curl"] = curl_many(url, b.curl_count)
        size = entry.get("size") or 0
        load = wrk(url, {}, seconds=b.wrk_seconds, connections=min(8, b.wrk_connections))
        load["mb_s"] = round((load["req_s"] or 0) * size / 1e6, 1)
        entry["wrk_c8"] = load
    entry["rss"] = server.rss
    return entry


def file_checks(url: str) -> Json:
    """GET, HEAD, Range: correct lengths, Accept-Ranges, 206 with the right bytes, 416 past the end."""
    status, headers, body = fetch(url)
    if status != 200:
        return {"url": url, "error": f"GET {status}", "status": status}
    size = len(body)
    checks: Json = {"get_200": status == 200, "get_length_header": headers.get("content-length") == str(size)}
    h_status, h_headers, h_body = fetch(url, method="HEAD")
    checks["head_200"] = h_status == 200
    checks["head_length"] = h_headers.get("content-length") == str(size)
    checks["head_no_body"] = h_body == b""
    checks["accept_ranges_bytes"] = h_headers.get("accept-ranges") == "bytes"
    r_status, r_headers, r_body = fetch(url, {"Range": "bytes=1000-1999"})
    checks["range_206"] = r_status == 206
    checks["range_bytes"] = r_body == body[1000:2000]
    checks["range_content_range"] = r_headers.get("content-range") == f"bytes 1000-1999/{size}"
    s_status, _, s_body = fetch(url, {"Range": "bytes=-100"})
    checks["suffix_range"] = s_status == 206 and s_body == body[-100:]
    past_status, _, _ = fetch(url, {"Range": f"bytes={size + 10}-"})
    checks["past_end_416"] = past_status == 416
    return {
        "url_path": urllib.parse.urlsplit(url).path,
        "size": size,
        "sha256": hashlib.sha256(body).hexdigest(),
        "checks": checks,
        "all_ok": all(checks.values()),
        "headers": {k: headers.get(k) for k in ("content-type", "cache-control", "etag", "last-modified")},
    }


def curl_many(url: str, count: int) -> Json:
    """``count`` sequential curl downloads to /dev/null."""
    times, codes, sizes = [], set(), set()
    for _ in range(count):
        done = run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}", url]
        )
        code, size, seconds = done["stdout"].split()
        codes.add(int(code))
        sizes.add(int(size))
        times.append(float(seconds))
    size = max(sizes)
    return {
        "count": count,
        "codes": sorted(codes),
        "median_ms": round(statistics.median(times) * 1000, 2),
        "mb_s_total": round(size * count / sum(times) / 1e6, 1),
        "mb_s_median": round(size / statistics.median(times) / 1e6, 1),
    }


def part_startup(b: Bench) -> Json:
    """Spawn to the first 200 on an empty data dir (3 times), and the first uncached pages."""
    out: Json = {}
    for kind in b.contenders:
        if kind != "direct":
            attempt(out, kind, lambda k=kind: startup_of(b, k))
    return out


def startup_of(b: Bench, kind: str) -> Json:
    """The startup part for one contender."""
    entry: Json = {"ready_s": [], "init_s": []}
    trials = 1 if b.smoke else 3
    for trial in range(trials):
        if kind == "nginx":
            data = ensure_warm(b, "pipdepot")
        else:
            data = b.data(f"{kind}-probe")
            shutil.rmtree(data, ignore_errors=True)
            if kind == "devpi":
                entry["init_s"].append(devpi_init(b, data))
        with make_server(b, kind, data, tag="-startup").start() as server:
            entry["ready_s"].append(server.ready_s)
            if trial == 0 and kind != "nginx":
                entry["uncached_pages"] = [
                    {
                        "project": p,
                        **page_info(server.page(p), {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"}),
                    }
                    for p in b.probes
                ]
                entry["rss_after_pages"] = peak_rss(server.process.pid) if server.process else None
        entry.setdefault("rss", []).append(server.rss)
    entry["ready_s_median"] = statistics.median(entry["ready_s"])
    return entry


def install(b: Bench, client: str, index: str | None) -> Json:
    """One install of the set into a fresh venv, client cache off; venv creation not timed."""
    venv = b.work / "venvs" / "target"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    index_args = [] if index is None else ["--index-url", index]
    if client == "pip":
        argv = [str(b.tools()), "-m", "pip", "--python", python, "install", "--no-cache-dir"]
        argv += ["--progress-bar", "off", "-q", *index_args, "-r", str(b.requirements)]
    else:
        argv = [str(b.uv()), "pip", "install", "--no-config", "--no-cache", "-q", "--python", python]
        argv += [*index_args, "-r", str(b.requirements)]
    done = run(argv, timeout=900)
    log(f"{client} install via {index or 'PyPI direct'}: rc={done['rc']} {done['seconds']} s")
    result = {"rc": done["rc"], "seconds": done["seconds"]}
    if done["rc"] != 0:
        result["error"] = (done["stderr"] or done["stdout"])[-1500:]
    return result


def page_latency(b: Bench, index: str) -> Json:
    """The index part of a warm install: every project page of the set, one after another, keep-alive."""
    parts = urllib.parse.urlsplit(index)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.netloc, timeout=120)
    times: dict[str, float] = {}
    statuses: set[int] = set()
    try:
        for name in b.names:
            start = time.perf_counter()
            conn.request(
                "GET", f"{parts.path}{name}/", headers={"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"}
            )
            response = conn.getresponse()
            response.read()
            times[name] = round((time.perf_counter() - start) * 1000, 2)
            statuses.add(response.status)
    finally:
        conn.close()
    slowest = sorted(times.items(), key=lambda kv: -kv[1])[:3]
    return {
        "sum_ms": round(sum(times.values()), 1),
        "median_ms": round(statistics.median(times.values()), 2),
        "max_ms": max(times.values()),
        "slowest": slowest,
        "statuses": sorted(statuses),
        "pages": len(times),
    }


def installs_through(b: Bench, kind: str, client: str) -> Json:
    """Cold then warm installs with one client through a fresh instance of a contender."""
    entry: Json = {}
    if kind == "nginx":
        data = ensure_warm(b, "pipdepot")
    else:
        data = b.data(f"{kind}-{client}")
        shutil.rmtree(data, ignore_errors=True)
        if kind == "devpi":
            entry["init_s"] = devpi_init(b, data)
    with make_server(b, kind, data, tag=f"-{client}").start() as server:
        entry["ready_s"] = server.ready_s
        index = server.base + server.index
        if kind != "nginx":
            entry["cold"] = install(b, client, index)
        entry["warm_runs"] = [install(b, client, index) for _ in range(b.repeats)]
        ok = [r["seconds"] for r in entry["warm_runs"] if r["rc"] == 0]
        entry["warm_median"] = statistics.median(ok) if len(ok) == len(entry["warm_runs"]) else None
        if client == "uv":
            entry["page_latency"] = page_latency(b, index)
    entry["rss"] = server.rss
    return entry


def part_installs(b: Bench) -> Json:
    """pip and uv, cold and warm, per contender; PyPI direct (cold only) at the start and the end."""
    out: Json = {}
    direct = "direct" in b.contenders
    if direct:
        out["direct"] = {
            "start": {"pip": install(b, "pip", None), "uv": install(b, "uv", None)},
            "page_latency": page_latency(b, b.upstream_simple()),
        }
    for kind in b.contenders:
        if kind != "direct":
            out[kind] = {}
            for client in ("pip", "uv"):
                attempt(out[kind], client, lambda k=kind, c=client: installs_through(b, k, c))
    if direct:
        out["direct"]["end"] = {"pip": install(b, "pip", None), "uv": install(b, "uv", None)}
    return out


def part_offline(b: Bench) -> Json:
    """After warming, restart with upstream unreachable: whether pip and uv still install the set."""
    variants = {
        "pipdepot": [("dead-upstream-ttl0", "dead"), ("offline", "offline")],
        "devpi": [("offline-mode", "offline")],
        "proxpi": [("dead-upstream", "dead")],
    }
    out: Json = {}
    for kind in b.contenders:
        for label, mode in variants.get(kind, []):
            attempt(out, f"{kind} {label}", lambda k=kind, lb=label, m=mode: offline_of(b, k, lb, m))
    return out


def offline_of(b: Bench, kind: str, label: str, mode: str) -> Json:
    """One restart with upstream unreachable."""
    warm = ensure_warm(b, kind)
    data = b.data(f"{kind}-{label}")
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(warm, data, symlinks=True)
    entry: Json = {}
    with make_server(b, kind, data, mode=mode, tag=f"-{label}").start() as server:
        entry["ready_s"] = server.ready_s
        entry["page"] = page_info(server.page(b.small), {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"})
        index = server.base + server.index
        entry["pip"] = install(b, "pip", index)
        entry["uv"] = install(b, "uv", index)
    entry["rss"] = server.rss
    return entry


# -- machine and versions -------------------------------------------------------------------------


def machine() -> Json:
    """nproc, RAM, kernel, CPU, Python."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])  # type: ignore[index]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "os": _os_name(),
    }


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def _dist_version(python: Path, dist: str) -> str | None:
    done = run([str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"], timeout=60)
    return done["stdout"].strip() if done["rc"] == 0 else None


def versions(b: Bench) -> Json:
    """Every contender's and every tool's version."""
    found: Json = {"pipdepot": _dist_version(b.pipdepot_py(), "pipdepot")}
    for dist in ("aiohttp",):
        found[dist] = _dist_version(b.pipdepot_py(), dist)
    if "devpi" in b.contenders:
        python = b.venv("devpi", PEERS["devpi"]) / "python"
        for dist in ("devpi-server", "waitress"):
            found[dist] = _dist_version(python, dist)
    if "proxpi" in b.contenders:
        python = b.venv("proxpi", PEERS["proxpi"]) / "python"
        for dist in ("proxpi", "gunicorn", "flask"):
            found[dist] = _dist_version(python, dist)
    if "nginx" in b.contenders:
        found["nginx"] = run(["nginx", "-v"])["stderr"].strip().removeprefix("nginx version: nginx/")
    found["pip"] = _dist_version(b.tools(), "pip")
    found["uv"] = " ".join(run([str(b.uv()), "--version"])["stdout"].split()[1:2])
    wrk_version = run(["wrk", "-v"])["stdout"].split() if shutil.which("wrk") else []
    found["wrk"] = wrk_version[1] if len(wrk_version) > 1 else None
    found["curl"] = " ".join(run(["curl", "--version"])["stdout"].split()[1:2])
    return found


# -- command line ---------------------------------------------------------------------------------

HELP = """\
parts (default: all of them, in this order; then the report):
  pages     warm cached project pages (a ~250-file page and the ~4400-file page) under wrk -t2 -c32:
            HTML and JSON, gzip as pip and uv ask; req/s, p50, p99 per contender. nginx serves
            upstream's own HTML/JSON of the same pages saved as static files (gzip_static and identity)
            and pipdepot's mirror tree. Also one cold render of the large page by pipdepot: the first
            request after an --offline restart, and in-process timings (ProjectState.from_json + render).
  files     the large cached wheel: curl xN sequential (MB/s), wrk -c8, and HEAD/Range correctness
            (Content-Length, Accept-Ranges, 206 with the right bytes, suffix range, 416 past the end).
  startup   spawn -> first 200 on the health URL with an empty data dir (x3), the first uncached pages,
            peak RSS (VmHWM summed over the server's processes). Every part records peak RSS too.
  installs  pip and uv installs of bench/requirements.txt into fresh venvs, client cache off: cold (fresh
            server, empty cache) and warm (median of --repeats) per contender; nginx serves pipdepot's
            warm tree (warm only); PyPI direct (cold only) at the start and the end. Also the index part
            of a warm install: the set's pages one after another, pip's Accept, gzip, keep-alive.
  offline   after warming, restart with upstream unreachable (pipdepot: dead --upstream with --ttl 0,
            and --offline; devpi --offline-mode; proxpi a dead PROXPI_INDEX_URL); do pip and uv install?
  report    regenerate the tables in docs/BENCHMARKS.md and docs/benchmarks.png from the results
            (also run after the other parts unless --no-report).
  setup     only create the venvs.

contenders: pipdepot devpi proxpi nginx direct (direct = no mirror, PyPI; installs only).
Warm state is kept in WORK/data/<contender>-warm (one uv install of the set through it); delete
WORK/data to start from scratch. Server logs are in WORK/logs.
"""


def parse(argv: list[str] | None) -> Bench:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark pipdepot serve against devpi-server, proxpi, nginx and PyPI direct.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "parts", nargs="*", metavar="PART", help="pages files startup installs offline report setup"
    )
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated (default: all)")
    parser.add_argument(
        "--work", type=Path, default=BENCH / ".work", help="venvs, data, logs (default bench/.work)"
    )
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="JSON results directory")
    parser.add_argument("--requirements", type=Path, default=BENCH / "requirements.txt")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "BENCHMARKS.md", help="doc to update")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "benchmarks.png", help="PNG to write")
    parser.add_argument("--no-report", action="store_true", help="do not regenerate the doc after the parts")
    parser.add_argument("--smoke", action="store_true", help="tiny loads (1 s wrk, 3 curls, 1 repeat)")
    parser.add_argument("--repeats", type=int, default=3, help="warm installs per client (median)")
    parser.add_argument("--wrk-seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--curl-count", type=int, default=50)
    parser.add_argument("--small-project", default="requests", help="the ~250-file page")
    parser.add_argument("--large-project", default="numpy", help="the ~4400-file page")
    parser.add_argument(
        "--big-file", default="numpy-2.4.6-cp311-cp311-manylinux*x86_64*.whl", help="glob of the large wheel"
    )
    parser.add_argument("--probe-projects", default="tomli,colorama", help="pages not in the set (startup)")
    parser.add_argument("--upstream", help="pipdepot's upstream instead of PyPI (smoke tests: a local index)")
    parser.add_argument(
        "--tools-python", type=Path, help="a Python with pip and uv beside it (skip the venv)"
    )
    parser.add_argument(
        "--pipdepot-python", type=Path, help="a Python with pipdepot installed (skip the venv)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy pipdepot under the small-page load")
    args = parser.parse_args(argv)
    parts = args.parts or [*PARTS, "report"]
    unknown = set(parts) - {*PARTS, "report", "setup"}
    contenders = [c for c in args.contenders.split(",") if c]
    if unknown or set(contenders) - set(CONTENDERS):
        parser.error(f"unknown part or contender: {sorted(unknown | (set(contenders) - set(CONTENDERS)))}")
    if args.upstream and set(contenders) - {"pipdepot"}:
        parser.error("--upstream is for pipdepot-only runs (the peers always use PyPI)")
    smoke = bool(args.smoke)
    return Bench(
        parts=parts,
        contenders=contenders,
        work=args.work.resolve(),
        results=args.results.resolve(),
        requirements=args.requirements.resolve(),
        smoke=smoke,
        repeats=1 if smoke else args.repeats,
        wrk_seconds=1 if smoke else args.wrk_seconds,
        wrk_connections=4 if smoke else args.connections,
        curl_count=3 if smoke else args.curl_count,
        small=normalize(args.small_project),
        large=normalize(args.large_project),
        big_file=args.big_file,
        probes=[normalize(p) for p in args.probe_projects.split(",") if p],
        upstream=args.upstream,
        tools_python=args.tools_python.absolute() if args.tools_python else None,
        pipdepot_python=args.pipdepot_python.absolute() if args.pipdepot_python else None,
        profile=args.profile,
        command=shlex.join(["bench/run", *(argv if argv is not None else sys.argv[1:])]),
        doc=args.doc.resolve(),
        plot=args.plot.resolve(),
        report=not args.no_report,
    )


RUNNERS = {
    "pages": part_pages,
    "files": part_files,
    "startup": part_startup,
    "installs": part_installs,
    "offline": part_offline,
}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts, write their JSON, regenerate the report."""
    b = parse(argv)
    b.work.mkdir(parents=True, exist_ok=True)
    b.results.mkdir(parents=True, exist_ok=True)
    if "setup" in b.parts:
        b.pipdepot_py()
        b.tools()
        for kind, packages in PEERS.items():
            if kind in b.contenders:
                b.venv(kind, packages)
    ran = False
    for part in PARTS:
        if part not in b.parts:
            continue
        started = time.time()
        log(f"part {part}: {', '.join(b.contenders)}")
        try:
            results = RUNNERS[part](b)
        finally:
            kill_leftovers()
        document = {
            "part": part,
            "started": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds"),
            "duration_s": round(time.time() - started, 1),
            "command": b.command,
            "smoke": b.smoke,
            "machine": machine(),
            "versions": versions(b),
            "settings": {
                "contenders": b.contenders,
                "wrk_seconds": b.wrk_seconds,
                "connections": b.wrk_connections,
                "curl_count": b.curl_count,
                "repeats": b.repeats,
                "small": b.small,
                "large": b.large,
                "big_file": b.big_file,
                "requirements": len(b.names),
            },
            "results": results,
        }
        (b.results / f"{part}.json").write_text(json.dumps(document, indent=1) + "\n")
        log(f"part {part} done in {document['duration_s']} s -> {b.results / f'{part}.json'}")
        ran = True
    if "report" in b.parts or (ran and b.report):
        return report(b)
    return 0


def report(b: Bench) -> int:
    """bench/report.py in the tools venv (it needs matplotlib)."""
    python = b.tools()
    argv = [str(python), str(BENCH / "report.py"), "--results", str(b.results)]
    argv += ["--doc", str(b.doc), "--plot", str(b.plot)]
    return subprocess.run(argv, check=False).returncode


def kill_leftovers() -> None:
    """Stop any server this process started and that still runs (a part that failed half-way)."""
    for server in STARTED:
        if server.process is not None and server.process.poll() is None:
            log(f"leftover {server.name} pid {server.process.pid}; stopping it")
            server.stop()
    STARTED.clear()
