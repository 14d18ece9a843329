"""The core: pure models and the primitives operations are built from."""
