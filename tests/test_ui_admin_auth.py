"""Admin sign-in: slow hash only, lockout with doubling waits kept in the database, set-pin CLI."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import REPO, kiosk_env, make_settings, run_kiosk
from sqlalchemy import select
from ui_home import FAST_HASH

from db.models import AdminAction, AdminCredential
from kiosk.admin.auth import FIRST_LOCK, FREE_ATTEMPTS, MAX_LOCK, REFUSED, AdminAuth, lock_duration
from kiosk.context import KioskContext
from kiosk.errors import KioskError


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 4, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture()
def auth(tmp_path: Path) -> tuple[AdminAuth, Clock]:
    clock = Clock()
    return AdminAuth(KioskContext(make_settings(tmp_path / "home")).sessions, hasher=FAST_HASH, clock=clock), clock


def test_lock_durations_double_up_to_the_cap() -> None:
    assert [lock_duration(n) for n in range(FREE_ATTEMPTS)] == [timedelta(0)] * FREE_ATTEMPTS
    assert lock_duration(FREE_ATTEMPTS) == FIRST_LOCK
    assert lock_duration(FREE_ATTEMPTS + 1) == 2 * FIRST_LOCK
    assert lock_duration(FREE_ATTEMPTS + 2) == 4 * FIRST_LOCK
    assert lock_duration(100) == MAX_LOCK


def test_wrong_pins_lock_the_account_even_against_the_right_pin(auth: tuple[AdminAuth, Clock]) -> None:
    a, clock = auth
    a.set_secret("admin", "2468")
    for n in range(1, FREE_ATTEMPTS):
        result = a.sign_in("admin", "0000")
        assert not result.ok and result.locked_until is None
    locked = a.sign_in("admin", "0000")
    assert not locked.ok and locked.locked_until == clock.now + FIRST_LOCK
    assert not a.sign_in("admin", "2468").ok  # the right PIN is refused while locked
    clock.now += FIRST_LOCK + timedelta(seconds=1)
    again = a.sign_in("admin", "1111")  # one more wrong try after the lock: twice as long
    assert again.locked_until == clock.now + 2 * FIRST_LOCK
    clock.now += 2 * FIRST_LOCK + timedelta(seconds=1)
    assert a.sign_in("admin", "2468").ok
    with a.sessions() as session:
        cred = session.scalars(select(AdminCredential)).one()
        failed = session.scalars(select(AdminAction).where(AdminAction.action == "sign-in-failed")).all()
    assert cred.failed_attempts == 0 and cred.locked_until is None
    assert len(failed) == FREE_ATTEMPTS + 1
    assert "2468" not in cred.secret_hash and cred.secret_hash.startswith("$argon2id$")


def test_unknown_user_and_short_pin(auth: tuple[AdminAuth, Clock]) -> None:
    a, _ = auth
    a.set_secret("admin", "2468")
    assert a.sign_in("mallory", "2468").message == REFUSED
    with pytest.raises(KioskError, match="at least 4"):
        a.set_secret("admin", "12")


def test_set_pin_command_and_admin_refuses_to_open_without_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    no_pin = run_kiosk(["admin"], home)
    assert no_pin.returncode == 2 and no_pin.stderr.strip() == "error: no admin PIN is set yet: run `kiosk admin set-pin` first"
    set_pin = subprocess.run(
        [sys.executable, "-m", "kiosk", "admin", "set-pin", "--user", "ada"],
        env=kiosk_env(home), input="2468\n2468\n", capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert set_pin.returncode == 0, set_pin.stderr
    assert "PIN set for ada" in set_pin.stdout and "2468" not in set_pin.stdout
    assert AdminAuth(KioskContext(make_settings(home)).sessions).sign_in("ada", "2468").ok


# --- hardening (issue 13, item 9): no user-name probing -----------------------------------


def test_unknown_user_wrong_pin_and_lockout_answer_alike(auth: tuple[AdminAuth, Clock]) -> None:
    """Every refusal reads the same, so the answers cannot tell which user names exist."""
    a, clock = auth
    a.set_secret("admin", "2468")
    unknown = [a.sign_in("mallory", "0000") for _ in range(FREE_ATTEMPTS + 1)]
    known = [a.sign_in("admin", "0000") for _ in range(FREE_ATTEMPTS)]
    locked = a.sign_in("admin", "2468")  # the right PIN while locked: still refused
    refusals = unknown + known + [locked]
    assert not any(r.ok for r in refusals)
    assert {r.message for r in refusals} == {unknown[0].message}
    assert "user name or PIN" in unknown[0].message
    assert known[-1].locked_until == clock.now + FIRST_LOCK  # the lockout itself is unchanged
    clock.now += FIRST_LOCK + timedelta(seconds=1)
    assert a.sign_in("admin", "2468").ok
