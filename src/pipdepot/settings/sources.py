"""Where a setting comes from: a flag, a ``PIPDEPOT_*`` or ``DIB_*`` variable, the config file, a default.

Precedence is written once, in :meth:`Sources.setting`: the flag, then ``PIPDEPOT_<KEY>``,
then the ``pypi`` element's ``DIB_*`` variable, then the config file's key, then the default.
Every candidate is read (so a bad value is refused even where a higher source wins), and the
value taken keeps its source's name, so ``pipdepot plan`` can say why.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from pipdepot.element.plan import Sourced
from pipdepot.settings.keys import CONFIG_KEYS
from pipdepot.settings.values import FALSE, as_bool, as_scalar, as_str, as_str_tuple

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "BOOL",
    "NUMBER",
    "TEXT",
    "WORDS",
    "Kind",
    "Sources",
    "first",
    "from_flag",
    "public_index_default",
    "read_sources",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_PUBLIC_INDEX_CONSTANT = "PYPI_SIMPLE_ENDPOINT"


def __dir__() -> list[str]:
    return __all__


@dataclass(frozen=True, slots=True)
class Kind(Generic[T_co]):
    """How a variable (a string) and a config file value (TOML) spell one type of setting."""

    from_variable: Callable[[str, str], T_co]
    from_config: Callable[[object, str], T_co]


def _text(value: str, _source: str) -> str:
    return value


def _words(value: str, _source: str) -> tuple[str, ...]:
    return tuple(value.split())


#: A string, checked where it is used.
TEXT = Kind(_text, as_str)
#: A number, kept as its text until it is parsed with its own bounds.
NUMBER = Kind(_text, as_scalar)
BOOL = Kind(as_bool, as_bool)
#: A space-separated variable, a list in the config file.
WORDS = Kind(_words, as_str_tuple)


def first(*candidates: Sourced[T] | None, default: T) -> Sourced[T]:
    """The first candidate given, else the default (its source ``default``)."""
    for candidate in candidates:
        if candidate is not None:
            return candidate
    return Sourced(default, "default")


def from_flag(name: str, value: T | None) -> Sourced[T] | None:
    """A flag's value, unless it was not given (``None``)."""
    return None if value is None else Sourced(value, f"flag {name}")


@dataclass(frozen=True, slots=True)
class Sources:
    """The sources below the flags: the environment's non-empty variables and the config file."""

    env: Mapping[str, str]
    config: Mapping[str, object]
    config_file: Path | None

    @property
    def where(self) -> str:
        """The config file as sources name it."""
        return f"config file {self.config_file}"

    def setting(
        self,
        flag: Sourced[T] | None,
        key: str,
        kind: Kind[T],
        *,
        default: T,
        dib: Sourced[T] | None = None,
    ) -> Sourced[T]:
        """The first of ``flag``, ``PIPDEPOT_<KEY>``, ``dib``, the config file's ``key``, ``default``."""
        return first(
            flag,
            self.variable("PIPDEPOT_" + key.upper().replace("-", "_"), kind),
            dib,
            self.config_value(key, kind),
            default=default,
        )

    def variable(self, name: str, kind: Kind[T]) -> Sourced[T] | None:
        """A variable's value, named after the variable, unless it is unset or empty."""
        return Sourced(kind.from_variable(self.env[name], name), name) if name in self.env else None

    def config_value(self, key: str, kind: Kind[T]) -> Sourced[T] | None:
        """The config file's ``key``, checked against ``kind``; its source names the file and the key."""
        if key not in self.config:
            return None
        source = f"{self.where} ({key})"
        return Sourced(kind.from_config(self.config[key], source), source)

    def dib_flag(self, name: str, notes: list[str]) -> Sourced[bool] | None:
        """diskimage-builder's rule: any non-empty value is true, even ``0``."""
        if name not in self.env:
            return None
        if self.env[name].strip().lower() in FALSE:
            notes.append(
                f"{name}={self.env[name]!r} counts as set, as in diskimage-builder (any non-empty value); "
                f"use the pipdepot flag or variable to say otherwise"
            )
        return Sourced(True, name)  # noqa: FBT003

    def mirror_dir(self, flag: Sourced[str] | None) -> Sourced[str]:
        """The local mirror directory, the same for the element and the server."""
        return self.setting(
            flag,
            "mirror-dir",
            TEXT,
            dib=self._dib_mirror_dir(),
            default=str(self._image_cache() / "pypi" / "mirror"),
        )

    def _dib_mirror_dir(self) -> Sourced[str] | None:
        if "DIB_IMAGE_CACHE" not in self.env:
            return None
        return Sourced(str(Path(self.env["DIB_IMAGE_CACHE"]) / "pypi" / "mirror"), "DIB_IMAGE_CACHE")

    def _image_cache(self) -> Path:
        """diskimage-builder's default ``DIB_IMAGE_CACHE``: ``~/.cache/image-create``, XDG-aware."""
        xdg = self.env.get("XDG_CACHE_HOME", "")
        cache = Path(xdg) if xdg.startswith("/") else Path(self.env.get("HOME", str(Path.home()))) / ".cache"
        return cache / "image-create"


def read_sources(flag: str | None, environ: Mapping[str, str]) -> Sources:
    """The environment's non-empty variables and the config file named by ``flag``, if any.

    :raises ValueError: the config file is unreadable, not TOML, or holds an unknown key.
    """
    env = {k: v for k, v in environ.items() if v != ""}
    config_file, config = _read_config(flag, env)
    return Sources(env, config, config_file)


def _read_config(flag: str | None, env: Mapping[str, str]) -> tuple[Path | None, dict[str, object]]:
    if flag is not None:
        path, explicit = Path(flag), "--config"
    elif "PIPDEPOT_CONFIG" in env:
        path, explicit = Path(env["PIPDEPOT_CONFIG"]), "PIPDEPOT_CONFIG"
    else:
        xdg = env.get("XDG_CONFIG_HOME", "")
        home = Path(env.get("HOME", str(Path.home())))
        path, explicit = (
            (Path(xdg) if xdg.startswith("/") else home / ".config") / "pipdepot" / "config.toml",
            "",
        )
        if not path.is_file():
            return None, {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{explicit}: config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"config file {path}: {exc}") from None
    unknown = sorted(data.keys() - CONFIG_KEYS.keys())
    if unknown:
        raise ValueError(f"config file {path}: unknown key {unknown[0]!r}")
    return path, data


def public_index_default() -> str:
    """The public index's address, from the library that knows it rather than from us.

    The constant is read from pypi-simple's source: importing the package pulls in pydantic,
    requests and bs4, 15 MB a server would carry for its whole life to read one string.
    """
    spec = importlib.util.find_spec("pypi_simple")
    if spec is not None and spec.origin is not None:
        with contextlib.suppress(OSError, SyntaxError, ValueError):
            tree = ast.parse(Path(spec.origin).read_bytes())
            for node in tree.body:
                if (
                    isinstance(node, ast.AnnAssign | ast.Assign)
                    and _PUBLIC_INDEX_CONSTANT in {ast.unparse(t) for t in _targets_of(node)}
                    and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)
                ):
                    return node.value.value
    from pypi_simple import PYPI_SIMPLE_ENDPOINT  # noqa: PLC0415 (the slow way, if its source moved)

    return str(PYPI_SIMPLE_ENDPOINT)


def _targets_of(node: ast.AnnAssign | ast.Assign) -> list[ast.expr]:
    return node.targets if isinstance(node, ast.Assign) else [node.target]
