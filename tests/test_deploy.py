"""`pipdepot gen-config`: systemd units checked by systemd, run as written; nginx in front, for real."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pipdepot.errors import ConfigError
from pipdepot.operations.genconfig import GenConfig, generate, parse_listen
from pipdepot.settings import CONFIG_KEYS, PlanFlags, ServeFlags, load_serve_settings, load_settings
from tests.conftest import clean_environ
from tests.depot import Depot, free_port, fresh_venv, get, installed, pip_install, uv_install
from tests.mirror_audit import spool_leftovers
from tests.test_serve import file_url, make_upstream
from tests.wheels import build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.conftest import PipdepotRunner
    from tests.fake_upstream import FakeUpstream

_STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("dists")
    build_wheel(directory, "alpha", "1.0", requires=("beta",))
    build_wheel(directory, "beta", "1.0")
    build_wheel(directory, "gamma", "1.0")
    build_wheel(directory, "bulky", "1.0", payload=3 * 1024 * 1024)
    return directory


def unit_setting(unit: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{key}="))


# -- the files -------------------------------------------------------------------


def test_both_units_pass_systemd_analyze_verify(tmp_path: Path, run_pipdepot: PipdepotRunner) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is not installed (apt-get install systemd)")
    run_pipdepot("gen-config", "--output", str(tmp_path / "system"), "--mirror", str(tmp_path / "m"))
    run_pipdepot("gen-config", "--output", str(tmp_path / "default"))
    run_pipdepot("gen-config", "--user", "--output", str(tmp_path / "user"))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    for unit, mode in (("system", []), ("default", []), ("user", ["--user"])):
        result = subprocess.run(
            [analyze, "verify", *mode, str(tmp_path / unit / "pipdepot.service")],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        )
        assert (result.returncode, result.stdout + result.stderr) == (0, ""), unit
    sysroot = tmp_path / "sysroot"
    (sysroot / "etc").mkdir(parents=True)
    subprocess.run(
        ["systemd-sysusers", f"--root={sysroot}", str(tmp_path / "system" / "pipdepot.sysusers.conf")],
        check=True,
        capture_output=True,
    )
    assert (sysroot / "etc" / "passwd").read_text().startswith("pipdepot:x:")  # the unit's User= exists
    bad = (tmp_path / "system" / "pipdepot.service").read_text().replace("Type=notify", "Type=notifyy")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "pipdepot.service").write_text(bad)
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "bad" / "pipdepot.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "notifyy" in result.stderr  # the check can fail


def test_system_unit_hardening_and_mirror(tmp_path: Path, run_pipdepot: PipdepotRunner) -> None:
    run_pipdepot("gen-config", "--output", str(tmp_path / "default"))
    default = (tmp_path / "default" / "pipdepot.service").read_text()
    assert "StateDirectory=pipdepot\n" in default
    run_pipdepot("gen-config", "--output", str(tmp_path / "given"), "--mirror", "/srv/pypi")
    given = (tmp_path / "given" / "pipdepot.service").read_text()
    assert "ReadWritePaths=/srv/pypi\n" in given
    assert "StateDirectory" not in given.split("[Service]")[1].replace("# ", "")
    for setting in ("ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "Restart=on-failure"):
        assert f"\n{setting}\n" in default
    assert unit_setting(default, "Type") == "notify"
    assert unit_setting(default, "User") == "pipdepot"
    low = run_pipdepot(
        "gen-config", "--output", str(tmp_path / "low"), "--port", "80", "--listen", "127.0.0.1:8080"
    )
    assert low.returncode == 0
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in (tmp_path / "low" / "pipdepot.service").read_text()
    assert not (tmp_path / "low" / "x").exists()


def test_nginx_and_pipdepot_on_one_address_is_refused(tmp_path: Path, run_pipdepot: PipdepotRunner) -> None:
    result = run_pipdepot("gen-config", "--output", str(tmp_path), "--listen", "0.0.0.0:3141", check=False)
    assert result.returncode != 0
    assert "overlap" in result.stderr
    result = run_pipdepot("gen-config", "--output", str(tmp_path), "--listen", "nowhere", check=False)
    assert result.returncode != 0
    assert "ADDR:PORT" in result.stderr


def test_the_config_file_holds_every_key_and_reads_back(tmp_path: Path, run_pipdepot: PipdepotRunner) -> None:
    args = ("--mirror", str(tmp_path / "m"), "--upstream", "http://127.0.0.1:9/simple/", "--port", "4000")
    run_pipdepot("gen-config", "--output", str(tmp_path / "out"), *args, "--ttl", "30", "--offline")
    config = tmp_path / "out" / "config.toml"
    text = config.read_text()
    for key in CONFIG_KEYS:
        assert re.search(rf"^# {re.escape(key)} \(", text, re.MULTILINE), key
    read = load_serve_settings(ServeFlags(config=str(config)), {})
    assert (read.port, read.mirror_dir, read.upstreams) == (
        4000,
        tmp_path / "m",
        ("http://127.0.0.1:9/simple/",),
    )
    assert (read.ttl, read.offline, read.upstream_timeout) == (30, True, 10)
    # every commented key, uncommented, is a valid setting that changes nothing
    uncommented = tmp_path / "all.toml"
    uncommented.write_text(re.sub(r"^# ([a-z-]+ = )", r"\1", text, flags=re.MULTILINE))
    assert set(tomllib.loads(uncommented.read_text())) > {"no-pypi", "uv-index-strategy", "public-index"}
    plan = load_settings(PlanFlags(config=str(uncommented)), {}).plan
    defaults = load_settings(PlanFlags(config=os.devnull), {"HOME": str(tmp_path)}).plan
    assert (plan.no_pypi.value, plan.public_index.value) == (
        defaults.no_pypi.value,
        defaults.public_index.value,
    )
    assert plan.uv_index_strategy.value == defaults.uv_index_strategy.value
    assert load_serve_settings(ServeFlags(config=str(uncommented)), {}) == replace(
        read, config_file=uncommented
    )


# -- the unit's command line, run as written -----------------------------------------


@dataclass
class Notifications:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    path: Path
    sock: socket.socket

    def receive(self, timeout: float) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[Notifications]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        yield Notifications(path, sock)


def exec_start(unit: str, config: Path) -> list[str]:
    """The unit's ExecStart=, split as systemd splits it, with the config file's path replaced."""
    line = unit_setting(unit, "ExecStart")
    line = line.replace("/etc/pipdepot/config.toml", str(config)).replace(
        "%E/pipdepot/config.toml", str(config)
    )
    assert "%" not in line
    return shlex.split(line)


def test_the_units_exec_start_serves_and_signals_ready(
    tmp_path: Path, run_pipdepot: PipdepotRunner, notify_socket: Notifications
) -> None:
    port = free_port()
    mirror = tmp_path / "mirror"
    run_pipdepot(
        "gen-config", "--output", str(tmp_path / "out"), "--mirror", str(mirror), "--port", str(port)
    )
    unit = (tmp_path / "out" / "pipdepot.service").read_text()
    argv = exec_start(unit, tmp_path / "out" / "config.toml")
    assert argv[0] == sys.executable
    log = tmp_path / "serve.log"
    with log.open("wb") as stream:
        stat = os.fstat(stream.fileno())
        env = {
            "PATH": "/usr/bin:/bin",
            "NOTIFY_SOCKET": str(notify_socket.path),
            "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}",
        }
        process = subprocess.Popen(argv, stdout=stream, stderr=stream, env=env)
    try:
        assert notify_socket.receive(20) == "READY=1"
        status, _, body = get(f"http://127.0.0.1:{port}/+health")  # answered at once: ready meant ready
        assert (status, body) == (200, b'{"status": "ok", "server": "pipdepot", "offline": false}')
        assert get(f"http://127.0.0.1:{port}/simple/")[0] == 200
        assert (mirror / ".pipdepot").is_dir()
        time.sleep(0.3)  # the access lines are written within 0.1 s
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    assert notify_socket.receive(5) == "STOPPING=1"
    lines = log.read_text().splitlines()
    assert "pipdepot: GET /+health 200" in "\n".join(lines)
    assert lines
    assert not [line for line in lines if _STAMP.match(line)]  # journald stamps lines: no second time


def test_outside_journald_lines_keep_their_time(tmp_path: Path, dists: Path) -> None:
    other = tmp_path / "other"
    other.write_bytes(b"")
    stat = other.stat()  # JOURNAL_STREAM inherited, but stderr is another file: not journald's
    os.environ["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino}"
    try:
        depot = Depot(tmp_path / "mirror", tmp_path / "serve.log").start()
    finally:
        del os.environ["JOURNAL_STREAM"]
    try:
        get(f"{depot.url}/+health")
        time.sleep(0.3)
    finally:
        depot.stop()
    lines = depot.log_text().splitlines()
    assert any("GET /+health" in line for line in lines)
    assert all(_STAMP.match(line) for line in lines if "pipdepot:" in line)


# -- nginx in front --------------------------------------------------------------------


@dataclass
class Nginx:
    """A real nginx (``nginx -c``), whose http {} includes the generated server block."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    def start(self, server_block: Path) -> Nginx:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            pytest.fail("nginx is not installed (apt-get install nginx)")
        block = server_block.read_text().replace("/var/log/nginx/pipdepot.access.log", str(self.access_log))
        (self.directory / "pipdepot.conf").write_text(block)
        temp = " ".join(
            f"{kind}_temp_path {self.directory / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.directory / "nginx.conf").write_text(
            f"daemon off;\nworker_processes 1;\n"
            # the workers run as nobody: they read the mirror as another user, as installed
            f"user nobody nogroup;\npid {self.directory / 'nginx.pid'};\n"
            f"error_log {self.directory / 'error.log'} warn;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n    {temp}\n    access_log off;\n    include {self.directory / 'pipdepot.conf'};\n}}\n"
        )
        self.process = subprocess.Popen(
            [binary, "-c", str(self.directory / "nginx.conf"), "-p", str(self.directory)],
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/+health", timeout=1):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    assert self.process.stderr is not None
                    pytest.fail(f"nginx did not start: {self.process.stderr.read().decode()}")
                time.sleep(0.05)
        pytest.fail("nginx did not answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: the access log is complete
            self.process.wait(20)

    def log_lines(self) -> list[tuple[str, str, str]]:
        """(path, status, upstream) per request; upstream is "-" when nginx sent the file itself."""
        lines = []
        for line in self.access_log.read_text().splitlines():
            match = re.search(r'"[A-Z]+ (\S+) HTTP/[\d.]+" (\d+) \d+ upstream=(\S+)', line)
            assert match is not None, line
            lines.append((match.group(1), match.group(2), match.group(3)))
        return lines


@dataclass
class Front:
    upstream: FakeUpstream
    depot: Depot
    nginx: Nginx


@pytest.fixture
def front(tmp_path: Path, dists: Path, run_pipdepot: PipdepotRunner) -> Iterator[Front]:
    # outside pytest's 0700 directories, so that nginx's workers (nobody) reach the mirror
    shared = Path(tempfile.mkdtemp(prefix="pipdepot-nginx-"))
    shared.chmod(0o755)
    upstream = make_upstream(dists, "json")
    depot = Depot(shared / "mirror", tmp_path / "serve.log", ("--upstream", upstream.url))
    listen = f"127.0.0.1:{free_port()}"
    out = tmp_path / "generated"
    nginx_dir = tmp_path / "nginx"
    nginx_dir.mkdir()
    nginx = Nginx(nginx_dir, int(listen.rsplit(":", 1)[1]))
    try:
        depot.start()
        run_pipdepot(
            "gen-config",
            "--output",
            str(out),
            "--listen",
            listen,
            "--mirror",
            str(depot.mirror),
            "--port",
            str(depot.port),
        )
        nginx.start(out / "nginx-pipdepot.conf")
        yield Front(upstream, depot, nginx)
    finally:
        nginx.stop()
        depot.stop()
        upstream.stop()
        shutil.rmtree(shared)


def served_files(front: Front, since: int) -> tuple[list[str], list[str]]:
    """Wheel requests after log line ``since``: those nginx sent itself, and those pipdepot answered."""
    by_nginx: list[str] = []
    by_pipdepot: list[str] = []
    for path, status, upstream in front.nginx.log_lines()[since:]:
        if path.startswith("/packages/") and path.endswith(".whl"):
            assert status in {"200", "206"}, (path, status)
            (by_nginx if upstream == "-" else by_pipdepot).append(path.rsplit("/", 1)[1])
    return by_nginx, by_pipdepot


def pipdepot_file_lines(depot: Depot) -> list[str]:
    return [
        line for line in depot.log_text().splitlines() if re.search(r"(GET|HEAD) /packages/\S+\.whl ", line)
    ]


def test_pip_and_uv_through_nginx_cold_then_warm(tmp_path: Path, front: Front) -> None:
    index = f"{front.nginx.url}/simple/"
    pip_install(fresh_venv(tmp_path / "pip-cold"), index, "alpha")
    uv_install(fresh_venv(tmp_path / "uv-cold"), index, "gamma")
    time.sleep(0.3)  # pipdepot's access lines are written within 0.1 s
    by_nginx, by_pipdepot = served_files(front, 0)
    assert by_nginx == []
    assert sorted(set(by_pipdepot)) == [
        "alpha-1.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "gamma-1.0-py3-none-any.whl",
    ]
    cold_lines = len(front.nginx.log_lines())
    pipdepot_cold = pipdepot_file_lines(front.depot)
    assert len(pipdepot_cold) == len(by_pipdepot)  # pipdepot logged each file it sent
    fetched = front.upstream.file_hits()

    warm_pip = fresh_venv(tmp_path / "pip-warm")
    pip_install(warm_pip, index, "alpha", "gamma")
    warm_uv = fresh_venv(tmp_path / "uv-warm")
    uv_install(warm_uv, index, "alpha", "gamma")
    assert (installed(warm_pip, "alpha"), installed(warm_uv, "gamma")) == ("1.0", "1.0")
    time.sleep(0.3)
    by_nginx, by_pipdepot = served_files(front, cold_lines)
    assert by_pipdepot == []
    assert sorted(by_nginx) == sorted(
        ["alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl", "gamma-1.0-py3-none-any.whl"] * 2
    )
    assert pipdepot_file_lines(front.depot) == pipdepot_cold  # pipdepot saw pages (and .metadata) only
    warm_log = front.depot.log_text().splitlines()
    assert any("GET /simple/alpha/ 200" in line for line in warm_log)
    assert front.upstream.file_hits() == fetched


def test_nginx_answers_files_with_pipdepots_headers_and_passes_the_rest(front: Front, dists: Path) -> None:
    name = "beta-1.0-py3-none-any.whl"
    data = (dists / name).read_bytes()
    front.upstream.provenances[name] = b'{"version": 1, "attestation_bundles": []}'  # PEP 740
    depot_url = file_url(front.depot, name)
    path = depot_url.removeprefix(front.depot.url)
    assert get(front.nginx.url + path)[2] == data  # a miss: pipdepot downloads and commits it
    status, headers, body = get(front.nginx.url + path)
    assert (status, body) == (200, data)
    assert headers["Cache-Control"] == "max-age=365000000, immutable, public"
    assert headers["Content-Type"] == "application/octet-stream"
    status, headers, body = get(front.nginx.url + path, {"Range": "bytes=10-19"})
    assert (status, body, headers["Content-Range"]) == (206, data[10:20], f"bytes 10-19/{len(data)}")
    status, headers, _ = get(front.nginx.url + path, method="HEAD")
    assert (status, headers["Content-Length"]) == (200, str(len(data)))
    status, headers, _ = get(front.nginx.url + path, method="POST")
    assert (status, headers.get("Allow")) == (405, "GET, HEAD")  # pipdepot's answer, not nginx's
    status, _, metadata = get(front.nginx.url + path + ".metadata")
    assert status == 200
    assert metadata.startswith(b"Metadata-Version")
    status, headers, provenance = get(front.nginx.url + path + ".provenance")  # on disk, yet pipdepot's
    assert (status, provenance) == (200, front.upstream.provenances[name])
    assert (headers["Content-Type"], headers["Cache-Control"]) == ("application/json", "max-age=60, public")
    assert get(f"{front.nginx.url}/+health")[0] == 200
    assert get(f"{front.nginx.url}/packages/no/such/file.whl")[0] == 404
    time.sleep(0.3)
    log = [entry for entry in front.nginx.log_lines() if entry[0] == path]
    assert [upstream == "-" for _, _, upstream in log] == [False, True, True, True, False]
    assert f"GET {path}.metadata 200" in front.depot.log_text()
    assert f"GET {path}.provenance 200" in front.depot.log_text()


def test_a_file_being_downloaded_is_never_served_half_written(
    tmp_path: Path, front: Front, dists: Path
) -> None:
    name = "bulky-1.0-py3-none-any.whl"
    data = (dists / name).read_bytes()
    path = file_url(front.depot, name).removeprefix(front.depot.url)
    final = front.depot.mirror / path.removeprefix("/")
    front.upstream.file_delay = 0.05  # 48 chunks: about 2.5 s
    bodies: list[bytes] = []
    first = threading.Thread(target=lambda: bodies.append(get(front.nginx.url + path)[2]))
    first.start()
    during = 0
    seen_partial = False
    while first.is_alive():
        partial = [p for p in spool_leftovers(front.depot.mirror) if p.name.startswith("download-")]
        partial = [p for p in partial if p.exists() and p.stat().st_size > 0]
        seen_partial = seen_partial or (bool(partial) and not final.exists())  # bytes, not yet named
        if partial or final.exists():  # the download has begun: whatever nginx finds must be whole
            status, _, body = get(front.nginx.url + path)
            during += 1
            assert status == 200
            assert len(body) == len(data)
            assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        time.sleep(0.05)
    first.join()
    assert seen_partial
    assert during >= 1
    assert bodies == [data]
    assert final.read_bytes() == data
    assert get(front.nginx.url + path)[2] == data
    time.sleep(0.3)
    log = [upstream for logged, _, upstream in front.nginx.log_lines() if logged == path]
    assert log[-1] == "-"  # committed: now nginx's
    assert "-" not in log[:-1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.0.0.0:80", ("0.0.0.0", 80)), ("[::]:8080", ("::", 8080)), ("127.0.0.1:3142", ("127.0.0.1", 3142))],  # noqa: S104
)
def test_listen_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize(
    "value", ["8080", "::1:80", "[127.0.0.1]:80", "host:80", "0.0.0.0:0", "0.0.0.0:70000", ""]
)
def test_listen_addresses_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="ADDR:PORT"):
        parse_listen(value)


def test_a_program_path_is_quoted_as_systemd_reads_it(tmp_path: Path) -> None:
    settings = load_serve_settings(ServeFlags(mirror_dir=str(tmp_path), config=os.devnull), {})
    files = generate(
        GenConfig(
            settings, listen="127.0.0.1:8080", user=False, command=("/opt/my pip%d/python", "-m", "pipdepot")
        )
    )
    unit = next(f.content for f in files if f.name == "pipdepot.service")
    assert unit_setting(unit, "ExecStart").startswith('"/opt/my pip%%d/python" -m pipdepot serve ')


def test_an_upload_larger_than_nginxs_default_body_passes_through_nginx(
    tmp_path: Path, front: Front, run_pipdepot: PipdepotRunner
) -> None:
    """nginx refuses bodies over 1 MiB by default: the generated block lets uploads through to the limit."""
    wheel = build_wheel(tmp_path / "big", "bigprivate", "1.0", payload=3 * 1024 * 1024)
    token = run_pipdepot("token", "create", "--mirror", str(front.depot.mirror)).stdout.strip()
    time.sleep(1.2)  # a server reads the tokens again at most once a second
    twine = [
        str(Path(sys.executable).parent / "twine"),
        "upload",
        "--non-interactive",
        "--disable-progress-bar",
    ]
    twine += ["--repository-url", f"{front.nginx.url}/", "-u", "__token__", "-p", token, str(wheel)]
    result = subprocess.run(
        twine, env=clean_environ(), capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("/", "200", front.nginx.log_lines()[-1][2]) == front.nginx.log_lines()[-1]
    assert (
        front.depot.mirror / "packages" / "+local" / "bigprivate" / wheel.name
    ).stat().st_size == wheel.stat().st_size
