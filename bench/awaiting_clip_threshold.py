"""The face recogniser alone at stricter thresholds: what recognition.awaiting_clip = "face" costs.

A person enrolled since the CLIP version in force has no CLIP class; with awaiting_clip =
"face" the face recogniser decides alone at awaiting_clip_threshold. CLIP cannot be measured
here (no pretrained weights), so this reads the face recogniser's attempts from a `kiosk eval`
report on the DEV set and prints FPIR / FNIR / misidentification at the door's threshold and
at stricter ones. Run the evaluation first:

    kiosk eval ../shared/data/faces-dev --strangers ../shared/data/faces-dev-strangers \\
        --recogniser face --report eval-report --no-record
    .venv/bin/python bench/awaiting_clip_threshold.py eval-report [--thresholds 0.8 0.9 0.95 0.99]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="the folder `kiosk eval --report` wrote")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.80, 0.90, 0.95, 0.99])
    args = parser.parse_args()
    attempts = json.loads((args.report / "report.json").read_text())["details"]["face"]["attempts"]
    enrolled = [a for a in attempts if a["truth"] is not None]
    strangers = [a for a in attempts if a["truth"] is None]
    print(f"face recogniser alone: {len(enrolled)} enrolled attempts, {len(strangers)} stranger attempts")
    print(f"{'threshold':>9} {'FPIR':>6} {'FNIR':>6} {'misid':>6}  strangers let in")
    for t in args.thresholds:
        let_in = sum(a["probability"] >= t for a in strangers)
        fnir = sum(not (a["probability"] >= t and a["predicted"] == a["truth"]) for a in enrolled) / len(enrolled)
        misid = sum(a["probability"] >= t and a["predicted"] != a["truth"] for a in enrolled) / len(enrolled)
        print(f"{t:9.2f} {100 * let_in / len(strangers):5.1f}% {100 * fnir:5.1f}% {100 * misid:5.1f}%  {let_in}")


if __name__ == "__main__":
    main()
