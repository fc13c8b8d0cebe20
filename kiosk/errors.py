"""Errors the kiosk reports to a person as one line (the CLI prints them, never a traceback)."""


class KioskError(Exception):
    """A problem the operator can fix; its message says what and where."""


class ConfigError(KioskError):
    """A wrong key, a wrong type, or a configured file that is missing."""


class ImageError(KioskError):
    """An image that cannot be read as a picture (empty, corrupt, not an image, too large)."""


class StorageFull(KioskError):
    """The disk holding the data directory is full: nothing new can be stored until space is freed."""
