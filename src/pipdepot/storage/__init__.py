"""Store backends; each implements ``storage.store``, never the reverse."""
