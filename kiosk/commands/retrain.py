"""`kiosk retrain`: new model versions from the stored samples, with progress on stderr."""

from __future__ import annotations

import click

from kiosk.commands.base import Lazy, echo_json, main, pass_kiosk
from kiosk.training.progress import RetrainProgress
from kiosk.training.retrain import retrain


@main.command("retrain")
@click.option("--json", "as_json", is_flag=True, help="Print the new versions and their figures as JSON.")
@pass_kiosk
def retrain_cmd(lazy: Lazy, as_json: bool) -> None:
    """Retrain the recognisers; the models in force stay until the new ones are complete."""

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

    result = retrain(lazy.kiosk, show)
    if as_json:
        echo_json({"runs": result.runs, "metrics": result.metrics})
    else:
        for name, run_id in result.runs.items():
            click.echo(f"{name}: model v{run_id} in force")
