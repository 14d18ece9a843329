"""Real diskimage-builder with pipdepot's drop-in ``pypi`` element: a debian-minimal tarball.

The build pip-installs one package in ``install.d`` and another in ``post-install.d``
from the local mirror, with a host ``PIP_INDEX_URL`` that would otherwise win, and the
image must come out with both packages and with no trace of pipdepot.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import clean_environ, debian_mirrors
from tests.wheels import add_to_mirror, build_wheel

VERSION = "1.0"
#: (phase, package): one package per phase, so the log and the image show each hook's install.
PROBES = (("install", "pipdepot-dib-probe-install"), ("post-install", "pipdepot-dib-probe-post"))
PROBE_ELEMENT = "pipdepot-dib-probe"
#: A host index that must lose: nothing listens on port 9 (discard).
HOST_INDEX = "http://127.0.0.1:9/nowhere/"
BUILD_TIMEOUT = 1200

#: Paths (without the leading "/") pipdepot writes while the root is injected; none may be in the image.
INJECTED = (
    ".pipdepot",
    "etc/pip.conf",
    "etc/uv/uv.toml",
    "root/.pip",
    "root/.pydistutils.cfg",
    "root/.config/pip",
    "tmp/pypi",
)

HOOK = """\
#!/bin/bash
set -eu
set -o pipefail
echo "PIPDEPOT-PROBE {phase}: PIP_INDEX_URL=${{PIP_INDEX_URL:-<unset>}}"
python3 -m pip config list
python3 -m pip install --break-system-packages --no-cache-dir {package}
python3 -c 'import {module} as m; print("PIPDEPOT-PROBE {phase}:", m.__file__, m.VERSION)'
echo {package} > /etc/{package}.marker
"""


def _disk_image_create() -> Path:
    found = shutil.which("disk-image-create")
    if found:
        return Path(found)
    beside = Path(sys.executable).parent / "disk-image-create"
    if beside.is_file():
        return beside
    pytest.fail(
        "disk-image-create not found on PATH nor beside the test interpreter "
        f"({beside.parent}); install the `test` extra (pip install -e '.[test]') "
        "or put diskimage-builder's bin directory on PATH"
    )


def _elements_path() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pipdepot", "elements-path"],
        env=clean_environ(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"pipdepot elements-path exited {result.returncode}:\n{result.stderr}")
    return result.stdout.strip()


def _write_probe_element(elements: Path) -> None:
    element = elements / PROBE_ELEMENT
    element.mkdir(parents=True)
    # `pypi` comes in as a dependency, the way existing elements use it.
    (element / "element-deps").write_text("package-installs\npypi\n")
    (element / "package-installs.yaml").write_text("python3-pip:\n")
    for phase, package in PROBES:
        hooks = element / f"{phase}.d"
        hooks.mkdir()
        hook = hooks / f"50-{package}"
        hook.write_text(HOOK.format(phase=phase, package=package, module=package.replace("-", "_")))
        hook.chmod(0o755)


def _tail(log: Path, lines: int = 80) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _run_dib(command: list[str], env: dict[str, str], log: Path) -> int:
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return process.wait(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            # dib's traps unmount and clean up on SIGTERM; its group is the one started here.
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            pytest.fail(f"disk-image-create ran over {BUILD_TIMEOUT} s; log {log}:\n{_tail(log)}")


def _members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball) as archive:
        return {member.name.removeprefix("./").rstrip("/"): member for member in archive.getmembers()}


def _read(tarball: Path, name: str) -> str:
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            if member.name.removeprefix("./") == name:
                data = archive.extractfile(member)
                assert data is not None, f"{name} is not a regular file"
                return data.read().decode()
    pytest.fail(f"{name} is not in {tarball}")


@pytest.mark.root
@pytest.mark.slow
def test_debian_minimal_tarball_installs_from_mirror_and_keeps_no_trace(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("building an image with diskimage-builder needs root (chroot, mounts)")
    disk_image_create = _disk_image_create()
    main_mirror, security_mirror = debian_mirrors()

    cache = tmp_path / "cache"  # DIB_IMAGE_CACHE: keeps dib's apt/debootstrap caches out of ~/.cache
    mirror = cache / "pypi" / "mirror"
    wheels = tmp_path / "wheels"
    for _, package in PROBES:
        add_to_mirror(mirror, build_wheel(wheels, package, VERSION))
    elements = tmp_path / "elements"
    _write_probe_element(elements)
    elements_path = _elements_path()
    output = tmp_path / "out" / "image"
    output.parent.mkdir()
    log = tmp_path / "dib.log"

    env = clean_environ(
        # PATH: diskimage-builder's bin first, then this interpreter's bin. In CI both are
        # the same venv; in a dev setup with an editable pipdepot, the element's
        # environment.d cannot find pipdepot beside itself (src/ layout) and falls back
        # to `command -v pipdepot`, so the dev venv's bin must be on PATH too.
        PATH=os.pathsep.join(
            [str(disk_image_create.parent), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        ),
        ELEMENTS_PATH=f"{elements_path}:{elements}",
        DIB_IMAGE_CACHE=str(cache),
        DIB_RELEASE="bookworm",
        DIB_DEBIAN_COMPONENTS="main",
        DIB_DISTRIBUTION_MIRROR=main_mirror,
        DIB_DEBIAN_SECURITY_MIRROR=security_mirror,
        INITRD="No",  # skip initramfs generation (about 50 s); a tarball needs none
        # dib passes the host environment into the chroot: this index (and clean_environ's
        # PIP_CONFIG_FILE=/dev/null, UV_NO_CONFIG=1) would win over the mirror unless the
        # element drops them there.
        PIP_INDEX_URL=HOST_INDEX,
    )
    command = [
        str(disk_image_create),
        "--offline",
        "-t",
        "tar",
        "-o",
        str(output),
        "debian-minimal",
        PROBE_ELEMENT,
    ]
    status = _run_dib(command, env, log)
    assert status == 0, f"disk-image-create exited {status}; log {log}:\n{_tail(log)}"
    text = log.read_text(errors="replace")
    tarball = output.with_suffix(".tar")
    assert tarball.is_file(), f"no {tarball}; log tail:\n{_tail(log)}"

    # Our element replaced the built-in one.
    override = re.search(r"Element <(\S+)/pypi> overrides <(\S+)/diskimage_builder/elements/pypi>", text)
    assert override, f"no override warning for the pypi element in {log}:\n{_tail(log)}"
    assert Path(override.group(1)).resolve() == Path(elements_path).resolve(), override.group(0)

    # pip looked only at the mounted mirror, never at the host's index, in both phases.
    looking = re.findall(r"Looking in indexes: (.*)", text)
    assert len(looking) == len(PROBES), f"pip index lines: {looking}\n{_tail(log)}"
    assert all(line.strip() == "file:///tmp/pypi" for line in looking), looking
    assert HOST_INDEX not in "\n".join(line for line in text.splitlines() if "index-url" in line)
    for phase, package in PROBES:
        module = package.replace("-", "_")
        wheel = f"{module}-{VERSION}-py3-none-any.whl"
        assert f"Processing /tmp/pypi/{package}/{wheel}" in text, f"{package} not from the mirror"
        assert f"Successfully installed {package}-{VERSION}" in text, package
        assert f"PIPDEPOT-PROBE {phase}: PIP_INDEX_URL=<unset>" in text, f"{phase}: host index leaked in"
        assert f"PIPDEPOT-PROBE {phase}: /usr/local/lib/python3" in text, f"{phase} hook did not import"

    members = _members(tarball)
    names = set(members)
    for _, package in PROBES:
        module = package.replace("-", "_")
        pattern = f"usr/local/lib/python3*/dist-packages/{module}/__init__.py"
        installed = fnmatch.filter(names, pattern)
        assert installed, f"{pattern} is not in the image"
        assert _read(tarball, installed[0]) == f"VERSION = {VERSION!r}\n"
        assert fnmatch.filter(names, f"usr/local/lib/python3*/dist-packages/{module}-{VERSION}.dist-info")
        assert f"etc/{package}.marker" in names

    traces = sorted(
        name for name in names for path in INJECTED if name == path or name.startswith(path + "/")
    )
    assert not traces, f"pipdepot left traces in the image: {traces}"
    tarball.unlink()  # about 840 MB; pytest keeps three runs' temporary directories
