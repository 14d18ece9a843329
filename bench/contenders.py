"""How each contender is launched: pipdepot, devpi-server, proxpi (under gunicorn) and nginx.

Each gets the command line, health URL and index path it needs, in one of the modes the parts ask
for: ``online`` (upstream reachable), ``dead`` (upstream unreachable, to see what a mirror serves
from its cache alone), ``offline`` (the server's own offline switch) and, for pipdepot,
``longttl`` (every stored page counts as fresh). "direct" is no server at all: pip and uv against
PyPI, for the installs part only. "pipdepot-view" is pipdepot's target view (issue 17): the same
server and data, at ``/+auto/simple/``, where the page lists only what the installer's own target
(read from its User-Agent) can install; it has no process of its own to start, stop or load with
files, so the files, startup and offline parts leave it out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common import clean_env, free_port, run
from server import Server

if TYPE_CHECKING:
    from pathlib import Path

    from config import Bench

#: Every contender, in the order of the results and the command line's default.
CONTENDERS = ("pipdepot", "pipdepot-view", "devpi", "proxpi", "nginx", "direct")
#: pipdepot's target view: the installer's own target, chosen from its User-Agent.
VIEW = "pipdepot-view"
#: Where the view's pages are.
VIEW_INDEX = "/+auto/simple/"
#: The contenders with a server process of their own (the view is pipdepot's server at another path).
SERVERS = ("pipdepot", "devpi", "proxpi", "nginx")
#: The peers' venvs, installed from PyPI.
PEERS = {"devpi": ("devpi-server",), "proxpi": ("proxpi", "gunicorn")}
#: An upstream nobody answers at (the discard port), for the "dead" mode.
DEAD = "http://127.0.0.1:9"


def make_server(b: Bench, kind: str, data: Path, *, mode: str = "online", tag: str = "") -> Server:
    """A contender's server over ``data``; ``mode`` is online, dead (upstream unreachable) or offline."""
    port = free_port()
    logfile = b.logs() / f"{kind}{tag}.log"
    if kind in {"pipdepot", VIEW}:
        home = b.work / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home))
        index = VIEW_INDEX if kind == VIEW else "/simple/"
        return Server(kind, pipdepot_argv(b, data, port, mode), "/+health", index, logfile, port, env)
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


def data_of(kind: str) -> str:
    """Whose warm data dir a contender serves: nginx and the view serve pipdepot's."""
    return "pipdepot" if kind in {"nginx", VIEW} else kind


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
    """``devpi-init`` for a new server dir; its seconds (None if it was there already).

    devpi-server refuses to start on a directory it has not initialised; the seconds are reported as
    beside its startup time.
    """
    if data.exists():
        return None
    bindir = b.venv("devpi", PEERS["devpi"])
    result = run([str(bindir / "devpi-init"), "--serverdir", str(data)], timeout=300)
    if result["rc"] != 0:
        raise RuntimeError(f"devpi-init failed: {result['stderr']}")
    return float(result["seconds"])


def nginx_conf(b: Bench, mirror: Path, port: int) -> Path:
    """nginx over pipdepot's mirror tree, and the saved upstream pages at /upstream/ and /upstream-json/.

    nginx is the ceiling: static files with sendfile, no logic. It serves pipdepot's warm tree (what
    pipdepot would serve if it were only a file server) and upstream's own pages saved as files.
    """
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
