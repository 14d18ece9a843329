"""``pipdepot add``: put local wheels and sdists (private packages) into the mirror."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipdepot.core.distribution import InvalidDistribution, LocalDistribution, inspect_distribution
from pipdepot.errors import MirrorError
from pipdepot.operations.session import open_mirror
from pipdepot.storage.store import IntegrityError

if TYPE_CHECKING:
    from pathlib import Path

    from pipdepot.storage.locate import MirrorLocation

__all__ = ["AddReport", "add", "find_distributions"]

_SUFFIXES = (".whl", ".tar.gz", ".zip")


def __dir__() -> list[str]:
    return __all__


@dataclass(slots=True)
class AddReport:
    """Files put in, and files that were already there."""

    added: list[LocalDistribution] = field(default_factory=list)
    present: list[LocalDistribution] = field(default_factory=list)


def find_distributions(paths: list[Path]) -> list[LocalDistribution]:
    """Check every file given, and every wheel or sdist directly in a directory given.

    All are checked before any is added, so a bad file leaves the mirror as it was.

    :raises MirrorError: a path is missing, or a file is not a usable distribution.
    """
    found: list[LocalDistribution] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_SUFFIXES))
            if not files:
                raise MirrorError(f"{path}: no wheels or sdists in this directory")
        elif path.is_file():
            files = [path]
        else:
            raise MirrorError(f"{path}: no such file or directory")
        try:
            found.extend(inspect_distribution(file) for file in files)
        except InvalidDistribution as exc:
            raise MirrorError(str(exc)) from None
    names = [d.filename for d in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MirrorError(f"{duplicates[0]} is given twice")
    return found


async def add(distributions: list[LocalDistribution], *, mirror_dir: MirrorLocation) -> AddReport:
    """Add checked distributions to the mirror at ``mirror_dir``.

    :raises MirrorError: a file of the same name but other content is already there.
    """
    report = AddReport()
    async with open_mirror(mirror_dir, purpose="pipdepot add", writer=True) as mirror:
        for dist in distributions:  # every conflict is found before anything is written
            state = await mirror.state(dist.name)
            for entry in state.added if state is not None else ():
                if entry["filename"] == dist.filename and entry["hashes"]["sha256"] != dist.sha256:
                    raise MirrorError(f"{dist.filename} is already in the mirror with other content")
        for dist in distributions:
            try:
                (report.added if await mirror.add(dist) else report.present).append(dist)
            except IntegrityError as exc:
                raise MirrorError(str(exc)) from None
    return report
