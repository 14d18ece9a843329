"""buildah with its storage under one directory, and a base image made from a Debian root."""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Buildah:
    """buildah with its storage under one directory, removed afterwards."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if shutil.which("buildah") is None:
            pytest.fail("buildah is not installed (apt-get install buildah runc)")
        self.prefix = [
            "buildah",
            "--root",
            str(directory / "storage"),
            "--runroot",
            str(directory / "run"),
            "--storage-driver",
            "overlay",
        ]

    def __call__(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [*self.prefix, *args], capture_output=True, text=True, check=False, timeout=timeout
        )
        if result.returncode != 0:
            pytest.fail(f"buildah {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout.strip()

    def close(self) -> None:
        subprocess.run([*self.prefix, "rm", "--all"], capture_output=True, check=False)
        subprocess.run([*self.prefix, "rmi", "--all", "--force"], capture_output=True, check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def import_base(buildah: Buildah, root: Path, name: str) -> None:
    """A base image from a Debian root: no registry is reachable here."""
    container = buildah("from", "scratch")
    mount = buildah("mount", container)
    subprocess.run(["cp", "-a", f"{root}/.", mount], check=True)
    buildah("umount", container)
    buildah("config", "--env", PATH, container)
    buildah("commit", "--quiet", container, name)
    buildah("rm", container)
