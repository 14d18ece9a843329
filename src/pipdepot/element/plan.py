"""The mirror plan: which indexes pip and uv in a build root use, and why.

:func:`build_plan` is pure: it takes settings whose every value says where it
came from (:class:`Sourced`) and the state of the local mirror directory, and
returns a :class:`MirrorPlan`. Reading flags, variables and files is the job of
``pipdepot.settings``; writing files is the job of ``element.buildroot``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Generic, Literal, TypeVar

from pipdepot.core.urls import has_credentials, is_plain_http, redact_url, trusted_host_of
from pipdepot.element.serverprobe import view_url

__all__ = [
    "LOCAL_MIRROR_URL",
    "MOUNT_POINT",
    "MirrorPlan",
    "MirrorState",
    "PlanInputs",
    "Sourced",
    "UvIndexStrategy",
    "build_plan",
]

T_co = TypeVar("T_co", covariant=True)

#: Where the local mirror is bind-mounted inside a build root, and its URL there.
MOUNT_POINT = PurePosixPath("/tmp/pypi")
LOCAL_MIRROR_URL = f"file://{MOUNT_POINT}"

UvIndexStrategy = Literal["first-index", "unsafe-first-match", "unsafe-best-match"]


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class Sourced(Generic[T_co]):
    """A setting's value and where it came from (a flag, a variable, a file, a default)."""

    value: T_co
    source: str


class MirrorState(enum.Enum):
    """What the local mirror directory holds, as far as a ``file://`` index cares."""

    MISSING = "missing"
    EMPTY = "empty"  # a directory, but no ``<project>/index.html``
    READY = "ready"


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """The settings a plan is made from, each with its source."""

    mirror_urls: tuple[Sourced[str], ...]
    offline: Sourced[bool]
    no_pypi: Sourced[bool]
    public_index: Sourced[str]
    retries: Sourced[int | None]
    timeout: Sourced[float | None]
    trusted_hosts: Sourced[tuple[str, ...]]
    mirror_dir: Sourced[Path]
    uv_index_strategy: Sourced[UvIndexStrategy]
    notes: tuple[str, ...] = ()
    #: Point pip and uv at a pipdepot mirror's target view (pages trimmed to their own target).
    target_view: Sourced[bool] = Sourced(value=True, source="default")


@dataclass(frozen=True, slots=True)
class MirrorPlan:
    """What pip and uv inside a build root will be told, ready to render."""

    index_url: str
    extra_index_urls: tuple[str, ...]
    trusted_hosts: tuple[str, ...]
    insecure_hosts: tuple[str, ...]
    retries: int | None
    timeout: float | None
    easy_install_index: str
    mirror_dir: Path
    mirror_state: MirrorState
    uv_index_strategy: UvIndexStrategy
    secret: bool
    inputs: PlanInputs
    notes: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def indexes(self) -> tuple[str, ...]:
        """Every index, primary first, in the order pip and uv are given them."""
        return (self.index_url, *self.extra_index_urls)

    @property
    def mounts_mirror(self) -> bool:
        """Whether the local mirror directory is bind-mounted at :data:`MOUNT_POINT`."""
        return self.mirror_state is not MirrorState.MISSING

    @property
    def uses_public_index(self) -> bool:
        """Whether the public index is one of the indexes."""
        return self.inputs.public_index.value in self.extra_index_urls


def build_plan(
    inputs: PlanInputs, *, mirror_state: MirrorState, servers: frozenset[str] = frozenset()
) -> MirrorPlan:
    """Turn settings into the plan for a build root.

    The mirrors come first, in order; the public index is the last extra index
    unless offline or ``no_pypi``; every plain-http host is trusted, https hosts
    only when asked; the last mirror is easy_install's index. A mirror in ``servers`` (a
    running pipdepot) is read through its target view unless that is turned off.

    >>> from pathlib import Path
    >>> def s(v): return Sourced(v, "test")
    >>> inputs = PlanInputs((s("http://m:3141/"),), s(True), s(False), s("https://p/simple/"),
    ...     s(None), s(None), s(()), s(Path("/m")), s("first-index"))
    >>> build_plan(inputs, mirror_state=MirrorState.MISSING).trusted_hosts
    ('m:3141',)
    """
    notes = list(inputs.notes)
    warnings: list[str] = []
    mirrors = [_viewed(s.value, inputs.target_view, servers, notes) for s in inputs.mirror_urls]
    if not mirrors:
        mirrors = [LOCAL_MIRROR_URL]
        notes.append(f"no mirror URL is set: the primary index is {LOCAL_MIRROR_URL}, the local mirror")
    indexes = list(dict.fromkeys(mirrors))
    public = inputs.public_index.value
    if inputs.offline.value:
        notes.append(f"offline ({inputs.offline.source}): the public index is not added")
    elif inputs.no_pypi.value:
        notes.append(f"no public index ({inputs.no_pypi.source}): the public index is not added")
    elif public not in indexes:
        indexes.append(public)

    http_hosts = [trusted_host_of(url) for url in indexes if is_plain_http(url)]
    asked = list(inputs.trusted_hosts.value)
    trusted = tuple(dict.fromkeys(http_hosts + asked))
    https_asked = tuple(host for host in asked if host not in http_hosts)

    warnings.extend(_local_mirror_warnings(indexes, inputs.mirror_dir.value, mirror_state))
    secret = any(has_credentials(url) for url in indexes)
    if secret:
        warnings.append(
            "an index URL carries credentials: the files holding it are written mode 0600, "
            "readable by root only, and removed on restore"
        )
    return MirrorPlan(
        index_url=indexes[0],
        extra_index_urls=tuple(indexes[1:]),
        trusted_hosts=trusted,
        insecure_hosts=https_asked,
        retries=inputs.retries.value,
        timeout=inputs.timeout.value,
        easy_install_index=mirrors[-1],
        mirror_dir=inputs.mirror_dir.value,
        mirror_state=mirror_state,
        uv_index_strategy=inputs.uv_index_strategy.value,
        secret=secret,
        inputs=inputs,
        notes=tuple(notes),
        warnings=tuple(warnings),
    )


def _viewed(url: str, wanted: Sourced[bool], servers: frozenset[str], notes: list[str]) -> str:
    """``url``, or its target view when it is a pipdepot server and views are wanted."""
    view = view_url(url) if url in servers else None
    if view is None:
        return url
    if not wanted.value:
        notes.append(f"{redact_url(url)} is pipdepot serve; its target view is not used ({wanted.source})")
        return url
    notes.append(
        f"{redact_url(url)} is pipdepot serve: pip and uv read {redact_url(view)}, its pages trimmed to "
        f"the installer's own Python and platform (from its User-Agent; off: PIPDEPOT_TARGET_VIEW=0)"
    )
    return view


def _local_mirror_warnings(indexes: list[str], mirror_dir: Path, state: MirrorState) -> list[str]:
    uses_local = any(url.rstrip("/") == LOCAL_MIRROR_URL for url in indexes)
    if state is MirrorState.MISSING:
        if uses_local:
            return [
                f"the local mirror {mirror_dir} does not exist: nothing is mounted at {MOUNT_POINT}, "
                f"so {LOCAL_MIRROR_URL} is empty" + (" and installs will fail" if len(indexes) == 1 else "")
            ]
        return []
    if state is MirrorState.EMPTY and uses_local:
        return [
            (
                f"the local mirror {mirror_dir} holds no project (no */index.html): "
                f"pip and uv find nothing in {LOCAL_MIRROR_URL}"
            )
        ]
    return []
