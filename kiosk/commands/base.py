"""The `kiosk` click group and what every subcommand shares: the lazily built context, JSON output.

Each module in kiosk/commands attaches its commands to ``main``; kiosk.cli imports them all and
runs the group. Kept apart from kiosk.cli so commands import this, never the entry point.
"""

from __future__ import annotations

import faulthandler
import io
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from kiosk.config import load_settings
from kiosk.context import KioskContext
from kiosk.errors import KioskError


class Lazy:
    """Holds the --config choice; the settings are read only when a command asks for them."""

    def __init__(self, config: Path | None):
        self.config = config
        self._ctx: KioskContext | None = None

    @property
    def kiosk(self) -> KioskContext:
        if self._ctx is None:
            self._ctx = KioskContext(load_settings(self.config))
        return self._ctx


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="KIOSK_CONFIG",
    help="TOML configuration file (default: $KIOSK_CONFIG, else built-in defaults).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def main(ctx: click.Context, config: Path | None, verbose: int) -> None:
    """Face-recognition door kiosk."""
    try:
        faulthandler.enable()  # a hang or crash in native code still leaves a traceback in the journal
    except (AttributeError, ValueError, io.UnsupportedOperation):
        pass  # stderr is not a real file (an in-process test runner): nothing to dump into
    os.umask(0o077)  # every file the kiosk creates (crops, models, backups) is the service user's alone
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = Lazy(config)


pass_kiosk = click.make_pass_decorator(Lazy)


def refuse_at_a_site_door(lazy: Lazy, what: str) -> None:
    """A site door's replica is rewritten from the site: a change made there would be lost, or clash with the site's ids."""
    settings = lazy.kiosk.settings
    if settings.site_door:
        raise KioskError(
            f"{what} is done once, at the site, not at door {settings.site.door!r} (its replica follows the site): "
            "run `kiosk` with database.url pointing at the site database"
        )


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
