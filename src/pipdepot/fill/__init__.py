"""Filling the mirror: requirements and lock files, resolution per target, build environments."""
