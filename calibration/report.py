"""The evaluation's table, and its report: markdown, JSON and PNG plots (matplotlib, Agg).

Figures: DET and ROC curves; histograms of genuine, stranger and enrolled-versus-enrolled
scores; FPIR and FNIR against the threshold with the threshold for a target stranger
acceptance rate; a reliability diagram (predicted probability vs observed rate of a true
top candidate). Warnings (random CLIP weights, recognisers that could not be loaded) come
first, so nobody reads a figure without them.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from calibration.metrics import Attempt, curve, expected_calibration_error, rank1_accuracy, rates_at, reliability, threshold_for_fpir
from calibration.protocol import Evaluation

FIGURES = ("det_roc.png", "scores.png", "rates.png", "reliability.png")


def _pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def header_lines(ev: Evaluation) -> list[str]:
    lines = [f"WARNING: {w}" for w in ev.warnings]
    lines += [f"not evaluated: {name}: {why}" for name, why in ev.unavailable.items()]
    skipped = [n for n in ("clip", "hybrid") if n not in ev.results and n not in ev.unavailable]
    if skipped:
        lines.append(f"not run: {', '.join(skipped)} (not asked for: add --recogniser {skipped[0]})")
    return lines


def table(ev: Evaluation) -> str:
    """The deployment table at the configured threshold, as printed by `kiosk eval`."""
    rows = [("recogniser", "train acc", "rank-1", "deploy acc", "FPIR", "FNIR", "misid", "refused", "paper FP", "paper FN", "attempts", "strangers")]
    for name, res in ev.results.items():
        r = rates_at(res.attempts, ev.threshold)
        label = name if res.in_claims else f"{name} (RANDOM)"
        rows.append((label, _pct(res.train_accuracy), _pct(rank1_accuracy(res.attempts)), _pct(r.accuracy), _pct(r.fpir), _pct(r.fnir),
                     _pct(r.misidentification), _pct(r.refusal), _pct(r.paper_fp), _pct(r.paper_fn), str(r.attempts), str(r.strangers)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))  # noqa: E731
    lines = header_lines(ev) + [
        f"{ev.people} people enrolled ({ev.enrolled} samples), threshold {ev.threshold:.2f}, "
        f"split seed {ev.seed}, {ev.validation_fraction:.0%} held back per person",
        fmt(rows[0]),
        fmt(tuple("-" * w for w in widths)),
    ]
    return "\n".join(lines + [fmt(row) for row in rows[1:]])


def hardest_pairs(attempts: list[Attempt], n: int = 10) -> list[dict[str, Any]]:
    """Wrong top candidates grouped by (who was there, who was named), worst probability first."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for a in attempts:
        if a.predicted is not None and not a.correct:
            who = a.truth if a.truth is not None else f"stranger {a.source.split('/')[0]}"
            groups[(who, a.predicted)].append(a.probability)
    pairs = [{"present": k[0], "named": k[1], "attempts": len(v), "max_probability": max(v)} for k, v in groups.items()]
    return sorted(pairs, key=lambda p: -p["max_probability"])[:n]


def report_data(ev: Evaluation, target_fpir: float) -> dict[str, Any]:
    data: dict[str, Any] = {
        **ev.summary(),
        "dataset": str(ev.dataset),
        "strangers_dir": str(ev.strangers),
        "threshold": ev.threshold,
        "target_fpir": target_fpir,
        "people": ev.people,
        "enrolled_samples": ev.enrolled,
        "enrol_failed": ev.enrol_failed,
        "no_face": ev.no_face,
        "warnings": ev.warnings,
        "unavailable": ev.unavailable,
        "details": {},
    }
    for name, res in ev.results.items():
        c = curve(res.attempts)
        bins = reliability(res.attempts)
        data["details"][name] = {
            "description": res.description,
            "in_claims": res.in_claims,
            "model_version": res.model_version,
            "rates": rates_at(res.attempts, ev.threshold).as_dict(),
            "rank1_accuracy": rank1_accuracy(res.attempts),
            "threshold_for_target_fpir": threshold_for_fpir(res.attempts, target_fpir),
            "threshold_for_zero_fpir": threshold_for_fpir(res.attempts, 0.0),
            "curve": {"thresholds": c.thresholds.tolist(), "fpir": c.fpir.tolist(), "fnir": c.fnir.tolist()},
            "reliability": [vars(b) for b in bins],
            "ece": expected_calibration_error(bins),
            "hardest_pairs": hardest_pairs(res.attempts),
            "closest_enrolled": [{"a": a, "b": b, "cosine": s} for a, b, s in res.closest_people],
            "attempts": [vars(a) for a in res.attempts],
        }
    return data


def write_report(ev: Evaluation, folder: Path, target_fpir: float) -> list[Path]:
    """report.md, report.json and the PNG figures in ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    data = report_data(ev, target_fpir)
    (folder / "report.json").write_text(json.dumps(data, indent=2, default=_json_default))
    _plot(ev, folder, data)
    (folder / "report.md").write_text(_markdown(ev, data))
    return [folder / "report.md", folder / "report.json", *(folder / f for f in FIGURES)]


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _markdown(ev: Evaluation, data: dict[str, Any]) -> str:
    out = ["# Door evaluation", ""]
    random = [n for n, r in ev.results.items() if not r.in_claims]
    if random:
        out += [f"**CLIP WEIGHTS ARE RANDOM ({', '.join(random)}): those rows measure nothing and are left out of every claim below.**", ""]
    out += [f"- {line}" for line in header_lines(ev)] + ([""] if header_lines(ev) else [])
    out += [
        f"Dataset `{ev.dataset}`, strangers `{ev.strangers}`; the door grants when the top candidate's "
        f"probability is at least {ev.threshold:.2f}. Enrolment failures: {len(ev.enrol_failed)}; attempt photos "
        f"without a face (counted as refusals): {len(ev.no_face)}.",
        "",
        "```",
        table(ev),
        "```",
        "",
        "Terms (ISO/IEC 19795-1, with the paper's door terms): **FPIR** = strangers let in / stranger attempts "
        "(paper: false positives); **FNIR** = enrolled attempts not granted as themselves / enrolled attempts; "
        "**misid** = enrolled granted as someone else (part of FNIR); **refused** = enrolled not let in (paper: false "
        "negatives, = paper FN); **deploy acc** = right outcome / all attempts (paper's deployment accuracy); "
        "**paper FP** = wrongful openings / all attempts; **rank-1** = closed-set accuracy of enrolled attempts; "
        "**train acc** = training accuracy as recorded by training (leave-one-out for the face recogniser).",
        "",
        "## Thresholds",
        "",
        f"| recogniser | threshold for FPIR <= {100 * data['target_fpir']:.2f}% | FNIR there | threshold for FPIR = 0 | FNIR there | ECE |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, d in data["details"].items():
        res = ev.results[name]
        t1, t0 = d["threshold_for_target_fpir"], d["threshold_for_zero_fpir"]
        f1 = _pct(rates_at(res.attempts, t1).fnir) if t1 is not None else "-"
        f0 = _pct(rates_at(res.attempts, t0).fnir) if t0 is not None else "-"
        out.append(f"| {name} | {t1 if t1 is None else f'{t1:.3f}'} | {f1} | {t0 if t0 is None else f'{t0:.3f}'} | {f0} | {d['ece']:.3f} |")
    out += ["", "With few stranger attempts a zero FPIR is an upper bound of about 3/strangers at 95% confidence (rule of three).", ""]
    out += ["## Figures", "",
            "- `det_roc.png`: DET (FNIR against FPIR, both log) and ROC (1 - FNIR against FPIR) over all thresholds; lower-left is better on DET.",
            "- `scores.png`: raw scores: genuine (each enrolled attempt's score for the person really there), stranger (each stranger's best score), and enrolled-versus-enrolled (each enrolled sample's best other person: the site's own evidence of how close strangers come).",
            "- `rates.png`: FPIR and FNIR against the threshold, the configured threshold and the one for the target FPIR marked.",
            "- `reliability.png`: mean predicted probability of the top candidate against the observed share of true top candidates, per bin of 0.1; the diagonal is perfect calibration; bin counts printed.",
            "", "## Hardest pairs", ""]
    for name, d in data["details"].items():
        out += [f"### {name}", "", "| who was there | named | attempts | max probability |", "| --- | --- | --- | --- |"]
        out += [f"| {p['present']} | {p['named']} | {p['attempts']} | {p['max_probability']:.3f} |" for p in d["hardest_pairs"]] or ["| - | - | - | - |"]
        if d["closest_enrolled"]:
            out += ["", "Closest enrolled templates (cosine): " + "; ".join(f"{c['a']} / {c['b']} {c['cosine']:.3f}" for c in d["closest_enrolled"])]
        out.append("")
    return "\n".join(out) + "\n"


def _plot(ev: Evaluation, folder: Path, data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(ev.results)
    eps = 1e-4
    fig, (det, roc) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name in names:
        c = data["details"][name]["curve"]
        fpir, fnir = np.array(c["fpir"]), np.array(c["fnir"])
        label = name if ev.results[name].in_claims else f"{name} (random weights)"
        det.plot(np.clip(fpir, eps, 1), np.clip(fnir, eps, 1), drawstyle="steps-post", label=label)
        roc.plot(fpir, 1 - fnir, drawstyle="steps-post", label=label)
        r = rates_at(ev.results[name].attempts, ev.threshold)
        det.plot([max(r.fpir, eps)], [max(r.fnir, eps)], "o", color=det.lines[-1].get_color())
    det.set(xscale="log", yscale="log", xlabel="FPIR (strangers let in)", ylabel="FNIR (enrolled not granted)", title=f"DET (dots: threshold {ev.threshold:.2f}; 0 drawn at {eps:g})")
    roc.set(xlabel="FPIR", ylabel="1 - FNIR", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    det.legend(fontsize=8)
    roc.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "det_roc.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        res = ev.results[name]
        genuine = [a.own_score for a in res.attempts if a.mated and a.own_score is not None]
        stranger = [a.score for a in res.attempts if not a.mated and a.score is not None]
        series = [("genuine", genuine), ("stranger (best match)", stranger)]
        if res.enrolled_impostor is not None:
            series.append(("enrolled vs enrolled (best other)", list(res.enrolled_impostor)))
        everything = [x for _, s in series for x in s]
        bins = np.linspace(min(everything), max(everything), 40) if everything else 10
        for label, values in series:
            if values:
                ax.hist(values, bins=bins, alpha=0.5, density=True, label=f"{label} (n={len(values)})")
        ax.set(title=f"{name}: raw scores", xlabel="score", ylabel="density")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "scores.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        d = data["details"][name]
        c = d["curve"]
        ax.plot(c["thresholds"], c["fpir"], drawstyle="steps-post", label="FPIR")
        ax.plot(c["thresholds"], c["fnir"], drawstyle="steps-post", label="FNIR")
        ax.axvline(ev.threshold, color="k", ls="--", lw=1, label=f"configured {ev.threshold:.2f}")
        if d["threshold_for_target_fpir"] is not None:
            ax.axvline(d["threshold_for_target_fpir"], color="r", ls=":", lw=1, label=f"FPIR <= {data['target_fpir']:g}")
        ax.set(title=name, xlabel="threshold (probability)", ylabel="rate", xlim=(0, 1.01), ylim=(-0.02, 1.02))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "rates.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    for name in names:
        bins = [b for b in data["details"][name]["reliability"] if b["count"]]
        ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], "o-", label=name)
        for b in bins:
            ax.annotate(str(b["count"]), (b["predicted"], b["observed"]), fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.set(xlabel="predicted probability (top candidate)", ylabel="observed share correct", title="Reliability", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "reliability.png", dpi=110)
    plt.close(fig)


def reliability_plot(attempts: list[Attempt], path: Path, title: str) -> None:
    """One reliability diagram (used by `kiosk calibrate --plot`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = [b for b in reliability(attempts) if b.count]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.plot([b.predicted for b in bins], [b.observed for b in bins], "o-")
    for b in bins:
        ax.annotate(str(b.count), (b.predicted, b.observed), fontsize=7, xytext=(3, -8), textcoords="offset points")
    ax.set(xlabel="predicted probability", ylabel="observed share correct", title=title, xlim=(0, 1), ylim=(0, 1))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

