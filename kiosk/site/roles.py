"""Setting a site up and registering its doors, each with its own database role.

A door's role may read what doors replicate (people, their cards, model versions and their
files, calibrations and liveness calibrations, the threshold override, the site version) and
append events; row-level security (migration 0006_site) limits it to its own events and its own ``doors`` row, of which
it may update only the health columns. It cannot change or delete any row, nor read another
door's events. The admin role that runs these commands owns the tables and is not limited.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from db.models import Door
from db.session import upgrade
from kiosk.errors import KioskError

READ_ONLY = (
    "people", "credentials", "training_runs", "calibrations", "liveness_calibrations", "site_artifacts", "threshold_overrides", "site_state",
)
HEALTH_COLUMNS = ("last_contact", "replica_version", "outbox_depth")


def require_postgres(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise KioskError(f"a site database is PostgreSQL; database.url points at {engine.dialect.name} (set database.url = postgresql+psycopg://...)")


def init_site(engine: Engine) -> str | None:
    """Migrate the site database to the current schema; returns the revision."""
    from db.session import current_revision

    require_postgres(engine)
    upgrade(engine)
    return current_revision(engine)


def role_for(engine: Engine, door: str) -> str:
    """``<database>_door_<name>``: roles are per server, so the database's name keeps sites apart."""
    slug = re.sub(r"[^a-z0-9_]+", "_", door.lower()).strip("_")
    if not slug:
        raise KioskError(f"door name {door!r} needs at least one letter or digit")
    database = re.sub(r"[^a-z0-9_]+", "_", (engine.url.database or "site").lower())
    return f"{database}_door_{slug}"[:63]


def add_door(engine: Engine, sessions: sessionmaker[Session], name: str, location: str) -> tuple[Door, str]:
    """Register a door and create its role; returns the row and the role's password (shown once)."""
    require_postgres(engine)
    if not 0 < len(name) <= 100:
        raise KioskError("a door's name is 1 to 100 characters")
    role = role_for(engine, name)
    password = secrets.token_urlsafe(24)  # [A-Za-z0-9_-]: safe inside a quoted literal
    with sessions.begin() as session:
        if session.scalar(select(Door.id).where(Door.name == name)) is not None:
            raise KioskError(f"a door named {name!r} is already registered")
        exists = session.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        verb = "ALTER" if exists else "CREATE"
        session.execute(text(f"{verb} ROLE {role} LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE"))
        database = session.scalar(text("SELECT current_database()"))
        session.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {role}'))
        session.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        session.execute(text(f"GRANT SELECT ON {', '.join(READ_ONLY)} TO {role}"))
        session.execute(text(f"GRANT SELECT, INSERT ON access_events TO {role}"))
        session.execute(text(f"GRANT USAGE ON SEQUENCE access_events_id_seq TO {role}"))
        session.execute(text(f"GRANT SELECT, UPDATE ({', '.join(HEALTH_COLUMNS)}) ON doors TO {role}"))
        door = Door(name=name, location=location, role_name=role)
        session.add(door)
    return door, password


DOOR_COLUMNS = ("door", "location", "last contact", "replica", "outbox")


@dataclass(frozen=True)
class DoorHealth:
    """A registered door as it last reported: contact, replica version against the site's, unsent events."""

    name: str
    location: str
    role: str
    last_contact: datetime | None
    replica_version: int | None
    site_version: int
    outbox_depth: int | None

    @property
    def replica_current(self) -> bool:
        return self.replica_version == self.site_version

    def cells(self, now: datetime) -> tuple[str, str, str, str, str]:
        """The door's line under DOOR_COLUMNS, the same in `kiosk site doors` and the admin app's door screen."""
        seen = "never" if self.last_contact is None else f"{(now - self.last_contact).total_seconds():.0f} s ago"
        replica = "-" if self.replica_version is None else f"{self.replica_version}/{self.site_version}"
        outbox = "-" if self.outbox_depth is None else str(self.outbox_depth)
        return (self.name, self.location, seen, replica, outbox)


def list_doors(engine: Engine, sessions: sessionmaker[Session]) -> list[DoorHealth]:
    from db.models import SiteState

    require_postgres(engine)
    with sessions() as session:
        version = session.scalar(select(SiteState.version).where(SiteState.id == 1)) or 0
        return [
            DoorHealth(d.name, d.location, d.role_name, d.last_contact, d.replica_version, version, d.outbox_depth)
            for d in session.scalars(select(Door).order_by(Door.name))
        ]
