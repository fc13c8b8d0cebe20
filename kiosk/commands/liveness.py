"""`kiosk liveness eval`: APCER per attack type and BPCER (ISO/IEC 30107-3) of the silent check."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kiosk.commands.base import Lazy, main, pass_kiosk


@main.group("liveness")
def liveness_group() -> None:
    """Presentation-attack detection (photos, screens) before the door opens."""


@liveness_group.command("eval")
@click.option("--attacks", required=True, type=click.Path(path_type=Path), help="Attack images; each first-level subfolder is an attack type (print/, replay/, ...), a second level the source.")
@click.option("--bona-fide", "bona_fide", required=True, type=click.Path(path_type=Path), help="Live images; a first-level subfolder is the source.")
@click.option("--manifest", type=click.Path(path_type=Path, dir_okay=False), help="Tab-separated label/attack_type/file list overriding the type per file (default: manifest.tsv beside both folders, as in pad-dev).")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), help="p(live) to accept (default: the threshold in force).")
@click.option("--json", "json_file", type=click.Path(path_type=Path, dir_okay=False), help="Write the figures as JSON here.")
@click.option("--report", type=click.Path(path_type=Path, file_okay=False), help="Write report.md, figures.json and a DET plot here.")
@pass_kiosk
def eval_cmd(lazy: Lazy, attacks: Path, bona_fide: Path, manifest: Path | None, threshold: float | None, json_file: Path | None, report: Path | None) -> None:
    """Score every image, then print APCER per attack type, APCER max and BPCER at the threshold."""
    from calibration.liveness import collect, door_detector, find_manifest, score_presentations, summary, text_lines, write_report
    from kiosk.liveness.setup import detector_key, load_detector, threshold_in_force

    ctx = lazy.kiosk
    settings = ctx.settings
    manifest = manifest or find_manifest(attacks, bona_fide)
    items = collect(attacks, bona_fide, manifest)
    liveness = load_detector(settings)
    if threshold is None:
        threshold, source = threshold_in_force(settings, ctx.sessions, detector_key(settings))
        click.echo(f"threshold {threshold:.3f} ({source})", err=True)
    detector = door_detector(ctx)
    if manifest is not None:
        click.echo(f"attack types from {manifest}", err=True)
    presentations = score_presentations(items, detector, liveness, settings.detection.max_side, lambda m: click.echo(m, err=True))
    figures = summary(presentations, threshold)
    for line in text_lines(figures):
        click.echo(line)
    if json_file is not None:
        json_file.write_text(json.dumps(figures, indent=2) + "\n")
    if report is not None:
        for path in write_report(presentations, threshold, report):
            click.echo(f"wrote {path}", err=True)
