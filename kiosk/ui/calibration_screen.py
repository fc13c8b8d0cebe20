"""Calibration screen: the threshold in force, what it costs in errors, and changing it (logged).

The rates come from the latest Calibration row's metrics: the stranger acceptance rate
(FPIR: strangers let in) and the missed-person rate (FNIR: enrolled people refused). Where the
row holds a curve (``metrics["curve"] = {"thresholds", "fpir", "fnir"}``) the rates are read at
any threshold, so the admin sees what a new value would do before setting it; otherwise the
row's figures at its own threshold are shown. A change goes to threshold_override (the file
the door reads) and the admin-action log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from textual import on, work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, Static

from calibration.metrics import grid_rates_at
from db.models import AdminAction, Calibration
from kiosk.door.status import read_status
from kiosk.door.threshold_override import NONE_AT_SITE, ThresholdInForce, set_threshold, threshold_in_force
from kiosk.errors import KioskError
from kiosk.recognition.face_recogniser import NAME as FACE
from kiosk.recognition.model_registry import ModelRegistry
from kiosk.ui.text import percent, when

if TYPE_CHECKING:
    from kiosk.ui.admin_host import AdminHost


@dataclass(frozen=True)
class Rates:
    threshold: float
    fpir: float | None
    fnir: float | None
    exact: bool  # read at the asked threshold (a curve), not at the calibration's own


def rates_at(cal: Calibration, threshold: float) -> Rates | None:
    """FPIR and FNIR at ``threshold`` from a calibration's metrics, if it records them."""
    m: dict[str, Any] = cal.metrics or {}
    curve = m.get("curve")
    if isinstance(curve, dict) and all(k in curve for k in ("thresholds", "fpir", "fnir")) and curve["thresholds"]:
        fpir, fnir = grid_rates_at(curve, threshold)
        return Rates(threshold, fpir, fnir, True)
    if "fpir" in m or "fnir" in m:
        return Rates(cal.threshold, m.get("fpir"), m.get("fnir"), abs(cal.threshold - threshold) < 1e-9)
    return None


@dataclass(frozen=True)
class CalibrationView:
    threshold: ThresholdInForce | None
    threshold_error: str
    applied: float | None  # what the running door service reports it applies
    calibration: Calibration | None
    model_in_force: int | None  # the version the calibration should be for
    changes: list[AdminAction]
    site: bool  # on a site's database: the doors apply the threshold, no door runs here


class CalibrationScreen(Screen[None]):
    DEFAULT_CSS = """
    #threshold-box, #calibration-box { height: auto; border: round $primary; padding: 0 1; }
    #new-threshold-row { height: auto; padding: 0 1; }
    #new-threshold { width: 12; margin: 0 1; }
    #preview { height: 2; padding: 0 1; }
    #changes { height: 1fr; padding: 0 1; color: $text-muted; }
    """

    app: AdminHost

    def __init__(self) -> None:
        super().__init__()
        self.view: CalibrationView | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="threshold-box")
        yield Static("", id="calibration-box")
        yield Label(" New threshold (0-1), Enter to set it (logged):")
        yield Input(placeholder="0.80", id="new-threshold", compact=True, restrict=r"[0-9.]*", max_length=6)
        yield Static("", id="preview")
        yield Static("", id="changes")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "calibration"
        self.query_one("#threshold-box").border_title = "threshold"
        self.query_one("#calibration-box").border_title = "latest calibration"
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="calibration")
    def load(self) -> None:
        kiosk = self.app.kiosk
        try:
            threshold, error = threshold_in_force(kiosk.settings, kiosk.sessions), ""
        except KioskError as exc:
            threshold, error = None, str(exc)
        site = kiosk.settings.site_database
        status = None if site else read_status(kiosk.settings.home)
        with kiosk.sessions() as session:
            cal = session.scalars(select(Calibration).order_by(Calibration.time.desc(), Calibration.id.desc()).limit(1)).first()
            changes = list(
                session.scalars(select(AdminAction).where(AdminAction.action == "threshold").order_by(AdminAction.id.desc()).limit(5))
            )
        run = ModelRegistry(kiosk.sessions, kiosk.settings.artifacts_dir).in_force(cal.recogniser if cal else FACE)
        view = CalibrationView(threshold, error, status.threshold if status else None, cal, run.id if run else None, changes, site)
        self.app.call_from_thread(self._show, view)

    def _show(self, view: CalibrationView) -> None:
        self.view = view
        tz = self.app.tz
        if view.threshold is None:
            top = f"[red]{view.threshold_error}[/]"
        elif view.site and view.threshold.source == "configuration":  # this machine's setting, not the doors'
            top = f"In force: {NONE_AT_SITE}"
        else:
            top = f"In force: [b]{view.threshold.value:.3f}[/b] ({view.threshold.source})"
            if view.applied is not None and abs(view.applied - view.threshold.value) > 1e-9:
                top += f"\nThe door service still applies {view.applied:.3f}: it reads the new value on its next reload."
        self.query_one("#threshold-box", Static).update(top)
        cal = view.calibration
        if cal is None:
            body = "No calibration recorded yet (run `kiosk calibrate`): the error rates are unknown."
        else:
            body = (
                f"{when(cal.time, tz, False)}  {cal.recogniser} model v{cal.training_run_id or '-'}  "
                f"method {cal.method}, its threshold {cal.threshold:.3f}\n"
            )
            body += self._rates_text(cal, view.threshold.value if view.threshold else cal.threshold)
            if cal.training_run_id is not None and cal.training_run_id != view.model_in_force:
                body += f"\n[yellow]Made for model v{cal.training_run_id}; v{view.model_in_force} is in force: run `kiosk calibrate`.[/]"
        self.query_one("#calibration-box", Static).update(body)
        lines = ["Recent threshold changes:"] + [
            f"  {when(a.time, tz, False)}  {a.actor}: {a.details.get('old')} -> {a.details.get('new')}" for a in view.changes
        ]
        self.query_one("#changes", Static).update("\n".join(lines) if view.changes else "No threshold changes logged.")

    def _rates_text(self, cal: Calibration, threshold: float) -> str:
        rates = rates_at(cal, threshold)
        if rates is None:
            return "This calibration records no stranger-acceptance or missed-person rates."
        where = f"at {rates.threshold:.3f}" + ("" if rates.exact else " (the calibration's threshold; no curve recorded)")
        return f"{where}: strangers let in (FPIR) {percent(rates.fpir)}, enrolled people refused (FNIR) {percent(rates.fnir)}"

    @on(Input.Changed, "#new-threshold")
    def _preview(self, event: Input.Changed) -> None:
        preview = self.query_one("#preview", Static)
        try:
            value = float(event.value)
        except ValueError:
            preview.update("")
            return
        cal = self.view.calibration if self.view else None
        if cal is not None and (rates := rates_at(cal, value)) is not None and rates.exact:
            preview.update(f"With {value:.3f}: strangers let in {percent(rates.fpir)}, enrolled people refused {percent(rates.fnir)}")
        else:
            preview.update("")

    @on(Input.Submitted, "#new-threshold")
    def _set(self, event: Input.Submitted) -> None:
        try:
            value = float(event.value)
        except ValueError:
            self.notify(f"not a number: {event.value!r}", severity="error")
            return
        self.save(value)

    @work(thread=True, group="calibration-set")
    def save(self, value: float) -> None:
        kiosk = self.app.kiosk
        try:
            set_threshold(kiosk.settings, kiosk.sessions, value, self.app.actor, self.app.clock())
        except KioskError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.app.call_from_thread(self.notify, f"threshold set to {value:.3f} (logged)")
        self.app.call_from_thread(self._cleared)
        self.app.call_from_thread(self.load)

    def _cleared(self) -> None:
        self.query_one("#new-threshold", Input).value = ""
