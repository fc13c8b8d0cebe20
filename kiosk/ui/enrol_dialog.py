"""What the two enrolment dialogs (from files, from the kiosk camera) share.

Both collect photos their own way, then hand them to the same Enroller in a thread worker,
refresh the face model (issue 15: the door knows the person without a retrain) and report the
outcome on one summary line; this base holds that second half once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from kiosk.admin.enrolment import STORED, Enroller, EnrollSummary, FileResult
from kiosk.admin.person_names import person_name
from kiosk.errors import KioskError
from kiosk.training.refresh import refresh_after_enrolment

if TYPE_CHECKING:
    from kiosk.ui.admin_host import AdminHost


@dataclass
class EnrolFinished(Message):
    summary: EnrollSummary | None
    error: str = ""
    refreshed: str = ""  # the face model refresh's outcome, said after the counts (issue 15)


class EnrolDialog(ModalScreen[None]):
    """A modal enrolment dialog; subclasses compose it, gather photos and word the outcome."""

    SUMMARY_ID = "enrol-summary"

    app: AdminHost

    def __init__(self) -> None:
        super().__init__()
        self.running = False

    def enrol_photos(self, name: str, paths: list[Path], progress: Callable[[int, int, FileResult], None] | None = None) -> None:
        """Enrol ``paths`` for ``name`` (call from the worker thread); the outcome arrives as EnrolFinished."""
        kiosk = self.app.kiosk
        enroller = Enroller(kiosk.sessions, kiosk.detector, kiosk.crops, kiosk.settings.detection.max_side)
        try:
            summary = enroller.enroll(name, paths, progress, actor=self.app.actor)
        except KioskError as exc:
            self.post_message(EnrolFinished(None, str(exc)))
            return
        self.post_message(EnrolFinished(summary, refreshed=self.refresh_model(summary)))

    def refresh_model(self, summary: EnrollSummary) -> str:
        """Refresh the face model for a person who had samples stored (so the door knows them
        without a retrain); one sentence saying what happened."""
        if not summary.count(STORED):
            return "Nothing new stored: the model in force is unchanged."
        try:
            done = refresh_after_enrolment(self.app.kiosk, [summary.person], actor=self.app.actor)
        except KioskError as exc:
            return f"[red]face model not refreshed: {exc}[/] (retrain with F3)"
        if done is None:
            return "CLIP alone decides here: retrain (F3) to use the new samples."
        if done.version is None:
            return done.describe()
        return f"Face model v{done.version} in force ({done.people} people): the door picks it up at its next check."

    def on_enrol_finished(self, message: EnrolFinished) -> None:
        self.running = False
        if message.summary is None:
            self.show_summary(f"[red]{message.error}[/]")
        else:
            self.show_summary(f"{self.outcome(message.summary)} {message.refreshed}")

    def outcome(self, summary: EnrollSummary) -> str:
        """The summary line for a finished enrolment."""
        raise NotImplementedError

    def typed_name(self, input_id: str) -> str | None:
        """The name typed in ``#input_id`` as it will be stored, or None once the summary says why it cannot be."""
        try:
            return person_name(self.query_one(f"#{input_id}", Input).value)
        except KioskError as exc:
            self.show_summary(f"[red]{escape(str(exc))}[/]")
            return None

    def show_summary(self, text: str) -> None:
        self.query_one(f"#{self.SUMMARY_ID}", Static).update(text)
