"""What a grant does at the door, behind one interface: pulse the kiosk's relay, or tell the panel.

`door_hardware.outputs` lists one or more outputs. The relay output drives the lock itself; the
panel outputs (OSDP in kiosk.door.osdp_reader, Wiegand in kiosk.door.wiegand) never touch a lock:
they send the person's card number and the site's access panel decides. Each `grant` returns a
`SendResult` that the door service records, so a credential that could not be sent (no card,
link down, a number that does not fit the format) is in the audit trail, never silently lost.
Panel outputs that hear back from the panel (OSDP's LED/buzzer commands, its link state, a new
secure channel key it set) report `PanelNotice`s to the callback the door service gives them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from db.models import utcnow
from kiosk.door.relay import DoorRelay
from kiosk.storage.credentials import Card


@dataclass(frozen=True)
class SendResult:
    output: str
    sent: bool
    detail: str


@dataclass(frozen=True)
class PanelNotice:
    """Something the panel told the kiosk: an answer (granted / refused), a change of link state, or a new key."""

    output: str
    kind: Literal["answer", "link", "key"]
    granted: bool | None  # answer: the panel's verdict; link: True = up, False = lost; key: True = saved
    detail: str
    time: datetime


NoticeCallback = Callable[[PanelNotice], None]


class DoorOutput(ABC):
    """One way of acting on a grant."""

    name: str
    drives_lock: bool = False

    @abstractmethod
    def grant(self, person: str | None, card: Card | None) -> SendResult:
        """Act on a grant for `person` (whose card is `card`, if any); never raises for a send that failed.
        Panel outputs are also called with person None and the unknown-face card for a refused stranger."""

    def start(self) -> None:
        """Begin talking to the hardware; the door loop calls it when it starts, after the models loaded."""

    def link(self) -> str:
        """One line on the link's state, for the status file and `kiosk doctor`."""
        return "ok"

    def listen(self, callback: NoticeCallback) -> None:
        """Where the panel's answers and link changes go; outputs the panel never answers ignore it."""

    def close(self) -> None:
        """Stop and release what the output holds (idempotent)."""


class RelayOutput(DoorOutput):
    """Today's door: the kiosk pulses its own lock relay."""

    name = "relay"
    drives_lock = True

    def __init__(self, relay: DoorRelay, pulse_seconds: float):
        self.relay = relay
        self.pulse_seconds = pulse_seconds

    def grant(self, person: str | None, card: Card | None) -> SendResult:
        self.relay.pulse(self.pulse_seconds)
        return SendResult(self.name, True, f"relay open {self.pulse_seconds:g} s")


def notice(output: str, kind: Literal["answer", "link", "key"], granted: bool | None, detail: str) -> PanelNotice:
    return PanelNotice(output, kind, granted, detail, utcnow())
