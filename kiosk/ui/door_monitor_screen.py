"""Door screen: what the door service is doing now, and its latest decisions as they are logged.

The service is another process: its state comes from its status file (door_status) and its
decisions from the access_events table. Both are polled in a thread worker, so a slow disk or
a busy database never freezes the UI; the table is redrawn only when a new event arrives.

On a site database (PostgreSQL, issue 18) there is no door service beside the app: the screen
shows the site's doors instead, each with its last contact, replica version and outbox depth
(the lines `kiosk site doors` prints, from the same kiosk.site.roles.list_doors), and the
latest decisions of every door, with the door's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Static

from db.models import AccessEvent
from kiosk.door.status import FRESH_SECONDS, DoorStatus, read_status
from kiosk.door.threshold_override import NONE_AT_SITE, threshold_in_force
from kiosk.errors import KioskError
from kiosk.recognition.face_recogniser import NAME as FACE
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.site.roles import DOOR_COLUMNS, DoorHealth, list_doors
from kiosk.ui.text import event_reason, prob, when

if TYPE_CHECKING:
    from kiosk.ui.admin_host import AdminHost

FEED_ROWS = 50


@dataclass(frozen=True)
class DoorView:
    status: DoorStatus | None
    model: str  # the version in force per the registry
    threshold: str
    events: list[AccessEvent]
    doors: list[DoorHealth] | None  # the site's doors; None on a single door


class DoorMonitorScreen(Screen[None]):
    DEFAULT_CSS = """
    #door-status { height: auto; border: round $primary; padding: 0 1; }
    #site-doors { height: auto; max-height: 12; }
    #feed { height: 1fr; }
    """

    app: AdminHost

    def __init__(self) -> None:
        super().__init__()
        self._last_event: int | None = -1
        self._timer: Timer | None = None

    @property
    def site(self) -> bool:
        """A site's database is PostgreSQL; a door's is its own SQLite, beside its service."""
        return self.app.kiosk.settings.site_database

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the door service's status...", id="door-status")
        if self.site:
            doors: DataTable[str] = DataTable(id="site-doors", cursor_type="row", zebra_stripes=True)
            doors.add_columns(*DOOR_COLUMNS)
            doors.border_title = "the site's doors"
            yield doors
        table: DataTable[str] = DataTable(id="feed", cursor_type="row", zebra_stripes=True)
        table.add_columns(*(("time", "door") if self.site else ("time",)), "person", "prob", "decision", "reason")
        table.border_title = "latest decisions"
        yield table
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "site" if self.site else "door"
        self.query_one("#door-status").border_title = "site" if self.site else "door service"
        self._timer = self.set_interval(self.app.poll_seconds, self.poll)
        self.poll()

    def on_screen_suspend(self) -> None:
        if self._timer:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        if self._timer:
            self._timer.resume()
            self.poll()

    @work(thread=True, exclusive=True, group="door-poll")
    def poll(self) -> None:
        kiosk = self.app.kiosk
        try:
            threshold = threshold_in_force(kiosk.settings, kiosk.sessions)
            threshold_text = f"{threshold.value:.3f} ({threshold.source})"
            if self.site and threshold.source == "configuration":  # this machine's, not the doors'
                threshold_text = NONE_AT_SITE
        except KioskError as exc:
            threshold_text = f"unreadable: {exc}"
        run = ModelRegistry(kiosk.sessions, kiosk.settings.artifacts_dir).in_force(FACE)
        with kiosk.sessions() as session:
            events = list(session.scalars(select(AccessEvent).order_by(AccessEvent.id.desc()).limit(FEED_ROWS)))
        doors = list_doors(kiosk.engine, kiosk.sessions) if self.site else None
        status = None if self.site else read_status(kiosk.settings.home)
        view = DoorView(status, f"{FACE} v{run.id}" if run else "no model trained", threshold_text, events, doors)
        self.app.call_from_thread(self._show, view)

    def _show(self, view: DoorView) -> None:
        self.query_one("#door-status", Static).update(self._status_text(view))
        if view.doors is not None:
            now = self.app.clock()
            doors = self.query_one("#site-doors", DataTable)
            doors.clear()
            for door in view.doors:
                doors.add_row(*door.cells(now), key=door.name)
        newest = view.events[0].id if view.events else None
        if newest == self._last_event:
            return
        self._last_event = newest
        table = self.query_one("#feed", DataTable)
        table.clear()
        for e in view.events:
            decision = "[green]GRANTED[/]" if e.granted else "[red]refused[/]"
            where = (e.door,) if self.site else ()
            table.add_row(when(e.time, self.app.tz), *where, e.person_name or "(unknown)", prob(e.probability), decision,
                          event_reason(e.reason, e.liveness, e.details), key=str(e.id))

    def _status_text(self, view: DoorView) -> str:
        if view.doors is not None:
            behind = sum(not d.replica_current for d in view.doors)
            version = f", site version {view.doors[0].site_version}, {behind} replica(s) behind" if view.doors else " (kiosk site door add NAME)"
            return "\n".join([f"Doors       {len(view.doors)} registered{version}", f"Model       {view.model} in force",
                              f"Threshold   {view.threshold}"])
        s = view.status
        now = self.app.clock().timestamp()
        if s is None:
            service = "[red]not running[/] (no status file)"
            lines = [f"Service     {service}", f"Model       {view.model} in force", f"Threshold   {view.threshold}"]
            return "\n".join(lines)
        age = s.age(now)
        if s.stopped:
            service = f"[yellow]stopped[/] (pid {s.pid} stopped cleanly {age:.0f} s ago)"
        elif age > FRESH_SECONDS:
            service = f"[red]not responding[/]: last status {age:.0f} s ago"
        else:
            service = f"[green]running[/] (pid {s.pid}, status {age:.0f} s old)"
        camera = s.camera if s.camera == "ok" else f"[red]{s.camera}[/]"
        version = f"v{s.model_version}" if s.model_version is not None else "no model"
        lines = [
            f"Service     {service}",
            f"Door        {s.door}: {s.door_state}     Camera {camera}, {s.fps:.1f} fps",
            f"Recogniser  {s.recogniser} {version}     (registry: {view.model} in force)",
            f"Threshold   {s.threshold:.3f} applied by the door; set: {view.threshold}",
        ]
        if s.panel:  # access-panel outputs (issue 16): a lost or refused link in red
            bad = any(word in s.panel for word in ("lost", "refused", "waiting"))
            lines.append(f"Panel       {f'[red]{s.panel}[/]' if bad else s.panel}")
        return "\n".join(lines)
