"""The People screen says, per person, whether they are in the models in force and, where not,
when they will be (issue 15)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

from conftest import STRANGERS, copy_home, photos
from rich.text import Text
from textual.widgets import DataTable
from ui_home import admin_app, base_home, sign_in, wait_until

from kiosk.admin.enrolment import Enroller
from kiosk.training.catch_up import InForce, Membership

NEWCOMER = sorted(p for p in STRANGERS.iterdir() if p.is_dir())[1]


def test_people_screen_shows_who_is_in_the_model_in_force(tmp_path_factory, tmp_path: Path, detector, embedder) -> None:
    home = copy_home(base_home(tmp_path_factory, detector, embedder), tmp_path / "home")
    app = admin_app(home, detector, embedder)
    # enrolled without a refresh (as `kiosk enroll --no-refresh`): not in the face model yet
    Enroller(app.kiosk.sessions, detector, app.kiosk.crops).enroll(NEWCOMER.name, photos(NEWCOMER)[:2])

    async def look() -> dict[str, str]:
        async with app.run_test(size=(120, 40)) as pilot:
            await sign_in(pilot)
            await pilot.press("f2")
            await wait_until(pilot, lambda: app.current_mode == "people", what="people")
            table = app.screen.query_one("#people", DataTable)
            await wait_until(pilot, lambda: table.row_count > 1, what="the people listed")
            column = [str(c.label) for c in table.columns.values()].index("in model")
            return {str(row.key.value): Text.from_markup(str(table.get_row(row.key)[column])).plain for row in table.rows.values()}

    shown = asyncio.run(look())
    assert shown.pop(NEWCOMER.name) == "face: next refresh"
    assert shown and set(shown.values()) == {"yes"}


def test_membership_says_when_clip_will_know_them() -> None:
    enrolled = datetime(2025, 3, 4, 9, 0, tzinfo=timezone.utc)
    face, clip = InForce(7, frozenset({"ann", "bob"})), InForce(5, frozenset({"ann"}))
    fmt = lambda t: t.strftime("%m-%d %H:%M")  # noqa: E731
    waiting = Membership(face, clip, True, enrolled + timedelta(hours=24), False)
    assert waiting.describe("ann", fmt) == "yes"
    assert waiting.describe("bob", fmt) == "clip by 03-05 09:00"
    assert waiting.describe("cy", fmt) == "face: next refresh; clip by 03-05 09:00"
    assert Membership(face, clip, True, enrolled, True).describe("bob", fmt) == "clip: catch-up due now"
    assert Membership(face, None, False, None, False).describe("bob", fmt) == "yes"  # CLIP not used here
