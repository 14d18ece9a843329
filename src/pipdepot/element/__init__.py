"""The element's parts: a plan, the files it writes into a root, the journal that restores it."""
