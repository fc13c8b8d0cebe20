"""Errors the kiosk reports to a person as one line (the CLI prints them, never a traceback).

The root, KioskError, and StorageFull live in db.errors (the database raises them and must not
import kiosk/); they are re-exported here so the rest of the kiosk has one place to import from.
"""

from db.errors import KioskError, StorageFull

__all__ = ["ConfigError", "ImageError", "KioskError", "StorageFull"]


class ConfigError(KioskError):
    """A wrong key, a wrong type, or a configured file that is missing."""


class ImageError(KioskError):
    """An image that cannot be read as a picture (empty, corrupt, not an image, too large)."""
