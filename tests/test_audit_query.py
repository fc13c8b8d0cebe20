"""One audit query, one meaning: `kiosk audit` and the Audit screen give the same rows for one filter.

The meaning under test (kiosk.storage.audit_query): both ends inclusive, a bare date `until`
covers its whole day, a time without an offset is read in the reader's zone (the machine's
zone for the CLI, the admin app's zone on the screen), and a door filter selects the events of
one door, on a single door's SQLite as on a site's PostgreSQL (a real server, tests/pg_server.py).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import make_settings, run_kiosk
from pg_server import pg_server_fixture, site_url_fixture  # noqa: F401 (the fixtures pg_server, site_url)
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from textual.widgets import DataTable, Input, Static
from ui_home import PIN, admin_app, sign_in, wait_until

from db.models import AccessEvent
from kiosk.admin.auth import AdminAuth
from kiosk.config import DatabaseConfig
from kiosk.context import KioskContext
from kiosk.errors import KioskError
from kiosk.site.roles import add_door, init_site
from kiosk.site.uploader import upload_pending
from kiosk.storage.audit_query import AuditFilter, audit_rows, parse_time

ZONE = "Asia/Kolkata"  # UTC+05:30 all year: far from UTC, and no daylight saving to step over
KOLKATA = ZoneInfo(ZONE)
NOON_UTC = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)  # 17:30 in Kolkata
DOORS = ["front", "front", "back", "back", "front", "back"]  # the door of each event in log_home


@pytest.fixture()
def log_home(tmp_path: Path) -> Path:
    """A data directory holding events at known instants around 3 March 2025 (UTC), and an admin PIN."""
    home = tmp_path / "home"
    ctx = KioskContext(make_settings(home))
    offsets = [timedelta(hours=-18), timedelta(minutes=-1), timedelta(0), timedelta(minutes=1), timedelta(hours=6, minutes=29), timedelta(hours=6, minutes=31)]
    with ctx.sessions.begin() as session:
        for i, offset in enumerate(offsets):
            session.add(AccessEvent(time=NOON_UTC + offset, door=DOORS[i], person_name="Ada" if i % 2 else "Grace", granted=bool(i % 2), probability=0.9, reason="test"))
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


def cli_rows(home: Path, *args: str, **env: str) -> list[tuple[int, str]]:
    """(id, door) of each event `kiosk audit --format json ARGS` prints."""
    proc = run_kiosk(["audit", "--format", "json", *args], home, TZ=ZONE, **env)
    assert proc.returncode == 0, proc.stderr
    return [(row["id"], row["door"]) for row in json.loads(proc.stdout)]


def cli_ids(home: Path, *args: str) -> list[int]:
    return [event_id for event_id, _door in cli_rows(home, *args)]


def screen_rows(home: Path, detector: object, embedder: object, filters: dict[str, str], expect: int, database_url: str = "") -> list[tuple[int, str]]:
    """(id, door cell) of each event the Audit screen lists once its page line says ``expect`` events
    (it times out otherwise); ``filters`` are typed into the inputs of those ids."""

    async def run() -> list[tuple[int, str]]:
        app = admin_app(home, detector, embedder, database_url, tz=KOLKATA, page_size=50)
        async with app.run_test(size=(120, 40)) as pilot:
            await sign_in(pilot)
            await pilot.press("f4")
            await wait_until(pilot, lambda: app.screen.query("#audit-page"), what="the audit screen")
            screen = app.screen
            page = screen.query_one("#audit-page", Static)
            await wait_until(pilot, lambda: "events" in str(page.render()), what="the first page")
            for field, value in filters.items():
                screen.query_one(f"#{field}", Input).value = value
            screen.query_one("#person", Input).focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda: str(page.render()).endswith(f", {expect} events"), what=f"{expect} events on the screen")
            table = screen.query_one("#audit-table", DataTable)
            door = [str(c.label) for c in table.ordered_columns].index("door")
            return sorted((int(str(key.value).removeprefix("events-")), str(table.get_row(key)[door])) for key in table.rows)

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("since", "until", "person", "door"),
    [
        ("2025-03-03T17:29", "2025-03-03T17:30", "", ""),  # naive local times; the noon-UTC event sits on the inclusive end
        ("2025-03-03", "2025-03-03", "", ""),  # whole local day: 18:30 UTC on 2 March up to 18:29:59 UTC on 3 March
        ("2025-03-03T12:00Z", "2025-03-03T18:30Z", "Ada", ""),  # explicit offsets, and a person
        ("2025-03-03", "2025-03-03", "", "back"),  # one door of the day's two
        ("2025-03-03T12:00Z", "2025-03-03T18:30Z", "", "front"),
    ],
)
def test_cli_and_screen_give_the_same_rows(log_home: Path, detector, embedder, since: str, until: str, person: str, door: str) -> None:
    options = {"since": since, "until": until, "person": person, "door": door}
    from_cli = sorted(cli_rows(log_home, *(arg for field, value in options.items() if value for arg in (f"--{field}", value))))
    assert from_cli, "the filter should select something, or the comparison proves nothing"
    if door:
        assert {d for _, d in from_cli} == {door} and len(from_cli) < len(cli_rows(log_home, "--since", since, "--until", until))
    assert from_cli == screen_rows(log_home, detector, embedder, options, expect=len(from_cli))


def test_a_site_audit_shows_one_doors_events_the_same_on_the_cli_and_the_screen(site_url: str, tmp_path: Path, detector, embedder) -> None:
    """Two doors upload their events to a site (PostgreSQL); its audit, read by door, on either side."""
    admin_home = tmp_path / "admin"
    admin = KioskContext(make_settings(admin_home, database=DatabaseConfig(url=site_url)))
    init_site(admin.engine)
    AdminAuth(admin.sessions).set_secret("admin", PIN, actor="admin")
    for name, count in (("east", 3), ("west", 2)):
        door, password = add_door(admin.engine, admin.sessions, name, f"{name} entrance")
        ctx = KioskContext(make_settings(tmp_path / name, door=name))
        with ctx.sessions.begin() as session:
            for i in range(count):
                session.add(AccessEvent(time=NOON_UTC + timedelta(minutes=i), door=name, person_name="Ada", granted=True, probability=0.9, reason="test"))
        site = create_engine(make_url(site_url).set(username=door.role_name, password=password))
        assert upload_pending(site, ctx.sessions) == count
        site.dispose()
        ctx.engine.dispose()
    admin.engine.dispose()
    from_cli = sorted(cli_rows(admin_home, "--door", "west", KIOSK_DATABASE__URL=site_url))
    assert [d for _, d in from_cli] == ["west", "west"]
    assert from_cli == screen_rows(admin_home, detector, embedder, {"door": "west"}, expect=2, database_url=site_url)
    assert len(cli_rows(admin_home, KIOSK_DATABASE__URL=site_url)) == 5


def test_local_day_selects_by_the_readers_clock(log_home: Path) -> None:
    """3 March in Kolkata ends at 18:29:59 UTC: the event at 18:29 UTC is in, the one at 18:31 UTC is out."""
    ids = cli_ids(log_home, "--since", "2025-03-03", "--until", "2025-03-03")
    ctx = KioskContext(make_settings(log_home))
    with ctx.sessions() as session:
        times = {r["id"]: r["time"] for r in audit_rows(session, AuditFilter())}
    chosen = sorted(times[i] for i in ids)
    assert chosen[0] == (NOON_UTC - timedelta(minutes=1)).isoformat()  # 18 h before noon UTC is 23:30 on 2 March in Kolkata
    assert chosen[-1] == (NOON_UTC + timedelta(hours=6, minutes=29)).isoformat()
