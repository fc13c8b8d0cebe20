"""`kiosk retrain`: new model versions from the stored samples, with progress on stderr.

It runs as a background trainer (training.nice, training.threads): started from a shell or by
the systemd timer beside the door, it must not starve the door loop. SIGTERM (`systemctl stop
kiosk-retrain`), or Cancel on the admin app's Retrain screen, cancels it at its next step; the
models in force stay. Its progress is in <home>/retrain.json, which that screen shows.
"""

from __future__ import annotations

import signal
import threading

import click

from kiosk.commands.base import Lazy, echo_json, main, pass_kiosk, refuse_at_a_site_door
from kiosk.training.process import background_retrain
from kiosk.training.progress import RetrainProgress
from kiosk.training.status import read_retrain_status


@main.command("retrain")
@click.option("--json", "as_json", is_flag=True, help="Print the new versions and their figures as JSON.")
@click.option(
    "--if-due", is_flag=True,
    help="CLIP's catch-up (the timer's way): retrain only if people wait for CLIP past training.catch_up_people "
    "or training.catch_up_hours, and no retrain is already running.",
)
@pass_kiosk
def retrain_cmd(lazy: Lazy, as_json: bool, if_due: bool) -> None:
    """Retrain the recognisers; the models in force stay until the new ones are complete."""
    if if_due and lazy.kiosk.settings.site_door:  # the timer beside a site door: nothing of its own to train
        click.echo("catch-up retrain not due: this door's models come from its site", err=True)
        if as_json:
            echo_json({"runs": {}, "due": False, "why": "this door's models come from its site"})
        return
    refuse_at_a_site_door(lazy, "retraining")
    if if_due:
        from kiosk.training.catch_up import catch_up_due, running_retrain

        busy = running_retrain(lazy.kiosk)
        elsewhere = read_retrain_status(lazy.kiosk.settings.home)
        due, why = catch_up_due(lazy.kiosk)
        if busy is not None:
            due, why = False, f"a retrain is already running ({busy.recogniser} v{busy.id}): {why}"
        elif elsewhere is not None and elsewhere.running():
            due, why = False, f"a retrain is already running (started by {elsewhere.started_by}, pid {elsewhere.pid}): {why}"
        click.echo(f"catch-up retrain {'due' if due else 'not due'}: {why}", err=True)
        if not due:
            if as_json:
                echo_json({"runs": {}, "due": False, "why": why})
            return

    def show(p: RetrainProgress) -> None:
        if p.stage == "epoch":
            click.echo(
                f"[{p.recogniser}] epoch {p.epoch}/{p.total} loss {p.loss:.4f} "
                f"train {p.train_accuracy:.3f} val {p.val_accuracy if p.val_accuracy is not None else '-'}",
                err=True,
            )
        elif p.total:
            click.echo(f"[{p.recogniser}] {p.stage} {p.done}/{p.total} {p.message}", err=True)
        else:
            click.echo(f"[{p.recogniser}] {p.stage} {p.message}", err=True)

    cancel = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda _signum, _frame: cancel.set())
    result = background_retrain(lazy.kiosk.settings, show, cancel, "cli", "kiosk retrain --if-due" if if_due else "kiosk retrain")
    if as_json:
        echo_json({"runs": result.runs, "metrics": result.metrics})
    else:
        for name, run_id in result.runs.items():
            click.echo(f"{name}: model v{run_id} in force")
