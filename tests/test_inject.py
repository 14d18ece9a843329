"""inject/restore on plain directories: exact restore, journal, refusal, crash recovery, bad input."""

from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.conftest import PipdepotRunner, clean_environ
from tests.roots import diff, mounts_under, snapshot
from tests.wheels import add_to_mirror, build_wheel

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts and chown need root")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small root with originals to replace: odd modes, another owner, a symlink, an [install] section."""
    root = os_root(tmp_path / "root")
    (root / "root" / ".config" / "pip").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    pip_conf = root / "etc" / "pip.conf"
    pip_conf.write_bytes(b"[global]\nindex-url = http://original.example/simple/\n\n# keep: \xe2\x9c\x93\n")
    pip_conf.chmod(0o640)
    user_conf = root / "root" / ".config" / "pip" / "pip.conf"
    user_conf.write_text("[install]\nindex-url = http://user.example/\n")
    if os.geteuid() == 0:
        os.chown(pip_conf, 1234, 5678)
    (root / "etc" / "resolv.conf").symlink_to("../run/resolvconf/resolv.conf")
    return root


def os_root(root: Path) -> Path:
    """The least that passes for an OS root: /etc, /usr/bin (and /bin linked to it), /bin/sh."""
    (root / "etc").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "usr" / "bin" / "sh").write_text("#!/bin/false\n")
    (root / "usr" / "bin" / "sh").chmod(0o755)
    return root


def mirror_with(tmp_path: Path, *names: str) -> Path:
    mirror = tmp_path / "mirror"
    mirror.mkdir(exist_ok=True)
    for name in names:
        add_to_mirror(mirror, build_wheel(tmp_path / "dist", name, "1.0"))
    return mirror


@needs_root
def test_inject_writes_config_and_restore_puts_everything_back(
    root: Path, tmp_path: Path, run_pipdepot: PipdepotRunner
) -> None:
    mirror = mirror_with(tmp_path, "probe")
    before = snapshot(root)
    result = run_pipdepot("inject", str(root), "--mirror-dir", str(mirror), "--retries", "0", "--offline")
    assert "replaced /etc/pip.conf" in result.stdout
    assert "created /root/.pip/pip.conf" in result.stdout

    pip_conf = configparser.RawConfigParser()
    pip_conf.read(root / "etc" / "pip.conf")
    assert pip_conf.get("global", "index-url") == "file:///tmp/pypi"
    assert not pip_conf.has_option("global", "extra-index-url")  # offline: no public index
    assert (root / "etc" / "pip.conf").stat().st_mode & 0o777 == 0o644
    assert (root / "root" / ".pip" / "pip.conf").read_text() == (root / "etc" / "pip.conf").read_text()
    assert (root / "root" / ".config" / "pip" / "pip.conf").read_text() == (
        root / "etc" / "pip.conf"
    ).read_text()
    uv = tomllib.loads((root / "etc" / "uv" / "uv.toml").read_text())
    assert uv["index"] == [{"url": "file:///tmp/pypi", "default": True}]
    assert "index_url = file:///tmp/pypi" in (root / "root" / ".pydistutils.cfg").read_text()
    assert (root / ".pipdepot" / "journal.json").is_file()

    mounted = root / "tmp" / "pypi"
    assert mounts_under(root) == [str(mounted)]
    assert (mounted / "probe" / "index.html").is_file()
    with pytest.raises(OSError, match="Read-only file system"):
        (mounted / "written-from-the-root").write_text("x")

    result = run_pipdepot("restore", str(root))
    assert "restored /etc/pip.conf" in result.stdout
    assert "unmounted /tmp/pypi" in result.stdout
    assert mounts_under(root) == []
    assert diff(before, snapshot(root)) == []
    assert (root / "etc" / "pip.conf").stat().st_uid == 1234


def test_a_directory_the_command_changed_keeps_the_time_of_that_change(
    root: Path, tmp_path: Path, run_pipdepot: PipdepotRunner
) -> None:
    """Times go back only where the entries are those of before: a new file in /etc is a real change."""
    before = snapshot(root)
    run_pipdepot("inject", str(root), "--mirror-dir", str(tmp_path / "no-mirror"))
    (root / "etc" / "hostname").write_text("built\n")  # what a command in the root might do
    changed = (root / "etc").stat().st_mtime_ns
    run_pipdepot("restore", str(root))
    after = snapshot(root)
    assert (root / "etc").stat().st_mtime_ns >= changed
    assert diff(before, after) == [
        "new: etc/hostname",
        f"changed: etc {before['etc']} -> {after['etc']}",
    ]


def test_created_directories_are_removed(tmp_path: Path, run_pipdepot: PipdepotRunner) -> None:
    root = tmp_path / "empty-root"
    root.mkdir()
    run_pipdepot("inject", str(root), "--force", "--mirror-dir", str(tmp_path / "no-mirror"))
    assert (root / "etc" / "uv" / "uv.toml").is_file()
    assert (root / "root" / ".pip").is_dir()
    assert (root / "root").stat().st_mode & 0o777 == 0o700
    run_pipdepot("restore", str(root))
    assert list(root.iterdir()) == []


def test_restore_is_idempotent_and_a_clean_root_is_left_alone(
    root: Path, tmp_path: Path, run_pipdepot: PipdepotRunner
) -> None:
    before = snapshot(root)
    assert "not injected" in run_pipdepot("restore", str(root)).stdout
    run_pipdepot("inject", str(root), "--mirror-dir", str(tmp_path / "none"))
    run_pipdepot("restore", str(root))
    assert "not injected" in run_pipdepot("restore", str(root)).stdout
    assert diff(before, snapshot(root)) == []


def test_inject_refuses_an_injected_root(root: Path, tmp_path: Path, run_pipdepot: PipdepotRunner) -> None:
    before = snapshot(root)
    run_pipdepot("inject", str(root), "--mirror-dir", str(tmp_path / "none"))
    injected = snapshot(root)
    second = run_pipdepot("inject", str(root), "--mirror-url", "http://other/", check=False)
    assert second.returncode == 1
    assert "already injected" in second.stderr
    assert "pipdepot restore" in second.stderr
    assert diff(injected, snapshot(root)) == []  # the backups of the originals are untouched
    run_pipdepot("restore", str(root))
    assert diff(before, snapshot(root)) == []


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"DIB_PYPI_MIRROR_URL": "ftp://mirror/"}, "DIB_PYPI_MIRROR_URL: 'ftp://mirror/' is not an http"),
        ((), {"DIB_PIP_RETRIES": "lots"}, "DIB_PIP_RETRIES: 'lots' is not a number"),
        (("--timeout", "never"), {}, "--timeout: 'never' is not a timeout"),
    ],
)
def test_bad_values_write_nothing(
    root: Path, run_pipdepot: PipdepotRunner, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    before = snapshot(root)
    result = run_pipdepot("inject", str(root), *args, env=env, check=False)
    assert result.returncode == 2  # usage: a bad value, nothing done
    assert result.stderr.splitlines()[0] == f"pipdepot: error: {message}" or message in result.stderr
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1
    assert diff(before, snapshot(root)) == []


def test_host_root_and_missing_root_are_refused(tmp_path: Path, run_pipdepot: PipdepotRunner) -> None:
    result = run_pipdepot("inject", "/", check=False)
    assert result.returncode == 1
    assert "refusing to use the host's /" in result.stderr
    result = run_pipdepot("inject", str(tmp_path / "nope"), check=False)
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_symlinks_in_the_root_never_lead_outside_it(tmp_path: Path, run_pipdepot: PipdepotRunner) -> None:
    outside = tmp_path / "host-etc"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "etc").symlink_to(outside)  # absolute: means <root>/<outside> inside the root
    inside = root / str(outside).lstrip("/")
    inside.mkdir(parents=True)
    (root / "root-elsewhere").mkdir()
    (root / "root").symlink_to("../../../../../../root-elsewhere")  # .. stops at the root's /
    before = snapshot(root)
    run_pipdepot("inject", str(root), "--force", "--mirror-dir", str(tmp_path / "none"))
    assert list(outside.iterdir()) == []
    assert (inside / "pip.conf").is_file()
    assert (root / "root-elsewhere" / ".pip" / "pip.conf").is_file()
    run_pipdepot("restore", str(root))
    assert diff(before, snapshot(root)) == []


def test_a_dangling_link_on_the_way_is_refused_and_nothing_changes(
    tmp_path: Path, run_pipdepot: PipdepotRunner
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "etc").symlink_to("/somewhere/missing")
    before = snapshot(root)
    result = run_pipdepot("inject", str(root), "--force", "--mirror-dir", str(tmp_path / "none"), check=False)
    assert result.returncode == 1
    assert "/etc in " in result.stderr
    assert "dangling" in result.stderr
    assert diff(before, snapshot(root)) == []
    assert not Path("/somewhere/missing").exists()


@needs_root
def test_kill_9_at_any_moment_of_inject_then_restore_gives_the_exact_root(
    root: Path, tmp_path: Path, run_pipdepot: PipdepotRunner
) -> None:
    """Kill inject at increasing delays; whatever it had done, restore must undo it exactly."""
    mirror = mirror_with(tmp_path, "probe")
    before = snapshot(root)
    env = clean_environ(HOME=str(tmp_path))
    argv = [sys.executable, "-m", "pipdepot", "inject", str(root), "--mirror-dir", str(mirror)]
    # The kills are spread over the time one whole inject takes here, start-up included: on a
    # loaded machine the interpreter alone can take longer than a fixed list of delays.
    started = time.monotonic()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    whole = time.monotonic() - started
    run_pipdepot("restore", str(root))
    outcomes = set()
    for delay in [whole * step / 10 for step in range(11)] + [whole * 1.5]:
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        journal = root / ".pipdepot"
        outcomes.add("journal" if journal.exists() else "untouched")
        # Killed between the journal directory's mkdir and its first save: the root's own time is
        # the one thing lost (ARCHITECTURE.md; test_restore_after_journal_directory_only).
        unsaved = journal.is_dir() and not (journal / "journal.json").exists()
        run_pipdepot("restore", str(root))
        assert mounts_under(root) == [], f"after a kill at {delay}s"
        after = snapshot(root)
        if unsaved:
            assert before["."][:2] == after["."][:2], f"after a kill at {delay}s"
            after["."] = before["."]
        assert diff(before, after) == [], f"after a kill at {delay}s"
    assert "journal" in outcomes  # at least some kills landed after inject had begun


def test_restore_after_journal_directory_only(root: Path, run_pipdepot: PipdepotRunner) -> None:
    """A kill between creating the journal directory and its first save leaves only the directory.

    The root's own mtime is the one thing lost then: it is recorded in that first save.
    """
    before = snapshot(root)
    (root / ".pipdepot").mkdir()
    assert "already injected" in run_pipdepot("inject", str(root), check=False).stderr
    run_pipdepot("restore", str(root))
    after = snapshot(root)
    assert before.pop(".")[:2] == after.pop(".")[:2]
    assert diff(before, after) == []


def test_plan_with_root_warns_about_what_still_wins(root: Path, run_pipdepot: PipdepotRunner) -> None:
    (root / "usr").mkdir(exist_ok=True)
    (root / "usr" / "pip.conf").write_text("[global]\nindex-url = http://site-wide/\n")
    (root / "etc" / "environment").write_text('PIP_INDEX_URL="http://env/"\nLANG=C\n')
    (root / "home" / "alice" / ".config" / "pip").mkdir(parents=True)
    (root / "home" / "alice" / ".config" / "pip" / "pip.conf").write_text("[global]\nindex-url = http://a/\n")
    result = run_pipdepot("plan", "--root", str(root), "--mirror-dir", str(root / "no-mirror"))
    out = result.stdout
    assert "/usr/pip.conf [global] index-url (site config) wins" in out
    assert "/etc/environment sets PIP_INDEX_URL" in out
    assert "/home/alice/.config/pip/pip.conf sets an index for its user" in out
    assert "/root/.config/pip/pip.conf [install] index-url is set" in out
    assert "/root/.config/pip/pip.conf  [replace," in out
    assert "does not exist: nothing is mounted at /tmp/pypi" in out


@pytest.mark.parametrize("command", ["inject", "chroot"])
@pytest.mark.parametrize(
    ("layout", "missing"),
    [
        ((), "no /etc, no /usr/bin or /bin, no /bin/sh"),
        (("etc/", "src/"), "no /usr/bin or /bin, no /bin/sh"),  # a project's tree, say
        (("etc/", "bin/"), "no /bin/sh"),
    ],
)
def test_a_directory_that_is_not_an_os_root_is_refused_in_one_line(
    tmp_path: Path, run_pipdepot: PipdepotRunner, command: str, layout: tuple[str, ...], missing: str
) -> None:
    root = tmp_path / "not-a-root"
    root.mkdir()
    for name in layout:
        (root / name).mkdir()
    before = snapshot(root)
    args = ["--", "/bin/true"] if command == "chroot" else []
    result = run_pipdepot(command, str(root), "--mirror-dir", str(tmp_path / "none"), *args, check=False)
    assert result.returncode == 1
    error, hint = result.stderr.splitlines()
    assert error == f"pipdepot: error: {root} does not look like an OS root: {missing}"
    assert "--force" in hint
    assert diff(before, snapshot(root)) == []
    assert mounts_under(root) == []


def test_force_injects_a_root_without_an_os_layout(tmp_path: Path, run_pipdepot: PipdepotRunner) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    assert (
        run_pipdepot("inject", str(root), "--mirror-dir", str(tmp_path / "none"), check=False).returncode == 1
    )
    run_pipdepot("inject", str(root), "--force", "--mirror-dir", str(tmp_path / "none"))
    assert (root / "etc" / "pip.conf").is_file()
    run_pipdepot("restore", str(root))
    assert list(root.iterdir()) == []
