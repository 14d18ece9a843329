"""Talking to systemd without a library: readiness (sd_notify) and journald's stderr.

Both protocols are a few lines of the standard library: a datagram to ``$NOTIFY_SOCKET``,
and ``$JOURNAL_STREAM`` naming the device and inode of the stream journald reads.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["notify", "stderr_is_journal"]


def __dir__() -> list[str]:
    return __all__


def notify(message: str, environ: Mapping[str, str]) -> bool:
    """Send ``message`` (``READY=1``, ``STOPPING=1``...) to systemd; whether it went.

    Nothing happens outside a ``Type=notify`` service (no ``$NOTIFY_SOCKET``). A socket name
    starting with ``@`` is in the abstract namespace, as sd_notify(3) says.
    """
    address = environ.get("NOTIFY_SOCKET", "")
    if not address.startswith(("/", "@")):
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(target)
        sock.sendall(message.encode())
        return True
    return False


def stderr_is_journal(environ: Mapping[str, str], fd: int = 2) -> bool:
    """Whether ``fd`` is the stream systemd connected to journald, which stamps every line itself.

    systemd sets ``JOURNAL_STREAM=<device>:<inode>`` of that stream; a child whose stderr was
    redirected elsewhere inherits the variable, hence the comparison.
    """
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        info = os.fstat(fd)
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False
