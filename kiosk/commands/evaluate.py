"""`kiosk eval DATASET --strangers DIR`: the paper's deployment protocol, table and report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kiosk.commands.base import Lazy, main, pass_kiosk

RECOGNISERS = ("clip", "face", "hybrid")


@main.command("eval")
@click.argument("dataset", type=click.Path(path_type=Path, file_okay=False))
@click.option("--strangers", type=click.Path(path_type=Path, file_okay=False), required=True, help="Folder of people who are not enrolled (one folder per person).")
@click.option("--recogniser", "recognisers", type=click.Choice(RECOGNISERS), multiple=True, default=("face",), show_default=True,
              help="Recogniser to evaluate; repeat for several. The paper's softmax baseline runs beside the face recogniser.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path, file_okay=False), help="Write report.md, report.json and PNG figures here.")
@click.option("--json", "json_file", type=click.Path(path_type=Path, dir_okay=False), help="Write {\"results\": {recogniser: figures}} here (rates as fractions).")
@click.option("--record/--no-record", default=True, show_default=True, help="Record the evaluation in the site's database.")
@pass_kiosk
def eval_cmd(lazy: Lazy, dataset: Path, strangers: Path, recognisers: tuple[str, ...], report_dir: Path | None, json_file: Path | None, record: bool) -> None:
    """Enrol 80% of each person in DATASET in a throw-away data directory, then try every
    held-back photo and every stranger photo at the door; print the deployment table."""
    from calibration.protocol import evaluate
    from calibration.protocol import record as record_evaluation
    from calibration.report import table, write_report

    site = lazy.kiosk
    result = evaluate(site, dataset, strangers, list(dict.fromkeys(recognisers)), lambda m: click.echo(m, err=True))
    click.echo(table(result))
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(result.summary(), indent=2))
    if report_dir is not None:
        files = write_report(result, report_dir, site.settings.calibration.target_fpir)
        click.echo(f"report: {files[0]}", err=True)
    if record:
        ids = record_evaluation(site, result)
        click.echo(f"recorded as evaluation {', '.join(map(str, ids))} in {site.settings.database_url}", err=True)
