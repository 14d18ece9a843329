"""The files that point pip, uv and easy_install inside a build root at the mirror.

Pure rendering: :func:`render_files` turns a :class:`MirrorPlan` into the
files' paths (inside the root), contents and modes. Which of them exist in a
given root, and writing them, is the job of the inject operation.

Why these files (pip loads global, then user, then site, then ``PIP_*``):

- ``/etc/pip.conf``: every user and every virtualenv without its own config.
- ``/root/.pip/pip.conf``: the seed element's place; pip still reads it.
- ``/root/.config/pip/pip.conf``: only when the root has one, since it would
  otherwise win over the legacy file for root.
- ``/etc/uv/uv.toml`` (and ``/etc/xdg/uv/uv.toml`` or root's user ``uv.toml``
  when the root has them, since uv reads the first system file and merges the
  user file's index list before ours).
- ``/root/.pydistutils.cfg``: legacy ``setup.py`` runs of old setuptools.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import tomli_w

if TYPE_CHECKING:
    from pipdepot.element.plan import MirrorPlan

__all__ = ["INDEX_ENV_VARS", "ConfigFile", "render_files", "render_pip_conf", "render_uv_toml"]

#: Variables that choose indexes for pip or uv and beat every config file.
#: The element's ``environment.d`` unsets the same list; a test keeps them equal.
INDEX_ENV_VARS = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_NO_INDEX",
    "PIP_FIND_LINKS",
    "PIP_TRUSTED_HOST",
    "PIP_CONFIG_FILE",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_INDEX_STRATEGY",
    "UV_CONFIG_FILE",
    "UV_NO_CONFIG",
    "UV_INSECURE_HOST",
)

_HEADER = "# Written by pipdepot for an image build; `pipdepot restore` puts the original back.\n"


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """One file to write inside a build root."""

    path: PurePosixPath
    content: str
    mode: int
    purpose: str
    #: Written only when the root already has a file there.
    only_if_present: bool = False


def render_files(plan: MirrorPlan) -> tuple[ConfigFile, ...]:
    """Every file a build root may receive for ``plan``, in the order to write them."""
    mode = 0o600 if plan.secret else 0o644
    pip_conf = render_pip_conf(plan)
    uv_toml = render_uv_toml(plan)
    return (
        ConfigFile(PurePosixPath("/etc/pip.conf"), pip_conf, mode, "pip, every user"),
        ConfigFile(PurePosixPath("/root/.pip/pip.conf"), pip_conf, mode, "pip, root (legacy user file)"),
        ConfigFile(
            PurePosixPath("/root/.config/pip/pip.conf"),
            pip_conf,
            mode,
            "pip, root (user file that would win over the legacy one)",
            only_if_present=True,
        ),
        ConfigFile(PurePosixPath("/etc/uv/uv.toml"), uv_toml, mode, "uv, every user"),
        ConfigFile(
            PurePosixPath("/etc/xdg/uv/uv.toml"),
            uv_toml,
            mode,
            "uv (system file that uv reads instead of /etc/uv/uv.toml)",
            only_if_present=True,
        ),
        ConfigFile(
            PurePosixPath("/root/.config/uv/uv.toml"),
            uv_toml,
            mode,
            "uv, root (user file whose indexes uv would try first)",
            only_if_present=True,
        ),
        ConfigFile(
            PurePosixPath("/root/.pydistutils.cfg"),
            render_pydistutils_cfg(plan),
            mode,
            "easy_install / setup.py, root",
        ),
    )


def render_pip_conf(plan: MirrorPlan, *, header: str = _HEADER) -> str:
    """Pip's ``[global]`` section; list values one per line, as pip splits them."""
    values = {"index-url": plan.index_url}
    if plan.extra_index_urls:
        values["extra-index-url"] = _lines(plan.extra_index_urls)
    if plan.trusted_hosts:
        values["trusted-host"] = _lines(plan.trusted_hosts)
    if plan.retries is not None:
        values["retries"] = str(plan.retries)
    if plan.timeout is not None:
        values["timeout"] = f"{plan.timeout:g}"
    return header + _ini({"global": values})


def render_uv_toml(plan: MirrorPlan, *, header: str = _HEADER) -> str:
    """Uv's indexes in the plan's order, the last one ``default`` so PyPI is never implied.

    uv asks indexes in order and, with ``first-index``, takes a project only
    from the first index that has it: never a union of two indexes for one
    name. Without an index marked ``default``, uv would add PyPI behind ours.
    """
    indexes: list[dict[str, object]] = [{"url": url} for url in plan.indexes]
    indexes[-1]["default"] = True
    document: dict[str, object] = {"index-strategy": plan.uv_index_strategy}
    if plan.insecure_hosts:
        document["allow-insecure-host"] = list(plan.insecure_hosts)
    document["index"] = indexes
    return header + tomli_w.dumps(document)


def render_pydistutils_cfg(plan: MirrorPlan) -> str:
    """easy_install's one index: the last mirror (no ``allow_hosts``, which breaks pip)."""
    return _HEADER + _ini({"easy_install": {"index_url": plan.easy_install_index}})


def _lines(values: tuple[str, ...]) -> str:
    return "".join(f"\n    {value}" for value in values)


def _ini(sections: dict[str, dict[str, str]]) -> str:
    """INI as pip reads it; values were validated to hold no whitespace but our own newlines."""
    out = []
    for section, values in sections.items():
        out.append(f"[{section}]")
        out.extend(
            f"{key} = {value}" if not value.startswith("\n") else f"{key} ={value}"
            for key, value in values.items()
        )
    return "\n".join(out) + "\n"
