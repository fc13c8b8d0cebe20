"""A person's name as stored: one spelling per name, printable, and within the column.

NFC and NFD spellings of "Zoë" look identical but compare unequal, so without normalising
they become two people; a tab or newline breaks every table that prints the name; and the
column is 200 characters (PostgreSQL enforces it, SQLite does not). Every way a name comes
in (`kiosk enroll`, `kiosk identities remove`, the admin app's enrol dialogs) goes through
`person_name`, so all of them store and look up the same spelling or refuse with one line.
"""

from __future__ import annotations

import unicodedata

from kiosk.errors import KioskError

MAX_NAME = 200  # db.models.Person.name is String(200)
# Bidirectional overrides and isolates make a name display as another; zero-width joiners
# (format characters too) are left alone: some scripts need them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def person_name(raw: str) -> str:
    """``raw`` normalised to NFC and trimmed; a KioskError naming the problem if it cannot be a name."""
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise KioskError("a person's name cannot be empty")
    control = next((c for c in name if unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in _BIDI_CONTROLS), None)
    if control is not None:
        raise KioskError(f"a person's name cannot hold control characters (found {_shown(control)}): {name[:40]!r}")
    if len(name) > MAX_NAME:
        raise KioskError(f"a person's name can have at most {MAX_NAME} characters (this one has {len(name)}): {name[:40]!r}...")
    return name


def _shown(char: str) -> str:
    known = {"\t": "a tab", "\n": "a newline", "\r": "a carriage return"}
    return known.get(char, f"U+{ord(char):04X}")
