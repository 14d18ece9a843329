"""``python -m pipdepot``."""

from __future__ import annotations

from pipdepot.cli import main

main()
