"""wrk, the load generator, and the parsing of its ``--latency`` report.

A C load generator rather than a Python client, so that the client is not what is measured. Every
run is bounded (``-d`` plus a subprocess timeout) so that a hung server costs a minute, not the
whole benchmark.
"""

from __future__ import annotations

import re
import shlex

from common import Json, run

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
_SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _ms(text: str) -> float:
    """A wrk duration (``812.00us``, ``1.20ms``, ``2.00s``) in milliseconds; NaN if unreadable."""
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
    """A bounded wrk run; its command line is kept in the result so a number can be reproduced."""
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
