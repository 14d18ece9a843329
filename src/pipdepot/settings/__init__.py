"""Settings: flags, ``PIPDEPOT_*`` variables, the element's ``DIB_*`` variables, a file.

Each command's settings are merged in one place, highest first: command-line flags,
``PIPDEPOT_*`` variables, diskimage-builder's ``DIB_*`` variables (with the ``pypi``
element's meaning), the TOML config file, defaults. Nothing but the mapping and the file
given is read, and every value returned names its source, so ``pipdepot plan`` can say why.
One module per concern: ``keys`` (the config file's keys), ``sources`` (where a value comes
from, in which order), ``values`` (parsing, each error naming its source), and one module
per command family: ``plan``, ``serve``, ``targets``.
"""

from __future__ import annotations

from pipdepot.settings.keys import CONFIG_KEYS
from pipdepot.settings.plan import PlanFlags, Settings, load_settings
from pipdepot.settings.serve import ServeFlags, ServeSettings, load_serve_settings
from pipdepot.settings.targets import TargetSettings, load_targets

__all__ = [
    "CONFIG_KEYS",
    "PlanFlags",
    "ServeFlags",
    "ServeSettings",
    "Settings",
    "TargetSettings",
    "load_serve_settings",
    "load_settings",
    "load_targets",
]


def __dir__() -> list[str]:
    return __all__
