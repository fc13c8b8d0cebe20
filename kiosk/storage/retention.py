"""Retention: `kiosk audit purge`, run daily by systemd/kiosk-purge.timer.

Old access events and admin actions are deleted oldest first, a prefix of each chain at a
time, and each chain's anchor moves to the last deleted row, so `kiosk audit verify` still
proves everything that remains. The purge itself is recorded as an admin action (chained).
Event thumbnails expire on their own, shorter clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from db.audit_chain import purge_before
from db.models import AdminAction
from kiosk.context import KioskContext
from kiosk.storage.thumbnails import delete_thumbnails, expire_thumbnails


@dataclass
class PurgeReport:
    cutoff: datetime | None
    rows: dict[str, int] = field(default_factory=dict)  # chain -> rows deleted
    thumbnails: int = 0


def purge(ctx: KioskContext, older_than_days: int | None, actor: str = "retention", now: datetime | None = None) -> PurgeReport:
    """Purge audit rows older than the given days (None or 0: keep them) and expire thumbnails."""
    now = now or datetime.now(timezone.utc)
    home = ctx.settings.home
    report = PurgeReport(cutoff=now - timedelta(days=older_than_days) if older_than_days else None)
    if report.cutoff is not None:
        with ctx.sessions.begin() as session:
            ranges = purge_before(session, report.cutoff)
            report.rows = {r.chain: r.rows for r in ranges}
            if any(report.rows.values()):
                session.add(AdminAction(
                    actor=actor, action="purge", subject=None,
                    details={"older_than_days": older_than_days, "cutoff": report.cutoff.isoformat(),
                             "rows": report.rows, "through_ids": {r.chain: r.through_id for r in ranges}},
                ))
        report.thumbnails += delete_thumbnails(home, [p for r in ranges for p in r.thumbnails])
    report.thumbnails += expire_thumbnails(ctx.sessions, home, ctx.settings.privacy.thumbnail_retention_days, now)
    return report
