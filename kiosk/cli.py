"""The `kiosk` command: a click group whose subcommands live in kiosk/commands/, one module each.

Every module in kiosk.commands is imported at start-up and attaches its commands to ``main``;
modules keep heavy imports (torch, onnxruntime) inside the command bodies so `kiosk --help`
stays fast. A KioskError anywhere becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import faulthandler
import importlib
import io
import json
import logging
import os
import pkgutil
import sys
from pathlib import Path
from typing import Any

import click

from kiosk.config import load_settings
from kiosk.context import KioskContext
from kiosk.errors import KioskError

EXIT_USAGE = 2


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


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _load_commands() -> None:
    import kiosk.commands as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        importlib.import_module(f"{package.__name__}.{info.name}")


def run() -> None:
    """Entry point: commands loaded, KioskError shown as one line, never a traceback."""
    _load_commands()
    try:
        status = main.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KioskError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)
