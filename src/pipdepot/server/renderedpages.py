"""Project pages rendered and compressed once per generation, kept within a byte budget.

- A page is keyed by project, generation, local files only, format and view: a new generation
  is a new page, so nothing here is invalidated.
- Upstream's whole page, fresh on disk but not in memory, is rendered from its stored lines one
  at a time, never parsed whole again.
- A download that leaves upstream's page as it read carries that page's rendered forms to the
  new generation.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, TypeAlias

from pipdepot.core.project import stored_listing
from pipdepot.server.pages import (
    CONTENT_TYPES,
    RenderedPage,
    listed_files,
    page_files,
    render_listing,
    render_project_html,
    render_project_json,
    render_root_html,
    render_root_json,
)

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterator
    from typing import IO

    from pipdepot.core.names import NormalizedName
    from pipdepot.core.project import FileEntry, ProjectState
    from pipdepot.server.metrics import Metrics
    from pipdepot.server.pages import Encoding, Format
    from pipdepot.server.projectstates import ProjectStates
    from pipdepot.server.views import TargetView

__all__ = ["RenderedPages"]

#: A rendered page: project, generation, local files only, format, view ("": the whole page).
_RenderedKey: TypeAlias = tuple[str, int, bool, str, str]
_RENDERED_BYTES = 16 * 1024 * 1024


def __dir__() -> list[str]:
    return __all__


class RenderedPages:
    """The rendered forms of project pages and the root page, least recently used dropped first."""

    def __init__(self, states: ProjectStates, metrics: Metrics, *, digesting: asyncio.Lock) -> None:
        self.states = states
        self.metrics = metrics
        #: Shared with the parsing of upstream's pages: one page digested at a time.
        self._digesting = digesting
        self._rendered: OrderedDict[_RenderedKey, RenderedPage] = OrderedDict()
        self._rendered_bytes = 0

    def whole_page(
        self, name: NormalizedName, generation: int, fmt: Format, view: TargetView | None
    ) -> RenderedPage | None:
        """Upstream's whole page for ``name`` at ``generation`` (trimmed to ``view``), if rendered."""
        key = (name, generation, False, fmt, view.name if view is not None else "")
        page = self._rendered.get(key)
        if page is not None:
            self._rendered.move_to_end(key)
        return page

    def render(
        self,
        state: ProjectState,
        fmt: Format,
        encoding: Encoding | None,
        view: TargetView | None = None,
        *,
        local_only: bool,
    ) -> RenderedPage:
        """``state`` as ``fmt`` (trimmed to ``view``), rendered and compressed once per generation."""
        key = (state.name, state.generation, local_only, fmt, view.name if view is not None else "")
        page = self._rendered.get(key)
        if page is not None:
            self._rendered.move_to_end(key)
            return page
        self.metrics.pages_rendered += 1
        files = page_files(state, local_only=local_only)
        if view is not None:
            files = view.trim(files)
        body = render_project_json(state, files) if fmt == "json" else render_project_html(state, files)
        return self._keep(key, RenderedPage.of(body, CONTENT_TYPES[fmt], encoding))

    async def render_stored(
        self, name: NormalizedName, generation: int, fmt: Format, encoding: Encoding | None
    ) -> RenderedPage | None:
        """Upstream's whole page at ``generation``, fresh on disk, rendered from its lines one at a time.

        What a warm install after a cold one asks for: pages that changed only by the files that
        became local (pipdepot adds the metadata hashes it extracted). Parsing such a page whole
        again cost 15 MB of objects for pydantic-core. ``None``: not such a page; the caller parses.
        """
        async with self._digesting:  # one page at a time: a warm install asks for 40 at once
            key = (name, generation, False, fmt, "")
            if (rendered := self._rendered.get(key)) is not None:  # while this one waited
                return rendered
            record = await self.states.load_local(name)
            if record is None or record.generation != generation:
                return None
            async with self.states.stored_page(name) as page:
                listing = _renderable(page) if page is not None else None
                if listing is None:
                    return None
                extra, entries = listing
                self.metrics.pages_rendered += 1
                body = render_listing(name, extra, listed_files(entries, record), fmt)
                return self._keep(key, RenderedPage.of(body, CONTENT_TYPES[fmt], encoding))

    def root_page(self, names: tuple[str, ...], fmt: Format, encoding: Encoding | None) -> RenderedPage:
        """The root page listing ``names``, rendered once per list."""
        key = ("", hash(names), False, fmt, "")
        page = self._rendered.get(key)
        if page is None:
            body = render_root_json(names) if fmt == "json" else render_root_html(names)
            page = self._keep(key, RenderedPage.of([body], CONTENT_TYPES[fmt], encoding))
        return page

    def carry(self, name: NormalizedName, old: int, new: int) -> None:
        """Keep the rendered forms of upstream's whole page for generation ``new``.

        A download that adds nothing to what upstream listed (size, sha256 and metadata hash
        known) leaves that page as it was: a warm install after a cold one then finds every page
        rendered, where it parsed and rendered each again (pydantic-core: 15 MB, 250 ms).
        """
        for fmt in CONTENT_TYPES:
            page = self._rendered.pop((name, old, False, fmt, ""), None)
            if page is not None:
                self._rendered[(name, new, False, fmt, "")] = page

    def _keep(self, key: _RenderedKey, page: RenderedPage) -> RenderedPage:
        self._rendered[key] = page
        self._rendered_bytes += page.size  # a later form is not counted: pip and uv each ask for one
        while self._rendered_bytes > _RENDERED_BYTES and len(self._rendered) > 1:
            _, old = self._rendered.popitem(last=False)
            self._rendered_bytes -= old.size
        return page


def _renderable(page: IO[bytes]) -> tuple[dict[str, Any], Iterator[FileEntry]] | None:
    """The stored page's ``extra`` and entries, if its head can be rendered before its files.

    That takes every file's size (the api-version) and upstream's ``versions``, as PyPI gives.
    """
    try:
        meta, entries = stored_listing(page)
    except ValueError:  # a page stored before entries had a line each
        return None
    extra = meta.get("extra")
    if meta.get("all_sizes") and isinstance(extra, dict) and isinstance(extra.get("versions"), list):
        return (extra, entries) if extra["versions"] else None
    return None
