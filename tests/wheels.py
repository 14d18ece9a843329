"""Real wheels and PEP 503 trees for tests, built here with zipfile: no build backend, no network."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import tarfile
import zipfile
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

if TYPE_CHECKING:
    from pathlib import Path


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: tuple[str, ...] = (),
    tag: str = "py3-none-any",
    payload: int = 0,
    summary: str | None = None,
) -> Path:
    """A pure-Python wheel whose module ``<name>`` has ``VERSION`` (and ``payload`` random bytes)."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = "\n".join(
        [
            "Metadata-Version: 2.1",
            f"Name: {name}",
            f"Version: {version}",
            *([f"Summary: {summary}"] if summary is not None else []),
            *(f"Requires-Dist: {req}" for req in requires),
            "",
        ]
    )
    wheel_meta = f"Wheel-Version: 1.0\nGenerator: pipdepot-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    files: dict[str, str | bytes] = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": wheel_meta,
    }
    if payload:
        files[f"{module}/payload.bin"] = os.urandom(payload)
    raw = {path: text.encode() if isinstance(text, str) else text for path, text in files.items()}
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in raw.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{module}-{version}-{tag}.whl"
    raw[f"{dist_info}/RECORD"] = files[f"{dist_info}/RECORD"].encode()  # type: ignore[union-attr]
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in raw.items():
            archive.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return path


def build_sdist(
    directory: Path, name: str, version: str, *, buildable: bool = False, build_requires: tuple[str, ...] = ()
) -> Path:
    """An sdist: ``PKG-INFO`` only, or (``buildable``) one pip and uv build offline.

    A buildable sdist carries its own PEP 517 backend (``backend-path``), which
    writes a wheel with zipfile; its static metadata (2.2) lets uv resolve it
    unbuilt. ``build_requires`` become ``build-system.requires``: they must be
    installable from the index, though the backend never imports them.
    """
    stem = f"{name.replace('-', '_')}-{version}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.tar.gz"
    info = f"Metadata-Version: {'2.2' if buildable else '2.1'}\nName: {name}\nVersion: {version}\n"
    files = {"PKG-INFO": info}
    if buildable:
        requires = ", ".join(f'"{r}"' for r in build_requires)
        files["pyproject.toml"] = (
            f'[build-system]\nrequires = [{requires}]\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        )
        files["backend.py"] = _BACKEND.format(name=name, version=version)
    return _write_sdist(path, stem, files)


_BACKEND = """\
import base64, hashlib, os, zipfile

NAME, VERSION = {name!r}, {version!r}
MODULE = NAME.replace("-", "_")
DIST_INFO = f"{{MODULE}}-{{VERSION}}.dist-info"
METADATA = f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n"
WHEEL = "Wheel-Version: 1.0\\nGenerator: backend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(directory, config_settings=None):
    os.makedirs(os.path.join(directory, DIST_INFO))
    with open(os.path.join(directory, DIST_INFO, "METADATA"), "w") as stream:
        stream.write(METADATA)
    return DIST_INFO


def build_wheel(directory, config_settings=None, metadata_directory=None):
    files = {{
        f"{{MODULE}}/__init__.py": f"VERSION = {{VERSION!r}}\\n",
        f"{{DIST_INFO}}/METADATA": METADATA,
        f"{{DIST_INFO}}/WHEEL": WHEEL,
    }}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{{path}},sha256={{digest}},{{len(text.encode())}}")
    files[f"{{DIST_INFO}}/RECORD"] = "\\n".join([*record, f"{{DIST_INFO}}/RECORD,,"]) + "\\n"
    filename = f"{{MODULE}}-{{VERSION}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, filename), "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    return filename
"""


def write_simple_tree(mirror: Path) -> None:
    """Give each project directory of ``mirror`` the ``index.html`` a file:// index needs."""
    for project in sorted(p for p in mirror.iterdir() if p.is_dir()):
        links = []
        for file in sorted(project.iterdir()):
            if file.name == "index.html":
                continue
            sha256 = hashlib.sha256(file.read_bytes()).hexdigest()
            links.append(
                f'<a href="{html.escape(file.name)}#sha256={sha256}">{html.escape(file.name)}</a><br>'
            )
        body = "\n".join(links)
        (project / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{body}\n</body></html>\n")


def add_to_mirror(mirror: Path, distribution: Path) -> Path:
    """Copy a wheel or sdist into its project's directory of ``mirror`` and refresh the tree."""
    if distribution.name.endswith(".whl"):
        name = parse_wheel_filename(distribution.name)[0]
    else:
        name = parse_sdist_filename(distribution.name)[0]
    target = mirror / canonicalize_name(name) / distribution.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(distribution.read_bytes())
    write_simple_tree(mirror)
    return target


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_setuptools_sdist(
    directory: Path, name: str, version: str, *, pyproject: str | None = None, setup_py: str | None = None
) -> Path:
    """An sdist real setuptools builds: ``setup.py`` (and ``pyproject``, if given), like docopt 0.6.2.

    Without ``pyproject`` it is a legacy sdist: pip builds it with its fallback build requirements.
    ``setup_py`` replaces the generated ``setup.py`` (one that fails, as old ones do on new setuptools).
    """
    module = name.replace("-", "_")
    stem = f"{module}-{version}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.tar.gz"
    files = {
        "PKG-INFO": f"Metadata-Version: 1.1\nName: {name}\nVersion: {version}\n",
        "setup.py": f"from setuptools import setup\nsetup(name={name!r}, version={version!r}, "
        f"py_modules=[{module!r}])\n",
        f"{module}.py": f"VERSION = {version!r}\n",
    }
    if pyproject is not None:
        files["pyproject.toml"] = pyproject
    if setup_py is not None:
        files["setup.py"] = setup_py
    return _write_sdist(path, stem, files)


def _write_sdist(path: Path, stem: str, files: dict[str, str]) -> Path:
    """``files`` under ``<stem>/`` in a gzipped tar at ``path``."""
    with tarfile.open(path, "w:gz") as archive:
        for member_name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"{stem}/{member_name}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path
