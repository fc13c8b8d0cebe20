"""The door's connection to the site database: its own role, password from a file, TLS in the URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError

from kiosk.config import Settings, with_password
from kiosk.errors import ConfigError

# Fail fast while the site is down: the door never waits on it, but its threads should notice.
CONNECT_TIMEOUT_S = 5

T = TypeVar("T")


def site_url(settings: Settings) -> str:
    if not settings.site.url:
        raise ConfigError("site.url is not set: this door is not part of a site")
    return with_password(settings.site.url, settings.site.password_file)


def site_engine(settings: Settings) -> Engine:
    """A small pool for the door's two site threads.

    No ping before each use (a round trip per transaction, with fifty doors on one server):
    a connection the server dropped is noticed by the statement that fails on it, and
    `retry_if_dropped` repeats that work on a fresh one.
    """
    return create_engine(
        site_url(settings),
        pool_size=2,
        max_overflow=1,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": f"kiosk-door-{settings.site.door}"},
    )


def retry_if_dropped(work: Callable[[], T]) -> T:
    """Run ``work``; if it failed because the server had dropped the pooled connection (a restart),
    run it once more, on a new connection (SQLAlchemy has emptied the pool). ``work`` must be
    safe to repeat: a site transaction that either committed or did not."""
    try:
        return work()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return work()
