"""`kiosk identify IMAGE [--json]`: who the recogniser in force says is in a photo, and the decision.

The photo goes through the same front end as the door (decode, SCRFD, the main face,
alignment) and the recogniser chosen by kiosk/recognition/selection.py; the decision is the
door's rule, probability >= the threshold in force (the admin's, else recognition.threshold). A photo without a usable face is an
ordinary result (refused, with the reason) and exit status 1, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kiosk.commands.base import Lazy, echo_json, main
from kiosk.door.threshold_override import threshold_in_force
from kiosk.errors import ImageError, KioskError


@main.command()
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON on stdout.")
@click.option("--top", "top_k", default=5, show_default=True, type=click.IntRange(1, 100), help="Candidates to list.")
@click.pass_context
def identify(ctx: click.Context, image: Path, as_json: bool, top_k: int) -> None:
    """Name the main face in IMAGE with the recogniser in force. Exit 1 if it holds no face."""
    from kiosk.recognition.base import FaceCrops
    from kiosk.recognition.selection import load_recogniser
    from kiosk.vision.face_detection import primary_face
    from kiosk.vision.images import read_image

    kiosk = ctx.find_object(Lazy).kiosk
    threshold = threshold_in_force(kiosk.settings, kiosk.sessions).value
    try:
        frame = read_image(image, kiosk.settings.detection.max_side)
    except ImageError as exc:
        raise KioskError(f"{image}: {exc}") from None
    selection = load_recogniser(kiosk)
    detection = kiosk.detector.detect(frame)
    face = primary_face(detection.faces, frame.shape)
    if face is None:
        result: dict[str, object] = {
            "person": None,
            "probability": 0.0,
            "granted": False,
            "recogniser": selection.recogniser.name,
            "model_version": selection.recogniser.model_version,
            "top": [],
            "reason": detection.reason,
        }
    else:
        prediction = selection.recogniser.predict([FaceCrops(frame, face.keypoints)], top_k=top_k)[0]
        result = prediction.as_dict(threshold) | {"reason": _reason(prediction.as_dict(threshold), threshold)}
    result |= {"image": str(image), "faces": len(detection.faces), "threshold": threshold, "selection": selection.reason}
    if as_json:
        echo_json(result)
    else:
        _print_table(result)
    sys.stdout.flush()
    ctx.exit(0 if face is not None else 1)


def _reason(decision: dict[str, object], threshold: float) -> str:
    """Why the door would open or not, in words; a hybrid refusal says which recogniser objected."""
    if decision["granted"]:
        return "granted"
    parts: dict[str, dict[str, object]] = decision.get("parts") or {}  # type: ignore[assignment]
    if len({part["person"] for part in parts.values()}) > 1:
        return "recognisers disagree (" + ", ".join(f"{name}: {part['person']}" for name, part in parts.items()) + ")"
    low = [f"{name} {part['probability']:.2%}" for name, part in parts.items() if float(part["probability"]) < threshold]  # type: ignore[arg-type]
    return "below threshold" + (f" ({', '.join(low)})" if low else "")


def _print_table(result: dict[str, object]) -> None:
    click.echo(f"recogniser: {result['selection']}")
    if not result["top"]:
        click.echo(f"REFUSED: {result['reason']}")
        return
    for c in result["top"]:  # type: ignore[union-attr]
        click.echo(f"  {c['probability']:7.2%}  {c['person']}")
    for name, part in (result.get("parts") or {}).items():  # type: ignore[union-attr]
        click.echo(f"  {name} alone: {part['person']} {part['probability']:.2%}")
    verdict = f"GRANTED: {result['person']}" if result["granted"] else "REFUSED: " + str(result["reason"])
    click.echo(f"{verdict} (probability {result['probability']:.2%}, threshold {result['threshold']:.0%})")
