"""The one place that decides which onnxruntime execution providers a model session gets."""

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
    return opts
