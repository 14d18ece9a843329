"""The ``pipdepot`` command: arguments in, Settings built, an operation run, an exit status out.

The group, its exit statuses and ``main``; each family of commands is defined in its own ``*_cli`` module.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

import click

from pipdepot import __version__
from pipdepot.check_cli import check_command
from pipdepot.container_cli import build_command
from pipdepot.contents_cli import CONTENTS_COMMANDS
from pipdepot.core.systemd import stderr_is_journal
from pipdepot.element_cli import ELEMENT_COMMANDS, plan_options, plan_settings
from pipdepot.errors import PipdepotError, UsageError
from pipdepot.private_cli import PRIVATE_COMMANDS
from pipdepot.server_cli import SERVER_COMMANDS
from pipdepot.storage.s3calls import runtime_started
from pipdepot.storage.store import StoreError
from pipdepot.sync_cli import sync_command

__all__ = ["main"]


def __dir__() -> list[str]:
    return __all__


_EXIT_STATUS = """\b
Exit status:
  0    done
  1    the work failed (one line on stderr says why)
  2    usage: a bad command, flag, argument, variable or config-file value; nothing was done
  130  stopped by Ctrl-C (SIGINT), 143 by SIGTERM
  `pipdepot serve` runs until stopped and then exits 0; `pipdepot chroot` exits
  with its COMMAND's status once COMMAND ran, `pipdepot build` with its builder's.
"""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=_EXIT_STATUS
)
@click.version_option(__version__, prog_name="pipdepot")
def cli() -> None:
    """A local PyPI mirror for image builds: serve it, fill it, prove it, inject it.

    `serve` runs the caching, offline-capable mirror; `sync` fills it for every target and
    `check` proves, with no network, that requirements install from it; `inject`, `chroot`
    and the diskimage-builder element point a build root at it and put the root back exactly.

    Settings come from flags, then PIPDEPOT_* variables, then the diskimage-builder pypi
    element's DIB_* variables, then the config file, then defaults. Run `pipdepot plan`
    to see the result and where each value came from.

    """


for _command in (
    *ELEMENT_COMMANDS,
    *SERVER_COMMANDS,
    sync_command,
    check_command,
    *CONTENTS_COMMANDS,
    *PRIVATE_COMMANDS,
):
    cli.add_command(_command)
cli.add_command(build_command(plan_options, plan_settings))


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI; a PipdepotError becomes one line on stderr and exit status 1 (2 for usage)."""
    stamp = "" if stderr_is_journal(os.environ) else "%(asctime)s "  # journald stamps lines itself
    logging.basicConfig(level=logging.INFO, format=f"{stamp}pipdepot: %(message)s", datefmt="%H:%M:%S")
    access = logging.StreamHandler()  # the server's access lines come formatted, in batches
    access.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("pipdepot.access").addHandler(access)
    logging.getLogger("pipdepot.access").propagate = False
    try:
        cli.main(args=argv, prog_name="pipdepot", standalone_mode=False)
    except PipdepotError as exc:
        click.echo(f"pipdepot: error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        _exit(2 if isinstance(exc, UsageError) else 1)
    except StoreError as exc:  # an object store unreachable, slow or refusing: its one line
        click.echo(f"pipdepot: error: {exc}", err=True)
        _exit(1)
    except click.exceptions.Abort:
        click.echo("pipdepot: aborted", err=True)
        _exit(130)
    except click.ClickException as exc:
        exc.show()
        _exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        _exit(exc.exit_code)
    _exit(0)


def _exit(status: int) -> NoReturn:
    """End with ``status``; after an object store was used, without the interpreter's teardown.

    obstore's native runtime can abort the process during that teardown (see
    ``storage.s3calls.runtime_started``): everything pipdepot writes is closed by then, so the
    output is flushed and the process ends at once.
    """
    if not runtime_started():
        sys.exit(status)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
