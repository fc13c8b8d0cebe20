"""`kiosk calibrate`: fit and store the score-to-probability map the door uses from now on."""

from __future__ import annotations

from pathlib import Path

import click

from kiosk.commands.base import Lazy, echo_json, main, pass_kiosk, refuse_at_a_site_door


@main.command("calibrate")
@click.option("--strangers", type=click.Path(path_type=Path, file_okay=False), help="Photos of people who are not enrolled (adds to the enrolled-versus-enrolled evidence).")
@click.option("--method", type=click.Choice(("logistic", "isotonic", "temperature")), help="Default: logistic for face, temperature for CLIP, isotonic for hybrid.")
@click.option("--plot", type=click.Path(path_type=Path, dir_okay=False), help="Write a reliability diagram (PNG) of the fit here.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored calibration as JSON.")
@click.option("--part", type=click.Choice(("all", "recognition", "liveness")), default="all", show_default=True, help="all: recognition, then liveness when it is on.")
@click.option("--live", multiple=True, type=click.Path(path_type=Path, file_okay=False), help="Liveness: a folder of live captures from this door's camera (adds to the enrolment crops; repeatable).")
@click.option("--attacks", type=click.Path(path_type=Path, file_okay=False), help="Liveness: photos/screens shown to this camera (subfolder = attack type); APCER is reported at the chosen threshold.")
@pass_kiosk
def calibrate_cmd(lazy: Lazy, strangers: Path | None, method: str | None, plot: Path | None, as_json: bool, part: str, live: tuple[Path, ...], attacks: Path | None) -> None:
    """Calibrate the recogniser in force on this site's enrolment (and strangers, if given), then liveness."""
    refuse_at_a_site_door(lazy, "calibration")
    if part == "liveness":
        _calibrate_liveness(lazy, live, attacks, as_json, required=True)
        return
    from calibration.fitting import calibrate
    from calibration.report import reliability_plot

    result = calibrate(lazy.kiosk, method, strangers, lambda m: click.echo(m, err=True))
    if plot is not None:
        reliability_plot(result.attempts, plot, f"{result.recogniser} v{result.model_version}: {result.method}")
    m = result.metrics
    if as_json:
        echo_json({k: v for k, v in vars(result).items() if k != "attempts"})
    else:
        click.echo(
            f"calibration {result.calibration_id}: {result.recogniser} model v{result.model_version}, {result.method} "
            f"on {m['genuine']} genuine and {m['strangers']} stranger attempts ({m['stranger_evidence']})\n"
            f"threshold in force {result.threshold:.2f}: on this evidence FPIR {m['fpir']:.3%}, "
            f"FNIR {m['fnir']:.3%}, ECE {m['ece']:.3f}; the running door picks it up at its next model check"
        )
    if part == "all":
        _calibrate_liveness(lazy, live, attacks, False, required=False)


def _calibrate_liveness(lazy: Lazy, live: tuple[Path, ...], attacks: Path | None, as_json: bool, required: bool) -> None:
    """The liveness threshold for the target BPCER (issue 14); skipped, said, when liveness is off."""
    from calibration.liveness import fit_liveness_threshold
    from kiosk.errors import KioskError
    from kiosk.liveness.setup import liveness_wanted

    ctx = lazy.kiosk
    if not liveness_wanted(ctx.settings):
        if required or live or attacks is not None:
            raise KioskError("liveness is off ([liveness] enabled, or its models are missing): nothing to calibrate")
        click.echo("liveness: off, not calibrated", err=True)
        return
    try:
        fit = fit_liveness_threshold(ctx, live, attacks, lambda m: click.echo(m, err=True))
    except KioskError as exc:
        if required:
            raise
        click.echo(f"liveness: not calibrated: {exc}", err=True)
        return
    m = fit.metrics
    if as_json:
        echo_json({"liveness_calibration": fit.calibration_id, "threshold": fit.threshold, "target_bpcer": fit.target_bpcer, **m})
        return
    apcer = ", ".join(f"{k} {v:.1%}" for k, v in m["apcer"].items() if v is not None) or "no attacks given"
    click.echo(
        err=not required,  # after the recognition part (and its --json), on stderr
        message=f"liveness calibration {fit.calibration_id}: threshold {fit.threshold:.3f} for BPCER <= {fit.target_bpcer:.0%} "
        f"on {m['bona_fide']} live faces (BPCER {m['bpcer']:.1%}); APCER there: {apcer}; the running door picks it up at its next check"
    )
