"""The errors pipdepot reports to its user.

Every error the user can cause derives from :class:`PipdepotError`, so the CLI
catches one type at its boundary and prints one line; anything else is a bug
and keeps its traceback::

    PipdepotError
    ├── ConfigError        a setting or a directory pipdepot cannot use
    │   └── UsageError     bad flag, variable or config-file value: exit status 2, nothing done
    ├── BuildRootError     a build root that cannot be injected or restored
    ├── UpstreamError      an upstream index gave no usable answer
    └── MirrorError        the mirror cannot be filled, read or moved as asked
"""

from __future__ import annotations

__all__ = ["BuildRootError", "ConfigError", "MirrorError", "PipdepotError", "UpstreamError", "UsageError"]


def __dir__() -> list[str]:
    return __all__


class PipdepotError(Exception):
    """An error with a one-line message and an optional hint for the user."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(PipdepotError):
    """A setting has a value pipdepot cannot use; the message names its source."""


class UsageError(ConfigError):
    """The command line or a setting is wrong (a flag, variable or config-file value): nothing was done.

    The CLI exits 2 for it, as for click's own usage errors; 1 is for failures of the work itself.
    """


class BuildRootError(PipdepotError):
    """A build root cannot be changed or put back as asked."""


class UpstreamError(PipdepotError):
    """An upstream index could not be reached or gave garbage; the mirror may serve stale."""


class MirrorError(PipdepotError):
    """Requirements, a lock file or an archive cannot be put into (or read from) the mirror."""
