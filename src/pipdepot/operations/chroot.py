"""``pipdepot chroot``: inject, run one command in the root, restore whatever happens.

The command gets a clean environment (nothing of the host's ``PIP_*``,
``UV_*`` or ``VIRTUAL_ENV``), ``HOME=/root``, and the root's ``/proc``,
``/sys``, ``/dev`` and ``/dev/pts``. SIGINT, SIGTERM and SIGHUP sent to
pipdepot are passed to the command; the root is restored after it ends.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from pipdepot.operations.inject import inject, restore

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from types import FrameType

    from pipdepot.operations.plan import PlanReport

__all__ = ["FORWARDED", "clean_environment", "handling_signals", "run_in_root"]

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_HOST_RESOLV_CONF = Path("/etc/resolv.conf")
#: The signals a command run in a root (or a build) gets passed on, not pipdepot.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def __dir__() -> list[str]:
    return __all__


class _Interrupted(Exception):  # noqa: N818 (a signal, not an error)
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def clean_environment(passthrough: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The command's environment: a login-like minimum, the passed-through names, ``extra``."""
    env = {
        "PATH": _PATH,
        "HOME": "/root",
        "USER": "root",
        "LOGNAME": "root",
        "SHELL": "/bin/sh",
        "LANG": "C.UTF-8",
    }
    env.update(passthrough)
    env.update(extra)
    return env


def run_in_root(
    report: PlanReport,
    command: Sequence[str],
    *,
    environment: Mapping[str, str],
    online: bool,
    force: bool = False,
) -> int:
    """Run ``command`` in the injected root and return its exit status (128+N for signal N).

    Online, the host's ``/etc/resolv.conf`` is copied in (and the original put back), so
    names resolve as on the host; offline, the root's own is left alone.

    :raises BuildRootError: the root could not be injected or restored, or (unless ``force``)
        is not an OS root.
    """
    assert report.root is not None  # noqa: S101 (the CLI always passes a root)
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child is None:
            raise _Interrupted(signum)
        child.send_signal(signum)

    with handling_signals(forward):
        try:
            resolv = _HOST_RESOLV_CONF.read_bytes() if online and _HOST_RESOLV_CONF.is_file() else None
            inject(report, system_mounts=True, resolv_conf=resolv, force=force)
            try:
                child = subprocess.Popen(
                    ["chroot", str(report.root), *command], env=dict(environment), cwd="/"
                )
                status = child.wait()
            finally:
                with handling_signals(lambda _signum, _frame: None):
                    restore(report.root, force=True)
        except _Interrupted as interrupted:
            return 128 + interrupted.signum
    return 128 - status if status < 0 else status


@contextlib.contextmanager
def handling_signals(handler: signal._HANDLER) -> Iterator[None]:
    """``handler`` for the :data:`FORWARDED` signals while the block runs; the previous ones after."""
    previous = {signum: signal.signal(signum, handler) for signum in FORWARDED}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
