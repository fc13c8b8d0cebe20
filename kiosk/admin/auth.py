"""Admin sign-in: a PIN or password kept only as an argon2 hash, wrong attempts locked out.

The lockout lives in the AdminCredential row, not in the app, so quitting and restarting the
admin app (or opening a second one over SSH) does not reset it. After ``FREE_ATTEMPTS`` wrong
tries in a row each further wrong try locks the account for twice as long as the last one,
up to ``MAX_LOCK``; a right answer clears the count.

Every refusal (unknown user, wrong PIN, locked account) gives the same message and costs the
same argon2 work, so neither the answer nor its timing tells which user names exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import AdminAction, AdminCredential, utcnow
from kiosk.errors import KioskError

FREE_ATTEMPTS = 3
FIRST_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(hours=1)
MIN_SECRET = 4
REFUSED = f"wrong user name or PIN ({FREE_ATTEMPTS} wrong tries in a row lock sign-in for a while)"


@dataclass(frozen=True)
class SignIn:
    """The outcome of one attempt; ``message`` is what the sign-in screen shows."""

    ok: bool
    message: str
    locked_until: datetime | None = None


def lock_duration(failed_attempts: int) -> timedelta:
    """How long the account stays locked after this many wrong tries in a row."""
    if failed_attempts < FREE_ATTEMPTS:
        return timedelta(0)
    doublings = min(failed_attempts - FREE_ATTEMPTS, 20)  # 30 s * 2**20 is far past the cap already
    return min(FIRST_LOCK * 2**doublings, MAX_LOCK)


class AdminAuth:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.sessions = sessions
        self.hasher = hasher or PasswordHasher()
        self.clock = clock

    def has_credentials(self) -> bool:
        with self.sessions() as session:
            return session.scalar(select(AdminCredential.id).limit(1)) is not None

    def set_secret(self, username: str, secret: str, actor: str = "cli") -> None:
        """Create the admin or replace their PIN; the lockout is cleared and the change logged."""
        username = username.strip()
        if not username:
            raise KioskError("the admin user name cannot be empty")
        if len(secret) < MIN_SECRET:
            raise KioskError(f"the PIN or password must have at least {MIN_SECRET} characters")
        digest = self.hasher.hash(secret)
        with self.sessions.begin() as session:
            cred = session.scalar(select(AdminCredential).where(AdminCredential.username == username))
            if cred is None:
                session.add(AdminCredential(username=username, secret_hash=digest, failed_attempts=0))
            else:
                cred.secret_hash, cred.failed_attempts, cred.locked_until = digest, 0, None
            session.add(AdminAction(time=self.clock(), actor=actor, action="set-pin", subject=username, details={}))

    def sign_in(self, username: str, secret: str) -> SignIn:
        """Check one attempt. Locked accounts are refused without looking at the secret."""
        now = self.clock()
        with self.sessions.begin() as session:
            cred = session.scalar(select(AdminCredential).where(AdminCredential.username == username.strip()))
            if cred is None:
                self._burn(secret)  # same cost as a real check: no hint which names exist
                return SignIn(False, REFUSED)
            if cred.locked_until is not None and cred.locked_until > now:
                self._burn(secret)
                return SignIn(False, REFUSED, cred.locked_until)
            if self._matches(cred.secret_hash, secret):
                if self.hasher.check_needs_rehash(cred.secret_hash):
                    cred.secret_hash = self.hasher.hash(secret)
                cred.failed_attempts, cred.locked_until = 0, None
                session.add(AdminAction(time=now, actor=cred.username, action="sign-in", subject=cred.username, details={}))
                return SignIn(True, f"signed in as {cred.username}")
            cred.failed_attempts += 1
            lock = lock_duration(cred.failed_attempts)
            session.add(
                AdminAction(
                    time=now, actor=cred.username, action="sign-in-failed", subject=cred.username, details={"failed_attempts": cred.failed_attempts}
                )
            )
            if lock:
                cred.locked_until = now + lock
            return SignIn(False, REFUSED, cred.locked_until)

    def _matches(self, digest: str, secret: str) -> bool:
        try:
            return self.hasher.verify(digest, secret)
        except (VerificationError, InvalidHashError):
            return False

    def _burn(self, secret: str) -> None:
        self.hasher.hash(secret)
