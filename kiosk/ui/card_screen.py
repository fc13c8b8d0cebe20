"""The access-panel card a person's face stands for, typed in by the admin (the People screen's `k`).

It must match the card the panel already knows (FACILITY:NUMBER, or a raw NUMBER); the change
is an admin action under the signed-in admin's name, and a number taken by someone else is
refused on the spot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from kiosk.errors import KioskError
from kiosk.storage.credentials import card_for, parse_card, set_card

if TYPE_CHECKING:
    from kiosk.ui.admin_host import AdminHost


class CardScreen(ModalScreen[str | None]):
    """Returns the card set, or None if the admin backed out."""

    DEFAULT_CSS = """
    CardScreen { align: center middle; }
    #card-box { width: 64; height: auto; border: thick $primary; padding: 1 2; background: $surface; }
    #card-error { color: $error; }
    """
    BINDINGS = [Binding("escape", "dismiss_none", "Cancel")]
    app: AdminHost

    def __init__(self, person: str):
        super().__init__()
        self.person = person

    def compose(self) -> ComposeResult:
        current = card_for(self.app.kiosk.sessions, self.person)
        with Vertical(id="card-box"):
            yield Static(f"[b]Card for {self.person}[/b]\nFACILITY:NUMBER as the panel knows it (e.g. 12:3456), or a raw NUMBER")
            yield Input(value="" if current is None else str(current), placeholder="12:3456", id="card")
            yield Static("", id="card-error")

    @on(Input.Submitted, "#card")
    def _submitted(self, event: Input.Submitted) -> None:
        try:
            card = parse_card(event.value)
            set_card(self.app.kiosk.sessions, self.person, card, actor=self.app.actor, config=self.app.kiosk.settings.credentials)
        except KioskError as exc:
            self.query_one("#card-error", Static).update(str(exc))
            return
        self.dismiss(str(card))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
