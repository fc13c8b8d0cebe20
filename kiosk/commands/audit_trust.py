"""`kiosk audit verify` and `kiosk audit purge`: prove the audit trail untouched, and age it out."""

from __future__ import annotations

import click

from db.audit_chain import find_head, verify_all
from kiosk.commands.audit import audit
from kiosk.commands.base import Lazy, echo_json, pass_kiosk
from kiosk.storage.retention import purge


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print each chain's result as JSON.")
@click.option("--expect-head", "heads", multiple=True, metavar="HASH",
              help="A head hash kept elsewhere (`kiosk audit head`): it must still be in its chain (repeatable).")
@click.pass_context
def verify(ctx: click.Context, as_json: bool, heads: tuple[str, ...]) -> None:
    """Check the hash chains of access events and admin actions (at a site: each door's). Exit status 1 at the first broken link."""
    from kiosk.site.audit import is_site, verify_site

    kiosk = ctx.find_object(Lazy).kiosk
    sessions = kiosk.sessions
    reports = verify_site(sessions) if is_site(sessions) else verify_all(sessions)
    # --- hardening (issue 13): a kept head must still be there; an unkeyed chain is said to be forgeable
    found = {h: find_head(kiosk.sessions, h) for h in heads}
    missing = [h for h, where in found.items() if where is None]
    if kiosk.audit_key is None and not as_json:
        click.echo("warning: audit.key_file is not set: the chain is unkeyed, and anyone who can write the "
                   "database can append rows that verify", err=True)
    for h, where in found.items():
        if where is None:
            click.echo(f"expected head {h[:12]} is NOT in the audit trail: rows were truncated or rewritten", err=True)
        elif not as_json:
            click.echo(f"expected head {h[:12]} found in {where[0]}, {where[1]} row(s) after it", err=True)
    # --- end hardening
    if as_json:
        echo_json([
            {"chain": r.chain, "rows": r.rows, "ok": r.ok, "anchor": r.anchor_hash, "head": r.head_hash,
             "broken": None if r.broken is None else {"id": r.broken.id, "time": r.broken.time, "problem": r.broken.problem}}
            for r in reports
        ])
    else:
        for r in reports:
            start = f"from purge anchor {r.anchor_hash[:12]}" if r.anchor_hash else "from the first row"
            if r.ok:
                click.echo(f"{r.chain}: {r.rows} rows verified {start}; head {r.head_hash or 'none'}")
            else:
                click.echo(f"{r.chain}: BROKEN at {r.broken}")
    ctx.exit(0 if all(r.ok for r in reports) and not missing else 1)


@audit.command("purge")
@click.option("--older-than", "days", type=click.IntRange(min=1), default=None,
              help="Delete events and admin actions older than DAYS (default: privacy.event_retention_days).")
@pass_kiosk
def purge_cmd(lazy: Lazy, days: int | None) -> None:
    """Age out old audit rows (the chain stays verifiable) and expire event thumbnails."""
    kiosk = lazy.kiosk
    days = days if days is not None else kiosk.settings.privacy.event_retention_days or None
    report = purge(kiosk, days)
    if report.cutoff is None:
        click.echo("audit rows kept (privacy.event_retention_days = 0)")
    else:
        rows = ", ".join(f"{n} {chain}" for chain, n in report.rows.items())
        click.echo(f"purged rows before {report.cutoff.isoformat(timespec='seconds')}: {rows}")
    click.echo(f"thumbnails deleted: {report.thumbnails}")
