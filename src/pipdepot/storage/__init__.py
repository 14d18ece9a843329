"""Store backends; each imports ``core.store``, never the reverse."""
