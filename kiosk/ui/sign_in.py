"""The admin app's first screen: user name and PIN, checked off the UI thread (argon2 is slow)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, Static

from kiosk.admin.auth import AdminAuth, SignIn

if TYPE_CHECKING:
    from kiosk.ui.admin_host import AdminHost


class SignInScreen(Screen[str]):
    """Dismissed with the admin's user name once the PIN is right."""

    DEFAULT_CSS = """
    SignInScreen { align: center middle; }
    #sign-in { width: 50; height: auto; border: round $primary; padding: 1 2; }
    #sign-in Input { margin-bottom: 1; }
    #sign-in-message { height: 2; }
    #sign-in-message.error { color: $error; }
    """

    app: AdminHost

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="sign-in"):
            yield Label("User name")
            yield Input("admin", id="username", compact=True)
            yield Label("PIN or password")
            yield Input(password=True, id="pin", compact=True)
            yield Static("Enter the PIN and press Enter.", id="sign-in-message")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "sign in"
        self.query_one("#sign-in").border_subtitle = "ctrl+q quits"  # the footer leaves ctrl+q out (80 columns)
        self.query_one("#pin", Input).focus()

    @on(Input.Submitted, "#username")
    def _to_pin(self) -> None:
        self.query_one("#pin", Input).focus()

    @on(Input.Submitted, "#pin")
    def _submit(self) -> None:
        pin = self.query_one("#pin", Input)
        pin.disabled = True
        self._show("checking...", error=False)
        self._check(self.query_one("#username", Input).value, pin.value)

    @work(thread=True, exclusive=True)
    def _check(self, username: str, secret: str) -> None:
        result = AdminAuth(self.app.kiosk.sessions, clock=self.app.clock).sign_in(username, secret)
        self.app.call_from_thread(self._answered, username.strip(), result)

    def _answered(self, username: str, result: SignIn) -> None:
        if result.ok:
            self.dismiss(username)
            return
        pin = self.query_one("#pin", Input)
        pin.value = ""
        pin.disabled = False
        pin.focus()
        self._show(result.message, error=True)

    def _show(self, message: str, error: bool) -> None:
        widget = self.query_one("#sign-in-message", Static)
        widget.update(message)
        widget.set_class(error, "error")
