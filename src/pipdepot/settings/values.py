"""Settings' values: each parsed and checked once, every error naming the value's source.

A source is a flag, a variable or a config file key (``"flag --port"``, ``"PIPDEPOT_PORT"``,
``"config file F (port)"``): the user learns which of them to fix, not only that a value is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast, get_args

from pipdepot.element.plan import Sourced, UvIndexStrategy
from pipdepot.errors import ConfigError
from pipdepot.storage.locate import MirrorLocation, S3Location, is_object_store

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "FALSE",
    "as_bool",
    "as_mebibytes",
    "as_mirror_dir",
    "as_mirror_location",
    "as_port",
    "as_rate",
    "as_retries",
    "as_scalar",
    "as_seconds",
    "as_str",
    "as_str_tuple",
    "as_strategy",
    "as_timeout",
    "optional",
    "parse",
]

T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on"})
#: The spellings of false; diskimage-builder's own variables do not know them (any value is true).
FALSE = frozenset({"0", "false", "no", "off"})


def __dir__() -> list[str]:
    return __all__


def parse(value: Sourced[str], convert: Callable[[object, str], T]) -> Sourced[T]:
    """The value converted, its source kept."""
    return Sourced(convert(value.value, value.source), value.source)


def optional(value: Sourced[str | None], convert: Callable[[object, str], T]) -> Sourced[T | None]:
    """As :func:`parse`; ``None`` (not set) stays ``None``."""
    if value.value is None:
        return Sourced(None, value.source)
    return parse(Sourced(value.value, value.source), convert)


def as_bool(value: object, source: str) -> bool:
    """A TOML boolean, or one of the spellings of true and false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{source}: {value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def as_str(value: object, source: str) -> str:
    """A TOML string."""
    if isinstance(value, str):
        return value
    raise ValueError(f"{source}: {value!r} is not a string")


def as_scalar(value: object, source: str) -> str:
    """A TOML string or number, as text, parsed later with its own bounds."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{source}: {value!r} is not a number")


def as_str_tuple(value: object, source: str) -> tuple[str, ...]:
    """A TOML list of strings."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(cast("list[str]", value))
    raise ValueError(f"{source}: {value!r} is not a list of strings")


def as_retries(value: object, source: str) -> int:
    """Retries per request for pip: 0 or more."""
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(f"{source}: {value!r} is not a number of retries (0 or more)")
    return int(text)


def as_timeout(value: object, source: str) -> float:
    """A socket timeout for pip: more than 0 seconds, less than a day."""
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise ValueError(f"{source}: {value!r} is not a timeout in seconds (more than 0)")
    return seconds


def as_port(value: object, source: str) -> int:
    """A TCP port, 1-65535."""
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{source}: {value!r} is not a TCP port (1-65535)")
    return int(text)


def as_seconds(value: object, source: str, *, allow_zero: bool) -> float:
    """A duration: 0 (if allowed) to a year."""
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = -1.0
    if seconds < 0 or (seconds == 0 and not allow_zero) or seconds > 365 * 86400:
        raise ValueError(f"{source}: {value!r} is not a number of seconds")
    return seconds


def as_rate(value: object, source: str) -> int:
    """A download rate in bytes a second, more than 0."""
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 1 << 40:
        raise ValueError(f"{source}: {value!r} is not a number of bytes per second (more than 0)")
    return int(text)


def as_mebibytes(value: object, source: str) -> int:
    """A size in MiB (1 MiB to 1 TiB), returned in bytes."""
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) <= 1 << 20:
        raise ValueError(f"{source}: {value!r} is not a size in MiB (1 to 1048576)")
    return int(text) * 1024 * 1024


def as_mirror_location(value: Sourced[str], env: Mapping[str, str]) -> MirrorLocation:
    """The mirror's directory or ``s3://`` location (the element's bind mount needs a directory)."""
    if is_object_store(value.value):
        try:
            return S3Location.of(value.value, env)
        except ConfigError as exc:
            raise ValueError(f"{value.source}: {exc}") from None
    return as_mirror_dir(value)


def as_mirror_dir(value: Sourced[str]) -> Path:
    """The mirror directory; a path that is something else is refused here, for every command alike."""
    if is_object_store(value.value):
        raise ValueError(
            f"{value.source}: {value.value} is an object store; the element bind-mounts a local "
            "directory (fill one with pipdepot export and import)"
        )
    path = Path(value.value).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{value.source}: {path} is not a directory")
    return path


def as_strategy(value: object, source: str) -> UvIndexStrategy:
    """One of uv's index strategies."""
    choices = get_args(UvIndexStrategy)
    if value not in choices:
        raise ValueError(f"{source}: {value!r} is not one of {', '.join(choices)}")
    return cast("UvIndexStrategy", value)
