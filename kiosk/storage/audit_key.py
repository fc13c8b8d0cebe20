"""The audit chain's HMAC key: 32 random bytes (hex) in a file outside the data directory, owner-only.

Kept apart from the database for the same reason as the crop key: whoever copies or writes
the data directory must not also hold what proves the log authentic. The checks mirror the
crop key's (kiosk/storage/crop_store.py), with messages naming `audit.key_file`.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from kiosk.errors import ConfigError
from kiosk.storage.crop_store import write_new_key_file

KEY = "audit.key_file"


def load_audit_key(key_file: Path, home: Path) -> bytes:
    """The key's bytes; ConfigError (one line) for a key inside the data directory, readable by others, or malformed."""
    path = key_file.expanduser().resolve()
    if path.is_relative_to(home.expanduser().resolve()):
        raise ConfigError(f"config: '{KEY}' must lie outside the data directory {home}: {key_file}")
    if not path.is_file():
        raise ConfigError(f"config: '{KEY}' names a file that does not exist: {key_file} (create one with `kiosk audit new-key {key_file}`)")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"config: '{KEY}' {key_file} is readable by other users: chmod 600 it")
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        key = b""
    if len(key) < 32:
        raise ConfigError(f"config: '{KEY}' {key_file} is not an audit key (64 hex digits; `kiosk audit new-key` makes one)")
    return key


def new_audit_key(path: Path) -> None:
    """Write a fresh audit key; never overwrites one (that would orphan the log's proof)."""
    write_new_key_file(path, secrets.token_hex(32).encode())
