"""Retrain screen: start a retrain, watch its progress, cancel it, compare old and new figures.

The retrain runs in a process of its own at a lower priority with capped threads
(`kiosk.training.process.retrain_in_process`, the same `retrain` as `kiosk retrain`), so the
door keeps its pace; a thread worker relays its progress as messages (thread-safe) that move
the bar. Cancel is passed to that process, which stops at its next step: the model in force stays. When a version
completes, its figures are shown beside those of the version it replaces.

A retrain started elsewhere (`kiosk retrain`, the systemd timer's catch-up, another admin app)
is read from its status file (kiosk/training/status.py) every ``poll_seconds``: the screen shows
it with its progress, Cancel sends it the same SIGTERM, and Start is refused until it has ended.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from db.models import TrainingRun
from kiosk.errors import KioskError
from kiosk.training.process import retrain_in_process
from kiosk.training.progress import RetrainCancelled, RetrainProgress, RetrainResult
from kiosk.training.status import RetrainStatus, cancel_retrain, read_retrain_status
from kiosk.ui.text import when

if TYPE_CHECKING:
    from kiosk.ui.admin_host import AdminHost

log = logging.getLogger(__name__)


@dataclass
class Progressed(Message):
    progress: RetrainProgress


@dataclass
class RetrainFinished(Message):
    result: RetrainResult | None
    before: dict[str, TrainingRun]
    after: dict[str, TrainingRun]
    error: str = ""


def versions_in_force(app: AdminHost) -> dict[str, TrainingRun]:
    """The newest complete version of every recogniser, by recogniser name."""
    with app.kiosk.sessions() as session:
        newest = (
            select(func.max(TrainingRun.id)).where(TrainingRun.status == "complete").group_by(TrainingRun.recogniser)
        )
        return {r.recogniser: r for r in session.scalars(select(TrainingRun).where(TrainingRun.id.in_(newest)))}


def figure(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


class RetrainScreen(Screen[None]):
    DEFAULT_CSS = """
    #in-force { height: auto; border: round $primary; padding: 0 1; }
    #retrain-bar { margin: 1 1 0 1; }
    #retrain-stage { height: 2; padding: 0 1; }
    #compare { height: 1fr; }
    """
    BINDINGS = [Binding("s", "start", "Start"), Binding("x", "cancel", "Cancel")]

    app: AdminHost

    def __init__(self) -> None:
        super().__init__()
        self.cancel_event = threading.Event()
        self.running = False
        self.elsewhere: RetrainStatus | None = None  # a retrain this screen did not start, while it runs
        self.cancel_sent = False  # to self.elsewhere
        self._seen: tuple[RetrainStatus, bool] | None = None  # the status file as last shown, and whether it ran

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="in-force")
        yield ProgressBar(total=1, show_eta=False, id="retrain-bar")
        yield Static("Press s to retrain from the samples enrolled now.", id="retrain-stage")
        table: DataTable[str] = DataTable(id="compare", cursor_type="none")
        table.border_title = "figures"
        yield table
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "retrain"
        self.query_one("#in-force").border_title = "model in force"
        self.show_in_force()
        self.watch_elsewhere()
        self.set_interval(self.app.poll_seconds, self.watch_elsewhere)

    def on_screen_resume(self) -> None:
        if not self.running:
            self.show_in_force()

    @work(thread=True, group="retrain-read")
    def show_in_force(self) -> None:
        runs = versions_in_force(self.app)
        self.app.call_from_thread(self._in_force_text, runs)

    def _in_force_text(self, runs: dict[str, TrainingRun]) -> None:
        if not runs:
            text = "no model trained yet: the door refuses everyone until a retrain completes"
        else:
            text = "\n".join(
                f"{name} v{r.id}, trained {when(r.finished_at, self.app.tz, False)}, "
                f"{r.metrics.get('people', '?')} people, {r.metrics.get('samples', '?')} samples"
                for name, r in sorted(runs.items())
            )
        self.query_one("#in-force", Static).update(text)

    def watch_elsewhere(self) -> None:
        """Show a retrain another process runs (or left stale) when its status file changes."""
        if self.running:  # the file is this screen's own child's
            return
        status = read_retrain_status(self.app.kiosk.settings.home)
        seen = (status, status.running()) if status is not None else None
        if status is None or seen == self._seen:
            return
        self._seen = seen
        watched, self.elsewhere = self.elsewhere, status if status.running() else None
        by = f"{status.started_by} (pid {status.pid}) at {when(datetime.fromtimestamp(status.started_at, timezone.utc), self.app.tz)}"
        if self.elsewhere is not None:
            if watched is None or not watched.same_run(status):
                self.cancel_sent = False
            header = "cancelling it at its next step..." if self.cancel_sent else "x cancels it"
            header = f"[b]running elsewhere[/], started by {by}: {header}"
            if (p := status.last_progress()) is not None:
                self.show_progress(p, header)
            else:
                self.query_one("#retrain-bar", ProgressBar).update(total=1, progress=0)
                self._stage(f"{header}\nstarting")
        elif status.stale():
            self._stage(f"[yellow]stale[/]: the retrain started by {by} ended without finishing (its process is gone); "
                        "the model in force is unchanged")
        elif watched is not None and watched.same_run(status):
            colour = "green" if status.ended == "done" else "red"
            self._stage(f"[{colour}]{status.ended}[/]: the retrain started by {by}: {status.outcome}")
            self.show_in_force()

    def action_start(self) -> None:
        if self.running:
            self.notify("a retrain is already running", severity="warning")
            return
        if self.elsewhere is not None and self.elsewhere.running():
            self.notify(f"a retrain started by {self.elsewhere.started_by} is running", severity="warning")
            return
        self.running = True
        self.cancel_event.clear()
        bar = self.query_one("#retrain-bar", ProgressBar)
        bar.update(total=1, progress=0)
        self.query_one("#compare", DataTable).clear(columns=True)
        self._stage("starting: reading the enrolled samples")
        self.run_retrain()

    def action_cancel(self) -> None:
        if self.running:
            self.cancel_event.set()
            self._stage("cancelling at the next step...")
        elif self.elsewhere is not None and cancel_retrain(self.elsewhere):
            self.cancel_sent = True
            self._stage(f"cancelling the retrain started by {self.elsewhere.started_by} at its next step...")

    @work(thread=True, exclusive=True, group="retrain")
    def run_retrain(self) -> None:
        before = versions_in_force(self.app)
        try:
            result = retrain_in_process(self.app.kiosk.settings, lambda p: self.post_message(Progressed(p)), self.cancel_event, actor=self.app.actor)
        except RetrainCancelled as exc:
            self.post_message(RetrainFinished(None, before, before, str(exc)))
            return
        except KioskError as exc:
            self.post_message(RetrainFinished(None, before, before, f"retrain failed: {exc}"))
            return
        except Exception as exc:  # a failed retrain must not take the admin app down with it
            log.exception("retrain failed")
            self.post_message(RetrainFinished(None, before, before, f"retrain failed: {type(exc).__name__}: {exc}"))
            return
        self.post_message(RetrainFinished(result, before, versions_in_force(self.app)))

    def on_progressed(self, message: Progressed) -> None:
        self.show_progress(message.progress)

    def show_progress(self, p: RetrainProgress, header: str = "") -> None:
        """The bar and the stage line for one progress report, this screen's retrain's or (under a header) another's."""
        bar = self.query_one("#retrain-bar", ProgressBar)
        if p.stage == "epoch" and p.epoch is not None:
            bar.update(total=max(p.total, 1), progress=p.epoch)
            val = f"{100 * p.val_accuracy:.1f}%" if p.val_accuracy is not None else "-"
            train = f"{100 * p.train_accuracy:.1f}%" if p.train_accuracy is not None else "-"
            loss = f"{p.loss:.4f}" if p.loss is not None else "-"
            line = f"[{p.recogniser}] epoch {p.epoch}/{p.total}  loss {loss}  train acc {train}  val acc {val}"
        elif p.total:
            bar.update(total=p.total, progress=p.done)
            line = f"[{p.recogniser}] {p.stage} {p.done}/{p.total} {p.message}"
        else:
            line = f"[{p.recogniser}] {p.stage} {p.message}"
        self._stage(f"{header}\n{line}" if header else line)

    def on_retrain_finished(self, message: RetrainFinished) -> None:
        self.running = False
        if message.result is None:
            kept = ", ".join(f"{n} v{r.id}" for n, r in sorted(message.before.items())) or "none"
            self._stage(f"[red]{message.error}[/]\nmodel in force unchanged: {kept}")
            return
        self.query_one("#retrain-bar", ProgressBar).update(total=1, progress=1)
        new = ", ".join(f"{n} v{v}" for n, v in sorted(message.result.runs.items()))
        self._stage(f"[green]done[/]: {new} in force (the door service picks it up on its next reload)")
        self._compare(message.before, message.after, message.result)
        self._in_force_text(message.after)

    def _compare(self, before: dict[str, TrainingRun], after: dict[str, TrainingRun], result: RetrainResult) -> None:
        table = self.query_one("#compare", DataTable)
        table.clear(columns=True)
        for label, width in (("figure", 20), ("before", 12), ("after", 12)):  # fixed: see audit_screen
            table.add_column(label, width=width)
        for name in sorted(result.runs):
            old = before.get(name)
            new = after.get(name)
            old_m = dict(old.metrics) if old else {}
            new_m = dict(new.metrics) if new else dict(result.metrics.get(name, {}))
            table.add_row(f"[b]{name}[/] version", f"v{old.id}" if old else "(none)", f"v{result.runs[name]}", key=name)
            for key in [k for k in {**old_m, **new_m} if k != "epochs"]:
                table.add_row(f"  {key}", figure(old_m.get(key)), figure(new_m.get(key)), key=f"{name}-{key}")

    def _stage(self, text: str) -> None:
        self.query_one("#retrain-stage", Static).update(text)
