"""Counters for ``/+metrics`` (Prometheus text) and ``/+status`` (JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["HELP", "Metrics"]


_GAUGES = frozenset({"cached_projects", "cached_files", "parsed_entries_held"})

#: Each metric's ``# HELP`` line; docs/SERVER.md has the same table.
HELP = {
    "requests": "HTTP requests answered, every path and status (/+ endpoints and refusals too)",
    "hits": "Responses served from the cache: pages, files, metadata, the root page (X-Pipdepot-Cache: hit)",
    "misses": "Responses for what the cache did not hold: a page new or changed upstream, a file (miss)",
    "stale_serves": "Pages served from the cache, local files only, because upstream failed (stale)",
    "offline_serves": "Pages answered by a mirror running --offline (offline; its files count as hits)",
    "passes": "Small byte ranges of uncached files passed through from upstream, not kept (pass)",
    "upstream_errors": "Upstream page fetches and file downloads that failed",
    "bytes_served": "Bytes of response bodies sent (pages, files, ranges)",
    "bytes_fetched": "Bytes received from upstream for files and passed-through ranges",
    "pages_rendered": "Pages rendered (once per page version, format and local-only view)",
    "cached_projects": "Projects with at least one file in the mirror",
    "cached_files": "Files in the mirror",
    "parsed_entries_held": "File entries of parsed upstream pages held in memory",
}

#: The X-Pipdepot-Cache value of a response -> the counter it adds to.
_BY_CACHE = {
    "hit": "hits",
    "miss": "misses",
    "stale": "stale_serves",
    "offline": "offline_serves",
    "pass": "passes",
}


def __dir__() -> list[str]:
    return __all__


@dataclass(slots=True)
class Metrics:
    """What the server has done since it started."""

    requests: int = 0
    hits: int = 0
    misses: int = 0
    stale_serves: int = 0
    offline_serves: int = 0
    passes: int = 0
    upstream_errors: int = 0
    bytes_served: int = 0
    bytes_fetched: int = 0
    #: Pages rendered (once per page version, format and local-only view; the rest are served as kept).
    pages_rendered: int = 0
    cached_projects: int = 0
    cached_files: int = 0
    #: File entries of parsed upstream pages held in memory (bounded; most pages are served without).
    parsed_entries_held: int = 0

    def answered(self, cache: str | None) -> None:
        """Count one response by how it was obtained: the same word as its log line's cache column."""
        self.requests += 1
        counter = _BY_CACHE.get(cache or "")
        if counter is not None:
            setattr(self, counter, getattr(self, counter) + 1)

    def as_dict(self) -> dict[str, int]:
        """Every counter by name."""
        return asdict(self)

    def prometheus(self) -> str:
        """The Prometheus text exposition format, with ``# HELP`` and ``# TYPE`` for each metric."""
        lines = []
        for name, value in self.as_dict().items():
            kind = "gauge" if name in _GAUGES else "counter"
            metric = f"pipdepot_{name}" + ("_total" if kind == "counter" else "")
            lines += [f"# HELP {metric} {HELP[name]}.", f"# TYPE {metric} {kind}", f"{metric} {value}"]
        return "\n".join(lines) + "\n"
