"""CLIP text-tower retrain cost against the number of people: the kiosk's loop beside the paper's.

    .venv/bin/python bench/clip_retrain_scale.py [--people 10 100 1000 10000] [--threads 1]

RN50 with RANDOM weights (no pretrained CLIP weights exist here): the figures are time and
memory only, never accuracy. Image features are synthetic unit vectors, which is exact for
cost because the image tower is frozen and its features come from the cache. Each person
has 10 samples, 8 in training (the 80/20 split), so an epoch is ceil(8 N / batch) steps.

Variants, each run in its own subprocess so its peak RSS (ru_maxrss) is its own:
  paper   77-token prompts, every person's prompt re-encoded with the autograd graph for
          every batch of 16 (the seed paper's loop);
  kiosk   kiosk/training/clip_fine_tune.py as shipped: prompts cut to the longest, text features once
          per step without a graph, gradient-cached backward chunk by chunk; batch 16;
  kiosk-large  the same with training.large_batch_size images per step.
A step's text-tower work is the same whatever the batch size (every prompt is encoded each
step), so where a step would take too long the epoch time is the measured step time times
the steps per epoch; the table says for every figure whether it was measured or extrapolated.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES_PER_PERSON, TRAIN_PER_PERSON = 10, 8
TEMPLATE = "This is the image of a person named {name}"
SYLLABLES = ["ka", "mi", "ra", "to", "bel", "son", "an", "dre", "lu", "cia", "vo", "ne", "gar", "ith", "os", "wen", "ty", "ma"]


def names(n: int) -> list[str]:
    """Distinct made-up two-part names; BPE splits them into more tokens than common names (conservative)."""
    out = []
    for i in range(n):
        digits = [(i // len(SYLLABLES) ** k) % len(SYLLABLES) for k in range(4)]
        first = "".join(SYLLABLES[d] for d in digits[:2]).capitalize()
        last = "".join(SYLLABLES[d] for d in digits[2:] + [i % 7]).capitalize()
        out.append(f"{first} {last}")
    return out


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def load_rn50_random():  # noqa: ANN201 - torch types imported lazily
    import open_clip

    from kiosk.recognition.clip_model import ClipModel

    model = open_clip.create_model("RN50")  # random init: no weights are loaded anywhere here
    return ClipModel(model, "RN50", "random-weights", open_clip.get_tokenizer("RN50"))


def synthetic_features(people: int, dim: int):  # noqa: ANN201
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(people * TRAIN_PER_PERSON, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.repeat(np.arange(people), TRAIN_PER_PERSON)


class Stop(Exception):
    pass


def child_kiosk(people: int, batch: int, steps: int) -> dict[str, object]:
    import numpy as np

    from kiosk.config import TrainingConfig
    from kiosk.training.clip_fine_tune import class_prompts, fine_tune

    clip = load_rn50_random()
    loaded = peak_rss_gib()
    images, labels = synthetic_features(people, clip.model.text_projection.shape[1])
    prompts = class_prompts(TEMPLATE, names(people))
    config = TrainingConfig(epochs=1, batch_size=batch)
    stamps = [time.perf_counter()]

    def on_step(done: int, total: int) -> None:
        stamps.append(time.perf_counter())
        if done >= steps and done < total:
            raise Stop

    try:
        fine_tune(clip, prompts, images, labels, np.zeros((0, images.shape[1]), np.float32), np.zeros(0, np.int64), config, on_step=on_step)
        full_epoch = True
    except Stop:
        full_epoch = False
    times = np.diff(stamps)
    return {
        "tokens": int(clip.tokenise(prompts).ids.shape[1]),
        "steps": len(times),
        "step_s": float(np.median(times)),
        "first_step_s": float(times[0]),
        "epoch_s": float(stamps[-1] - stamps[0]) if full_epoch else None,
        "rss_loaded_gib": loaded,
        "rss_peak_gib": peak_rss_gib(),
    }


def child_paper(people: int, batch: int, steps: int) -> dict[str, object]:
    """The seed paper's loop: full 77-token context, all prompts re-encoded with the graph every batch."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    clip = load_rn50_random()
    loaded = peak_rss_gib()
    images, labels = synthetic_features(people, clip.model.text_projection.shape[1])
    tokens = clip.tokenizer([TEMPLATE.format(name=n) for n in names(people)])
    params = list(clip.text_parameters().values())
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.2)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    scale = clip.logit_scale
    times = []
    for start in range(0, min(len(order), steps * batch), batch):
        t = time.perf_counter()
        idx = order[start : start + batch]
        text = F.normalize(clip.model.encode_text(tokens), dim=-1)
        loss = F.cross_entropy(scale * torch.from_numpy(images[idx]) @ text.T, torch.from_numpy(labels[idx]))
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    full_epoch = len(times) == math.ceil(len(labels) / batch)
    return {
        "tokens": int(tokens.shape[1]),
        "steps": len(times),
        "step_s": float(np.median(times)),
        "first_step_s": float(times[0]),
        "epoch_s": float(sum(times)) if full_epoch else None,
        "rss_loaded_gib": loaded,
        "rss_peak_gib": peak_rss_gib(),
    }


def run_child(variant: str, people: int, batch: int, steps: int, threads: int) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--threads", str(threads), "--child", variant, str(people), str(batch), str(steps)]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} N={people} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_time(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--large-batch", type=int, default=1024, help="training.large_batch_size for kiosk-large")
    parser.add_argument("--paper-max-people", type=int, default=100, help="largest N the paper loop is run at (memory grows with N)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch threads per variant (on this shared 2-core machine one thread was 5-10x faster than two)",
    )
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "N", "BATCH", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.child:
        variant, n, batch, steps = args.child[0], *map(int, args.child[1:])
        result = (child_paper if variant == "paper" else child_kiosk)(n, batch, steps)
        print(json.dumps(result))
        return

    print("CLIP text-tower retrain scale benchmark")
    print("MODEL: RN50 with RANDOM weights (no pretrained CLIP weights here): timings and memory only, NOT accuracy.")
    print(f"Synthetic unit image features (image tower frozen); {SAMPLES_PER_PERSON} samples/person, {TRAIN_PER_PERSON} in training.")
    print(f"CPU: {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, load average at start "
          f"{os.getloadavg()[0]:.1f} (shared machine: timings are noisy).")
    print("Peak = ru_maxrss of the variant's own process (model load included).")
    print()
    rows = []
    paper_points: list[tuple[int, dict[str, object]]] = []
    for n in args.people:
        steps_b16 = math.ceil(n * TRAIN_PER_PERSON / 16)
        steps_large = math.ceil(n * TRAIN_PER_PERSON / args.large_batch)
        # paper: run where it fits, else extrapolate linearly from the two largest measured points
        if n <= args.paper_max_people:
            r = run_child("paper", n, 16, threads=args.threads, steps=steps_b16 if n <= 10 else 2)
            paper_points.append((n, r))
            rows.append(("paper (77 tok, b16)", n, r, steps_b16, "measured"))
        elif len(paper_points) >= 2:
            (n0, a), (n1, b) = paper_points[-2], paper_points[-1]
            slope_t = (b["step_s"] - a["step_s"]) / (n1 - n0)
            slope_m = (b["rss_peak_gib"] - a["rss_peak_gib"]) / (n1 - n0)
            est = {
                "tokens": 77,
                "steps": 0,
                "step_s": b["step_s"] + slope_t * (n - n1),
                "epoch_s": None,
                "rss_peak_gib": b["rss_peak_gib"] + slope_m * (n - n1),
            }
            rows.append(("paper (77 tok, b16)", n, est, steps_b16, f"NOT RUN: extrapolated linearly from N={n0},{n1}"))
        # kiosk, batch 16: a full epoch where it is short, else measured steps x steps per epoch
        r16 = run_child("kiosk", n, 16, threads=args.threads, steps=steps_b16 if n <= 10 else (2 if n <= 100 else 1))
        rows.append(("kiosk (cut, b16)", n, r16, steps_b16, "measured"))
        if n <= 1000:
            rl = run_child("kiosk", n, args.large_batch, threads=args.threads, steps=steps_large if n <= 100 else 1)
            rows.append((f"kiosk (cut, b{args.large_batch})", n, rl, steps_large, "measured"))
        else:
            rows.append((f"kiosk (cut, b{args.large_batch})", n, r16 | {"epoch_s": None}, steps_large,
                         "step measured with b16 (same text-tower work per step)"))
    print(f"{'variant':<22}{'people':>7}{'tokens':>7}{'steps/ep':>9}{'s/step':>9}{'epoch':>10}{'peak GiB':>9}  source")
    for variant, n, r, steps, source in rows:
        if r["epoch_s"] is not None:
            epoch, how = r["epoch_s"], f"{source}: full epoch"
        else:
            epoch = r["step_s"] * steps
            how = f"{source}; epoch extrapolated from {r['steps']} measured step(s)" if r["steps"] else f"{source}"
        print(f"{variant:<22}{n:>7}{r['tokens']:>7}{steps:>9}{r['step_s']:>9.2f}{fmt_time(epoch):>10}{r['rss_peak_gib']:>9.2f}  {how}")
    print()
    print(f"load average at end {os.getloadavg()[0]:.1f}. Targets: 1,000 people under 4 GiB peak, 10,000 under 8 GiB.")


if __name__ == "__main__":
    main()
