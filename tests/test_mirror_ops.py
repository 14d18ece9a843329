"""sync, check, add, ls, export and import: real pipdepot processes, a real upstream, real pip."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from pipdepot.fill.manifest import read_manifest
from tests.depot import Depot, fresh_venv, installed, pip_install, uv_install
from tests.fake_upstream import FakeUpstream
from tests.wheels import build_sdist, build_wheel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.conftest import PipdepotRunner

LINUX = "manylinux_2_28_x86_64"
MAC = "macosx_11_0_arm64"
REGISTRY = '{ registry = "https://index.invalid/simple" }'
TWO_PLATFORMS = ("--python-version", "3.11", "--platform", LINUX, "--platform", MAC)


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """app needs lib (1.0 and 2.0 exist), nativelib (a wheel per platform) and srconly (an sdist only,
    whose build needs buildtool)."""
    directory = tmp_path_factory.mktemp("dists")
    build_wheel(directory, "app", "1.0", requires=("lib>=1", "nativelib", "srconly"))
    build_wheel(directory, "lib", "1.0")
    build_wheel(directory, "lib", "2.0")
    for python in ("cp311", "cp312"):
        build_wheel(directory, "nativelib", "1.0", tag=f"{python}-{python}-manylinux_2_17_x86_64")
        build_wheel(directory, "nativelib", "1.0", tag=f"{python}-{python}-{MAC}")
    build_sdist(directory, "srconly", "1.0", buildable=True, build_requires=("buildtool",))
    build_wheel(directory, "buildtool", "1.0")
    build_wheel(directory, "unrelated", "1.0")
    return directory


@pytest.fixture
def upstream(dists: Path) -> Iterator[FakeUpstream]:
    with FakeUpstream(with_metadata=True).serving(dists) as server:
        yield server


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text("# what the image needs\napp\n")
    return path


def listed(mirror: Path) -> set[str]:
    """Every file the static tree lists, after checking each is on disk with the sha256 it claims."""
    found = set()
    for page in mirror.glob("*/index.html"):
        for href, sha256, name in re.findall(
            r'href="([^"#]+)#sha256=([0-9a-f]+)"[^>]*>([^<]+)<', page.read_text()
        ):
            path = (page.parent / href).resolve()
            assert path.is_file(), f"{page} lists {name}, which is not on disk"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256, f"{name} does not match its hash"
            found.add(name)
    return found


def sync(run: PipdepotRunner, upstream: FakeUpstream, mirror: Path, *args: str, check: bool = True) -> str:
    result = run("sync", "--mirror", str(mirror), "--upstream", upstream.url, *args, check=check)
    return result.stdout + result.stderr


def missing_lines(output: str) -> list[str]:
    return sorted(line for line in output.splitlines() if line.startswith("missing: "))


def test_sync_two_platforms_then_check_offline(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, requirements: Path, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    output = sync(run_pipdepot, upstream, mirror, "-r", str(requirements), *TWO_PLATFORMS)

    assert listed(mirror) == {
        "app-1.0-py3-none-any.whl",
        "lib-2.0-py3-none-any.whl",
        "nativelib-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        f"nativelib-1.0-cp311-cp311-{MAC}.whl",
        "srconly-1.0.tar.gz",
        "buildtool-1.0-py3-none-any.whl",
    }
    assert "5 projects, 6 files" in output
    assert "fetched 6 files" in output
    # Resolution read PEP 658 metadata: the wheel of the version not taken was never downloaded.
    assert not [path for path in upstream.hits if path.endswith("lib-1.0-py3-none-any.whl")]

    again = sync(run_pipdepot, upstream, mirror, "-r", str(requirements), *TWO_PLATFORMS)
    assert "fetched 0 files" in again
    assert "already present 6" in again

    upstream.stop()  # from here on, nothing can come from upstream
    result = run_pipdepot("check", "-r", str(requirements), "--mirror", str(mirror), *TWO_PLATFORMS)
    assert f"ok: cp311-{LINUX}: 5 files" in result.stdout
    assert f"ok: cp311-{MAC}: 5 files" in result.stdout

    (mirror / next(p for p in listed_paths(mirror) if p.endswith(f"{MAC}.whl"))).unlink()
    result = run_pipdepot(
        "check", "-r", str(requirements), "--mirror", str(mirror), *TWO_PLATFORMS, check=False
    )
    assert result.returncode == 1
    damaged = f"nativelib-1.0-cp311-cp311-{MAC}.whl is recorded but missing or damaged on disk"
    assert missing_lines(result.stdout) == [f"missing: nativelib 1.0 for cp311-{MAC}: {damaged}"]
    assert f"ok: cp311-{LINUX}" in result.stdout
    assert result.stderr.strip().splitlines()[0].startswith("pipdepot: error: the mirror lacks 1 item")

    upstream.start()
    sync(run_pipdepot, upstream, mirror, "-r", str(requirements), *TWO_PLATFORMS)
    run_pipdepot("check", "-r", str(requirements), "--mirror", str(mirror), *TWO_PLATFORMS)

    # buildtool wanted as well as in srconly's build environment: one file, counted once
    both = tmp_path / "both.txt"
    both.write_text(f"{requirements.read_text().rstrip()}\nbuildtool\n")
    result = run_pipdepot("check", "-r", str(both), "--mirror", str(mirror), *TWO_PLATFORMS)
    assert f"ok: cp311-{LINUX}: 5 files" in result.stdout


def listed_paths(mirror: Path) -> list[str]:
    return [str(p.relative_to(mirror)) for p in mirror.glob("packages/**/*") if p.is_file()]


def test_check_names_a_version_never_synced(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, requirements: Path, tmp_path: Path
) -> None:
    """A version the mirror never fetched does not resolve offline: the one line says which."""
    mirror = tmp_path / "mirror"
    sync(
        run_pipdepot,
        upstream,
        mirror,
        "-r",
        str(requirements),
        "--python-version",
        "3.11",
        "--platform",
        LINUX,
    )
    pinned = tmp_path / "pinned.txt"
    pinned.write_text("app\nlib==1.0\n")
    result = run_pipdepot(
        "check",
        "-r",
        str(pinned),
        "--mirror",
        str(mirror),
        "--python-version",
        "3.11",
        "--platform",
        LINUX,
        check=False,
    )
    assert result.returncode == 1
    (line,) = missing_lines(result.stdout)
    assert line.startswith(f"missing: lib 1.0 for cp311-{LINUX}: No solution found")
    # uv's explanation follows, its lines kept (not flattened into one), indented under the item
    explanation = result.stdout.split(line, 1)[1].lstrip("\n").splitlines()
    assert explanation[0].startswith("    ")
    assert "Because there is no version of lib==1.0" in explanation[0], result.stdout


def test_synced_mirror_installs_offline_with_pip_and_uv(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, requirements: Path, tmp_path: Path
) -> None:
    """The host target: pip (building the sdist, its backend from the mirror) and uv, with upstream gone."""
    mirror = tmp_path / "mirror"
    sync(run_pipdepot, upstream, mirror, "-r", str(requirements))
    upstream.stop()
    run_pipdepot("check", "-r", str(requirements), "--mirror", str(mirror))

    python = fresh_venv(tmp_path / "pip-venv")
    pip_install(python, mirror.as_uri(), "app")
    assert installed(python, "srconly") == "1.0"
    assert installed(python, "nativelib") == "1.0"

    depot = Depot(mirror, tmp_path / "serve.log", ("--offline",)).start()
    try:
        python = fresh_venv(tmp_path / "uv-venv")
        uv_install(python, depot.index, "app")
        assert installed(python, "lib") == "2.0"
    finally:
        depot.stop()


def test_sync_bad_input_is_one_line_and_keeps_the_mirror(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    good = tmp_path / "good.txt"
    good.write_text("lib==1.0\n")
    sync(run_pipdepot, upstream, mirror, "-r", str(good))
    before = listed(mirror)

    cases = {
        "no-such-project": ("nosuchproject\n", "nosuchproject"),
        "no-such-version": ("lib==9.9\n", "lib"),
        "bad-line": ("lib ==> 1\n", "is not a requirement"),
        "bad-hash": ("lib==2.0 --hash=sha256:" + "0" * 64 + "\n", "lib==2.0"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / f"{name}.txt"
        path.write_text(text)
        output = sync(run_pipdepot, upstream, mirror, "-r", str(path), check=False)
        errors = [line for line in output.splitlines() if line.startswith("pipdepot: error:")]
        assert len(errors) == 1, output
        # uv's explanation keeps its lines, after the error's own
        block = output.split("pipdepot: error:", 1)[1]
        assert expected in block, output
    bad_platform = sync(
        run_pipdepot, upstream, mirror, "-r", str(good), "--platform", "amiga_68k", check=False
    )
    assert "pipdepot: error: --platform 'amiga_68k'" in bad_platform
    unreadable = tmp_path / "uv.lock"
    unreadable.write_text("this is [not toml")
    assert "cannot read lock file" in sync(run_pipdepot, upstream, mirror, "-r", str(unreadable), check=False)
    assert listed(mirror) == before


def test_requirement_hashes_choose_and_check_files(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, dists: Path, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    sha = hashlib.sha256((dists / "lib-2.0-py3-none-any.whl").read_bytes()).hexdigest()
    hashed = tmp_path / "hashed.txt"
    hashed.write_text(f"lib==2.0 \\\n    --hash=sha256:{sha}\n")
    assert "1 project, 1 file (" in sync(run_pipdepot, upstream, mirror, "-r", str(hashed))
    assert listed(mirror) == {"lib-2.0-py3-none-any.whl"}


def test_lock_files_give_exact_pins(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, dists: Path, tmp_path: Path
) -> None:
    def file_of(name: str) -> tuple[str, str]:
        data = (dists / name).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        return f"https://files.invalid/packages/{sha[:2]}/{name}", sha

    lib_url, lib_sha = file_of("lib-1.0-py3-none-any.whl")
    mac_url, mac_sha = file_of(f"nativelib-1.0-cp311-cp311-{MAC}.whl")
    linux_url, linux_sha = file_of("nativelib-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    pylock = tmp_path / "pylock.toml"
    pylock.write_text(
        'lock-version = "1.0"\ncreated-by = "hand"\n\n'
        f'[[packages]]\nname = "lib"\nversion = "1.0"\n'
        f'wheels = [{{ name = "lib-1.0-py3-none-any.whl", url = "{lib_url}", '
        f'hashes = {{ sha256 = "{lib_sha}" }} }}]\n\n'
        f'[[packages]]\nname = "nativelib"\nversion = "1.0"\nmarker = "sys_platform == \'darwin\'"\n'
        f'wheels = [{{ url = "{mac_url}", hashes = {{ sha256 = "{mac_sha}" }} }}, '
        f'{{ url = "{linux_url}", hashes = {{ sha256 = "{linux_sha}" }} }}]\n'
    )
    mirror = tmp_path / "pylock-mirror"
    sync(run_pipdepot, upstream, mirror, "-r", str(pylock), *TWO_PLATFORMS)
    # The marker keeps nativelib off Linux; lib 1.0 is taken as pinned, though 2.0 exists.
    assert listed(mirror) == {"lib-1.0-py3-none-any.whl", f"nativelib-1.0-cp311-cp311-{MAC}.whl"}
    run_pipdepot("check", "-r", str(pylock), "--mirror", str(mirror), *TWO_PLATFORMS)

    uv_lock = tmp_path / "uv.lock"
    uv_lock.write_text(
        'version = 1\nrequires-python = ">=3.11"\n\n'
        '[[package]]\nname = "myapp"\nversion = "0.1.0"\nsource = { virtual = "." }\n'
        'dependencies = [{ name = "lib" }, { name = "nativelib", marker = "sys_platform == \'linux\'" }]\n\n'
        f'[[package]]\nname = "lib"\nversion = "1.0"\nsource = {REGISTRY}\n'
        f'wheels = [{{ url = "{lib_url}", hash = "sha256:{lib_sha}" }}]\n\n'
        f'[[package]]\nname = "nativelib"\nversion = "1.0"\nsource = {REGISTRY}\n'
        f'wheels = [{{ url = "{mac_url}", hash = "sha256:{mac_sha}" }}, '
        f'{{ url = "{linux_url}", hash = "sha256:{linux_sha}" }}]\n'
    )
    mirror = tmp_path / "uv-lock-mirror"
    sync(run_pipdepot, upstream, mirror, "-r", str(uv_lock), *TWO_PLATFORMS)
    assert listed(mirror) == {
        "lib-1.0-py3-none-any.whl",
        "nativelib-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    }


def test_add_private_wheel_served_like_upstream(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    private = tmp_path / "private"
    wheel = build_wheel(private, "corp-secret", "0.1", requires=("lib",))
    out = run_pipdepot("add", str(private), "--mirror", str(mirror)).stdout
    assert "added corp_secret-0.1-py3-none-any.whl" in out
    assert "already there" in run_pipdepot("add", str(wheel), "--mirror", str(mirror)).stdout
    assert listed(mirror) == {"corp_secret-0.1-py3-none-any.whl"}

    # The static tree: file://, no server, no dependencies.
    python = fresh_venv(tmp_path / "file-venv")
    pip_install(python, mirror.as_uri(), "--no-deps", "corp-secret")
    assert installed(python, "corp_secret") == "0.1"

    # Through serve, online: upstream does not know corp-secret; its dependency comes from upstream.
    depot = Depot(mirror, tmp_path / "serve.log", ("--upstream", upstream.url)).start()
    try:
        python = fresh_venv(tmp_path / "serve-venv")
        pip_install(python, depot.index, "corp-secret")
        assert installed(python, "lib") == "2.0"
        page = page_json(depot.index + "corp-secret/")
        assert [f["filename"] for f in page["files"]] == ["corp_secret-0.1-py3-none-any.whl"]
        assert page["files"][0]["core-metadata"]
    finally:
        depot.stop()

    other = build_wheel(tmp_path / "other", "corp-secret", "0.1", payload=10)
    result = run_pipdepot("add", str(other), "--mirror", str(mirror), check=False)
    assert result.returncode == 1
    assert "already in the mirror with other content" in result.stderr
    assert listed(mirror) >= {"corp_secret-0.1-py3-none-any.whl"}
    assert (
        hashlib.sha256(wheel.read_bytes()).hexdigest() in (mirror / "corp-secret" / "index.html").read_text()
    )


def page_json(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def test_export_import_round_trip_then_offline_install(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, requirements: Path, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    sync(run_pipdepot, upstream, source, "-r", str(requirements))
    run_pipdepot("add", str(build_wheel(tmp_path / "private", "corp-tool", "0.1")), "--mirror", str(source))
    upstream.stop()

    archive = tmp_path / "needed.tar"
    out = run_pipdepot("export", str(archive), "-r", str(requirements), "--mirror", str(source)).stdout
    assert "5 files" in out
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "pipdepot-export.json"
    assert not [n for n in names if "corp" in n]  # only what the requirements need

    target = tmp_path / "airgapped"
    assert "imported 5 files" in run_pipdepot("import", str(archive), "--mirror", str(target)).stdout
    assert "5 already there" in run_pipdepot("import", str(archive), "--mirror", str(target)).stdout
    assert listed(target) == listed(source) - {"corp_tool-0.1-py3-none-any.whl"}
    run_pipdepot("check", "-r", str(requirements), "--mirror", str(target))
    python = fresh_venv(tmp_path / "venv")
    pip_install(python, target.as_uri(), "app")
    assert installed(python, "srconly") == "1.0"

    whole = tmp_path / "whole.tar.gz"
    run_pipdepot("export", str(whole), "--mirror", str(source))
    assert "imported 1 file" in run_pipdepot("import", str(whole), "--mirror", str(target)).stdout


def test_export_import_carries_a_private_projects_allow_upstream(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """A project with an added file is private; one allowed to show upstream's releases stays so."""
    source = tmp_path / "source"
    run_pipdepot("add", str(build_wheel(tmp_path / "own", "lib", "9.0")), "--mirror", str(source))
    run_pipdepot("add", str(build_wheel(tmp_path / "own", "unrelated", "9.0")), "--mirror", str(source))
    run_pipdepot("allow-upstream", "lib", "--mirror", str(source))
    archive = tmp_path / "whole.tar"
    run_pipdepot("export", str(archive), "--mirror", str(source))
    target = tmp_path / "target"
    assert "imported 2 files" in run_pipdepot("import", str(archive), "--mirror", str(target)).stdout
    shown = json.loads(run_pipdepot("ls", "--json", "--offline", "--mirror", str(target)).stdout)
    private = {project["name"]: project["private"] for project in shown}
    assert private == {"lib": False, "unrelated": True}
    with tarfile.open(archive) as tar:
        member = tar.extractfile("pipdepot-export.json")
        assert member is not None
        manifest = json.loads(member.read())
    del manifest["projects"]["lib"]["merge_upstream"]  # an archive from before it was carried
    assert read_manifest(manifest)[0].merge_upstream is False


def test_import_refuses_damage_and_conflicts(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    wanted = tmp_path / "lib.txt"
    wanted.write_text("lib\n")
    sync(run_pipdepot, upstream, source, "-r", str(wanted))
    archive = tmp_path / "out.tar"
    run_pipdepot("export", str(archive), "--mirror", str(source))

    damaged = tmp_path / "damaged.tar"
    with tarfile.open(archive) as tar, tarfile.open(damaged, "w") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith(".whl"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    target = tmp_path / "target"
    result = run_pipdepot("import", str(damaged), "--mirror", str(target), check=False)
    assert result.returncode == 1
    assert "sha256" in result.stderr
    assert not list(target.glob("packages/**/*.whl"))

    run_pipdepot("import", str(archive), "--mirror", str(target))
    wheel = next(target.glob("packages/**/lib-2.0-py3-none-any.whl"))
    wheel.write_bytes(b"something else")
    result = run_pipdepot("import", str(archive), "--mirror", str(target), check=False)
    assert result.returncode == 1
    assert "different file" in result.stderr
    assert wheel.read_bytes() == b"something else"


def test_ls_lists_projects_versions_and_files(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, requirements: Path, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    sync(run_pipdepot, upstream, mirror, "-r", str(requirements), *TWO_PLATFORMS)
    run_pipdepot("add", str(build_wheel(tmp_path / "private", "corp-tool", "0.1")), "--mirror", str(mirror))
    held = json.loads(run_pipdepot("ls", "--json", "--offline", "--mirror", str(mirror)).stdout)
    by_name = {p["name"]: p for p in held}
    assert set(by_name) == {"app", "buildtool", "corp-tool", "lib", "nativelib", "srconly"}
    assert by_name["nativelib"]["versions"] == ["1.0"]
    assert len(by_name["nativelib"]["files"]) == 2
    assert by_name["corp-tool"]["files"][0]["source"] == "added"
    assert {f["source"] for f in by_name["lib"]["files"]} == {"upstream"}
    text = run_pipdepot("ls", "Lib", "--mirror", str(mirror)).stdout
    assert "lib-2.0-py3-none-any.whl" in text
    assert "6 projects, 7 files" in run_pipdepot("ls", "--offline", "--mirror", str(mirror)).stdout
    result = run_pipdepot("ls", "nothing-here", "--mirror", str(mirror), check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("pipdepot: error: nothing-here: no files")


def test_sync_writes_beside_a_running_serve_which_serves_its_files_as_hits(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, requirements: Path, tmp_path: Path
) -> None:
    """No writer lock: ``serve`` then ``sync`` (the README's order) both write; serve sees sync's files."""
    mirror = tmp_path / "mirror"
    depot = Depot(mirror, tmp_path / "serve.log", ("--upstream", upstream.url)).start()
    try:
        sync(run_pipdepot, upstream, mirror, "-r", str(requirements))
        fetched = upstream.file_hits()
        assert fetched > 0
        index = mirror / "index.html"
        projects = sorted(p.parent.name for p in mirror.glob("*/index.html"))
        assert projects
        for project in projects:
            html = (mirror / project / "index.html").read_text()
            for href in re.findall(r'href="\.\.(/packages/[^"#]+)', html):
                with urllib.request.urlopen(f"{depot.url}{href}", timeout=30) as response:
                    assert response.headers["X-Pipdepot-Cache"] == "hit", href
        assert upstream.file_hits() == fetched  # nothing fetched again
        assert all(f'href="{p}/"' in index.read_text() for p in projects)
        deadline = time.monotonic() + 2.0  # the root listing is at most a second old
        while True:
            with urllib.request.urlopen(f"{depot.url}/simple/", timeout=30) as response:
                root = response.read().decode()
            if all(f'href="{p}/"' in root for p in projects) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert all(f'href="{p}/"' in root for p in projects), root
        run_pipdepot("ls", "--mirror", str(mirror))
    finally:
        depot.stop()


def test_files_the_resolver_pulled_in_but_no_target_installs_are_dropped(
    run_pipdepot: PipdepotRunner, tmp_path: Path
) -> None:
    """Without PEP 658 metadata or ranges upstream, uv reads whole wheels: the ones it rejects go again."""
    dist = tmp_path / "dist"
    upstream = FakeUpstream(with_metadata=False, ranges=False)
    upstream.add(build_wheel(dist, "top", "1.0", requires=("mid",)))
    upstream.add(build_wheel(dist, "mid", "2.0", requires=("dep>=2",)))  # cannot be satisfied
    upstream.add(build_wheel(dist, "mid", "1.0", requires=("dep",)))
    upstream.add(build_wheel(dist, "dep", "1.0"))
    upstream.start()
    try:
        wanted = tmp_path / "top.txt"
        wanted.write_text("top\n")
        mirror = tmp_path / "mirror"
        output = sync(run_pipdepot, upstream, mirror, "-r", str(wanted))
    finally:
        upstream.stop()
    assert upstream.hits[upstream.projects["mid"][0].url_path] >= 1  # mid 2.0, read whole by the resolver
    assert "dropped 1 file (" in output
    assert listed(mirror) == {
        "top-1.0-py3-none-any.whl",
        "mid-1.0-py3-none-any.whl",
        "dep-1.0-py3-none-any.whl",
    }
    assert not list(mirror.glob("packages/**/mid-2.0-py3-none-any.whl*"))


def test_export_refuses_a_damaged_file_and_writes_no_archive(
    run_pipdepot: PipdepotRunner, upstream: FakeUpstream, tmp_path: Path
) -> None:
    mirror = tmp_path / "mirror"
    wanted = tmp_path / "lib.txt"
    wanted.write_text("lib\n")
    sync(run_pipdepot, upstream, mirror, "-r", str(wanted))
    wheel = next(mirror.glob("packages/**/lib-2.0-py3-none-any.whl"))
    data = bytearray(wheel.read_bytes())
    data[100] ^= 1  # same size: only the hash can tell
    wheel.write_bytes(bytes(data))
    out = tmp_path / "out.tar"
    result = run_pipdepot("export", str(out), "--mirror", str(mirror), check=False)
    assert result.returncode == 1
    assert "lib-2.0-py3-none-any.whl is damaged in the mirror" in result.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".out.tar.*"))
