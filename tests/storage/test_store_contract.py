"""One contract for every store: the filesystem and S3 (a real SeaweedFS) must answer alike."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from typing import TYPE_CHECKING, Self

import pytest

from pipdepot.storage.aws import AwsSettings
from pipdepot.storage.filesystem import FilesystemStore
from pipdepot.storage.locate import open_store
from pipdepot.storage.s3 import S3Store
from pipdepot.storage.store import (
    AlreadyExists,
    IntegrityError,
    Store,
    StoreError,
    StoreKey,
    VersionMismatch,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    from tests.seaweed import Seaweed

K = StoreKey


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "filesystem":
        opened: Store = FilesystemStore(tmp_path / "mirror")
    else:
        seaweed: Seaweed = request.getfixturevalue("seaweed")
        environ = {**seaweed.env, "HOME": str(tmp_path / "home")}
        opened = open_store(seaweed.location(), scratch=tmp_path / "scratch", environ=environ)
    yield opened
    asyncio.run(opened.close())


def spooled(store: Store, data: bytes, name: str = "download") -> Path:
    path = store.spool_directory() / name
    path.write_bytes(data)
    return path


async def streamed(store: Store, key: StoreKey, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.stream(key, start, end)])


async def listed(store: Store, prefix: str) -> list[str]:
    return sorted([k async for k in store.list(prefix) if not k.startswith(".")])


def test_a_missing_key_is_none_everywhere(store: Store) -> None:
    async def main() -> None:
        key = K("six/six-1.0-py3-none-any.whl")
        assert await store.stat(key) is None
        assert await store.read(key) is None
        assert await store.read_versioned(key) is None
        assert await store.read_start(key, 10) is None
        with pytest.raises(FileNotFoundError):
            await streamed(store, key)
        with pytest.raises(FileNotFoundError):
            await streamed(store, key, 5, 5)
        await store.delete(key)
        assert await listed(store, "") == []
        assert await listed(store, "six/") == []
        assert await store.children("") == ()
        assert await store.children("six/") == ()

    asyncio.run(main())


def test_put_then_every_read(store: Store) -> None:
    async def main() -> None:
        key, data = K("six/six-1.0.tar.gz"), b"0123456789" * 100
        stored = await store.put(key, data, sha256=hashlib.sha256(data).hexdigest())
        assert (stored.key, stored.size) == (key, len(data))
        found = await store.stat(key)
        assert found is not None
        assert (found.key, found.size) == (key, len(data))
        assert abs(found.mtime - time.time()) < 120
        assert await store.read(key) == data
        versioned = await store.read_versioned(key)
        assert versioned is not None
        assert versioned.data == data
        assert versioned.version
        assert await store.read_start(key, 3) == b"012"
        assert await store.read_start(key, 10_000) == data
        assert await store.read_start(key, 0) == b""
        assert await streamed(store, key) == data
        assert await listed(store, "") == [key]

    asyncio.run(main())


def test_an_empty_file(store: Store) -> None:
    async def main() -> None:
        key = K("empty/nothing.txt")
        assert (await store.put(key, b"")).size == 0
        assert await store.read(key) == b""
        assert await store.read_start(key, 10) == b""
        assert await streamed(store, key) == b""
        assert await streamed(store, key, 3) == b""

    asyncio.run(main())


def test_stream_ranges(store: Store) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)  # several of the S3 store's growing ranges
    size = len(data)

    async def main() -> None:
        key = K("big/big-1.0-py3-none-any.whl")
        await store.put(key, spooled(store, data), sha256=hashlib.sha256(data).hexdigest())
        ranges: list[tuple[int, int | None]] = [
            (0, None),
            (10, 20),
            (0, 1),
            (1000, size - 1000),
            (size - 5, None),
            (100, size + 100),
            (size - 1, size),
            (size, None),
            (size + 5, None),
            (5, 5),
            (7, 3),
        ]
        for start, end in ranges:
            assert await streamed(store, key, start, end) == data[start:end], (start, end)

    asyncio.run(main())


def test_sha256_mismatch_stores_nothing(store: Store) -> None:
    async def main() -> None:
        key, wrong = K("six/six-1.0.tar.gz"), hashlib.sha256(b"other").hexdigest()
        with pytest.raises(IntegrityError):
            await store.put(key, b"payload", sha256=wrong)
        source = spooled(store, b"payload")
        with pytest.raises(IntegrityError):
            await store.put(key, source, sha256=wrong, create=True)
        assert not source.exists()
        assert await store.stat(key) is None
        assert await listed(store, "") == []

    asyncio.run(main())


def test_a_path_source_is_consumed_whatever_the_outcome(store: Store) -> None:
    async def main() -> None:
        key = K("six/six-1.0.tar.gz")
        first = spooled(store, b"first", "a")
        await store.put(key, first, create=True)
        assert not first.exists()
        second = spooled(store, b"second", "b")
        with pytest.raises(AlreadyExists):
            await store.put(key, second, create=True)
        assert not second.exists()
        third = spooled(store, b"third", "c")
        with pytest.raises(VersionMismatch):
            await store.put(key, third, if_version="not-a-version")
        assert not third.exists()
        assert await store.read(key) == b"first"

    asyncio.run(main())


def test_create_only_keeps_the_first(store: Store) -> None:
    async def main() -> None:
        key = K("six/six-1.0.tar.gz")
        await store.put(key, b"first", create=True)
        with pytest.raises(AlreadyExists):
            await store.put(key, b"second", create=True)
        assert await store.read(key) == b"first"
        await store.put(key, b"overwritten")
        assert await store.read(key) == b"overwritten"

    asyncio.run(main())


def test_create_only_race_has_one_winner(store: Store) -> None:
    key = K("race/race-1.0.tar.gz")

    async def writer(n: int) -> int | None:
        try:
            await store.put(key, f"writer {n} ".encode() * 1000, create=True)
        except AlreadyExists:
            return None
        return n

    async def main() -> None:
        outcomes = await asyncio.gather(*(writer(n) for n in range(16)))
        winners = [n for n in outcomes if n is not None]
        assert len(winners) == 1
        assert await store.read(key) == f"writer {winners[0]} ".encode() * 1000

    asyncio.run(main())


def test_compare_and_swap(store: Store) -> None:
    async def main() -> None:
        key = K(".pipdepot/local/six.json")
        await store.put(key, b'{"n": 0}', create=True)
        first = await store.read_versioned(key)
        assert first is not None
        written = await store.put(key, b'{"n": 1}', if_version=first.version)
        with pytest.raises(VersionMismatch):
            await store.put(key, b'{"n": 2}', if_version=first.version)
        assert await store.read(key) == b'{"n": 1}'
        second = await store.read_versioned(key)
        assert second is not None
        assert second.version != first.version
        assert written.version == second.version  # a writer may swap again without reading back
        await store.delete(key)
        with pytest.raises(VersionMismatch):
            await store.put(key, b'{"n": 3}', if_version=second.version)
        assert await store.stat(key) is None

    asyncio.run(main())


def test_compare_and_swap_race_loses_no_update(store: Store) -> None:
    key, writers, increments = K(".pipdepot/counter.json"), 4, 6

    async def increment() -> None:
        while True:
            current = await store.read_versioned(key)
            assert current is not None
            count = json.loads(current.data)["n"]
            try:
                await store.put(key, json.dumps({"n": count + 1}).encode(), if_version=current.version)
            except VersionMismatch:
                continue
            return

    async def writer() -> None:
        for _ in range(increments):
            await increment()

    async def main() -> None:
        await store.put(key, b'{"n": 0}', create=True)
        await asyncio.gather(*(writer() for _ in range(writers)))
        assert json.loads(await store.read(key) or b"") == {"n": writers * increments}

    asyncio.run(main())


def test_delete(store: Store) -> None:
    async def main() -> None:
        key = K("six/six-1.0.tar.gz")
        await store.put(key, b"x")
        await store.delete(key)
        await store.delete(key)
        assert await store.stat(key) is None
        assert await listed(store, "") == []
        if isinstance(store, FilesystemStore):
            assert await store.children("") == ()
        # else: SeaweedFS keeps an emptied "directory" and lists it as a common prefix (AWS
        # S3 does not): a name from children() may hold no keys any more.

    asyncio.run(main())


def test_list_and_children(store: Store) -> None:
    keys = ["a/x.whl", "a/b/y.whl", "a/b/c/z.whl", "c/z.whl", "top.html", ".pipdepot/state.json"]

    async def main() -> None:
        for key in keys:
            await store.put(K(key), key.encode())
        assert await listed(store, "") == sorted(k for k in keys if not k.startswith("."))
        assert await listed(store, "a/") == ["a/b/c/z.whl", "a/b/y.whl", "a/x.whl"]
        assert await listed(store, "a/b/") == ["a/b/c/z.whl", "a/b/y.whl"]
        assert await listed(store, "missing/") == []
        assert sorted([k async for k in store.list(".pipdepot/") if k.endswith(".json")]) == [
            ".pipdepot/state.json"
        ]
        assert await store.children("") == ("a", "c")
        assert await store.children("a/") == ("b",)
        assert await store.children("a/b/") == ("c",)
        assert await store.children("c/") == ()
        assert await store.children("missing/") == ()

    asyncio.run(main())


@pytest.mark.parametrize("key", ["/abs", "a/../b", "a//b", "", "a/./b", "a/", "..", "a/\0"])
def test_invalid_keys_are_refused(store: Store, key: str) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="invalid store key"):
            await store.put(K(key), b"x")
        with pytest.raises(ValueError, match="invalid store key"):
            await store.stat(K(key))

    asyncio.run(main())


def test_a_put_is_never_seen_half_written(store: Store) -> None:
    key, size = K("six/index.html"), 2 * 1024 * 1024
    versions = [bytes([ord("a") + n]) * size for n in range(4)]
    seen: set[bytes] = set()

    async def writer() -> None:
        for data in versions:
            await store.put(key, data)

    async def reader(done: asyncio.Event) -> None:
        while not done.is_set():
            data = await store.read(key)
            if data is not None:
                assert len(data) == size
                assert data.count(data[:1]) == size
                seen.add(data[:1])
            await asyncio.sleep(0)

    async def main() -> None:
        done = asyncio.Event()
        readers = [asyncio.create_task(reader(done)) for _ in range(2)]
        try:
            await writer()
        finally:
            done.set()
            await asyncio.gather(*readers)
        assert seen

    asyncio.run(main())


def test_a_stream_never_mixes_two_versions(store: Store) -> None:
    """Replaced while streamed: the old bytes to the end (a file) or an error (S3), never a mix."""
    size = 3 * 1024 * 1024
    key = K("six/six-1.0.tar.gz")

    async def main() -> None:
        await store.put(key, b"a" * size)
        chunks = store.stream(key)
        received = await anext(chunks)
        await store.put(key, b"b" * size)
        if isinstance(store, S3Store):
            with pytest.raises(StoreError, match="changed while it was read"):
                await anext(chunks)
        else:
            received += b"".join([chunk async for chunk in chunks])
            assert received == b"a" * size

    asyncio.run(main())


def test_a_large_file_is_created_once(store: Store) -> None:
    """Above the single-PUT size the S3 store uploads in parts: create-only must still hold."""
    data = os.urandom(20 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()

    async def main() -> None:
        key = K("torch/torch-2.0-cp311-none-linux_x86_64.whl")
        await store.put(key, spooled(store, data), sha256=digest, create=True)
        other = spooled(store, data[::-1])
        with pytest.raises(AlreadyExists):
            await store.put(key, other, create=True)
        assert not other.exists()
        assert hashlib.sha256(await streamed(store, key)).hexdigest() == digest
        assert [k async for k in store.list(".pipdepot/uploads/")] == []

    asyncio.run(main())


def test_a_large_file_race_has_one_winner(store: Store) -> None:
    """Both writers miss the key, both upload their parts: the create-only copy picks one."""
    contents = [os.urandom(17 * 1024 * 1024) for _ in range(2)]
    key = K("torch/torch-2.0-cp311-none-linux_x86_64.whl")

    async def writer(n: int) -> int | None:
        try:
            await store.put(key, spooled(store, contents[n], f"download-{n}"), create=True)
        except AlreadyExists:
            return None
        return n

    async def main() -> None:
        winners = [n for n in await asyncio.gather(writer(0), writer(1)) if n is not None]
        assert len(winners) == 1
        assert await streamed(store, key) == contents[winners[0]]
        assert [k async for k in store.list(".pipdepot/uploads/")] == []

    asyncio.run(main())


def test_sweep_removes_only_the_staging_of_writers_killed_mid_upload(store: Store) -> None:
    """A staging key's name starts with the time its writer would have removed it by.

    Past that (and a margin for clocks that differ), its writer was killed between the parts
    and the removal: the next writer's sweep removes it. A live upload's key stays, as does
    one named without a time (an older pipdepot's) until it is a day old.
    """
    now = time.time()
    staged = {
        f".pipdepot/uploads/{now - 3600:.0f}-killed": False,
        f".pipdepot/uploads/{now + 3600:.0f}-uploading": True,
        f".pipdepot/uploads/{now - 60:.0f}-within-the-clock-margin": True,
        ".pipdepot/uploads/0123456789abcdef": True,
    }

    async def main() -> None:
        for key in staged:
            await store.put(K(key), b"parts of a large file")
        await store.put(K("six/six-1.0.tar.gz"), b"x")
        await store.sweep()
        left = {key async for key in store.list(".pipdepot/uploads/")}
        if isinstance(store, S3Store):
            assert left == {key for key, kept in staged.items() if kept}
        else:  # a directory's writes are staged in the spool: nothing of the store's is swept
            assert left == set(staged)
        assert await store.read(K("six/six-1.0.tar.gz")) == b"x"

    asyncio.run(main())


def test_local_path_spool_and_close(store: Store) -> None:
    async def main() -> None:
        key = K("six/six-1.0.tar.gz")
        await store.put(key, b"x")
        local = store.local_path(key)
        if isinstance(store, FilesystemStore):
            assert local is not None
            assert local.read_bytes() == b"x"
        else:
            assert local is None
        spool = store.spool_directory()
        assert spool.is_dir()
        assert store.spool_directory() == spool
        await store.close()
        assert not spool.exists()

    asyncio.run(main())


def unsigned_settings(endpoint: str) -> AwsSettings:
    """Settings for a server that never checks a signature (it never answers)."""
    return AwsSettings(endpoint=endpoint, access_key_id="key", secret_access_key="key")  # noqa: S106


class StallingServer:
    """Accepts connections on 127.0.0.1, reads the request, never answers."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await self._release.wait()
        writer.close()


def test_s3_calls_fail_within_their_deadline_on_a_silent_server(tmp_path: Path) -> None:
    async def attempt(call: Callable[[], Awaitable[object]]) -> tuple[StoreError, float]:
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            await call()
        return caught.value, time.monotonic() - started

    async def main() -> None:
        async with StallingServer() as server:
            settings = unsigned_settings(f"http://127.0.0.1:{server.port}")
            store = S3Store("bucket", "prefix", settings, scratch=tmp_path / "scratch", timeout=0.5)
            key = K("six/six-1.0.tar.gz")
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: store.stat(key),
                lambda: store.read(key),
                lambda: store.put(key, b"x", create=True),
                lambda: store.children(""),
                lambda: streamed(store, key),
                lambda: store.delete(key),
            ]
            for call in calls:
                error, elapsed = await attempt(call)
                message = str(error)
                assert "\n" not in message
                assert message.startswith("s3://bucket/prefix/"), message
                assert "no answer within" in message, message
                # The deadline is the point here, not speed: a few 0.5 s attempts, never for ever.
                assert elapsed < 20, (message, elapsed)
            await store.close()

    asyncio.run(main())


def test_s3_unreachable_is_one_clear_error(tmp_path: Path) -> None:
    async def main() -> None:
        settings = unsigned_settings("http://127.0.0.1:9")
        store = S3Store("bucket", "", settings, scratch=tmp_path / "scratch", timeout=1.0)
        with pytest.raises(StoreError, match=r"^s3://bucket/six/x\.whl: GET: connection refused$") as caught:
            await store.read(K("six/x.whl"))
        assert "\n" not in str(caught.value)

    asyncio.run(main())


def test_s3_refused_write_is_access_denied(seaweed: Seaweed, tmp_path: Path) -> None:
    async def main() -> None:
        key_id, secret = seaweed.read_only_credentials
        settings = AwsSettings(endpoint=seaweed.endpoint, access_key_id=key_id, secret_access_key=secret)
        store = S3Store(seaweed.bucket, "readonly", settings, scratch=tmp_path / "scratch")
        with pytest.raises(StoreError, match=r"access denied") as caught:
            await store.put(K("six/x.whl"), b"x")
        assert "\n" not in str(caught.value)
        bad = AwsSettings(endpoint=seaweed.endpoint, access_key_id=key_id, secret_access_key=secret[::-1])
        store = S3Store(seaweed.bucket, "readonly", bad, scratch=tmp_path / "scratch2")
        with pytest.raises(StoreError):
            await store.read(K("six/x.whl"))

    asyncio.run(main())


def test_s3_a_sweep_the_store_refuses_is_one_warning(
    seaweed: Seaweed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Housekeeping never fails a writer: credentials that may read but not delete, a line said."""

    async def main() -> None:
        full = open_store(seaweed.location(), scratch=tmp_path / "scratch", environ=dict(seaweed.env))
        location = full.location  # a fresh prefix: the read-only store below looks at the same one
        stale = K(f".pipdepot/uploads/{time.time() - 3600:.0f}-{'0' * 32}")
        await full.put(stale, b"parts of a large file")
        await full.close()
        key_id, secret = seaweed.read_only_credentials
        settings = AwsSettings(endpoint=seaweed.endpoint, access_key_id=key_id, secret_access_key=secret)
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        readonly = S3Store(bucket, prefix, settings, scratch=tmp_path / "scratch2")
        await readonly.sweep()  # no exception
        assert await readonly.stat(stale) is not None  # it could not remove it, and said so
        await readonly.close()

    with caplog.at_level("WARNING", logger="pipdepot.storage"):
        asyncio.run(main())
    (line,) = [r.getMessage() for r in caplog.records if "not swept" in r.getMessage()]
    assert "DELETE" in line
    assert "access denied" in line.lower()
    assert "\n" not in line
