"""The door's own screen: a greeting for whoever is let in, "not recognised" otherwise, a status line.

It runs the door loop itself, in a thread worker, and listens to its decisions: the loop calls
the listener on its own thread, which only posts a message (thread-safe), so the camera loop
never waits for the screen. A greeting stays up a few seconds, then the screen returns to idle.
If the loop stops, the app exits with status 1 so systemd restarts the whole unit.

The loop is anything with the three methods of ``DoorFeed`` (the door service has them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Protocol

from textual import work
from textual.app import App, ComposeResult
from textual.containers import Center, Middle
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static

from db.models import utcnow
from kiosk.door.status import PANEL_REFUSED, DoorDecision, DoorStatus
from kiosk.liveness.base import ATTACK_REASON

GREET_SECONDS = 4.0


class DoorFeed(Protocol):
    """What the display needs from the door service."""

    def add_listener(self, callback: Callable[[DoorDecision], None]) -> None: ...

    def status(self) -> DoorStatus: ...

    def run(self, stop: threading.Event) -> None: ...


@dataclass
class Decided(Message):
    decision: DoorDecision


@dataclass
class Prompted(Message):
    text: str


@dataclass
class LoopStopped(Message):
    error: str


class DoorDisplayApp(App[None]):
    TITLE = "Door"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { layout: vertical; }
    #face { height: 1fr; }
    #message { width: auto; height: auto; padding: 2 6; text-style: bold; text-align: center; }
    #message.idle { color: $text-muted; border: round $panel; }
    #message.granted { background: $success; color: $text; border: thick $success-lighten-2; }
    #message.refused { background: $error-darken-1; color: $text; border: thick $error; }
    #status { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(
        self,
        door: DoorFeed,
        *,
        clock: Callable[[], datetime] = utcnow,
        tz: tzinfo | None = None,
        greet_seconds: float = GREET_SECONDS,
        status_seconds: float = 1.0,
    ):
        super().__init__()
        self.door = door
        self.clock = clock
        self.tz = tz
        self.greet_seconds = greet_seconds
        self.status_seconds = status_seconds
        self.stop_event = threading.Event()
        self._back_to_idle: Timer | None = None
        self._status_text = ""

    def compose(self) -> ComposeResult:
        with Middle(id="face"):
            with Center():
                yield Static("", id="message")
        yield Static("", id="status")

    def on_mount(self) -> None:
        self.show_idle()
        self.door.add_listener(lambda decision: self.post_message(Decided(decision)))
        add_prompt_listener = getattr(self.door, "add_prompt_listener", None)  # the head-turn check's requests
        if add_prompt_listener is not None:
            add_prompt_listener(lambda text: self.post_message(Prompted(text)))
        self.run_loop()
        self.show_status()
        self.set_interval(self.status_seconds, self.show_status)

    def on_unmount(self) -> None:
        self.stop_event.set()

    @work(thread=True, exclusive=True, group="door-loop")
    def run_loop(self) -> None:
        try:
            self.door.run(self.stop_event)
        except Exception as exc:  # shown, then the unit restarts: a dead loop must not look alive
            self.post_message(LoopStopped(f"{type(exc).__name__}: {exc}"))
            return
        if not self.stop_event.is_set():
            self.post_message(LoopStopped("the door loop ended"))

    def on_decided(self, message: Decided) -> None:
        d = message.decision
        if d.granted and d.person:
            self._show(f"Welcome\n\n{d.person}", "granted")
        elif d.tailgating:
            self._show("One person at a time, please", "refused")
        elif d.reason == PANEL_REFUSED:  # recognised, but the access panel said no
            self._show("Access refused by the panel", "refused")
        elif d.reason == ATTACK_REASON:  # never an accusation at the door (issue 14)
            self._show("Please look at the camera", "idle")
        else:
            self._show("Not recognised", "refused")
        if self._back_to_idle is not None:
            self._back_to_idle.stop()
        self._back_to_idle = self.set_timer(self.greet_seconds, self.show_idle)

    def on_prompted(self, message: Prompted) -> None:
        self._show(message.text, "idle")
        if self._back_to_idle is not None:
            self._back_to_idle.stop()
        self._back_to_idle = self.set_timer(self.greet_seconds, self.show_idle)

    def on_loop_stopped(self, message: LoopStopped) -> None:
        self._show(f"Out of order\n\n{message.error}", "refused")
        self.exit(return_code=1, message=message.error)

    def show_idle(self) -> None:
        self._back_to_idle = None
        self._show("Please look at the camera", "idle")

    def _show(self, text: str, state: str) -> None:
        message = self.query_one("#message", Static)
        message.update(text)
        message.set_classes(state)

    def show_status(self) -> None:
        s = self.door.status()
        camera = "camera ok" if s.camera == "ok" else f"camera {s.camera}"
        text = f"door {s.door_state}  |  {camera}  |  {self.clock().astimezone(self.tz).strftime('%H:%M')}"
        if text != self._status_text:  # repaint only when something changed
            self._status_text = text
            self.query_one("#status", Static).update(text)
