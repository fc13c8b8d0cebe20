"""The one audit query: which access events or admin actions a filter selects, and their rows.

`kiosk audit` and the admin app's Audit screen both read the log through here, so the same
filter gives the same rows on either side. The meaning, in one place:

- ``since`` and ``until`` are both inclusive. A bare date for ``until`` covers that whole day.
- A time without an offset is read in the reader's zone: the admin app's zone on the screen,
  the machine's local zone on the command line (what a person reads off a clock at the door);
  add an offset (``+01:00``, ``Z``) to mean another zone.
- ``person`` matches the event's recognised name, or the admin action's subject.
- ``decision`` (access events only) is ``any``, ``granted`` or ``refused``.
- ``door`` (access events only) matches the name of the door that made the event: on a single
  door its ``door`` setting ("front" unless set), at a site each door's registered name, so the
  site's audit reads one door or all. Admin actions are the site's, made at no door.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import IO, Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from db.models import AccessEvent, AdminAction
from kiosk.errors import KioskError

EVENTS, ACTIONS = "events", "actions"
DECISIONS = ("any", "granted", "refused")
EVENT_FIELDS = ["id", "time", "door", "person", "probability", "granted", "reason", "recogniser", "model_version", "tailgating", "liveness"]
ACTION_FIELDS = ["id", "time", "actor", "action", "subject", "details"]


@dataclass(frozen=True)
class AuditFilter:
    log: str = EVENTS
    since: datetime | None = None
    until: datetime | None = None
    person: str = ""
    decision: str = "any"
    door: str = ""


def parse_time(text: str | None, tz: tzinfo | None, end: bool = False) -> datetime | None:
    """An ISO date or time as a person types it, read in ``tz`` (None: this machine's zone).

    With ``end``, a bare date means the last instant of that day, so an inclusive ``until``
    covers it whole.
    """
    text = (text or "").strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise KioskError(f"not an ISO date or time: {text!r} (e.g. 2025-03-01 or 2025-03-01T08:30)") from None
    if end and len(text) == 10:
        parsed = parsed.replace(hour=23, minute=59, second=59, microsecond=999999)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz) if tz is not None else parsed.astimezone()
    return parsed


def audit_query(f: AuditFilter) -> Select[Any]:
    """The rows a filter selects, oldest first (callers reverse or page it as they show it)."""
    model = AccessEvent if f.log == EVENTS else AdminAction
    query = select(model).order_by(model.time, model.id)
    if f.since is not None:
        query = query.where(model.time >= f.since)
    if f.until is not None:
        query = query.where(model.time <= f.until)
    if f.log == EVENTS:
        if f.person:
            query = query.where(AccessEvent.person_name == f.person)
        if f.decision != "any":
            query = query.where(AccessEvent.granted.is_(f.decision == "granted"))
        if f.door:
            query = query.where(AccessEvent.door == f.door)
    elif f.person:
        query = query.where(AdminAction.subject == f.person)
    return query


def event_row(e: AccessEvent) -> dict[str, object]:
    return {
        "id": e.id,
        "time": e.time.isoformat(),
        "door": e.door,
        "person": e.person_name,
        "probability": e.probability,
        "granted": e.granted,
        "reason": e.reason,
        "recogniser": e.recogniser,
        "model_version": e.model_version,
        "tailgating": e.tailgating,
        "liveness": e.liveness,  # issue 14: the track's fused p(live), where a liveness check ran
    }


def action_row(a: AdminAction) -> dict[str, object]:
    return {"id": a.id, "time": a.time.isoformat(), "actor": a.actor, "action": a.action, "subject": a.subject, "details": json.dumps(a.details, sort_keys=True)}


def audit_rows(session: Session, f: AuditFilter) -> Iterator[dict[str, object]]:
    """Every row the filter selects, oldest first, as the export and `kiosk audit` print them."""
    to_row = event_row if f.log == EVENTS else action_row
    for item in session.scalars(audit_query(f)):
        yield to_row(item)


# Cells starting with these are run as formulas by Excel, LibreOffice and Google Sheets (OWASP,
# CSV injection). Names and reasons come from outside (an enrolment, a crafted log row), so a
# name like =HYPERLINK(...) must open as text: such string cells get a leading "'".
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A string cell a spreadsheet would run, made plain text; numbers and the rest unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(fh: IO[str], log: str, rows: Iterable[dict[str, object]]) -> int:
    """Write rows as CSV with the log's columns, formula cells neutralised; returns how many were written."""
    writer = csv.DictWriter(fh, fieldnames=EVENT_FIELDS if log == EVENTS else ACTION_FIELDS)
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})
        count += 1
    return count
