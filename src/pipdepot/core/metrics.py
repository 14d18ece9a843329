"""Counters for ``/+metrics`` (Prometheus text) and ``/+status`` (JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Metrics"]


_GAUGES = frozenset({"cached_projects", "cached_files", "parsed_entries_held"})


def __dir__() -> list[str]:
    return __all__


@dataclass(slots=True)
class Metrics:
    """What the server has done since it started."""

    requests: int = 0
    hits: int = 0
    misses: int = 0
    stale_serves: int = 0
    upstream_errors: int = 0
    bytes_served: int = 0
    bytes_fetched: int = 0
    #: Pages rendered (once per page version, format and local-only view; the rest are served as kept).
    pages_rendered: int = 0
    cached_projects: int = 0
    cached_files: int = 0
    #: File entries of parsed upstream pages held in memory (bounded; most pages are served without).
    parsed_entries_held: int = 0

    def as_dict(self) -> dict[str, int]:
        """Every counter by name."""
        return asdict(self)

    def prometheus(self) -> str:
        """The Prometheus text exposition format."""
        lines = []
        for name, value in self.as_dict().items():
            kind = "gauge" if name in _GAUGES else "counter"
            metric = f"pipdepot_{name}" + ("_total" if kind == "counter" else "")
            lines += [f"# TYPE {metric} {kind}", f"{metric} {value}"]
        return "\n".join(lines) + "\n"
