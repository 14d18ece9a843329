"""Lock files read into pins per target: pylock.toml (PEP 751) and uv.lock."""

from __future__ import annotations

import signal
import tomllib
from typing import TYPE_CHECKING

import pytest

from pipdepot.core.names import NormalizedName
from pipdepot.core.targets import Target, make_targets
from pipdepot.fill.lockfiles import LockError, LockFile, Pin, is_lock_file, read_lock

if TYPE_CHECKING:
    from pathlib import Path
    from types import FrameType

LINUX_311 = make_targets(["3.11"], ["manylinux_2_28_x86_64"])[0]
LINUX_312 = make_targets(["3.12"], ["manylinux_2_28_x86_64"])[0]
WINDOWS_311 = make_targets(["3.11"], ["win_amd64"])[0]
MAC_312 = make_targets(["3.12"], ["macosx_11_0_arm64"])[0]

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64
SHA_D = "d" * 64


def lock_at(tmp_path: Path, name: str, text: str) -> LockFile:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read_lock(path)


def pins_by_name(lock: LockFile, target: Target) -> dict[str, Pin]:
    pins = lock.pins(target)
    assert len({p.name for p in pins}) == len(pins), pins
    return {p.name: p for p in pins}


def versions(lock: LockFile, target: Target) -> list[tuple[str, str]]:
    return sorted((p.name, p.version) for p in lock.pins(target))


PYLOCK = f"""\
lock-version = "1.0"
created-by = "tests"
requires-python = ">=3.11"

[[packages]]
name = "Attrs"
version = "25.1.0"
index = "https://index.invalid/simple/"

[[packages.wheels]]
name = "attrs-25.1.0-py3-none-any.whl"
url = "https://files.invalid/attrs-25.1.0-py3-none-any.whl"
hashes = {{ sha256 = "{SHA_A.upper()}" }}

[packages.sdist]
url = "https://files.invalid/attrs-25.1.0.tar.gz"
hashes = {{ sha256 = "{SHA_B}", sha512 = "{"e" * 128}" }}

[[packages]]
name = "colorama"
version = "0.4.6"
marker = "sys_platform == 'win32'"
wheels = [
  {{ url = "https://files.invalid/colorama-0.4.6-py2.py3-none-any.whl", hashes = {{ sha256 = "{SHA_C}" }} }},
]

[[packages]]
name = "tomli"
version = "2.2.1"
marker = "python_version < '3.12'"
sdist = {{ name = "tomli-2.2.1.tar.gz", url = "https://files.invalid/y", hashes = {{ sha256 = "{SHA_D}" }} }}

[[packages]]
name = "appnope"
version = "0.1.4"
marker = "platform_system == 'Darwin' and platform_machine == 'arm64'"
wheels = [{{ url = "https://files.invalid/appnope-0.1.4-py2.py3-none-any.whl", hashes = {{}} }}]

[[packages]]
name = "from-git"
vcs = {{ type = "git", url = "https://files.invalid/repo.git", commit-id = "0123abcd" }}

[[packages]]
name = "my-app"
directory = {{ path = ".", editable = true }}

[[packages]]
name = "from-archive"
version = "1.0"
archive = {{ url = "https://files.invalid/from-archive-1.0.tar.gz", hashes = {{ sha256 = "{SHA_A}" }} }}
"""


def test_pylock_packages_with_hashes_and_filenames(tmp_path: Path) -> None:
    lock = lock_at(tmp_path, "pylock.toml", PYLOCK)
    assert lock.kind == "pylock.toml"
    assert lock.path == tmp_path / "pylock.toml"
    pins = pins_by_name(lock, LINUX_311)
    assert pins == {
        "attrs": Pin(
            NormalizedName("attrs"),
            "25.1.0",
            frozenset({SHA_A, SHA_B}),
            frozenset({"attrs-25.1.0-py3-none-any.whl", "attrs-25.1.0.tar.gz"}),
        ),
        "tomli": Pin(NormalizedName("tomli"), "2.2.1", frozenset({SHA_D}), frozenset({"tomli-2.2.1.tar.gz"})),
    }


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (LINUX_311, [("attrs", "25.1.0"), ("tomli", "2.2.1")]),
        (LINUX_312, [("attrs", "25.1.0")]),
        (WINDOWS_311, [("attrs", "25.1.0"), ("colorama", "0.4.6"), ("tomli", "2.2.1")]),
        (MAC_312, [("appnope", "0.1.4"), ("attrs", "25.1.0")]),
    ],
    ids=str,
)
def test_pylock_markers_are_evaluated_per_target(
    tmp_path: Path, target: Target, expected: list[tuple[str, str]]
) -> None:
    lock = lock_at(tmp_path, "pylock.toml", PYLOCK)
    assert versions(lock, target) == expected


def test_pylock_keeps_no_hash_when_a_file_has_none(tmp_path: Path) -> None:
    pins = pins_by_name(lock_at(tmp_path, "pylock.toml", PYLOCK), MAC_312)
    assert pins["appnope"].hashes == frozenset()
    assert pins["appnope"].filenames == frozenset({"appnope-0.1.4-py2.py3-none-any.whl"})


def test_pylock_non_index_packages_are_left_out_with_a_note(tmp_path: Path) -> None:
    lock = lock_at(tmp_path, "pylock.dev.toml", PYLOCK)
    assert lock.kind == "pylock.toml"
    assert lock.notes == (
        "from-git: left out: only packages from an index can be mirrored",
        "my-app: left out: only packages from an index can be mirrored",
        "from-archive: left out: only packages from an index can be mirrored",
    )
    assert {p.pin.name for p in lock.packages} == {"attrs", "colorama", "tomli", "appnope"}


def test_pylock_without_packages_has_no_pins(tmp_path: Path) -> None:
    lock = lock_at(tmp_path, "pylock.toml", 'lock-version = "1.0"\n')
    assert lock.pins(LINUX_311) == []
    assert lock.notes == ()


@pytest.mark.parametrize("marker", ["'dev' in dependency_groups", "'cli' in extras"])
def test_pylock_lock_file_marker_variables_do_not_escape_as_a_crash(tmp_path: Path, marker: str) -> None:
    text = f"""\
lock-version = "1.0"
created-by = "tests"
[[packages]]
name = "pytest"
version = "8.3.0"
marker = "{marker}"
wheels = [{{ url = "https://files.invalid/pytest-8.3.0-py3-none-any.whl", hashes = {{ sha256 = "{SHA_A}" }}}}]
"""
    try:
        lock = lock_at(tmp_path, "pylock.toml", text)
    except LockError:
        return
    assert isinstance(lock.pins(LINUX_311), list)


def test_pylock_a_wheel_given_by_path_does_not_refuse_the_whole_lock(tmp_path: Path) -> None:
    text = f"""\
lock-version = "1.0"
created-by = "tests"
[[packages]]
name = "local"
version = "1.0"
wheels = [{{ path = "wheels/local-1.0-py3-none-any.whl", hashes = {{ sha256 = "{SHA_A}" }} }}]
[[packages]]
name = "remote"
version = "2.0"
wheels = [{{ url = "https://files.invalid/remote-2.0-py3-none-any.whl", hashes = {{ sha256 = "{SHA_B}" }} }}]
"""
    lock = lock_at(tmp_path, "pylock.toml", text)
    assert "remote" in pins_by_name(lock, LINUX_311)


def registry(name: str, version: str, sha: str, *extra_lines: str) -> str:
    filename = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    lines = [
        "[[package]]",
        f'name = "{name}"',
        f'version = "{version}"',
        'source = { registry = "https://index.invalid/simple" }',
        f'wheels = [{{ url = "https://files.invalid/{filename}", hash = "sha256:{sha}", size = 1 }}]',
        *extra_lines,
        "",
    ]
    return "\n".join(lines)


UV_ROOT = """\
version = 1
revision = 2
requires-python = ">=3.11"
resolution-markers = ["python_full_version >= '3.12'", "python_full_version < '3.12'"]

[[package]]
name = "app"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "requests", extra = ["socks"] },
    { name = "colorama", marker = "sys_platform == 'win32'" },
    { name = "numpy", version = "1.26.4", marker = "python_full_version < '3.12'" },
    { name = "numpy", version = "2.1.0", marker = "python_full_version >= '3.12'" },
    { name = "from-git" },
]

[package.optional-dependencies]
cli = [{ name = "Click" }]

[package.dev-dependencies]
dev = [{ name = "pytest" }]

[[package]]
name = "from-git"
version = "0.3.0"
source = { git = "https://files.invalid/repo.git?rev=main#0123abcd" }

[[package]]
name = "from-path"
version = "1.0"
source = { path = "wheels/from_path-1.0-py3-none-any.whl" }

"""
UV_LOCK = UV_ROOT + "".join(
    [
        registry(
            "requests",
            "2.32.3",
            SHA_A,
            f'sdist = {{ url = "https://files.invalid/requests-2.32.3.tar.gz", hash = "sha256:{SHA_B}" }}',
            "dependencies = [",
            '    { name = "certifi" },',
            '    { name = "idna", marker = "python_full_version < \'3.12\'" },',
            "]",
            "[package.optional-dependencies]",
            'socks = [{ name = "pysocks" }]',
            'use-chardet = [{ name = "chardet" }]',
        ),
        registry("certifi", "2025.1.31", SHA_C),
        registry("idna", "3.10", SHA_D),
        registry("pysocks", "1.7.1", SHA_A),
        registry("chardet", "5.2.0", SHA_B),
        registry("colorama", "0.4.6", SHA_C),
        registry(
            "click", "8.1.8", SHA_D, 'dependencies = [{ name = "colorama", marker = "os_name == \'nt\'" }]'
        ),
        registry("numpy", "1.26.4", SHA_A, "resolution-markers = [\"python_full_version < '3.12'\"]"),
        registry("numpy", "2.1.0", SHA_B, "resolution-markers = [\"python_full_version >= '3.12'\"]"),
        registry("pytest", "8.3.4", SHA_C, 'dependencies = [{ name = "iniconfig" }]'),
        registry("iniconfig", "2.0.0", SHA_D),
        registry("unused", "1.0", SHA_A),
    ]
)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            LINUX_311,
            [
                ("certifi", "2025.1.31"),
                ("click", "8.1.8"),
                ("idna", "3.10"),
                ("iniconfig", "2.0.0"),
                ("numpy", "1.26.4"),
                ("pysocks", "1.7.1"),
                ("pytest", "8.3.4"),
                ("requests", "2.32.3"),
            ],
        ),
        (
            LINUX_312,
            [
                ("certifi", "2025.1.31"),
                ("click", "8.1.8"),
                ("iniconfig", "2.0.0"),
                ("numpy", "2.1.0"),
                ("pysocks", "1.7.1"),
                ("pytest", "8.3.4"),
                ("requests", "2.32.3"),
            ],
        ),
        (
            WINDOWS_311,
            [
                ("certifi", "2025.1.31"),
                ("click", "8.1.8"),
                ("colorama", "0.4.6"),
                ("idna", "3.10"),
                ("iniconfig", "2.0.0"),
                ("numpy", "1.26.4"),
                ("pysocks", "1.7.1"),
                ("pytest", "8.3.4"),
                ("requests", "2.32.3"),
            ],
        ),
    ],
    ids=str,
)
def test_uv_lock_is_walked_from_its_root_along_the_edges_that_hold(
    tmp_path: Path, target: Target, expected: list[tuple[str, str]]
) -> None:
    lock = lock_at(tmp_path, "uv.lock", UV_LOCK)
    assert lock.kind == "uv.lock"
    assert versions(lock, target) == expected


def test_uv_lock_pins_carry_hashes_and_filenames(tmp_path: Path) -> None:
    pins = pins_by_name(lock_at(tmp_path, "uv.lock", UV_LOCK), LINUX_311)
    assert pins["requests"] == Pin(
        NormalizedName("requests"),
        "2.32.3",
        frozenset({SHA_A, SHA_B}),
        frozenset({"requests-2.32.3-py3-none-any.whl", "requests-2.32.3.tar.gz"}),
    )
    assert pins["numpy"] == Pin(
        NormalizedName("numpy"), "1.26.4", frozenset({SHA_A}), frozenset({"numpy-1.26.4-py3-none-any.whl"})
    )


def test_uv_lock_extras_not_asked_for_and_unreached_packages_stay_out(tmp_path: Path) -> None:
    names = set(pins_by_name(lock_at(tmp_path, "uv.lock", UV_LOCK), WINDOWS_311))
    assert "chardet" not in names
    assert "unused" not in names
    assert "app" not in names


def test_uv_lock_packages_without_a_registry_are_left_out_with_a_note(tmp_path: Path) -> None:
    lock = lock_at(tmp_path, "uv.lock", UV_LOCK)
    assert lock.notes == (
        "from-git: left out: only packages from an index can be mirrored",
        "from-path: left out: only packages from an index can be mirrored",
    )
    assert "from-git" not in {p.pin.name for p in lock.packages}


def test_uv_lock_optional_dependencies_and_groups_of_an_editable_root_are_all_wanted(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "version = 1",
            "[[package]]",
            'name = "tool"',
            'version = "1.0"',
            'source = { editable = "." }',
            "[package.optional-dependencies]",
            'fast = [{ name = "orjson" }]',
            "[package.dev-dependencies]",
            'lint = [{ name = "ruff" }]',
            'test = [{ name = "tool", extra = ["fast"] }, { name = "coverage" }]',
            "",
            registry("orjson", "3.10.0", SHA_A),
            registry("ruff", "0.9.0", SHA_B),
            registry(
                "coverage", "7.6.0", SHA_C, "[package.dev-dependencies]", 'never = [{ name = "unused" }]'
            ),
            registry("unused", "1.0", SHA_D),
        ]
    )
    assert versions(lock_at(tmp_path, "uv.lock", text), LINUX_311) == [
        ("coverage", "7.6.0"),
        ("orjson", "3.10.0"),
        ("ruff", "0.9.0"),
    ]


def test_uv_lock_workspace_members_are_roots_and_reach_each_other(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "version = 1",
            "[manifest]",
            'members = ["web", "lib"]',
            "[[package]]",
            'name = "web"',
            'version = "0.1.0"',
            'source = { editable = "packages/web" }',
            'dependencies = [{ name = "lib" }]',
            "[[package]]",
            'name = "lib"',
            'version = "0.2.0"',
            'source = { directory = "packages/lib" }',
            "dependencies = [",
            '    { name = "six", marker = "platform_system == \'Windows\'" },',
            '    { name = "attrs" },',
            "]",
            "",
            registry("six", "1.17.0", SHA_A),
            registry("attrs", "25.1.0", SHA_B),
        ]
    )
    lock = lock_at(tmp_path, "uv.lock", text)
    assert versions(lock, LINUX_311) == [("attrs", "25.1.0")]
    assert versions(lock, WINDOWS_311) == [("attrs", "25.1.0"), ("six", "1.17.0")]


def test_uv_lock_without_a_root_pins_every_registry_package(tmp_path: Path) -> None:
    text = "version = 1\n" + registry("six", "1.17.0", SHA_A) + registry("attrs", "25.1.0", SHA_B)
    assert versions(lock_at(tmp_path, "uv.lock", text), MAC_312) == [("attrs", "25.1.0"), ("six", "1.17.0")]


def test_uv_lock_an_edge_to_a_version_that_is_not_locked_reaches_nothing(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "version = 1",
            "[[package]]",
            'name = "app"',
            'version = "0.1.0"',
            'source = { virtual = "." }',
            'dependencies = [{ name = "six", version = "9.9" }, { name = "attrs" }]',
            "",
            registry("six", "1.17.0", SHA_A),
            registry("attrs", "25.1.0", SHA_B),
        ]
    )
    assert versions(lock_at(tmp_path, "uv.lock", text), LINUX_311) == [("attrs", "25.1.0")]


def _too_slow(signum: int, frame: FrameType | None) -> None:
    raise TimeoutError("the uv.lock walk did not end")


def test_uv_lock_a_cycle_through_extras_ends(tmp_path: Path) -> None:
    text = "\n".join(
        [
            "version = 1",
            "[[package]]",
            'name = "app"',
            'version = "0.1.0"',
            'source = { virtual = "." }',
            'dependencies = [{ name = "a", extra = ["x"] }]',
            "",
            registry(
                "a", "1.0", SHA_A, "[package.optional-dependencies]", 'x = [{ name = "b", extra = ["y"] }]'
            ),
            registry(
                "b", "1.0", SHA_B, "[package.optional-dependencies]", 'y = [{ name = "a", extra = ["x"] }]'
            ),
        ]
    )
    lock = lock_at(tmp_path, "uv.lock", text)
    previous = signal.signal(signal.SIGALRM, _too_slow)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        found = versions(lock, LINUX_311)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert found == [("a", "1.0"), ("b", "1.0")]


@pytest.mark.parametrize(
    ("name", "text"), [("pylock.toml", "lock-version = \n"), ("uv.lock", "[[package]\n")]
)
def test_invalid_toml_is_a_one_line_lock_error(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(tomllib.TOMLDecodeError) as parsing:
        tomllib.loads(text)
    with pytest.raises(LockError) as caught:
        read_lock(path)
    assert str(caught.value) == f"cannot read lock file {path}: {parsing.value}"
    assert str(caught.value).endswith("(at line 1, column 16)" if name == "pylock.toml" else "column 10)")
    assert "\n" not in str(caught.value)


def test_an_unreadable_lock_file_is_a_lock_error(tmp_path: Path) -> None:
    missing = tmp_path / "pylock.toml"
    with pytest.raises(LockError) as caught:
        read_lock(missing)
    assert str(caught.value) == f"cannot read lock file {missing}: No such file or directory"
    directory = tmp_path / "uv.lock"
    directory.mkdir()
    with pytest.raises(LockError) as caught:
        read_lock(directory)
    assert str(caught.value) == f"cannot read lock file {directory}: Is a directory"
    binary = tmp_path / "pylock.bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(LockError, match=r"^cannot read lock file .*pylock\.bin\.toml: "):
        read_lock(binary)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('lock-version = "2.0"\n', "ValueError: lock-version '2.0' is not 1.x"),
        ("lock-version = 2\n", "ValueError: lock-version 2 is not 1.x"),
        ('created-by = "tests"\n', "KeyError: 'lock-version'"),
        ('lock-version = "1.0"\n[[packages]]\nversion = "1.0"\n', "KeyError: 'name'"),
        ('lock-version = "1.0"\npackages = [1]\n', "TypeError: 'int' object is not subscriptable"),
    ],
)
def test_a_pylock_of_another_kind_is_a_one_line_lock_error(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LockError) as caught:
        read_lock(path)
    assert str(caught.value) == f"{path}: not a usable lock file: {reason}"


def test_a_uv_lock_of_another_kind_is_a_lock_error(tmp_path: Path) -> None:
    path = tmp_path / "uv.lock"
    path.write_text('version = 1\n[[package]]\nversion = "1.0"\n', encoding="utf-8")
    with pytest.raises(LockError) as caught:
        read_lock(path)
    assert str(caught.value) == f"{path}: not a usable lock file: KeyError: 'name'"


@pytest.mark.parametrize("name", ["pylock.toml", "uv.lock"])
def test_an_invalid_marker_is_a_one_line_lock_error(tmp_path: Path, name: str) -> None:
    if name == "pylock.toml":
        text = 'lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1.0"\nmarker = "sys_platform =="\n'
        text += 'wheels = [{ url = "https://files.invalid/a-1.0-py3-none-any.whl", hashes = {} }]\n'
    else:
        text = 'version = 1\n[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { virtual = "." }\n'
        text += 'dependencies = [{ name = "a", marker = "sys_platform ==" }]\n'
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LockError) as caught:
        read_lock(path)
    assert str(caught.value).startswith(f"{path}: not a usable lock file: InvalidMarker: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "is_lock"),
    [
        ("uv.lock", True),
        ("pylock.toml", True),
        ("pylock.dev.toml", True),
        ("pylock.linux-py311.toml", True),
        ("requirements.txt", False),
        ("uv.lock.bak", False),
        ("my-uv.lock", False),
        ("pylock.txt", False),
        ("Pylock.toml", False),
        ("poetry.lock", False),
        ("pyproject.toml", False),
    ],
)
def test_is_lock_file_goes_by_name(tmp_path: Path, name: str, is_lock: bool) -> None:
    assert is_lock_file(tmp_path / "sub" / name) is is_lock
