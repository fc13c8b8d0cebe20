"""The door's link to its site, run beside the door service: replica follower + uploader.

Nothing here is on the door's critical path: the door loop commits to its own SQLite and
decides from its replica; these threads only copy changes down and events up, and when the
site is down they retry every ``site.retry_seconds`` while the door carries on. The door
also reports its health to its ``doors`` row (last contact, replica version, outbox depth) for
`kiosk site doors`: after every replica sync, and otherwise at most every
``HEALTH_SECONDS``, not after every event (a second transaction per decision, times the
site's doors, for a figure nobody reads to the second).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from sqlalchemy import Engine, func, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.models import Door
from kiosk.config import Settings
from kiosk.errors import KioskError
from kiosk.site.connection import retry_if_dropped, site_engine, site_url
from kiosk.site.replica import ReplicaFollower, SyncReport, local_version, sync
from kiosk.site.uploader import outbox_depth, upload_pending

log = logging.getLogger(__name__)

HEALTH_SECONDS = 5.0


class SiteLink:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], site: Engine | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self._reported_at: float | None = None
        self.sessions = sessions
        self.site = site or site_engine(settings)
        self.follower = ReplicaFollower(settings, sessions, self.site, site_url(settings), self._synced)
        self.uploaded = 0
        self.last_sync: SyncReport | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def catch_up(self) -> bool:
        """Once, before the door loads its model: sync the replica and send what is pending.
        False (logged) when the site cannot be reached: the door starts on the replica it has."""
        try:
            self.last_sync = retry_if_dropped(lambda: sync(self.site, self.sessions, self.settings))
            self.upload(report=True)
        except (SQLAlchemyError, psycopg.Error, OSError, KioskError) as exc:
            log.warning("site database unreachable at start, deciding from the local replica: %s", str(exc).splitlines()[0])
            return False
        return True

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self.follower.run, args=(self._stop,), name="site-replica", daemon=True),
            threading.Thread(target=self._upload_loop, name="site-upload", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def wake(self, *_args: object) -> None:
        """A new event was stored: send it now rather than at the next upload round."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads = []
        self.site.dispose()

    def upload(self, timings: list[float] | None = None, report: bool = False) -> int:
        """Send what is pending, then report health if asked (after catching up) or if it is due.
        ``timings`` as for `upload_pending` (the load benchmark)."""
        sent = upload_pending(self.site, self.sessions, timings=timings)
        self.uploaded += sent
        if report or self._reported_at is None or self.clock() - self._reported_at >= HEALTH_SECONDS:
            self._report()
        return sent

    def _upload_loop(self) -> None:
        failing = False
        while not self._stop.is_set():
            self._wake.wait(self.settings.site.upload_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.upload(report=failing)  # back after an outage: say so at once
                failing = False
            except (SQLAlchemyError, psycopg.Error, OSError) as exc:
                if not failing:
                    log.warning("events kept at the door until the site is back: %s", str(exc).splitlines()[0])
                failing = True
                self._stop.wait(self.settings.site.retry_seconds)

    def _synced(self, report: SyncReport) -> None:
        self.last_sync = report
        self._report()

    def _report(self) -> None:
        values = {"last_contact": func.now(), "replica_version": local_version(self.sessions), "outbox_depth": outbox_depth(self.sessions)}

        def update_row() -> None:
            with self.site.begin() as conn:
                conn.execute(update(Door).where(Door.name == self.settings.site.door).values(values))

        retry_if_dropped(update_row)
        self._reported_at = self.clock()
