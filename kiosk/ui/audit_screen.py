"""Audit screen: access events or the admin-action log, filtered, paged, exported as CSV.

Filters: a time range (ISO dates or times, in the admin's zone), a person (the event's name,
or the admin action's subject), and for access events the decision. Queries run in a thread
worker, one page at a time, so a long log never stalls the UI. Export writes every matching
row, not just the page on screen, with the same columns as `kiosk audit --format csv`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Select as Choice, Static

from db.models import AccessEvent, AdminAction
from kiosk.commands.audit import EVENT_FIELDS, event_row
from kiosk.errors import KioskError
from kiosk.ui.text import prob, when

if TYPE_CHECKING:
    from kiosk.ui.admin_app import AdminApp

EVENTS, ACTIONS = "events", "actions"
ACTION_FIELDS = ["id", "time", "actor", "action", "subject", "details"]
EVENT_COLUMNS = [("time", 19), ("person", 16), ("prob", 5), ("decision", 8), ("reason", 40)]
ACTION_COLUMNS = [("time", 19), ("actor", 10), ("action", 14), ("subject", 16), ("details", 60)]


@dataclass(frozen=True)
class AuditFilter:
    log: str = EVENTS
    since: datetime | None = None
    until: datetime | None = None
    person: str = ""
    decision: str = "any"  # any | granted | refused


def parse_time(text: str, tz: tzinfo | None, end: bool = False) -> datetime | None:
    """An ISO date or time typed by the admin, read in their zone; a bare date 'until' means its end."""
    text = text.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise KioskError(f"not an ISO date or time: {text!r} (e.g. 2025-03-01 or 2025-03-01 08:30)") from None
    if end and len(text) == 10:
        parsed = parsed.replace(hour=23, minute=59, second=59, microsecond=999999)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz) if tz is not None else parsed.astimezone()
    return parsed


def audit_query(f: AuditFilter) -> Select[Any]:
    model = AccessEvent if f.log == EVENTS else AdminAction
    query = select(model)
    if f.since is not None:
        query = query.where(model.time >= f.since)
    if f.until is not None:
        query = query.where(model.time <= f.until)
    if f.log == EVENTS:
        if f.person:
            query = query.where(AccessEvent.person_name == f.person)
        if f.decision != "any":
            query = query.where(AccessEvent.granted.is_(f.decision == "granted"))
    elif f.person:
        query = query.where(AdminAction.subject == f.person)
    return query


def action_row(a: AdminAction) -> dict[str, object]:
    return {"id": a.id, "time": a.time.isoformat(), "actor": a.actor, "action": a.action, "subject": a.subject, "details": json.dumps(a.details, sort_keys=True)}


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

    app: AdminApp

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
            )
        except KioskError as exc:
            self.notify(str(exc), severity="error")
            return
        self.query_one("#decision", Choice).disabled = self.filter.log != EVENTS
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
            items = session.scalars(query.order_by(model.time.desc(), model.id.desc()).offset(number * size).limit(size)).all()
            rows = [(f"{f.log}-{item.id}", *self._cells(item)) for item in items]
        self.app.call_from_thread(self._show, Page(f, number, pages, total, rows))

    def _cells(self, item: AccessEvent | AdminAction) -> tuple[str, ...]:
        tz = self.app.tz
        if isinstance(item, AccessEvent):
            decision = "[green]GRANTED[/]" if item.granted else "[red]refused[/]"
            return (when(item.time, tz), item.person_name or "(unknown)", prob(item.probability), decision, item.reason)
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
        path = Path(self.app.export_dir) / f"audit-{f.log}-{stamp}.csv"
        model = AccessEvent if f.log == EVENTS else AdminAction
        try:
            with self.app.kiosk.sessions() as session, path.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=EVENT_FIELDS if f.log == EVENTS else ACTION_FIELDS)
                writer.writeheader()
                count = 0
                for item in session.scalars(audit_query(f).order_by(model.time, model.id)):
                    writer.writerow(event_row(item) if f.log == EVENTS else action_row(item))
                    count += 1
        except OSError as exc:
            self.app.call_from_thread(self.notify, f"export failed: {exc}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"exported {count} rows to {path}")
