"""Commands over MQTT, each signed: HMAC-SHA256 with a shared secret, a timestamp, a fresh nonce.

The broker's authentication and ACL are the first gate; this is the second, so that on a
shared broker a forged, altered or replayed message does nothing. A command is a JSON object
published to ``<prefix>/command``::

    {"command": "open" | "lockdown" | "reload", "args": {} | {"on": true|false},
     "sender": "who sends it", "timestamp": <unix seconds>, "nonce": "<16-64 of [A-Za-z0-9_-]>",
     "signature": "<hex HMAC-SHA256 of canonical(topic, the other fields)>"}

``canonical`` is the JSON of the other fields plus ``"topic"`` (so a command for one kiosk
cannot be replayed to another sharing the secret), keys sorted, no spaces, ASCII only. A
command is refused when it is not such an object, unsigned or wrongly signed, its timestamp is
further than the window from the kiosk's clock, or its nonce was seen within the window.
Seen nonces are kept in the database for twice the window, so a restart does not reopen
replays; older nonces cannot be replayed anyway, their timestamps being stale.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db.models import CommandNonce
from kiosk.errors import ConfigError

COMMANDS = frozenset({"open", "lockdown", "reload"})
FIELDS = frozenset({"command", "args", "sender", "timestamp", "nonce", "signature"})
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SIGNATURE = re.compile(r"^[0-9a-f]{64}$")


class Refused(Exception):
    """A command that is not acted on; the message says why (it goes to the admin-action log)."""


@dataclass(frozen=True)
class Command:
    command: str
    args: dict[str, Any]
    sender: str
    timestamp: float
    nonce: str


def read_secret(path: Path, what: str) -> bytes:
    """A secret from a file its owner alone may read (the first line, stripped)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"config: {what} {path} cannot be read: {exc.strerror or exc}") from None
    if mode & 0o077:
        raise ConfigError(f"config: {what} {path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    secret = text[0].strip() if text else ""
    if not secret:
        raise ConfigError(f"config: {what} {path} is empty")
    return secret.encode()


def canonical(topic: str, fields: dict[str, Any]) -> bytes:
    content = {k: v for k, v in fields.items() if k != "signature"} | {"topic": topic}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(secret: bytes, topic: str, command: str, sender: str, timestamp: float, args: dict[str, Any] | None = None, nonce: str | None = None) -> dict[str, Any]:
    """A signed command, ready to publish as JSON (what a client does; the tests and the bench use it)."""
    fields: dict[str, Any] = {"command": command, "args": args or {}, "sender": sender, "timestamp": timestamp, "nonce": nonce or secrets.token_hex(16)}
    fields["signature"] = hmac.new(secret, canonical(topic, fields), hashlib.sha256).hexdigest()
    return fields


def parse(payload: bytes) -> dict[str, Any]:
    """The JSON object and its shape; anything else is Refused as malformed."""
    try:
        fields = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused("malformed: not JSON") from None
    if not isinstance(fields, dict):
        raise Refused("malformed: not a JSON object")
    if "signature" not in fields:
        raise Refused("unsigned")
    if set(fields) != FIELDS:
        raise Refused(f"malformed: fields must be exactly {sorted(FIELDS)}")
    if fields["command"] not in COMMANDS:
        raise Refused(f"malformed: unknown command {str(fields['command'])[:40]!r}")
    if not isinstance(fields["sender"], str) or not 0 < len(fields["sender"]) <= 80:
        raise Refused("malformed: sender must be a name of 1 to 80 characters")
    timestamp = fields["timestamp"]
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or not math.isfinite(timestamp):
        raise Refused("malformed: timestamp must be a number (unix seconds)")
    if not isinstance(fields["nonce"], str) or not NONCE.match(fields["nonce"]):
        raise Refused("malformed: nonce must be 16 to 64 of A-Z a-z 0-9 _ -")
    if not isinstance(fields["signature"], str) or not SIGNATURE.match(fields["signature"]):
        raise Refused("malformed: signature must be 64 lower-case hex digits")
    args = fields["args"]
    if not isinstance(args, dict):
        raise Refused("malformed: args must be an object")
    if fields["command"] == "lockdown":
        if set(args) != {"on"} or not isinstance(args["on"], bool):
            raise Refused('malformed: lockdown takes args {"on": true|false}')
    elif args:
        raise Refused(f"malformed: {fields['command']} takes no args")
    return fields


class Verifier:
    """Checks signature, time window and nonce; the nonce is recorded in the caller's transaction."""

    def __init__(self, secret: bytes, topic: str, window_seconds: float):
        self.secret = secret
        self.topic = topic
        self.window = window_seconds

    def check(self, session: Session, fields: dict[str, Any], now: datetime) -> Command:
        expected = hmac.new(self.secret, canonical(self.topic, fields), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields["signature"]):
            raise Refused("bad signature")
        skew = now.timestamp() - float(fields["timestamp"])
        if abs(skew) > self.window:
            raise Refused(f"stale: timestamp {skew:+.0f} s from the kiosk's clock (window {self.window:g} s)")
        session.execute(delete(CommandNonce).where(CommandNonce.seen_at < now - timedelta(seconds=2 * self.window)))
        if session.scalar(select(CommandNonce.nonce).where(CommandNonce.nonce == fields["nonce"])) is not None:
            raise Refused("replayed: nonce already used")
        session.add(CommandNonce(nonce=fields["nonce"], seen_at=now.astimezone(timezone.utc)))
        return Command(fields["command"], dict(fields["args"]), fields["sender"], float(fields["timestamp"]), fields["nonce"])
