"""The door kiosk: detect, align and recognise faces at a door, and drive its lock relay."""

__version__ = "0.1.0"
