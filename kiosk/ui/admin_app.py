"""`kiosk admin`: the administrator's terminal app, on the same database and models as the door.

Sign-in comes first; then one screen per task, switched with F1-F5 (shown in the footer):
Door, People, Retrain, Audit, Calibration. The app opens the data directory through the same
KioskContext as the door service (same settings, same SQLite file in WAL mode), so both run at
once; it never opens the camera, and asks the service for frames instead (frame_handover).

At a door of a site (``site.url`` set, its own SQLite a replica of the site) People, Retrain
and Calibration are not offered: the site owns what they change, and the next sync would
undo it. The admin app pointed at the site database has them all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo

from textual.app import App
from textual.binding import Binding

from db.models import utcnow
from kiosk.context import KioskContext
from kiosk.door.frame_handover import request_frames
from kiosk.ui.admin_host import FrameSource
from kiosk.ui.audit_screen import AuditScreen
from kiosk.ui.calibration_screen import CalibrationScreen
from kiosk.ui.door_monitor_screen import DoorMonitorScreen
from kiosk.ui.people_screen import PeopleScreen
from kiosk.ui.retrain_screen import RetrainScreen
from kiosk.ui.sign_in import SignInScreen


class AdminApp(App[None]):
    """The admin's terminal app; it satisfies kiosk.ui.admin_host.AdminHost for its screens."""

    TITLE = "Door kiosk admin"
    ENABLE_COMMAND_PALETTE = False
    MODES = {
        "door": DoorMonitorScreen,
        "people": PeopleScreen,
        "retrain": RetrainScreen,
        "audit": AuditScreen,
        "calibration": CalibrationScreen,
    }
    SITE_OWNED = ("people", "retrain", "calibration")
    BINDINGS = [
        Binding("f1", "show('door')", "Door"),
        Binding("f2", "show('people')", "People"),
        Binding("f3", "show('retrain')", "Retrain"),
        Binding("f4", "show('audit')", "Audit"),
        Binding("f5", "show('calibration')", "Calibrate"),
        # Not in the footer: with a screen's own keys it would push F5 past 80 columns (the
        # sign-in screen says it).
        Binding("ctrl+q", "quit", "Quit", priority=True, show=False),
    ]

    def __init__(
        self,
        kiosk: KioskContext,
        *,
        clock: Callable[[], datetime] = utcnow,
        tz: tzinfo | None = None,
        poll_seconds: float = 1.0,
        frame_source: FrameSource = request_frames,
        page_size: int = 12,
    ):
        """``clock``, ``tz`` and ``poll_seconds`` are here so tests and snapshots are deterministic."""
        super().__init__()
        self.kiosk = kiosk
        self.clock = clock
        self.tz = tz
        self.poll_seconds = poll_seconds
        self.frame_source = frame_source
        self.page_size = page_size
        self.admin: str | None = None  # the signed-in admin's name, the actor in AdminAction rows

    def on_mount(self) -> None:
        self.push_screen(SignInScreen(), self._signed_in)

    def _signed_in(self, username: str | None) -> None:
        if username is None:
            self.exit()
            return
        self.admin = username
        self.switch_mode("door")
        if self.kiosk.settings.site_door:
            self.notify("A door of a site: people, training and calibration are managed on the site database.", timeout=10)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Nothing but sign-in and quit until someone has signed in; the footer leaves out the screen
        shown, and at a site door the screens whose changes the site owns."""
        if action == "show" and (self.admin is None or parameters == (self.current_mode,)):
            return False
        if action == "show" and parameters[0] in self.SITE_OWNED and self.kiosk.settings.site_door:
            return False
        return True

    def action_show(self, mode: str) -> None:
        if self.current_mode != mode:
            self.switch_mode(mode)

    @property
    def actor(self) -> str:
        return self.admin or "admin"
