"""The `kiosk` command's entry point: load every subcommand module, run the group, show errors as one line.

The group itself is kiosk.commands.base.main. Every module in kiosk.commands is imported at
start-up and attaches its commands to ``main``; modules keep heavy imports (torch, onnxruntime) inside the command bodies so `kiosk --help`
stays fast. A KioskError anywhere becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from kiosk.commands.base import main
from kiosk.errors import KioskError

EXIT_USAGE = 2


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
