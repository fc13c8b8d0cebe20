"""Enrol a person from image files or folders, showing every file's outcome as it is processed.

Each file's row says whether a face was found, the stored sample's quality (face size,
sharpness, pose), a duplicate, or why it was refused, so the admin can fix a bad photo set
without leaving the app. Enrolment runs in a thread worker; the table fills as it goes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Label, Static

from db.models import FaceSample
from kiosk.admin.enrolment import FAILED, STORED, EnrollSummary, FileResult
from kiosk.ui.enrol_dialog import EnrolDialog
from kiosk.vision.capture_quality import stored_quality

if TYPE_CHECKING:
    from kiosk.ui.admin_host import AdminHost


@dataclass
class FileDone(Message):
    index: int
    total: int
    result: FileResult
    quality: str


def sample_quality(app: AdminHost, result: FileResult) -> str:
    """The stored sample's quality, read back from its row and crop (no second detection)."""
    if result.status != STORED:
        return ""
    kiosk = app.kiosk
    with kiosk.sessions() as session:
        sample = session.scalars(
            select(FaceSample).where(FaceSample.source == str(Path(result.path).resolve())).order_by(FaceSample.id.desc())
        ).first()
    if sample is None:
        return ""
    quality = stored_quality(sample.box, sample.keypoints, kiosk.crops.read(kiosk.settings.crops_dir / sample.crop_path))
    flags = "; ".join(quality.problems)
    return quality.summary() + (f"  ({flags})" if flags else "")


class EnrolFilesScreen(EnrolDialog):
    DEFAULT_CSS = """
    EnrolFilesScreen { align: center middle; }
    #enrol-box { width: 100%; height: 100%; border: round $primary; background: $surface; padding: 0 1; }
    #enrol-box Input { margin-bottom: 1; }
    #enrol-results { height: 1fr; }
    #enrol-summary { height: 2; }
    """
    BINDINGS = [Binding("escape", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="enrol-box"):
            yield Label("Name")
            yield Input(placeholder="full name", id="enrol-name", compact=True)
            yield Label("Photos: files or folders, separated by spaces (quote names with spaces)")
            yield Input(placeholder="/path/to/photos/ another.jpg", id="enrol-paths", compact=True)
            yield Static("Enter in the photos field starts the enrolment.", id="enrol-summary")
            table: DataTable[str] = DataTable(id="enrol-results", cursor_type="row")
            # fixed widths: auto widths measured before the rows arrive would cut every cell short
            for label, width in (("#", 7), ("file", 24), ("result", 9), ("detail", 60)):
                table.add_column(label, width=width)
            yield table
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#enrol-box").border_title = "enrol from files"
        self.query_one("#enrol-name").focus()  # always typed: never add photos to whoever was highlighted

    @on(Input.Submitted, "#enrol-name")
    def _to_paths(self) -> None:
        self.query_one("#enrol-paths").focus()

    @on(Input.Submitted, "#enrol-paths")
    def _start(self) -> None:
        if self.running:
            return
        name = self.typed_name("enrol-name")
        if name is None:
            return
        try:
            paths = [Path(p).expanduser() for p in shlex.split(self.query_one("#enrol-paths", Input).value)]
        except ValueError as exc:
            self.show_summary(f"[red]cannot read the paths: {exc}[/]")
            return
        if not paths:
            self.show_summary("[red]give at least one file or folder[/]")
            return
        self.running = True
        table = self.query_one("#enrol-results", DataTable)
        table.clear()
        table.focus()
        self.show_summary(f"enrolling {name}...")
        self.enrol(name, paths)

    @work(thread=True, exclusive=True, group="enrol-files")
    def enrol(self, name: str, paths: list[Path]) -> None:
        def progress(index: int, total: int, result: FileResult) -> None:
            self.post_message(FileDone(index, total, result, sample_quality(self.app, result)))

        self.enrol_photos(name, paths, progress)

    def on_file_done(self, message: FileDone) -> None:
        r = message.result
        if r.status == STORED:
            others = f", {r.faces - 1} other face(s) ignored" if r.faces > 1 else ""
            result, detail = "[green]stored[/]", f"score {r.score} {message.quality}{others}"
        elif r.status == FAILED:
            result, detail = "[red]refused[/]", r.reason
        else:
            result, detail = "[yellow]duplicate[/]", r.reason
        self.query_one("#enrol-results", DataTable).add_row(f"{message.index}/{message.total}", Path(r.path).name, result, detail)
        self.show_summary(f"{message.index}/{message.total} files done")

    def outcome(self, s: EnrollSummary) -> str:
        return f"{s.person}: {s.count(STORED)} stored, {s.count('duplicate')} duplicate, {s.count(FAILED)} refused."

    def action_close(self) -> None:
        if self.running:
            self.notify("enrolment still running: wait for it to finish", severity="warning")
            return
        self.dismiss(None)
