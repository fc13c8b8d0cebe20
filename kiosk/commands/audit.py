"""`kiosk audit`: query the access events by time, person, decision and door, as a table, CSV or JSON."""

from __future__ import annotations

import sys

import click

from kiosk.commands.base import Lazy, echo_json, main
from kiosk.errors import KioskError
from kiosk.storage.audit_query import EVENTS, AuditFilter, audit_rows, parse_time, write_csv


@main.group(invoke_without_command=True)
@click.option("--since", help="Only events at or after this ISO date or time (local time unless it carries an offset).")
@click.option("--until", help="Only events at or before this ISO date or time (a bare date: to the end of that day).")
@click.option("--person", help="Only events naming this person.")
@click.option("--decision", type=click.Choice(["granted", "refused"]), help="Only grants or only refusals.")
@click.option("--door", help="Only events at this door (its name in the log; at a site, its registered name).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--limit", type=int, default=0, help="At most this many of the newest events (0: all).")
@click.pass_context
def audit(ctx: click.Context, since: str | None, until: str | None, person: str | None, decision: str | None, door: str | None,
          fmt: str, limit: int) -> None:
    """Query the access events (the audit trail of the door)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        f = AuditFilter(EVENTS, parse_time(since, None), parse_time(until, None, end=True), person or "", decision or "any", door or "")
    except KioskError as exc:
        raise click.BadParameter(str(exc)) from None
    with ctx.find_object(Lazy).kiosk.sessions() as session:
        rows = list(audit_rows(session, f))
    if limit:
        rows = rows[-limit:]
    if fmt == "json":
        echo_json(rows)
    elif fmt == "csv":
        write_csv(sys.stdout, EVENTS, rows)
    else:
        for r in rows:
            prob = "-" if r["probability"] is None else f"{r['probability']:.3f}"
            verdict = "GRANTED" if r["granted"] else "refused"
            click.echo(f"{r['time'][:19]}  {r['door']:8} {verdict:8} {prob:>6}  {r['person'] or '(unknown)':30} {r['reason']}")
        if not rows:
            click.echo("no events match")
