"""What to run and where (``Bench``, built from the command line), and the venvs that holds.

Every contender gets its own venv under the work directory, made once and marked ``.ready``, so a
rerun does not reinstall devpi or proxpi and their versions stay put between parts. pipdepot is the
exception: it is reinstalled from this repository once per invocation, so the numbers are always
those of the working tree. ``--tools-python`` and ``--pipdepot-python`` skip the venvs (the smoke
test uses them to run in seconds with the dev venv).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from common import REPO, clean_env, log, normalize

#: The tools venv: the clients (pip, uv), the report's plots and the profiler.
TOOLS = ("pip", "uv", "matplotlib", "py-spy")
#: Debian bookworm's pip (python3-pip 23.0.1), the ``pip-bookworm`` client: what a build root's own pip is.
BOOKWORM_PIP = "23.0.1"


@dataclass
class Bench:
    """What to run and where, from the command line; handed to every part (as ``b``)."""

    parts: list[str]
    contenders: list[str]
    clients: list[str]
    work: Path
    results: Path
    requirements: Path
    ipa_requirements: Path
    smoke: bool
    repeats: int
    wrk_seconds: int
    wrk_connections: int
    curl_count: int
    small: str
    large: str
    big_file: str
    probes: list[str]
    upstream: str | None
    tools_python: Path | None
    pipdepot_python: Path | None
    bookworm_pip_python: Path | None
    profile: bool
    command: str
    doc: Path
    plot: Path
    report: bool
    _reinstalled: bool = False
    _tools: Path | None = None

    @property
    def names(self) -> list[str]:
        """The normalized names of the requirement set."""
        names = []
        for line in self.requirements.read_text().splitlines():
            line = line.split("#", 1)[0].strip()  # noqa: PLW2901
            if line:
                names.append(normalize(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0]))
        return names

    def data(self, name: str) -> Path:
        """A server's data directory."""
        path = self.work / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def logs(self) -> Path:
        """Where server logs go."""
        path = self.work / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- venvs ----------------------------------------------------------------------------------

    def tools(self) -> Path:
        """The Python of the tools venv (pip, uv, matplotlib, py-spy)."""
        if self.tools_python is not None:
            return self.tools_python
        if self._tools is not None:
            return self._tools
        venv = self.work / "venvs" / "tools"
        python = venv / "bin" / "python"
        if not (venv / ".ready").exists():
            log("creating the tools venv (pip, uv, matplotlib, py-spy)")
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "-U", *TOOLS], check=True, env=clean_env()
            )
            (venv / ".ready").write_text("\n".join(TOOLS))
        self._tools = python
        return python

    def bookworm_pip(self) -> Path:
        """The Python of a venv whose pip is bookworm's (``BOOKWORM_PIP``), run as ``python -m pip``."""
        if self.bookworm_pip_python is not None:
            return self.bookworm_pip_python
        venv = self.work / "venvs" / "pip-bookworm"
        python = venv / "bin" / "python"
        if not (venv / ".ready").exists():
            log(f"creating the pip-bookworm venv (pip {BOOKWORM_PIP})")
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"pip=={BOOKWORM_PIP}"],
                check=True,
                env=clean_env(),
            )
            (venv / ".ready").write_text(f"pip=={BOOKWORM_PIP}")
        return python

    def uv(self) -> Path:
        """The uv binary beside the tools Python (else the one on PATH)."""
        uv = self.tools().parent / "uv"
        if not uv.exists():
            found = shutil.which("uv")
            if found is None:
                raise SystemExit("uv is not installed beside the tools Python")
            return Path(found)
        return uv

    def venv(self, name: str, packages: tuple[str, ...], *, reinstall: str | None = None) -> Path:
        """The bin directory of a contender's venv, made with uv from PyPI (or this repository)."""
        venv = self.work / "venvs" / name
        ready = venv / ".ready"
        if ready.exists() and reinstall is None:
            return venv / "bin"
        if not ready.exists():
            log(f"creating the {name} venv: {' '.join(packages)}")
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run(
                [str(self.uv()), "venv", "--no-config", "-q", "--python", sys.executable, str(venv)],
                check=True,
                env=clean_env(),
            )
        argv = [
            str(self.uv()),
            "pip",
            "install",
            "--no-config",
            "-q",
            "--python",
            str(venv / "bin" / "python"),
        ]
        if reinstall is not None:
            argv += ["--reinstall-package", reinstall]
        subprocess.run([*argv, *packages], check=True, env=clean_env())
        ready.write_text("\n".join(packages))
        return venv / "bin"

    def pipdepot_py(self) -> Path:
        """pipdepot's Python: this repository installed into its own venv, once per invocation."""
        if self.pipdepot_python is not None:
            return self.pipdepot_python
        if not self._reinstalled:
            log("installing pipdepot from this repository into its venv")
            self.venv("pipdepot", (str(REPO),), reinstall="pipdepot")
            self._reinstalled = True
        return self.work / "venvs" / "pipdepot" / "bin" / "python"

    def upstream_simple(self) -> str:
        """The upstream index pipdepot and the saved pages come from (PyPI unless --upstream).

        Asked of pypi_simple in pipdepot's venv: the same default index pipdepot itself uses.
        """
        if self.upstream is not None:
            return self.upstream
        out = subprocess.run(
            [str(self.pipdepot_py()), "-c", "import pypi_simple; print(pypi_simple.PYPI_SIMPLE_ENDPOINT)"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
