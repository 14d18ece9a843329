"""Pure pieces of the mirror: upstream pages in, file paths, pages out."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from pypi_simple import ProjectPage

from pipdepot.core import project
from pipdepot.core.names import NormalizedName
from pipdepot.core.project import (
    LocalFile,
    ProjectState,
    UnusablePage,
    entry_in_page,
    fetched_at_of,
    local_path_of,
    parse_upstream_page,
    stored_listing,
)
from pipdepot.server.pages import (
    RenderedPage,
    listed_files,
    negotiate,
    page_files,
    render_listing,
    render_project_html,
    render_project_json,
    render_tree_html,
)


@pytest.mark.parametrize(
    ("url", "filename", "path"),
    [
        (
            "https://files.example/packages/ab/cd/ef/x-1.0.tar.gz",
            "x-1.0.tar.gz",
            "/packages/ab/cd/ef/x-1.0.tar.gz",
        ),
        (
            "http://m:3141/root/pypi/+f/1/x-1.0.tar.gz",
            "x-1.0.tar.gz",
            "/packages/+/m:3141/root/pypi/+f/1/x-1.0.tar.gz",
        ),
        ("http://u:pw@m/f/x-1.0.tar.gz", "x-1.0.tar.gz", "/packages/+/m/f/x-1.0.tar.gz"),
    ],
)
def test_file_paths_keep_upstreams_path(url: str, filename: str, path: str) -> None:
    assert local_path_of(url, filename) == path


@pytest.mark.parametrize(
    "url",
    [
        "https://evil/packages/../../etc/x-1.0.tar.gz",
        "https://evil/packages/%2e%2e/x-1.0.tar.gz",
        "https://evil/packages/.pipdepot/tmp/x-1.0.tar.gz",
        "https://evil/packages/a%00b/x-1.0.tar.gz",
        "https://evil/packages/a%5cb/x-1.0.tar.gz",
        "https://evil/packages/ab/other-1.0.tar.gz",
        "https://evil/packages//x-1.0.tar.gz",  # the same rules without %-escapes (checked on the string)
        "https://evil/packages/./x-1.0.tar.gz",
        "https://evil/packages/../x-1.0.tar.gz",
        "https://evil/.pipdepot/x-1.0.tar.gz",
        "https://evil/packages/a\\b/x-1.0.tar.gz",
        "https://evil/packages/a\0b/x-1.0.tar.gz",
        "https://evil/x-1.0.tar.gz/",
        "https://evil/",
    ],
)
def test_hostile_file_urls_are_refused(url: str) -> None:
    with pytest.raises(UnusablePage):
        local_path_of(url, "x-1.0.tar.gz")


def test_a_json_page_keeps_every_field_and_resolves_urls() -> None:
    body = json.dumps(
        {
            "meta": {"api-version": "1.3", "_last-serial": 7},
            "name": "x",
            "project-status": {"status": "deprecated"},
            "files": [
                {
                    "filename": "x-1.0-py3-none-any.whl",
                    "url": "../../packages/aa/bb/cc/x-1.0-py3-none-any.whl",
                    "hashes": {"sha256": "00"},
                    "dist-info-metadata": {"sha256": "11"},
                    "provenance": "https://example/prov",
                    "future-key": [1, 2],
                }
            ],
        }
    ).encode()
    state = parse_upstream_page(
        NormalizedName("x"),
        body,
        "application/vnd.pypi.simple.v1+json",
        "https://idx/simple/x/",
        "https://idx/simple/",
    )
    entry = state.files[0]
    assert entry["url"] == "https://idx/packages/aa/bb/cc/x-1.0-py3-none-any.whl"
    assert entry["future-key"] == [1, 2]
    assert entry["core-metadata"] == {"sha256": "11"}
    assert "dist-info-metadata" not in entry
    served = json.loads(b"".join(render_project_json(state, page_files(state, local_only=False))))
    assert served["project-status"] == {"status": "deprecated"}
    assert served["files"][0]["url"] == "/packages/aa/bb/cc/x-1.0-py3-none-any.whl"
    assert served["files"][0]["provenance"] == "/packages/aa/bb/cc/x-1.0-py3-none-any.whl.provenance"
    html = b"".join(render_project_html(state, page_files(state, local_only=False))).decode()
    assert '<meta name="pypi:project-status" content="deprecated">' in html
    assert 'data-provenance="/packages/aa/bb/cc/x-1.0-py3-none-any.whl.provenance"' in html
    assert entry["provenance"] == "https://example/prov"  # upstream's, kept to fetch it from


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{", "application/vnd.pypi.simple.v1+json"),
        (b'{"meta": {"api-version": "2.0"}, "files": []}', "application/vnd.pypi.simple.v1+json"),
        (b'{"meta": {"api-version": "1.0"}, "files": [{"url": "x"}]}', "application/vnd.pypi.simple.v1+json"),
        (b"<html></html>", "image/png"),
    ],
)
def test_garbage_is_not_a_page(body: bytes, content_type: str) -> None:
    with pytest.raises(UnusablePage):
        parse_upstream_page(
            NormalizedName("x"), body, content_type, "https://i/simple/x/", "https://i/simple/"
        )


def test_local_only_pages_list_only_local_files_with_their_metadata() -> None:
    body = json.dumps(
        {
            "meta": {"api-version": "1.0"},
            "files": [
                {
                    "filename": "x-1.0-py3-none-any.whl",
                    "url": "https://f/packages/a/x-1.0-py3-none-any.whl",
                    "hashes": {},
                },
                {
                    "filename": "x-2.0-py3-none-any.whl",
                    "url": "https://f/packages/b/x-2.0-py3-none-any.whl",
                    "hashes": {},
                },
            ],
        }
    ).encode()
    state = parse_upstream_page(
        NormalizedName("x"), body, "application/vnd.pypi.simple.v1+json", "https://i/x/", "https://i/"
    )
    state.local["x-1.0-py3-none-any.whl"] = LocalFile("ab" * 32, 10, "cd" * 32)
    files = page_files(state, local_only=True)
    assert [f["filename"] for f in files] == ["x-1.0-py3-none-any.whl"]
    assert files[0]["core-metadata"] == {"sha256": "cd" * 32}
    assert files[0]["hashes"] == {"sha256": "ab" * 32}
    assert files[0]["size"] == 10
    served = json.loads(b"".join(render_project_json(state, files)))
    assert served["meta"]["api-version"] == "1.4"
    assert served["versions"] == ["1.0"]
    assert (
        json.loads(b"".join(render_project_json(state, page_files(state, local_only=False))))["meta"][
            "api-version"
        ]
        == "1.0"
    )


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (
            (
                "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
                "text/html;q=0.01"
            ),
            "json",
        ),
        ("application/vnd.pypi.simple.v1+html, application/vnd.pypi.simple.v1+json", "json"),
        ("text/*", "text/html"),
        ("application/*;q=0.5, text/html;q=0.4", "json"),
        ("application/vnd.pypi.simple.v1+json;q=bogus, text/html", "text/html"),
        ("", "text/html"),
        ("image/png, */*;q=0", None),
    ],
)
def test_negotiate(accept: str, expected: str | None) -> None:
    assert negotiate(accept, None) == expected


JSON = "application/vnd.pypi.simple.v1+json"


def _state_with_files() -> ProjectState:
    body = json.dumps(
        {
            "meta": {"api-version": "1.1"},
            "name": "x",
            "files": [
                {
                    "filename": f"x-{v}-py3-none-any.whl",
                    "url": f"/packages/aa/x-{v}-py3-none-any.whl",
                    "hashes": {},
                }
                for v in ("1.0", "2.0")
            ],
        }
    ).encode()
    state = parse_upstream_page(NormalizedName("x"), body, JSON, "https://index.example/simple/x/", "up")
    state.etag, state.generation = '"e1"', 7
    state.local["x-2.0-py3-none-any.whl"] = LocalFile("ab" * 32, 123, "cd" * 32)
    return state


def _stored(state: ProjectState) -> bytes:
    page = io.BytesIO()
    state.write_page(page)
    return page.getvalue()


def test_page_and_local_record_round_trip() -> None:
    state = _state_with_files()
    again = ProjectState.from_json(_stored(state), state.local_json())
    assert (again.name, again.upstream, again.etag, again.generation) == ("x", "up", '"e1"', 7)
    assert again.files == state.files
    assert again.local == state.local


def test_the_local_record_alone_lists_the_local_files() -> None:
    """What a new file needs: the tree is rewritten from the small record, never from upstream's page."""
    alone = ProjectState.from_json(None, _state_with_files().local_json())
    assert [e["filename"] for e in alone.files] == ["x-2.0-py3-none-any.whl"]
    assert alone.local["x-2.0-py3-none-any.whl"].size == 123
    assert alone.generation == 7


def test_a_state_from_before_the_split_still_loads() -> None:
    old = {
        "format": 1,
        "name": "x",
        "upstream": "up",
        "etag": None,
        "fetched_at": 5.0,
        "generation": 3,
        "extra": {},
        "files": [{"filename": "x-1.0.tar.gz", "url": "https://f.example/packages/x-1.0.tar.gz"}],
        "added": [],
        "local": {"x-1.0.tar.gz": {"sha256": "ab" * 32, "size": 9, "metadata_sha256": None}},
    }
    state = ProjectState.from_json(json.dumps(old).encode())
    assert state.local == {"x-1.0.tar.gz": LocalFile("ab" * 32, 9, None)}
    assert (state.generation, state.fetched_at) == (3, 5.0)
    with pytest.raises(ValueError, match="unknown state format"):
        ProjectState.from_json(json.dumps({**old, "format": 9}).encode())


def test_one_entry_is_read_from_its_line_of_the_stored_page() -> None:
    state = _state_with_files()
    state.files.append({"filename": 'odd "name"-3.0.tar.gz', "url": "https://f.example/packages/o.tar.gz"})
    state.fetched_at = 12.5
    page = _stored(state)
    for entry in state.files:
        assert entry_in_page(page, entry["filename"]) == entry
    assert entry_in_page(page, "x-3.0-py3-none-any.whl") is None
    assert entry_in_page(page, "x-2.0") is None  # a prefix of a filename is not that file
    assert fetched_at_of(page) == 12.5
    assert fetched_at_of(page[: page.find(b"\n") + 1]) == 12.5  # the first line is enough
    with pytest.raises(ValueError, match="one entry per line"):
        fetched_at_of(page[:20])  # a start that stops inside the first line: the caller parses it whole
    lines = page.split(b"\n")
    assert len(lines) == len(state.files) + 2  # the head, one line per file, the close


@pytest.mark.parametrize("block", [1, 7, 64, 1024 * 1024])
def test_an_entry_is_found_whatever_block_its_line_spans(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """The stored page is searched a block at a time, read from an open file: lines cross blocks."""
    monkeypatch.setattr(project, "_SCAN_BLOCK", block)
    state = _state_with_files()
    page = _stored(state)
    for entry in state.files:
        assert entry_in_page(io.BytesIO(page), entry["filename"]) == entry
    assert entry_in_page(io.BytesIO(page), "x-3.0-py3-none-any.whl") is None


def test_an_older_page_is_said_to_need_a_whole_parse() -> None:
    fields = {"format": 2, "name": "x", "upstream": "up", "etag": None, "fetched_at": 1.0, "extra": {}}
    old = json.dumps({**fields, "files": []}).encode()
    with pytest.raises(ValueError, match="one entry per line"):
        entry_in_page(old, "x-1.0.tar.gz")
    with pytest.raises(ValueError, match="one entry per line"):
        fetched_at_of(old)
    assert ProjectState.from_json(old, None).fetched_at == 1.0  # and that parse still works


def test_a_large_page_keeps_the_compressed_forms_clients_asked_for() -> None:
    """pip asks for gzip, uv for zstd: a large page holds only what was asked, plain never."""
    body = json.dumps({"files": [{"filename": f"x-{i}.tar.gz"} for i in range(20_000)]}).encode()
    page = RenderedPage.of([body[:1000], body[1000:]], JSON, "zstd")
    assert page.plain is None
    assert list(page.encoded) == ["zstd"]
    assert page.body == body  # decompressed for the rare client that wants it plain
    assert gzip.decompress(page.encode("gzip")) == body
    assert sorted(page.encoded) == ["gzip", "zstd"]
    small = RenderedPage.of([b"<html></html>"], "text/html", "gzip")
    assert (small.plain, list(small.encoded)) == (b"<html></html>", ["gzip"])
    assert RenderedPage.of([body], JSON, None).plain == body  # kept plain until someone asks otherwise


def test_a_stored_page_renders_from_its_lines_as_from_the_parsed_state() -> None:
    """The warm path renders upstream's page one stored line at a time: byte for byte the same page."""
    body = json.dumps(
        {
            "meta": {"api-version": "1.1"},
            "name": "x",
            "versions": ["1.0", "2.0"],
            "project-status": {"status": "active"},
            "files": [
                {
                    "filename": f"x-{v}-py3-none-any.whl",
                    "url": f"/p/x-{v}-py3-none-any.whl",
                    "size": 9,
                    "hashes": {},
                }
                for v in ("1.0", "2.0")
            ],
        }
    ).encode()
    state = parse_upstream_page(NormalizedName("x"), body, JSON, "https://index.example/simple/x/", "up")
    state.local["x-2.0-py3-none-any.whl"] = LocalFile("ab" * 32, 9, "cd" * 32)  # metadata pipdepot extracted
    added = {"filename": "x-1.0-py3-none-any.whl", "url": "local:///packages/+local/x/x-1.0-py3-none-any.whl"}
    state.added = [{**added, "hashes": {"sha256": "ef" * 32}, "size": 7}]
    state.local["x-1.0-py3-none-any.whl"] = LocalFile("ef" * 32, 7)
    state.merge_upstream = True  # an added file beside upstream's: a project allowed to merge
    state.merge_added()
    meta, _ = stored_listing(_stored(state))
    assert meta["all_sizes"] is True
    files = page_files(state, local_only=False)
    for fmt, render in (("json", render_project_json), ("html", render_project_html)):
        _, entries = stored_listing(_stored(state))
        streamed = b"".join(render_listing("x", meta["extra"], listed_files(entries, state), fmt))  # type: ignore[arg-type]
        assert streamed == b"".join(render(state, files))
    assert b"cd" * 32 in streamed  # the extracted metadata hash is listed


TRACKS = ["https://upstream.example/simple/x/", "https://other.example/simple/x/"]
ALTERNATES = ["https://alt.example/simple/x/"]


def _pep708_state(content_type: str) -> ProjectState:
    """A page from an upstream that says ``x`` tracks two projects and has one alternate location."""
    if content_type.endswith("json"):
        body = json.dumps(
            {
                "meta": {"api-version": "1.4", "tracks": TRACKS},
                "name": "x",
                "alternate-locations": ALTERNATES,
                "files": [
                    {
                        "filename": "x-1.0.tar.gz",
                        "url": "/packages/aa/bb/cc/x-1.0.tar.gz",
                        "hashes": {"sha256": "00"},
                        "size": 3,
                        "provenance": "/integrity/x-1.0.tar.gz/provenance",
                    }
                ],
            }
        ).encode()
    else:
        metas = "".join(f'<meta name="pypi:tracks" content="{url}">' for url in TRACKS)
        metas += f'<meta name="pypi:alternate-locations" content="{ALTERNATES[0]}">'
        href = "/packages/aa/bb/cc/x-1.0.tar.gz#sha256=00"
        link = f'<a href="{href}" data-provenance="../../integrity/p">x-1.0.tar.gz</a>'
        body = f"<html><head>{metas}</head><body>{link}</body></html>".encode()
    return parse_upstream_page(
        NormalizedName("x"), body, content_type, "https://i/simple/x/", "https://i/simple/"
    )


@pytest.mark.parametrize("content_type", ["application/vnd.pypi.simple.v1+json", "text/html"])
def test_pep708_metadata_is_kept_and_rendered_in_both_forms(content_type: str) -> None:
    state = _pep708_state(content_type)
    assert state.extra["tracks"] == TRACKS
    assert state.extra["alternate-locations"] == ALTERNATES
    assert state.files[0]["provenance"].startswith("https://i/")  # made absolute, to fetch it from
    files = page_files(state, local_only=False)
    served = json.loads(b"".join(render_project_json(state, files)))
    assert served["meta"]["tracks"] == TRACKS
    assert "tracks" not in served  # PEP 708 puts it in meta only
    assert served["alternate-locations"] == ALTERNATES
    assert served["files"][0]["provenance"] == "/packages/aa/bb/cc/x-1.0.tar.gz.provenance"
    for html in (
        b"".join(render_project_html(state, files)),
        render_tree_html(state, files),
    ):
        page = ProjectPage.from_html("x", html)
        assert page.repository_version == "1.4"  # PEP 708 needs 1.2, PEP 740 1.3
        assert page.tracks == TRACKS
        assert page.alternate_locations == ALTERNATES
    tree = ProjectPage.from_html("x", render_tree_html(state, files))
    assert tree.packages[0].provenance_url == "../packages/aa/bb/cc/x-1.0.tar.gz.provenance"  # as its file


def test_a_file_without_provenance_gets_none_on_its_page() -> None:
    state = _pep708_state("application/vnd.pypi.simple.v1+json")
    state.files[0]["provenance"] = None  # PEP 740 allows null
    files = page_files(state, local_only=False)
    assert json.loads(b"".join(render_project_json(state, files)))["files"][0]["provenance"] is None
    assert b"data-provenance" not in b"".join(render_project_html(state, files))
