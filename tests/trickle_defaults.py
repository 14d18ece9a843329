"""Seconds to a cut (file) and to a 502 (page) under a 1 byte/s trickle, with serve's default deadlines.

Not a test (it takes a minute): the figures of docs/RELIABILITY.md. Run from the repository:
``.venv/bin/python -m tests.trickle_defaults``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.depot import Depot
from tests.fault_upstream import FaultUpstream
from tests.test_faults import Answer
from tests.wheels import build_wheel


def main() -> None:
    directory = Path(tempfile.mkdtemp())
    upstream = FaultUpstream(trickle_interval=1.0)
    upstream.add(build_wheel(directory / "w", "alpha", "1.0"))
    upstream.add(build_wheel(directory / "w", "beta", "1.0"))
    upstream.start()
    depot = Depot(directory / "m", directory / "log", ("--upstream", upstream.url)).start()
    try:
        assert Answer(f"{depot.index}alpha/").status == 200
        upstream.file_fault = "trickle"
        cut = Answer(depot.url + upstream.projects["alpha"][0])
        print(f"file: status={cut.status} error={cut.error} bytes={len(cut.body)} seconds={cut.seconds:.1f}")  # noqa: T201
        upstream.page_fault = "trickle"
        page = Answer(f"{depot.index}beta/")
        print(f"page: status={page.status} seconds={page.seconds:.1f} reason={page.reason}")  # noqa: T201
        print(f"peak_rss_mb={depot.peak_rss_mb():.0f}")  # noqa: T201
    finally:
        depot.stop()
        upstream.stop()


if __name__ == "__main__":
    main()
