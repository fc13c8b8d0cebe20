"""The errors the database layer raises, at the bottom of the stack so db/ needs nothing above it.

kiosk.errors re-exports them beside the kiosk's own: every caller catches one KioskError family,
and the CLI shows any of it as one line, never a traceback.
"""


class KioskError(Exception):
    """A problem the operator can fix; its message says what and where."""


class StorageFull(KioskError):
    """The disk holding the data directory is full: nothing new can be stored until space is freed."""
