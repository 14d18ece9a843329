"""``pipdepot plan``: the plan, the files it means for a root, and what would still override it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pipdepot.element.buildroot import ConfigFile, render_files
from pipdepot.element.localmirror import inspect_mirror
from pipdepot.element.overrides import find_overrides
from pipdepot.element.plan import MirrorPlan, build_plan
from pipdepot.element.rootfs import RootFS
from pipdepot.element.serverprobe import pipdepot_servers

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.settings import Settings

__all__ = ["FileAction", "PlanReport", "PlannedFile", "make_plan"]

FileAction = Literal["create", "replace", "replace-if-present", "skip"]


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """A file of the plan and what injecting would do with it."""

    file: ConfigFile
    action: FileAction


@dataclass(frozen=True, slots=True)
class PlanReport:
    """The plan, the files for a root (or for any root), and every warning."""

    plan: MirrorPlan
    root: Path | None
    files: tuple[PlannedFile, ...]
    warnings: tuple[str, ...]
    config_file: Path | None = None

    @property
    def to_write(self) -> tuple[ConfigFile, ...]:
        """The files injecting this root writes."""
        return tuple(p.file for p in self.files if p.action in {"create", "replace"})


def make_plan(settings: Settings, root: Path | None = None) -> PlanReport:
    """Build the plan; with a root, decide each file's fate there and look for overrides."""
    inputs = settings.plan
    urls = tuple(s.value for s in inputs.mirror_urls)
    servers = pipdepot_servers(urls) if urls else frozenset()
    plan = build_plan(inputs, mirror_state=inspect_mirror(inputs.mirror_dir.value), servers=servers)
    warnings = list(plan.warnings)
    if settings.host_index_env:
        names = ", ".join(settings.host_index_env)
        warnings.append(
            f"{names} set in this environment: a build tool that passes its environment into "
            "the root (diskimage-builder does) lets it win; `pipdepot chroot` and the pypi element clear it"
        )
    if root is None:
        files = tuple(
            PlannedFile(f, "replace-if-present" if f.only_if_present else "create")
            for f in render_files(plan)
        )
        return PlanReport(plan, None, files, tuple(warnings), settings.config_file)
    rootfs = RootFS.open(root)
    files = tuple(PlannedFile(f, _action(rootfs, f)) for f in render_files(plan))
    warnings.extend(find_overrides(rootfs))
    return PlanReport(plan, rootfs.root, files, tuple(warnings), settings.config_file)


def _action(rootfs: RootFS, file: ConfigFile) -> FileAction:
    present = rootfs.lexists(file.path)
    if present:
        return "replace"
    return "skip" if file.only_if_present else "create"
