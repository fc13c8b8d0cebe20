"""`kiosk doctor`: is this box ready to watch the door, and if not, what to do about it."""

from __future__ import annotations

import sys

import click

from kiosk.commands.base import Lazy, echo_json, main, pass_kiosk
from kiosk.errors import KioskError

MARKS = {"ok": "  ok", "warn": "warn", "fail": "FAIL"}


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@pass_kiosk
def doctor(lazy: Lazy, as_json: bool) -> int:
    """Check the camera, the models, the database and the GPIO; say what is wrong and how to fix it.

    Exit status 1 if any check fails (warnings alone do not fail).
    """
    from kiosk.admin.diagnostics import configuration_problem, run_checks

    try:
        ctx = lazy.kiosk
    except KioskError as exc:
        findings = [configuration_problem(exc)]
    else:
        findings = run_checks(ctx, lazy.config)
    failed = any(f.status == "fail" for f in findings)
    if as_json:
        echo_json({"ok": not failed, "checks": [f.as_dict() for f in findings]})
    else:
        width = max(len(f.check) for f in findings)
        for f in findings:
            click.echo(f"[{MARKS[f.status]}] {f.check:<{width}}  {f.detail}")
            if f.fix:
                click.echo(f"       {'':<{width}}  fix: {f.fix}")
        click.echo("all checks passed" if not failed else "some checks failed", err=failed)
    sys.stdout.flush()
    return 1 if failed else 0
