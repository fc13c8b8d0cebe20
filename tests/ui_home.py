"""A small, fully deterministic data directory for the screen tests and snapshots.

Three DEV people enrolled from real photos, a face model trained on them, a fixed history of
access events and admin actions, a calibration with a curve, and an admin PIN. Every stored
time is fixed, so screens that show times render the same on every run. Built once per test
session; tests copy it (conftest.copy_home) before changing anything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from conftest import dev_people, make_settings, photos
from sqlalchemy import select, update

from db.models import AccessEvent, AdminAction, Calibration, Person, TrainingRun
from kiosk.admin.auth import AdminAuth
from kiosk.admin.enrolment import Enroller
from kiosk.config import DatabaseConfig
from kiosk.context import KioskContext
from kiosk.door.status import DoorStatus, write_status
from kiosk.training.retrain import retrain

if TYPE_CHECKING:
    import pytest
    from textual.pilot import Pilot

    from kiosk.ui.admin_app import AdminApp

PIN = "2468"
NOW = datetime(2025, 3, 4, 12, 0, tzinfo=timezone.utc)  # the screens' clock in tests
PEOPLE = 3
PHOTOS_EACH = 4
FAST_HASH = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)  # for AdminAuth's own unit tests


def fixed_clock() -> datetime:
    return NOW


def demo_people() -> list[Path]:
    return dev_people()[:PEOPLE]


def build_home(home: Path, detector: object, embedder: object) -> Path:
    ctx = KioskContext(make_settings(home))
    ctx.__dict__["detector"] = detector
    ctx.__dict__["embedder"] = embedder
    enroller = Enroller(ctx.sessions, ctx.detector, ctx.crops)
    for person in demo_people():
        enroller.enroll(person.name.replace("_", " "), photos(person)[:PHOTOS_EACH], actor="admin")
    retrain(ctx, actor="admin")
    AdminAuth(ctx.sessions).set_secret("admin", PIN, actor="admin")  # argon2 defaults, as the app checks
    names = [p.name.replace("_", " ") for p in demo_people()]
    with ctx.sessions.begin() as session:
        ids = {p.name: p.id for p in session.scalars(select(Person))}
        first = session.scalars(select(Person).where(Person.name == names[0])).one()
        first.valid_until = datetime(2025, 12, 31, tzinfo=timezone.utc)
        first.weekly_windows = [{"days": [0, 1, 2, 3, 4], "start": "07:00", "end": "19:00"}]
        start = NOW - timedelta(days=1)
        for i in range(30):  # a day at the door: 23 grants over the three people, 7 refusals
            granted = i % 4 != 3
            name = names[i % PEOPLE] if granted else None
            session.add(
                AccessEvent(
                    time=start + timedelta(minutes=41 * i),
                    door="front",
                    person_id=ids.get(name) if name else None,
                    person_name=name,
                    granted=granted,
                    probability=0.9 + 0.003 * i if granted else 0.2 + 0.01 * i,
                    reason="recognised" if granted else "below threshold",
                    recogniser="face",
                    model_version=1,
                )
            )
        session.add(
            Calibration(
                time=NOW - timedelta(hours=2),
                training_run_id=1,
                recogniser="face",
                method="logistic",
                # the trained model's own fit, so applying this calibration changes nothing
                params={k: v for k, v in json.loads((home / "models" / "face-v1" / "meta.json").read_text()).items()
                        if k in ("slope", "offset", "margin_weight")},
                threshold=0.8,
                metrics={
                    "fpir": 0.0,
                    "fnir": 0.012,
                    "curve": {"thresholds": [0.5, 0.7, 0.8, 0.9, 0.95], "fpir": [0.04, 0.01, 0.0, 0.0, 0.0], "fnir": [0.002, 0.006, 0.012, 0.03, 0.08]},
                },
            )
        )
        # Fixed times for what enrolment and training stamped with the real clock.
        session.execute(update(AdminAction).values(time=start - timedelta(hours=1)))
        session.execute(update(TrainingRun).values(started_at=start - timedelta(minutes=50), finished_at=start - timedelta(minutes=49)))
        session.execute(update(Person).values(created_at=start - timedelta(hours=1)))
    ctx.engine.dispose()
    return home


def write_door_status(home: Path, updated: float | None = None) -> None:
    """What a running door service would have written (fixed pid and time)."""
    write_status(
        home,
        DoorStatus(door="front", door_state="closed", camera="ok", fps=14.8, recogniser="face", model_version=1, threshold=0.8, updated=updated if updated is not None else NOW.timestamp() - 1, pid=4242),
    )


def admin_app(home: Path, detector: object, embedder: object, database_url: str = "", **options: object) -> "AdminApp":
    """The admin app on a test home (or on ``database_url``, a site), with the session's loaded models and the fixed clock."""
    from kiosk.ui.admin_app import AdminApp

    ctx = KioskContext(make_settings(home, **({"database": DatabaseConfig(url=database_url)} if database_url else {})))
    ctx.__dict__["detector"] = detector
    ctx.__dict__["embedder"] = embedder
    defaults: dict[str, object] = {"clock": fixed_clock, "tz": timezone.utc, "poll_seconds": 30.0}
    return AdminApp(ctx, **(defaults | options))  # type: ignore[arg-type]


async def wait_until(pilot: "Pilot[object]", condition: "Callable[[], object]", timeout: float = 30.0, what: str = "") -> None:
    """Let the app run until ``condition()`` holds (workers report back asynchronously)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


async def sign_in(pilot: "Pilot[object]", pin: str = PIN) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: app.screen.query("#pin"), what="the sign-in screen")
    await pilot.press(*pin, "enter")
    await wait_until(pilot, lambda: getattr(app, "admin", None) is not None, what="sign-in")
    await pilot.pause()


_BASE: dict[str, Path] = {}


def base_home(tmp_path_factory: "pytest.TempPathFactory", detector: object, embedder: object) -> Path:
    """The demo home, built once per test session whichever test file asks first."""
    if "home" not in _BASE:
        _BASE["home"] = build_home(tmp_path_factory.mktemp("ui-base") / "home", detector, embedder)
    return _BASE["home"]
