"""The commands that point a build root at the mirror and put it back: plan, inject, restore, chroot.

Also elements-path, for the diskimage-builder element that does the same. ``plan_options`` and
``plan_settings`` are public because ``pipdepot build`` takes the same plan.
"""

from __future__ import annotations

import json
import os
import re
import sys
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipdepot.check_cli import check_before_chroot
from pipdepot.core.urls import redact_url
from pipdepot.element.buildroot import render_pip_conf, render_uv_toml
from pipdepot.errors import UsageError
from pipdepot.operations.chroot import clean_environment, run_in_root
from pipdepot.operations.inject import inject, require_os_root, restore
from pipdepot.operations.plan import PlanReport, make_plan
from pipdepot.settings import PlanFlags, Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ELEMENT_COMMANDS", "plan_options", "plan_settings"]

F = TypeVar("F", bound="Callable[..., Any]")


def __dir__() -> list[str]:
    return __all__


def plan_options(command: F) -> F:
    """The options that shape the mirror plan, shared by plan, inject and chroot."""
    options = [
        click.option(
            "--mirror-url",
            "mirror_urls",
            multiple=True,
            metavar="URL",
            help="Index URL to use, repeatable; the first is the primary, the others are extra indexes "
            "in order. [env: PIPDEPOT_MIRROR_URLS (space-separated), DIB_PYPI_MIRROR_URL and "
            "DIB_PYPI_MIRROR_URL_<N>; default: file:///tmp/pypi, the mounted local mirror]",
        ),
        click.option(
            "--offline/--online",
            default=None,
            help="Offline: only the mirrors, never the public index; `chroot` also keeps the host's "
            "resolver config and proxies out. [env: PIPDEPOT_OFFLINE, DIB_OFFLINE (any non-empty value); "
            "default: online]",
        ),
        click.option(
            "--no-pypi/--pypi",
            "no_pypi",
            default=None,
            help="Do not add the public index as the last extra index, even online. "
            "[env: PIPDEPOT_NO_PYPI, DIB_NO_PYPI_PIP (any non-empty value)]",
        ),
        click.option(
            "--public-index",
            metavar="URL",
            help="The public index added last when online. [env: PIPDEPOT_PUBLIC_INDEX; default: PyPI]",
        ),
        click.option(
            "--retries",
            metavar="N",
            help="pip's retries per request; 0 falls back to the next index at once. "
            "[env: PIPDEPOT_RETRIES, DIB_PIP_RETRIES; default: pip's own (5)]",
        ),
        click.option(
            "--timeout",
            metavar="SECONDS",
            help="pip's socket timeout. [env: PIPDEPOT_TIMEOUT, DIB_PIP_TIMEOUT; default: pip's own (15)]",
        ),
        click.option(
            "--trusted-host",
            "trusted_hosts",
            multiple=True,
            metavar="HOST[:PORT]",
            help="Also trust this host (pip trusted-host, uv allow-insecure-host), repeatable. Plain-http "
            "mirror hosts are always trusted, https hosts only when listed here. "
            "[env: PIPDEPOT_TRUSTED_HOSTS, DIB_PYPI_TRUSTED_HOST (space-separated)]",
        ),
        click.option(
            "--mirror-dir",
            metavar="DIR",
            help="The local mirror directory, mounted read-only at /tmp/pypi when it exists. "
            "[env: PIPDEPOT_MIRROR_DIR, DIB_IMAGE_CACHE/pypi/mirror; "
            "default: ~/.cache/image-create/pypi/mirror, XDG_CACHE_HOME respected]",
        ),
        click.option(
            "--uv-index-strategy",
            type=click.Choice(["first-index", "unsafe-first-match", "unsafe-best-match"]),
            help="uv's index strategy; first-index takes each project from the first index that has "
            "it, never a merge. [env: PIPDEPOT_UV_INDEX_STRATEGY; default: first-index]",
        ),
        click.option(
            "--target-view/--no-target-view",
            default=None,
            help="When a mirror URL is a running `pipdepot serve`, point pip and uv at its target view "
            "(/+auto/simple/: pages listing only what the installer's own Python and platform can "
            "install). [env: PIPDEPOT_TARGET_VIEW; default: on]",
        ),
        click.option(
            "--config",
            metavar="FILE",
            help="TOML config file with the same settings (mirror-urls, offline, no-pypi, public-index, "
            "retries, timeout, trusted-hosts, mirror-dir, uv-index-strategy, target-view). "
            "[env: PIPDEPOT_CONFIG; default: ~/.config/pipdepot/config.toml if it exists]",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def plan_settings(options: dict[str, Any]) -> Settings:
    """Settings from the ``plan_options`` values (popped from ``options``), environment and config file."""
    flags = PlanFlags(
        mirror_urls=tuple(options.pop("mirror_urls")),
        offline=options.pop("offline"),
        no_pypi=options.pop("no_pypi"),
        public_index=options.pop("public_index"),
        retries=options.pop("retries"),
        timeout=options.pop("timeout"),
        trusted_hosts=tuple(options.pop("trusted_hosts")),
        mirror_dir=options.pop("mirror_dir"),
        uv_index_strategy=options.pop("uv_index_strategy"),
        config=options.pop("config"),
        target_view=options.pop("target_view"),
    )
    return load_settings(flags, os.environ)


_FILE_HEADER = "# From `pipdepot plan`: mount it as a build secret; it is not part of the image.\n"


@click.command()
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    help="Also check this build root: "
    "which files would be created or replaced, and what in it would still win.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["pip.conf", "uv.toml"]),
    help="Print only that file, credentials included (for a build secret: see docs/CONTAINERS.md).",
)
@plan_options
def plan(root: Path | None, as_json: bool, file_format: str | None, **options: Any) -> None:
    """Show the mirror plan, every file it writes, and what would override it.

    Changes nothing. Warnings go to the end of the text (or the "warnings" list in JSON).
    """
    report = make_plan(plan_settings(options), root)
    if file_format is not None:
        _warn(report.warnings)
        render = render_pip_conf if file_format == "pip.conf" else render_uv_toml
        click.echo(render(report.plan, header=_FILE_HEADER), nl=False)
    elif as_json:
        click.echo(json.dumps(_plan_json(report), indent=2))
    else:
        click.echo(_plan_text(report), nl=False)


_FORCE_ROOT = click.option(
    "--force",
    is_flag=True,
    help="Use ROOT even if it does not look like an OS root (no /etc, no /usr/bin or /bin, no /bin/sh).",
)


@click.command(name="inject")
@click.argument("root", type=click.Path(path_type=Path))
@_FORCE_ROOT
@plan_options
def inject_command(root: Path, force: bool, **options: Any) -> None:
    """Point pip and uv in the build root ROOT at the mirror.

    Writes /etc/pip.conf, /root/.pip/pip.conf, /etc/uv/uv.toml and /root/.pydistutils.cfg
    (and root's other pip or uv user files, or /etc/xdg/uv/uv.toml, if the root has them),
    backs up every file it replaces, and bind-mounts the local mirror read-only at
    ROOT/tmp/pypi when the mirror directory exists. A journal in ROOT/.pipdepot records
    each step before it is taken. Refuses a root that is already injected.
    Undo with `pipdepot restore ROOT`.
    """
    settings = plan_settings(options)
    if not force:
        require_os_root(root)
    report = make_plan(settings, root)
    _warn(report.warnings)
    done = inject(report, force=force)
    for path, action in done.written:
        click.echo(f"pipdepot: {action} {path}")
    for path in done.mounted:
        click.echo(f"pipdepot: mounted {report.plan.mirror_dir} read-only at {path}")


@click.command(name="restore")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Restore even if the process that injected ROOT still runs.")
def restore_command(root: Path, force: bool) -> None:
    """Undo `pipdepot inject` on ROOT, exactly as its journal says.

    Unmounts what was mounted, puts every replaced file back (same bytes, mode, owner),
    removes every file and directory it created. Safe to run again, and after pipdepot
    was killed mid-way; a root that is not injected is left alone.
    """
    report = restore(root, force=force)
    if not report.injected:
        click.echo(f"pipdepot: {report.root} is not injected; nothing to restore")
        return
    for label, paths in (
        ("unmounted", report.unmounted),
        ("restored", report.restored),
        ("removed", report.removed),
    ):
        for path in paths:
            click.echo(f"pipdepot: {label} {path}")
    for reason in report.kept:
        click.echo(f"pipdepot: warning: kept {reason}", err=True)


@click.command(name="chroot", context_settings={"ignore_unknown_options": True})
@click.argument("root", type=click.Path(path_type=Path))
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a variable for COMMAND, repeatable (the environment is otherwise clean).",
)
@click.option(
    "--check",
    "checks",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="First run `pipdepot check -r FILE` against the mirror directory for the root's Python "
    "(its newest /usr/bin/python3.X); if anything is missing, stop before ROOT is touched. Repeatable.",
)
@_FORCE_ROOT
@plan_options
def chroot_command(
    root: Path,
    command: tuple[str, ...],
    env_pairs: tuple[str, ...],
    checks: tuple[Path, ...],
    force: bool,
    **options: Any,
) -> None:
    """Inject ROOT, run COMMAND in it, then restore ROOT; exits with COMMAND's status.

    Mounts /proc, /sys, /dev and /dev/pts in ROOT, and (online) the host's
    /etc/resolv.conf. COMMAND runs as root with HOME=/root and a clean environment: PATH,
    TERM, LANG, proxies when online, and --env values; nothing of the host's PIP_*, UV_*
    or VIRTUAL_ENV. ROOT is restored when COMMAND ends, fails, or when pipdepot gets
    SIGINT, SIGTERM or SIGHUP (passed on to COMMAND). Put `--` before COMMAND.
    """
    settings = plan_settings(options)
    extra = {}
    for pair in env_pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--env: {pair!r} is not NAME=VALUE")
        extra[name] = value
    if not force:
        require_os_root(root)
    report = make_plan(settings, root)
    _warn(report.warnings)
    if checks:
        check_before_chroot(checks, settings.plan.mirror_dir.value, root)
    online = not settings.plan.offline.value
    passthrough = {k: v for k, v in settings.passthrough_env if online or k == "TERM"}
    environment = clean_environment(passthrough, extra)
    status = run_in_root(report, command, environment=environment, online=online, force=force)
    sys.exit(status)


@click.command(name="elements-path")
def elements_path() -> None:
    """Print the directory holding pipdepot's diskimage-builder `pypi` element.

    Put it first in ELEMENTS_PATH so it replaces the built-in pypi element:
    export ELEMENTS_PATH=$(pipdepot elements-path)${ELEMENTS_PATH:+:$ELEMENTS_PATH}
    """
    click.echo(str(files("pipdepot") / "elements"))


def _warn(warnings: tuple[str, ...]) -> None:
    for warning in warnings:
        click.echo(f"pipdepot: warning: {warning}", err=True)


def _plan_text(report: PlanReport) -> str:
    plan, inputs = report.plan, report.plan.inputs
    primary_source = inputs.mirror_urls[0].source if inputs.mirror_urls else "default"
    extra_sources = [s.source for s in inputs.mirror_urls[1:]]
    rows = [("index-url", redact_url(plan.index_url), primary_source)]
    for i, url in enumerate(plan.extra_index_urls):
        source = extra_sources[i] if i < len(extra_sources) else f"public index: {inputs.public_index.source}"
        rows.append(("extra-index-url", redact_url(url), source))
    rows += [
        (
            "trusted-host",
            " ".join(plan.trusted_hosts) or "-",
            "plain-http hosts" + (f" + {inputs.trusted_hosts.source}" if inputs.trusted_hosts.value else ""),
        ),
        (
            "retries",
            "pip default" if plan.retries is None else str(plan.retries),
            inputs.retries.source,
        ),
        (
            "timeout",
            "pip default" if plan.timeout is None else f"{plan.timeout:g} s",
            inputs.timeout.source,
        ),
        ("offline", str(inputs.offline.value).lower(), inputs.offline.source),
        ("no-pypi", str(inputs.no_pypi.value).lower(), inputs.no_pypi.source),
        ("uv strategy", plan.uv_index_strategy, inputs.uv_index_strategy.source),
        ("easy_install", redact_url(plan.easy_install_index), "the last mirror"),
        (
            "local mirror",
            f"{plan.mirror_dir} ({plan.mirror_state.value})",
            inputs.mirror_dir.source,
        ),
        (
            "mount",
            "read-only at /tmp/pypi" if plan.mounts_mirror else "none (no mirror directory)",
            "",
        ),
    ]
    width = max(len(r[1]) for r in rows)
    lines = ["Mirror plan" + (f" for {report.root}" if report.root else "") + ":"]
    if report.config_file is not None:
        lines.append(f"  (config file {report.config_file})")
    lines += [f"  {k:<16} {v:<{width}}  {'(' + s + ')' if s else ''}".rstrip() for k, v, s in rows]
    if report.plan.inputs.notes or report.plan.notes:
        lines += ["", "Notes:"] + [f"  - {note}" for note in plan.notes]
    lines += ["", "Files" + (f" in {report.root}" if report.root else "") + ":"]
    shown: dict[str, str] = {}
    for planned in report.files:
        file = planned.file
        lines.append(f"  {file.path}  [{planned.action}, mode {file.mode:04o}]  {file.purpose}")
        if planned.action == "skip":
            continue
        if file.content in shown:
            lines.append(f"      | (the same as {shown[file.content]})")
            continue
        shown[file.content] = str(file.path)
        lines += [f"      | {line}" for line in _redacted(file.content).splitlines()]
    if report.warnings:
        lines += ["", "Warnings:"] + [f"  - {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def _redacted(text: str) -> str:
    return re.sub(r"[a-z]+://[^\s\"']+", lambda match: redact_url(match.group()), text)


def _plan_json(report: PlanReport) -> dict[str, Any]:
    plan, inputs = report.plan, report.plan.inputs
    return {
        "root": str(report.root) if report.root else None,
        "config_file": str(report.config_file) if report.config_file else None,
        "index_url": redact_url(plan.index_url),
        "extra_index_urls": [redact_url(u) for u in plan.extra_index_urls],
        "trusted_hosts": list(plan.trusted_hosts),
        "insecure_hosts": list(plan.insecure_hosts),
        "retries": plan.retries,
        "timeout": plan.timeout,
        "easy_install_index": redact_url(plan.easy_install_index),
        "uv_index_strategy": plan.uv_index_strategy,
        "local_mirror": {
            "directory": str(plan.mirror_dir),
            "state": plan.mirror_state.value,
            "mounted_at": "/tmp/pypi" if plan.mounts_mirror else None,
        },
        "sources": {
            "mirror_urls": [{"url": redact_url(s.value), "source": s.source} for s in inputs.mirror_urls],
            "offline": {"value": inputs.offline.value, "source": inputs.offline.source},
            "no_pypi": {"value": inputs.no_pypi.value, "source": inputs.no_pypi.source},
            "public_index": {
                "value": inputs.public_index.value,
                "source": inputs.public_index.source,
            },
            "retries": {"value": inputs.retries.value, "source": inputs.retries.source},
            "timeout": {"value": inputs.timeout.value, "source": inputs.timeout.source},
            "trusted_hosts": {
                "value": list(inputs.trusted_hosts.value),
                "source": inputs.trusted_hosts.source,
            },
            "mirror_dir": {
                "value": str(inputs.mirror_dir.value),
                "source": inputs.mirror_dir.source,
            },
            "uv_index_strategy": {
                "value": inputs.uv_index_strategy.value,
                "source": inputs.uv_index_strategy.source,
            },
        },
        "files": [
            {
                "path": str(p.file.path),
                "action": p.action,
                "mode": f"{p.file.mode:04o}",
                "purpose": p.file.purpose,
                "content": _redacted(p.file.content),
            }
            for p in report.files
        ],
        "notes": list(plan.notes),
        "warnings": list(report.warnings),
    }


ELEMENT_COMMANDS = (plan, inject_command, restore_command, chroot_command, elements_path)
