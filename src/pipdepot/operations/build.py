"""``pipdepot build``: run buildah or podman with pip and uv pointed at the mirror, and leave no trace.

The plan's ``pip.conf`` and ``uv.toml`` are written into a private temporary
directory and mounted read-only into every RUN step (``--volume``), with the
local mirror at ``/tmp/pypi`` when the plan uses it. Nothing is passed as an
argument or variable (build arguments are recorded in the image's history).
After the builder succeeds, the empty mount points it left in the image (a path
the base lacked) are removed in one last layer; the temporary directory is
removed whatever happens, and the builder's exit status is pipdepot's.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from pipdepot.core.urls import redact_url
from pipdepot.element.buildroot import render_pip_conf, render_uv_toml
from pipdepot.element.container import (
    PIP_CONF,
    STUB_DIRECTORIES,
    STUB_FILES,
    UV_TOML,
    BuilderCommand,
    final_base_image,
    find_containerfile,
    is_loopback_url,
)
from pipdepot.element.plan import LOCAL_MIRROR_URL, MOUNT_POINT, MirrorState
from pipdepot.element.roottarget import RootTarget, read_root_target
from pipdepot.errors import BuildRootError, ConfigError, MirrorError, UsageError
from pipdepot.operations.chroot import handling_signals

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import FrameType

    from pipdepot.element.plan import MirrorPlan
    from pipdepot.operations.plan import PlanReport

__all__ = ["BuildResult", "check_build", "read_base_target", "run_build"]

#: The history line of the last layer (it names neither pipdepot nor the mirror).
_CREATED_BY = "remove empty mount points left by the build"
#: Seconds to wait for a mirror's answer before the build starts.
_REACH_TIMEOUT = 10
_HEADER = "# Mounted read-only into this RUN step for the build; not part of the image.\n"


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class BuildResult:
    """The builder's exit status, and the image's final ID and removed mount points after a success."""

    status: int
    image: str | None = None
    removed: tuple[str, ...] = ()


class _Interrupted(Exception):  # noqa: N818 (a signal, not an error)
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def check_build(
    report: PlanReport, command: BuilderCommand, *, offline: bool, environ: Mapping[str, str]
) -> None:
    """Refuse, in one line, a build that could not reach its mirror.

    :raises MirrorError: no mirror (offline: the local one is missing or empty; online: no
        mirror URL and no local mirror), or a mirror URL does not answer from here.
    :raises UsageError: a mirror on this machine's loopback that the build's network cannot
        reach, or an offline build given a network.
    """
    plan = report.plan
    env = dict(environ)
    if plan.mirror_state is not MirrorState.READY and (offline or not plan.inputs.mirror_urls):
        state = "does not exist" if plan.mirror_state is MirrorState.MISSING else "holds no project"
        raise MirrorError(
            f"no mirror: the local mirror {plan.mirror_dir} {state}"
            + ("" if offline else " and no --mirror-url is set"),
            hint="fill it with `pipdepot sync`, or give --mirror-dir"
            + ("" if offline else ", or --mirror-url a running `pipdepot serve`"),
        )
    if offline:
        network = command.option("--network", "--net")
        if network not in {None, "none"}:
            raise UsageError(f"an offline build has no network: drop --network {network}")
        return
    mirrors = [
        url for url in plan.indexes if url != plan.inputs.public_index.value and not url.startswith("file:")
    ]
    for url in mirrors:
        if is_loopback_url(url) and not command.host_network(env):
            raise UsageError(
                f"the mirror {redact_url(url)} is on this machine's loopback, which the build's own network "
                "cannot reach: build with --isolation chroot, or --network host"
            )
        _reach(url)


def _reach(url: str) -> None:
    """Ask ``url`` once; any answer below 500 (a 401 too) means a server is there."""
    parts = urlsplit(url)
    headers = {"Accept": "text/html"}
    if parts.username is not None:  # urllib takes no user:password in a URL: send it as a header
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (an http(s) mirror URL)
    try:
        with urllib.request.urlopen(request, timeout=_REACH_TIMEOUT):  # noqa: S310
            return
    except urllib.error.HTTPError as exc:
        if exc.code < 500:
            return
        reason = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = str(getattr(exc, "reason", exc))
    raise MirrorError(f"the mirror {redact_url(url)} cannot be reached: {reason}")


def run_build(
    report: PlanReport, command: BuilderCommand, *, offline: bool, environ: Mapping[str, str]
) -> BuildResult:
    """Run the build with the mirror's mounts; on success, strip the empty mount points from the image.

    Returns the builder's status (128+N for signal N). SIGINT, SIGTERM and SIGHUP are passed on.

    :raises ConfigError: the mirror directory cannot be mounted (a ``:`` in its path).
    :raises BuildRootError: the built image could not be read or rewritten.
    """
    env = dict(environ)
    children: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        if children and children[0].poll() is None:
            children[0].send_signal(signum)
            return
        raise _Interrupted(signum)  # before or after the builder: stop, and clean up

    directory = Path(tempfile.mkdtemp(prefix="pipdepot-build-"))
    with handling_signals(forward):
        try:
            argv, iidfile = _command_line(report, command, directory, env, offline=offline)
            children.append(subprocess.Popen(argv, env=env))
            return _finish(command, children[0].wait(), iidfile, env)
        except _Interrupted as interrupted:
            return BuildResult(128 + interrupted.signum)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def _command_line(
    report: PlanReport, command: BuilderCommand, directory: Path, env: dict[str, str], *, offline: bool
) -> tuple[list[str], Path]:
    """The builder's command with the mounts (files written in ``directory``), and its image ID file."""
    options = _volumes(report.plan, directory)
    iidfile = command.option("--iidfile")
    if iidfile is None:
        iidfile = str(directory / "iid")
        options += ["--iidfile", iidfile]
    argv = list(command.with_options(tuple(options)))
    return (_without_network(command, argv, env) if offline else argv), Path(iidfile)


def _finish(command: BuilderCommand, status: int, iidfile: Path, env: dict[str, str]) -> BuildResult:
    """After a successful build, the image without its empty mount points, under the build's names."""
    if status < 0:
        return BuildResult(128 - status)
    image = iidfile.read_text().strip() if iidfile.is_file() else None
    if status != 0 or not image:
        return BuildResult(status)
    final, removed = _remove_stubs(command, image, env)
    if final != image and command.option("--iidfile") is not None:
        iidfile.write_text(final)
    return BuildResult(status, final, removed)


def _volumes(plan: MirrorPlan, directory: Path) -> list[str]:
    """``--volume`` options: pip.conf and uv.toml written in ``directory``, the local mirror if used.

    :raises ConfigError: a path holds a ``:`` (the option's separator).
    """
    mode = 0o600 if plan.secret else 0o644
    volumes: list[tuple[Path, PurePosixPath]] = []
    for name, target, content in (
        ("pip.conf", PIP_CONF, render_pip_conf(plan, header=_HEADER)),
        ("uv.toml", UV_TOML, render_uv_toml(plan, header=_HEADER)),
    ):
        path = directory / name
        path.touch(mode=mode)
        path.write_text(content)
        volumes.append((path, target))
    if plan.mounts_mirror and any(url.rstrip("/") == LOCAL_MIRROR_URL for url in plan.indexes):
        volumes.append((plan.mirror_dir.resolve(), MOUNT_POINT))
    options: list[str] = []
    for source, target in volumes:
        if ":" in str(source):
            raise ConfigError(f"cannot mount {source} into the build: its path holds a ':'")
        options += ["--volume", f"{source}:{target}:ro"]
    return options


def _without_network(command: BuilderCommand, argv: list[str], env: dict[str, str]) -> list[str]:
    """No network for an offline build: ``--network none``, or a namespace of its own for chroot isolation.

    :raises UsageError: chroot isolation, offline, and not root (a network namespace needs root).
    """
    if command.isolation(env) != "chroot":
        if command.option("--network", "--net") is None:
            head = len(command.head)
            return [*argv[:head], "--network", "none", *argv[head:]]
        return argv
    if os.geteuid() != 0:
        raise UsageError(
            "an offline build with --isolation chroot needs root: it runs in a network namespace"
        )
    unshare = shutil.which("unshare")
    if unshare is None:
        raise UsageError("an offline build with --isolation chroot needs util-linux's unshare")
    return [unshare, "--net", "--", *argv]


def _buildah(command: BuilderCommand) -> list[str]:
    """Buildah on the builder's image storage (podman's is the same containers-storage).

    :raises BuildRootError: the builder is podman and buildah is not installed.
    """
    program = command.program if command.builder == "buildah" else shutil.which("buildah")
    if program is None:
        raise BuildRootError(
            "the image was built, but removing its empty mount points needs buildah installed"
        )
    return [program, *command.storage_options]


def _call(argv: list[str], env: dict[str, str], what: str) -> str:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise BuildRootError(f"{what}: {message}")
    return result.stdout.strip()


def _remove_stubs(command: BuilderCommand, image: str, env: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """Remove the mount points the build left empty; commit a last layer only if one was there."""
    buildah = _buildah(command)
    container = _call(
        [*buildah, "from", "--pull=never", "--quiet", image], env, f"cannot open the image {image}"
    )
    try:
        mounted = Path(_call([*buildah, "mount", container], env, f"cannot mount the image {image}"))
        removed = _remove_empty(mounted)
        _call([*buildah, "umount", container], env, f"cannot unmount the image {image}")
        if not removed:
            return image, ()
        fmt = command.option("--format") or env.get("BUILDAH_FORMAT") or "oci"
        _call(
            [*buildah, "config", "--created-by", _CREATED_BY, container],
            env,
            "cannot set the layer's history",
        )
        commit = [*buildah, "commit", "--quiet", "--format", fmt, container]
        final = _call(commit, env, f"cannot commit the image {image} without its mount points")
        for tag in command.options("-t", "--tag"):
            _call([*buildah, "tag", final, tag], env, f"cannot tag {final} as {tag}")
        subprocess.run([*buildah, "rm", container], env=env, capture_output=True, check=False)
        # the builder's own image, now untagged: not forced, so an image named elsewhere stays
        subprocess.run([*buildah, "rmi", image], env=env, capture_output=True, check=False)
        return final, removed
    finally:
        subprocess.run([*buildah, "rm", container], env=env, capture_output=True, check=False)


def _remove_empty(root: Path) -> tuple[str, ...]:
    """Unlink each stub file that is empty, then each stub directory that is empty."""
    removed: list[str] = []
    for stub in STUB_FILES:
        path = root / stub.relative_to("/")
        if path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
            path.unlink()
            removed.append(str(stub))
    for stub in STUB_DIRECTORIES:
        path = root / stub.relative_to("/")
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
            removed.append(str(stub))
    return tuple(removed)


def read_base_target(command: BuilderCommand, environ: Mapping[str, str]) -> tuple[str, RootTarget]:
    """The base image of the final stage and its target, read from its files (nothing is run or pulled).

    :raises UsageError: the Containerfile or its base cannot be told (give the target as flags).
    :raises BuildRootError: the image is not in the storage, or its target cannot be read.
    """
    env = dict(environ)
    containerfile = find_containerfile(command)
    if containerfile is None or not containerfile.is_file():
        raise UsageError(
            "cannot find the Containerfile to read its base image: give --python-version and --platform"
        )
    build_args = {}
    for pair in command.options("--build-arg"):
        name, sep, value = pair.partition("=")
        build_args[name] = value if sep else env.get(name, "")
    image = final_base_image(containerfile.read_text(), build_args, target=command.option("--target"))
    if image is None:
        raise UsageError("the final stage starts FROM scratch: give --python-version and --platform")
    buildah = _buildah(command)
    container = _call(
        [*buildah, "from", "--pull=never", "--quiet", image], env, f"cannot open the base image {image}"
    )
    try:
        mounted = Path(_call([*buildah, "mount", container], env, f"cannot mount the base image {image}"))
        try:
            return image, read_root_target(mounted)
        finally:
            subprocess.run([*buildah, "umount", container], env=env, capture_output=True, check=False)
    finally:
        subprocess.run([*buildah, "rm", container], env=env, capture_output=True, check=False)
