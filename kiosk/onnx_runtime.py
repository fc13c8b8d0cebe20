"""The one place that decides how an onnxruntime session runs: its execution providers and options."""

from __future__ import annotations

import logging

import onnxruntime

log = logging.getLogger(__name__)


def available_providers(preferred: list[str]) -> list[str]:
    """The configured providers that this onnxruntime build has, CPU always last as a fallback."""
    have = set(onnxruntime.get_available_providers())
    chosen = [p for p in preferred if p in have]
    missing = [p for p in preferred if p not in have]
    if missing:
        log.warning("onnxruntime lacks %s; using %s", ", ".join(missing), chosen or ["CPUExecutionProvider"])
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def session_options(threads: int = 0) -> onnxruntime.SessionOptions:
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    # The door runs several sessions in turn (SCRFD, MobileFaceNet, CLIP) on a few cores. A pool
    # that spins after its run keeps those cores busy while the next session needs them:
    # bench/door_latency.py went from 11 to 20 fps for CLIP on every face with spinning off.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts
