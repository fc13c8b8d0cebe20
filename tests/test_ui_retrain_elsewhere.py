"""A retrain the admin app did not start (`kiosk retrain` from a shell, the systemd timer's catch-up)
shows on the Retrain screen with its progress and is cancelled from it (issue 15), through the
status file every retrain process writes (kiosk/training/status.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, copy_home, kiosk_env, make_settings
from sqlalchemy import select
from textual.widgets import ProgressBar, Static
from ui_home import admin_app, base_home, sign_in, wait_until

from db.models import TrainingRun
from db.session import make_engine, session_factory
from kiosk.processes import owner
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.training.progress import RetrainProgress
from kiosk.training.status import RetrainStatus, StatusWriter, cancel_retrain, read_retrain_status

POLL = 0.05  # the screen's interval timer in these tests


@pytest.fixture()
def home(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, detector, embedder) -> Path:
    return copy_home(base_home(tmp_path_factory, detector, embedder), tmp_path / "home")


def text_of(widget: Static) -> str:
    return str(widget.render())


async def _retrain_screen(pilot) -> None:
    await sign_in(pilot)
    await pilot.press("f3")
    await wait_until(pilot, lambda: pilot.app.current_mode == "retrain", what="the retrain screen")


def runs(home: Path) -> dict[int, str]:
    with session_factory(make_engine(make_settings(home).database_url))() as session:
        return {r.id: r.status for r in session.scalars(select(TrainingRun))}


def test_a_retrain_started_by_another_process_shows_and_is_cancelled_from_the_screen(home: Path, detector, embedder) -> None:
    asyncio.run(_cancel_elsewhere(home, detector, embedder))


async def _cancel_elsewhere(home: Path, detector, embedder) -> None:
    app = admin_app(home, detector, embedder, poll_seconds=POLL)
    registry = ModelRegistry(app.kiosk.sessions, app.kiosk.settings.artifacts_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await _retrain_screen(pilot)
        screen = app.screen
        stage = screen.query_one("#retrain-stage", Static)
        # The build lock held here keeps the retrain at its first build step until the cancel is sent.
        with registry.exclusive():
            shell = subprocess.Popen([sys.executable, "-m", "kiosk", "retrain"], env=kiosk_env(home), cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                await wait_until(pilot, lambda: screen.elsewhere is not None, timeout=120, what="the retrain started elsewhere")
                assert "running elsewhere" in text_of(stage) and f"kiosk retrain (pid {shell.pid})" in text_of(stage)
                await pilot.press("s")  # one retrain at a time: the screen does not start a second one
                assert not screen.running
                await pilot.press("x")
                await wait_until(pilot, lambda: "cancelling" in text_of(stage), what="the cancel request")
            except BaseException:
                shell.kill()  # not left to retrain once the lock is released
                raise
        await wait_until(pilot, lambda: screen.elsewhere is None, timeout=120, what="the cancelled retrain's end")
        assert "cancelled" in text_of(stage) and "model in force is unchanged" in text_of(stage), text_of(stage)
        assert "face v1" in text_of(screen.query_one("#in-force", Static))
    _, err = shell.communicate(timeout=60)
    assert shell.returncode == 2 and "cancelled" in err  # the CLI's one-line KioskError
    status = read_retrain_status(home)
    assert status is not None and status.ended == "cancelled" and status.pid == shell.pid and status.started_by == "kiosk retrain"
    assert runs(home) == {1: "complete"}  # the old version stays in force; the cancelled one never started a run


def test_progress_of_a_retrain_elsewhere_its_end_and_a_stale_one(home: Path, detector, embedder) -> None:
    asyncio.run(_progress_elsewhere(home, detector, embedder))


async def _progress_elsewhere(home: Path, detector, embedder) -> None:
    app = admin_app(home, detector, embedder, poll_seconds=POLL)
    async with app.run_test(size=(80, 24)) as pilot:
        await _retrain_screen(pilot)
        screen = app.screen
        stage = screen.query_one("#retrain-stage", Static)
        bar = screen.query_one("#retrain-bar", ProgressBar)
        assert "Press s to retrain" in text_of(stage)  # nothing running anywhere
        # This test process plays the retrain process (its status writer, driven directly; never cancelled here).
        writer = StatusWriter(home, "kiosk retrain --if-due")
        writer(RetrainProgress("clip", "epoch", 3, 10, epoch=3, loss=0.25, train_accuracy=0.8, val_accuracy=0.7))
        await wait_until(pilot, lambda: "epoch 3/10" in text_of(stage), what="the epoch")
        assert f"started by kiosk retrain --if-due (pid {os.getpid()})" in text_of(stage) and "x cancels it" in text_of(stage)
        assert (bar.progress, bar.total) == (3, 10) and writer.status.fraction == 0.3
        writer.end("done", "clip v2 in force")
        await wait_until(pilot, lambda: screen.elsewhere is None, what="its end")
        assert "done" in text_of(stage) and "clip v2 in force" in text_of(stage)
        # A retrain process killed outright leaves its file marked running: shown as stale.
        subprocess.run([sys.executable, "-c", f"from pathlib import Path; from kiosk.training.status import StatusWriter; "
                        f"StatusWriter(Path({str(home)!r}), 'kiosk retrain')"], env=kiosk_env(home), cwd=REPO, check=True)
        await wait_until(pilot, lambda: "stale" in text_of(stage), what="the stale status")
        assert "ended without finishing" in text_of(stage) and screen.elsewhere is None
        await pilot.press("x")  # nothing to cancel
        assert "stale" in text_of(stage)


def test_a_reused_pid_is_not_the_retrain_and_is_never_signalled() -> None:
    """A status file whose pid now belongs to another process (here: this one) must not be cancelled."""
    me = owner()
    if "start" not in me:
        pytest.skip("no /proc: process start times unknown here")
    status = RetrainStatus(owner={**me, "start": int(me["start"]) - 1}, started_by="kiosk retrain", started_at=0.0, updated=0.0)
    assert status.stale() and not status.running()
    assert cancel_retrain(status) is False  # and this test process is still here to say so
