"""A retrain that never starves the door: its own process, a lower CPU priority, capped threads.

The door loop and a retrain share one small CPU (and a GPU, on the box). A full retrain
(CLIP's fine-tune above all) would take every core it is given, so whatever starts one — the
admin app, `kiosk retrain` from a shell, the systemd timer — runs it in a process of its own
that first lowers its priority (``training.nice``, and SCHED_IDLE with
``training.idle_scheduling``) and caps the threads torch and
onnxruntime may use (``training.threads``). The door's threads live in the door's process
and are never shared with it. Under systemd the retrain unit adds its own limits
(systemd/kiosk-retrain.service: Nice, CPUWeight, its own slice).

Both ways in, `kiosk retrain` and the admin app's child, go through `background_retrain`, which
says how far it is in ``<home>/retrain.json`` (kiosk/training/status.py): the admin app shows
a retrain whoever started it, and only one runs at a time.

`retrain_in_process` is `retrain` moved to a child process: progress comes back as JSON lines,
and a cancel is passed on to the child (SIGTERM), which stops at its next step as before (the
model in force unchanged). A retrain the app did not start is cancelled the same way, by the
pid in its status file.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kiosk.config import Settings, TrainingConfig
from kiosk.errors import KioskError
from kiosk.training.progress import Progress, RetrainCancelled, RetrainProgress, RetrainResult
from kiosk.training.status import StatusWriter, read_retrain_status

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2  # how often the cancel relay looks whether the child has ended


def lower_priority(training: TrainingConfig) -> None:
    """Make this process a background trainer: nicer (SCHED_IDLE where set), with at most ``training.threads`` threads.

    Called before torch or the ONNX sessions are created. ``torch.set_num_threads`` only where
    torch is already loaded (CLIP sites): importing it here would cost the face-only path.
    """
    # Each apart: a container that forbids SCHED_IDLE must still get the nicer priority.
    if training.nice:
        try:
            os.nice(training.nice)
        except OSError as exc:
            log.warning("could not lower the retrain's priority (nice): %s", exc)
    if training.idle_scheduling and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError as exc:  # the nice value and the thread cap still hold
            log.warning("could not put the retrain under SCHED_IDLE: %s", exc)
    threads = str(training.threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = threads
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(training.threads)


def background_context(settings: Settings) -> Any:
    """A KioskContext for a retrain process: lowered priority, embedder with the capped threads."""
    lower_priority(settings.training)
    from kiosk.context import KioskContext
    from kiosk.recognition.face_embedder import FaceEmbedder

    ctx = KioskContext(settings)
    if settings.recognition.recogniser != "clip":
        ctx.__dict__["embedder"] = FaceEmbedder.from_settings(settings.models, settings.training.threads)
    return ctx


def background_retrain(settings: Settings, progress: Progress, cancel: threading.Event, actor: str, started_by: str) -> RetrainResult:
    """`retrain` as a background trainer that publishes its status; refused while another one runs.

    The caller's SIGTERM must already set ``cancel``: the admin app cancels by the pid published.
    """
    elsewhere = read_retrain_status(settings.home)
    if elsewhere is not None and elsewhere.running():
        raise KioskError(f"a retrain is already running (started by {elsewhere.started_by}, pid {elsewhere.pid})")
    status = StatusWriter(settings.home, started_by)

    def report(p: RetrainProgress) -> None:
        status(p)
        progress(p)

    from kiosk.training.retrain import retrain

    try:
        result = retrain(background_context(settings), report, cancel, actor=actor)
    except RetrainCancelled as exc:
        status.end("cancelled", str(exc))
        raise
    except Exception as exc:
        status.end("failed", f"retrain failed: {exc}")
        raise
    status.end("done", ", ".join(f"{name} v{version}" for name, version in sorted(result.runs.items())) + " in force")
    return result


def retrain_in_process(settings: Settings, progress: Progress | None = None, cancel: threading.Event | None = None, actor: str = "admin") -> RetrainResult:
    """`retrain` in a child process at a lower priority; the same progress, cancel and errors.

    The child is `python -m kiosk.training.process`, handed the settings on stdin, reporting
    JSON lines on stdout; a cancel is SIGTERM, which the child turns into retrain's own cancel.
    (Not multiprocessing: its helper processes need the parent's stderr, which a full-screen
    app has replaced.)
    """
    report = progress or (lambda _p: None)
    stop = cancel or threading.Event()
    package_root = str(Path(__file__).resolve().parents[2])  # this very kiosk, wherever it is imported from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(
        [sys.executable, "-m", "kiosk.training.process", actor],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(settings.model_dump_json())
    child.stdin.close()
    ready = threading.Event()  # the child has its SIGTERM handler: a cancel before that would kill it outright
    threading.Thread(target=_pass_cancel, args=(stop, ready, child), daemon=True).start()
    outcome: dict[str, Any] = {}
    try:
        for line in child.stdout:
            try:
                message = json.loads(line)
            except ValueError:  # a library's own print: not ours
                continue
            if not isinstance(message, dict):
                continue
            if message.get("ready"):
                ready.set()
            elif "progress" in message:
                report(RetrainProgress(**message["progress"]))
            else:
                outcome = message
    finally:
        child.stdout.close()
        status = child.wait()
    if "done" in outcome:
        return RetrainResult(**outcome["done"])
    if "cancelled" in outcome:
        raise RetrainCancelled(outcome["cancelled"])
    raise KioskError(outcome.get("error") or f"the retrain process ended unexpectedly (exit status {status})")


def _pass_cancel(stop: threading.Event, ready: threading.Event, child: subprocess.Popen[str]) -> None:
    """Wait for the cancel (or the child's end), then ask the child to stop at its next step."""
    while child.poll() is None:
        if stop.wait(_POLL_SECONDS) and ready.wait(_POLL_SECONDS):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            return


def _child_main(actor: str) -> int:
    """The retrain process: settings on stdin, JSON lines out, SIGTERM cancels at the next step."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    settings = Settings(**json.loads(sys.stdin.read()))

    def say(message: dict[str, Any]) -> None:
        print(json.dumps(message), flush=True)

    say({"ready": True})
    try:
        result = background_retrain(settings, lambda p: say({"progress": asdict(p)}), stop, actor, f"the admin app ({actor})")
        say({"done": {"runs": result.runs, "metrics": result.metrics}})
    except RetrainCancelled as exc:
        say({"cancelled": str(exc)})
    except KioskError as exc:
        say({"error": str(exc)})
    except Exception as exc:  # the parent must hear of any failure, not wait for it
        say({"error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1] if len(sys.argv) > 1 else "admin"))
