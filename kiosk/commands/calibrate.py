"""`kiosk calibrate`: fit and store the score-to-probability map the door uses from now on."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk.commands.base import Lazy, echo_json, main, pass_kiosk


@main.command("calibrate")
@click.option("--strangers", type=click.Path(path_type=Path, file_okay=False), help="Photos of people who are not enrolled (adds to the enrolled-versus-enrolled evidence).")
@click.option("--method", type=click.Choice(("logistic", "isotonic", "temperature")), help="Default: logistic for face, temperature for CLIP, isotonic for hybrid.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), help="Write a reliability diagram (PNG) of the fit here.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored calibration as JSON.")
@pass_kiosk
def calibrate_cmd(lazy: Lazy, strangers: Path | None, method: str | None, plot: Path | None, as_json: bool) -> None:
    """Calibrate the recogniser in force on this site's enrolment (and strangers, if given)."""
    from calibration.fitting import calibrate
    from calibration.report import reliability_plot

    result = calibrate(lazy.kiosk, method, strangers, lambda m: click.echo(m, err=True))
    if plot is not None:
        reliability_plot(result.attempts, plot, f"{result.recogniser} v{result.model_version}: {result.method}")
    m = result.metrics
    if as_json:
        echo_json({k: v for k, v in vars(result).items() if k != "attempts"})
        return
    click.echo(
        f"calibration {result.calibration_id}: {result.recogniser} model v{result.model_version}, {result.method} "
        f"on {m['genuine']} genuine and {m['strangers']} stranger attempts ({m['stranger_evidence']})\n"
        f"threshold in force {result.threshold:.2f}: on this evidence FPIR {m['fpir']:.3%}, "
        f"FNIR {m['fnir']:.3%}, ECE {m['ece']:.3f}; the running door picks it up at its next model check"
    )
