"""A real PostgreSQL 15 for the site tests and the site benchmark, started by .ci/services/postgres.

The server lives in a private folder under /tmp (owned by the postgres user when run as root,
since initdb refuses root), listens on 127.0.0.1 on a free port only, and is stopped at the
end. If it cannot start, the tests that need it fail: nothing is skipped.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "services" / "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One server; `stop` and `start` again simulate an outage (same data, same port)."""

    def __init__(self, folder: Path | None = None, port: int | None = None):
        self.folder = folder or Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
        self.port = port or free_port()
        self.admin_url = ""
        self.running = False

    def start(self) -> str:
        done = subprocess.run(["bash", str(SCRIPT), "start", str(self.folder), str(self.port)],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr.strip()[-2000:]}")
        self.admin_url = done.stdout.strip().splitlines()[-1]
        self.running = True
        return self.admin_url

    def stop(self) -> None:
        if self.running:
            subprocess.run(["bash", str(SCRIPT), "stop", str(self.folder)], check=True, capture_output=True, timeout=120)
            self.running = False

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def new_database(self, prefix: str = "site") -> str:
        """A fresh, empty database on this server; returns its URL (as the superuser)."""
        name = f"{prefix}_{secrets.token_hex(4)}"
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session", name="pg_server")
def pg_server_fixture() -> Iterator[PgServer]:
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(name="site_url")
def site_url_fixture(pg_server: PgServer) -> str:
    """A fresh database on the session's server, for one test."""
    if not pg_server.running:
        pg_server.start()
    return pg_server.new_database()
