"""One audit query, one meaning: `kiosk audit` and the Audit screen give the same rows for one filter.

The meaning under test (kiosk.storage.audit_query): both ends inclusive, a bare date `until`
covers its whole day, and a time without an offset is read in the reader's zone (the machine's
zone for the CLI, the admin app's zone on the screen).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import make_settings, run_kiosk
from textual.widgets import DataTable, Input, Static
from ui_home import PIN, admin_app, sign_in, wait_until

from db.models import AccessEvent
from kiosk.admin.auth import AdminAuth
from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.storage.audit_query import AuditFilter, audit_rows, parse_time

ZONE = "Asia/Kolkata"  # UTC+05:30 all year: far from UTC, and no daylight saving to step over
KOLKATA = ZoneInfo(ZONE)
NOON_UTC = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)  # 17:30 in Kolkata


@pytest.fixture()
def log_home(tmp_path: Path) -> Path:
    """A data directory holding events at known instants around 3 March 2025 (UTC), and an admin PIN."""
    home = tmp_path / "home"
    ctx = KioskContext(make_settings(home))
    offsets = [timedelta(hours=-18), timedelta(minutes=-1), timedelta(0), timedelta(minutes=1), timedelta(hours=6, minutes=29), timedelta(hours=6, minutes=31)]
    with ctx.sessions.begin() as session:
        for i, offset in enumerate(offsets):
            session.add(AccessEvent(time=NOON_UTC + offset, door="front", person_name="Ada" if i % 2 else "Grace", granted=bool(i % 2), probability=0.9, reason="test"))
    AdminAuth(ctx.sessions).set_secret("admin", PIN, actor="admin")
    ctx.engine.dispose()
    return home


def test_naive_times_are_read_in_the_readers_zone_and_a_bare_until_date_covers_the_day() -> None:
    assert parse_time("2025-03-03T17:30", KOLKATA) == NOON_UTC
    assert parse_time("2025-03-03T12:00Z", KOLKATA) == NOON_UTC  # an offset wins over the reader's zone
    assert parse_time("2025-03-03", KOLKATA, end=True) == datetime(2025, 3, 3, 23, 59, 59, 999999, tzinfo=KOLKATA)
    assert parse_time("  ", KOLKATA) is None
    with pytest.raises(KioskError, match="not an ISO date or time"):
        parse_time("yesterday", KOLKATA)


def test_until_is_inclusive(log_home: Path) -> None:
    ctx = KioskContext(make_settings(log_home))
    with ctx.sessions() as session:
        upto_noon = [r["time"] for r in audit_rows(session, AuditFilter(until=NOON_UTC))]
        from_noon = [r["time"] for r in audit_rows(session, AuditFilter(since=NOON_UTC))]
    assert NOON_UTC.isoformat() in upto_noon and NOON_UTC.isoformat() in from_noon
    assert len(upto_noon) + len(from_noon) == 6 + 1  # the event at noon is in both


def cli_ids(home: Path, *args: str) -> list[int]:
    proc = run_kiosk(["audit", "--format", "json", *args], home, TZ=ZONE)
    assert proc.returncode == 0, proc.stderr
    return [row["id"] for row in json.loads(proc.stdout)]


def screen_ids(home: Path, detector: object, embedder: object, since: str, until: str, person: str, expect: int) -> list[int]:
    """The event ids the Audit screen lists once its page line says ``expect`` events (it times out otherwise)."""

    async def run() -> list[int]:
        app = admin_app(home, detector, embedder, tz=KOLKATA, page_size=50)
        async with app.run_test(size=(120, 40)) as pilot:
            await sign_in(pilot)
            await pilot.press("f4")
            await wait_until(pilot, lambda: app.screen.query("#audit-page"), what="the audit screen")
            screen = app.screen
            page = screen.query_one("#audit-page", Static)
            await wait_until(pilot, lambda: "events" in str(page.render()), what="the first page")
            screen.query_one("#since", Input).value = since
            screen.query_one("#until", Input).value = until
            screen.query_one("#person", Input).value = person
            screen.query_one("#person", Input).focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda: str(page.render()).endswith(f", {expect} events"), what=f"{expect} events on the screen")
            table = screen.query_one("#audit-table", DataTable)
            return sorted(int(str(key.value).removeprefix("events-")) for key in table.rows)

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("since", "until", "person"),
    [
        ("2025-03-03T17:29", "2025-03-03T17:30", ""),  # naive local times; the noon-UTC event sits on the inclusive end
        ("2025-03-03", "2025-03-03", ""),  # whole local day: 18:30 UTC on 2 March up to 18:29:59 UTC on 3 March
        ("2025-03-03T12:00Z", "2025-03-03T18:30Z", "Ada"),  # explicit offsets, and a person
    ],
)
def test_cli_and_screen_give_the_same_rows(log_home: Path, detector, embedder, since: str, until: str, person: str) -> None:
    from_cli = sorted(cli_ids(log_home, "--since", since, "--until", until, *(["--person", person] if person else [])))
    assert from_cli, "the filter should select something, or the comparison proves nothing"
    assert from_cli == screen_ids(log_home, detector, embedder, since, until, person, expect=len(from_cli))


def test_local_day_selects_by_the_readers_clock(log_home: Path) -> None:
    """3 March in Kolkata ends at 18:29:59 UTC: the event at 18:29 UTC is in, the one at 18:31 UTC is out."""
    ids = cli_ids(log_home, "--since", "2025-03-03", "--until", "2025-03-03")
    ctx = KioskContext(make_settings(log_home))
    with ctx.sessions() as session:
        times = {r["id"]: r["time"] for r in audit_rows(session, AuditFilter())}
    chosen = sorted(times[i] for i in ids)
    assert chosen[0] == (NOON_UTC - timedelta(minutes=1)).isoformat()  # 18 h before noon UTC is 23:30 on 2 March in Kolkata
    assert chosen[-1] == (NOON_UTC + timedelta(hours=6, minutes=29)).isoformat()
