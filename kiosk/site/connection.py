"""The door's connection to the site database: its own role, password from a file, TLS in the URL."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine

from kiosk.config import Settings, with_password
from kiosk.errors import ConfigError

# Fail fast while the site is down: the door never waits on it, but its threads should notice.
CONNECT_TIMEOUT_S = 5


def site_url(settings: Settings) -> str:
    if not settings.site.url:
        raise ConfigError("site.url is not set: this door is not part of a site")
    return with_password(settings.site.url, settings.site.password_file)


def site_engine(settings: Settings) -> Engine:
    """A small pool for the door's two site threads; a dead connection is noticed, not reused."""
    return create_engine(
        site_url(settings),
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=1,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": f"kiosk-door-{settings.site.door}"},
    )
