"""The admin app's door screen shows the access panel's link as the door service reports it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import copy_home
from textual.widgets import Static
from ui_home import NOW, admin_app, base_home, sign_in, wait_until

from kiosk.door.status import DoorStatus, write_status


def test_door_screen_shows_a_lost_panel_link(tmp_path_factory, tmp_path: Path, detector, embedder) -> None:
    home = copy_home(base_home(tmp_path_factory, detector, embedder), tmp_path / "home")
    write_status(home, DoorStatus(door="front", door_state="closed", camera="ok", fps=14.8, recogniser="face", model_version=1,
                                  threshold=0.8, updated=NOW.timestamp() - 1, pid=4242, panel="osdp: link lost: the panel stopped polling"))
    asyncio.run(_shows(home, detector, embedder))


async def _shows(home: Path, detector, embedder) -> None:
    app = admin_app(home, detector, embedder, poll_seconds=0.05)
    async with app.run_test(size=(100, 24)) as pilot:
        await sign_in(pilot)
        status = app.screen.query_one("#door-status", Static)
        await wait_until(pilot, lambda: "Panel" in str(status.render()), what="the panel line")
        assert "Panel       osdp: link lost: the panel stopped polling" in str(status.render())


def test_the_admin_sets_a_card_from_the_people_screen(tmp_path_factory, tmp_path: Path, detector, embedder) -> None:
    home = copy_home(base_home(tmp_path_factory, detector, embedder), tmp_path / "home")
    asyncio.run(_sets_card(home, detector, embedder))


async def _sets_card(home: Path, detector, embedder) -> None:
    from sqlalchemy import select
    from textual.widgets import DataTable, Input

    from db.models import AdminAction
    from kiosk.storage.credentials import Card, card_for
    from kiosk.ui.card_screen import CardScreen

    app = admin_app(home, detector, embedder, poll_seconds=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await sign_in(pilot)
        await pilot.press("f2")
        await wait_until(pilot, lambda: app.current_mode == "people", what="the people screen")
        people = app.screen.query_one("#people", DataTable)
        await wait_until(pilot, lambda: people.row_count > 0, what="people listed")
        first, second = (str(people.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(2))
        for name, typed in ((first, "12:3456"), (second, "12:3456")):
            people.move_cursor(row=people.get_row_index(name))
            await pilot.press("k")
            await wait_until(pilot, lambda: isinstance(app.screen, CardScreen), what="the card dialog")
            app.screen.query_one("#card", Input).value = typed
            await pilot.press("enter")
            await pilot.pause()
        error = str(app.screen.query_one("#card-error", Static).render())
        assert f"already belongs to {first}" in error  # the second person cannot take the first one's card
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, CardScreen), what="the dialog closed")
    assert card_for(app.kiosk.sessions, first) == Card(12, 3456) and card_for(app.kiosk.sessions, second) is None
    with app.kiosk.sessions() as session:
        actors = session.execute(select(AdminAction.actor, AdminAction.subject).where(AdminAction.action == "card")).all()
    assert [(a, s) for a, s in actors] == [(app.actor, first)] and app.actor != "cli"


class PanelAnsweringDoor:
    """Plays the door service after a card read: the panel's answer arrives as a decision."""

    def __init__(self, granted: bool) -> None:
        from kiosk.door.status import PANEL_GRANTED, PANEL_REFUSED

        self.reason = PANEL_GRANTED if granted else PANEL_REFUSED
        self.granted = granted
        self.listeners: list = []

    def add_listener(self, callback) -> None:
        self.listeners.append(callback)

    def status(self):
        return DoorStatus("front", "closed", "ok", 15.0, "face", 1, 0.8, NOW.timestamp(), 4242, panel="osdp: secure channel up")

    def run(self, stop) -> None:
        from kiosk.door.status import DoorDecision

        for listener in self.listeners:
            listener(DoorDecision(NOW, "Ada", 0.97, self.granted, self.reason, 1))
        stop.wait()


def test_the_door_display_shows_the_panels_answer() -> None:
    from kiosk.ui.door_display import DoorDisplayApp

    async def shows(granted: bool, text: str) -> None:
        app = DoorDisplayApp(PanelAnsweringDoor(granted), greet_seconds=60)
        async with app.run_test(size=(80, 24)) as pilot:
            message = app.query_one("#message", Static)
            await wait_until(pilot, lambda: text in str(message.render()), what=text)
            assert message.has_class("granted" if granted else "refused")

    asyncio.run(shows(True, "Welcome"))
    asyncio.run(shows(False, "Access refused by the panel"))
