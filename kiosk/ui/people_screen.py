"""People screen: who is enrolled (samples, validity), their samples, enrol, and remove.

Enrolment from files and from the kiosk's camera have their own screens (enrol_files_screen,
camera_enrol_screen); this one lists, shows samples and removes, asking first and saying
exactly what removal erases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from db.models import FaceSample, Person
from kiosk.admin.erasure import BACKUPS_KEEP, forget_person
from kiosk.errors import KioskError
from kiosk.training.catch_up import membership
from kiosk.ui.camera_enrol_screen import CameraEnrolScreen
from kiosk.ui.enrol_files_screen import EnrolFilesScreen
from kiosk.ui.text import when, windows
from kiosk.ui.thumbnails import half_blocks

if TYPE_CHECKING:
    from kiosk.ui.admin_host import AdminHost

THUMB_CELLS = 16  # 16 cells wide, 8 tall: a face is recognisable at 16x16 pixels


@dataclass(frozen=True)
class PersonRow:
    name: str
    samples: int
    valid_from: str
    valid_until: str
    hours: str
    in_model: str  # in the models in force ('yes'), or what is missing and when it comes


def people_rows(app: AdminHost, search: str) -> list[PersonRow]:
    query = (
        select(Person, func.count(FaceSample.id))
        .outerjoin(FaceSample)
        .group_by(Person.id)
        .order_by(Person.name)
    )
    if search.strip():
        query = query.where(Person.name.ilike(f"%{search.strip()}%"))
    models = membership(app.kiosk, app.clock())

    def short(t: datetime) -> str:
        return when(t, app.tz, False)[5:]  # month-day hour:minute

    with app.kiosk.sessions() as session:
        return [
            PersonRow(
                p.name, n, when(p.valid_from, app.tz, False), when(p.valid_until, app.tz, False), windows(p.weekly_windows),
                models.describe(p.name, short),
            )
            for p, n in session.execute(query)
        ]


class PeopleScreen(Screen[None]):
    DEFAULT_CSS = """
    #search { margin: 0 1; }
    #people { height: 1fr; }
    #person-detail { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("slash", "search", "Search", show=False),  # the search field says "(/)"; the footer is full
        Binding("e", "enrol_files", "Enrol"),
        Binding("c", "enrol_camera", "Camera"),
        Binding("s", "samples", "Samples"),
        Binding("x,delete", "remove", "Remove"),
        Binding("k", "card", "Card", show=False),  # access-panel card number (issue 16)
    ]

    app: AdminHost

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="search people by name (/), Enter to list", id="search", compact=True)
        table: DataTable[str | int] = DataTable(id="people", cursor_type="row", zebra_stripes=True)
        table.add_columns("name", "samples", "in model", "valid from", "valid until", "hours")
        yield table
        yield Static("", id="person-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "people"
        self.query_one("#people").focus()
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    @on(Input.Submitted, "#search")
    def _searched(self) -> None:
        self.reload()
        self.query_one("#people").focus()

    @on(Input.Changed, "#search")
    def _typed(self) -> None:
        self.reload()

    @work(thread=True, exclusive=True, group="people")
    def reload(self) -> None:
        rows = people_rows(self.app, self.query_one("#search", Input).value)
        self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[PersonRow]) -> None:
        table = self.query_one("#people", DataTable)
        table.clear()
        for r in rows:
            table.add_row(r.name, r.samples, r.in_model, r.valid_from, r.valid_until, r.hours, key=r.name)
        self.query_one("#person-detail", Static).update(f"{len(rows)} people" + (" match" if self.query_one("#search", Input).value else " enrolled"))

    def selected(self) -> str | None:
        table = self.query_one("#people", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_search(self) -> None:
        self.query_one("#search").focus()

    def action_enrol_files(self) -> None:
        self.app.push_screen(EnrolFilesScreen(), lambda _: self.reload())

    def action_enrol_camera(self) -> None:
        self.app.push_screen(CameraEnrolScreen(), lambda _: self.reload())

    def action_samples(self) -> None:
        if (name := self.selected()) is not None:
            self.app.push_screen(SamplesScreen(name))

    def action_card(self) -> None:
        from kiosk.ui.card_screen import CardScreen

        if (name := self.selected()) is not None:
            self.app.push_screen(CardScreen(name), lambda card: card and self.notify(f"{name}: card {card}"))

    def action_remove(self) -> None:
        name = self.selected()
        if name is None:
            return
        samples = int(self.query_one("#people", DataTable).get_row(name)[1])

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._remove(name)

        self.app.push_screen(ConfirmRemoveScreen(name, samples), confirmed)

    @work(thread=True, group="people-remove")
    def _remove(self, name: str) -> None:
        kiosk = self.app.kiosk
        try:
            report = forget_person(kiosk, name, actor=self.app.actor)
            message = f"removed {name}: {report.samples} samples erased, models holding them deleted; {BACKUPS_KEEP}"
            severity = "information"
        except KioskError as exc:
            message, severity = str(exc), "error"
        self.app.call_from_thread(self.notify, message, severity=severity)
        self.app.call_from_thread(self.reload)


class ConfirmRemoveScreen(ModalScreen[bool]):
    """Says what removal erases, and what it does not, before anything is erased."""

    DEFAULT_CSS = """
    ConfirmRemoveScreen { align: center middle; }
    #confirm { width: 64; height: auto; border: thick $error; padding: 1 2; background: $surface; }
    """
    BINDINGS = [Binding("y", "answer(True)", "Yes, erase"), Binding("n,escape", "answer(False)", "No, keep")]

    def __init__(self, name: str, samples: int):
        super().__init__()
        self.person, self.samples = name, samples

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(
                f"[b]Remove {self.person}?[/b]\n\n"
                f"This erases {self.samples} face samples, their aligned crops on disk and their "
                "cached features, their event thumbnails and every model version that holds them "
                "(the face model is rebuilt without them). Access events keep the name as text; backups "
                "taken before keep everything."
            )
            yield Footer(compact=True)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


@dataclass(frozen=True)
class SampleView:
    source: str
    score: float
    crop: object  # rich Text thumbnail, or the reason it could not be drawn


class SamplesScreen(ModalScreen[None]):
    """A person's stored samples: the aligned crops as thumbnails, each with its source file."""

    DEFAULT_CSS = """
    SamplesScreen { align: center middle; }
    #samples-box { width: 90%; height: 90%; border: round $primary; background: $surface; }
    #samples-grid { grid-size: 4; grid-gutter: 0 1; height: auto; padding: 0 1; }
    .sample { height: auto; width: 18; }
    """
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    app: AdminHost

    def __init__(self, name: str):
        super().__init__()
        self.person = name

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="samples-box"):
            yield Static(f"loading {self.person}'s samples...", id="samples-title")
            yield Grid(id="samples-grid")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#samples-box").border_title = f"samples of {self.person}"
        self.load()

    @work(thread=True)
    def load(self) -> None:
        kiosk = self.app.kiosk
        with kiosk.sessions() as session:
            rows = session.execute(
                select(FaceSample.source, FaceSample.det_score, FaceSample.crop_path)
                .join(Person)
                .where(Person.name == self.person)
                .order_by(FaceSample.id)
            ).all()
        views = []
        for source, score, crop_path in rows:
            try:
                thumb: object = half_blocks(kiosk.crops.read(kiosk.settings.crops_dir / crop_path), THUMB_CELLS)
            except (OSError, KioskError) as exc:
                thumb = f"(crop unreadable: {exc})"
            views.append(SampleView(Path(source).name, score, thumb))
        self.app.call_from_thread(self._show, views)

    def _show(self, views: list[SampleView]) -> None:
        self.query_one("#samples-title", Static).update(f"{len(views)} aligned samples (crop, source file, detector score)")
        grid = self.query_one("#samples-grid", Grid)
        grid.mount_all(Vertical(Static(v.crop), Static(f"{v.source[:17]}\n{v.score:.2f}"), classes="sample") for v in views)
