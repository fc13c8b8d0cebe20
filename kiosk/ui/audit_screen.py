"""Audit screen: access events or the admin-action log, filtered, paged, exported as CSV.

Filters (their meaning is kiosk.storage.audit_query's, shared with `kiosk audit`): a time range,
a person, and for access events the decision and the door (at a site, one door's events). Queries run in a thread
worker, one page at a time, so a long log never stalls the UI. Export writes every matching
row, not just the page on screen, with the same columns as `kiosk audit --format csv`, into
`admin.exports_dir` (owner-only), never the directory the app was started from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.widgets import Select as Choice

from db.models import AccessEvent, AdminAction
from kiosk.errors import KioskError
from kiosk.storage.audit_query import ACTIONS, EVENTS, AuditFilter, audit_query, audit_rows, parse_time, write_csv
from kiosk.storage.crop_store import private_dirs
from kiosk.ui.text import event_reason, prob, when

if TYPE_CHECKING:
    from kiosk.ui.admin_host import AdminHost

EVENT_COLUMNS = [("time", 19), ("door", 10), ("person", 16), ("prob", 5), ("decision", 8), ("reason", 40)]
ACTION_COLUMNS = [("time", 19), ("actor", 10), ("action", 14), ("subject", 16), ("details", 60)]


@dataclass(frozen=True)
class Page:
    filter: AuditFilter
    number: int
    pages: int
    total: int
    rows: list[tuple[str, ...]]  # (row key, cells...)


class AuditScreen(Screen[None]):
    DEFAULT_CSS = """
    #audit-filters { height: 1; margin: 0 1; }
    #audit-filters > Input { width: 1fr; margin-right: 1; }
    #audit-filters > Select { width: 18; margin-right: 1; }
    #audit-filters2 { height: 1; margin: 0 1 1 1; }
    #audit-filters2 > Select { width: 24; margin-right: 1; }
    #audit-page { width: 1fr; }
    #audit-table { height: 1fr; }
    """
    BINDINGS = [
        Binding("n,pagedown", "page(1)", "Next"),
        Binding("p,pageup", "page(-1)", "Prev"),
        Binding("l", "toggle_log", "Log"),
        Binding("e", "export", "CSV"),
        Binding("slash", "filters", "Filter"),
    ]

    app: AdminHost

    def __init__(self) -> None:
        super().__init__()
        self.filter = AuditFilter()
        self.page_number = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="audit-filters"):
            yield Input(placeholder="since (ISO)", id="since", compact=True)
            yield Input(placeholder="until (ISO)", id="until", compact=True)
            yield Input(placeholder="person", id="person", compact=True)
            yield Input(placeholder="door", id="door", compact=True)
        with Horizontal(id="audit-filters2"):
            yield Choice([("access events", EVENTS), ("admin actions", ACTIONS)], value=EVENTS, allow_blank=False, id="log", compact=True)
            yield Choice([("any decision", "any"), ("granted", "granted"), ("refused", "refused")], value="any", allow_blank=False, id="decision", compact=True)
            yield Static("", id="audit-page")
        yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "audit"
        self.query_one("#audit-table").focus()
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    @on(Input.Submitted)
    def _filter_typed(self) -> None:
        self.apply_filters()
        self.query_one("#audit-table").focus()

    @on(Choice.Changed)
    def _filter_chosen(self) -> None:
        self.apply_filters()

    def apply_filters(self) -> None:
        tz = self.app.tz
        try:
            self.filter = AuditFilter(
                log=str(self.query_one("#log", Choice).value),
                since=parse_time(self.query_one("#since", Input).value, tz),
                until=parse_time(self.query_one("#until", Input).value, tz, end=True),
                person=self.query_one("#person", Input).value.strip(),
                decision=str(self.query_one("#decision", Choice).value),
                door=self.query_one("#door", Input).value.strip(),
            )
        except KioskError as exc:
            self.notify(str(exc), severity="error")
            return
        for only_events in ("#decision", "#door"):
            self.query_one(only_events).disabled = self.filter.log != EVENTS
        self.page_number = 0
        self.load()

    def action_page(self, step: int) -> None:
        self.page_number = max(0, self.page_number + step)
        self.load()

    def action_toggle_log(self) -> None:
        log = self.query_one("#log", Choice)
        log.value = ACTIONS if log.value == EVENTS else EVENTS

    def action_filters(self) -> None:
        self.query_one("#since").focus()

    @work(thread=True, exclusive=True, group="audit")
    def load(self) -> None:
        f, size = self.filter, self.app.page_size
        query = audit_query(f)
        model = AccessEvent if f.log == EVENTS else AdminAction
        with self.app.kiosk.sessions() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            pages = max(1, -(-total // size))
            number = min(self.page_number, pages - 1)
            newest_first = query.order_by(None).order_by(model.time.desc(), model.id.desc())
            items = session.scalars(newest_first.offset(number * size).limit(size)).all()
            rows = [(f"{f.log}-{item.id}", *self._cells(item)) for item in items]
        self.app.call_from_thread(self._show, Page(f, number, pages, total, rows))

    def _cells(self, item: AccessEvent | AdminAction) -> tuple[str, ...]:
        tz = self.app.tz
        if isinstance(item, AccessEvent):
            decision = "[green]GRANTED[/]" if item.granted else "[red]refused[/]"
            return (when(item.time, tz), item.door, item.person_name or "(unknown)", prob(item.probability), decision,
                    event_reason(item.reason, item.liveness, item.details))
        details = ", ".join(f"{k}={v}" for k, v in sorted(item.details.items()) if v is not None)
        return (when(item.time, tz), item.actor, item.action, item.subject or "", details)

    def _show(self, page: Page) -> None:
        self.page_number = page.number
        table = self.query_one("#audit-table", DataTable)
        table.clear(columns=True)
        # Fixed widths: the columns change with the log shown, and auto widths were measured
        # unreliably right after clear(columns=True) (seen as truncated cells).
        columns = EVENT_COLUMNS if page.filter.log == EVENTS else ACTION_COLUMNS
        for label, width in columns:
            table.add_column(label, width=width)
        for key, *cells in page.rows:
            table.add_row(*cells, key=key)
        what = "events" if page.filter.log == EVENTS else "admin actions"
        self.query_one("#audit-page", Static).update(f"page {page.number + 1}/{page.pages}, {page.total} {what}")

    def action_export(self) -> None:
        self.export(self.filter)

    @work(thread=True, group="audit-export")
    def export(self, f: AuditFilter) -> None:
        stamp = self.app.clock().astimezone(self.app.tz).strftime("%Y%m%d-%H%M%S")
        folder = self.app.kiosk.settings.exports_dir
        path = folder / f"audit-{f.log}-{stamp}.csv"
        try:
            private_dirs(folder)
            os.chmod(folder, 0o700)  # exports name people: the service user's alone, like the data directory
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with self.app.kiosk.sessions() as session, os.fdopen(fd, "w", newline="") as fh:
                count = write_csv(fh, f.log, audit_rows(session, f))
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"export failed: {exc}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"exported {count} rows to {path}")
