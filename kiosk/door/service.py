"""The running door: camera -> door loop -> access log -> relay, plus everything around it.

`DoorService` is built from its parts (settings, camera, detector, recogniser, relay,
database sessions, clock) by `build_door_service`, so `kiosk run`, the door display, the
demo and the tests all run the same object and hand in their own camera or relay instead of
patching. Around the per-frame work it keeps the promises of an unattended door:

- fail-secure: the relay is closed at start and on every way out of `run` (stop, exhausted
  replay, exception);
- an event is committed before the relay is pulsed; an event that cannot be stored keeps
  the door shut;
- the camera never kills the service (`ResilientCamera` reopens it with backoff), and a
  slow loop drops frames rather than falling behind;
- a newer model version is loaded in a background thread and swapped in with one
  assignment, so the camera loop never waits for a model to load;
- the status file is rewritten about once a second and systemd's watchdog is pinged from the
  loop itself, so a stalled loop is noticed.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.models import AdminAction, Calibration, TrainingRun
from kiosk.clock import Clock, SystemClock
from kiosk.config import Settings
from kiosk.door.access_log import AccessLog, EventDraft
from kiosk.door.decision_policy import DecisionPolicy, Verdict, load_access_rules
from kiosk.door.frame_handover import FrameHandover
from kiosk.door.frame_loop import DoorLoop, FrameResult, StageTimes
from kiosk.door.lockdown import Lockdown
from kiosk.door.outputs import DoorOutput, PanelNotice, RelayOutput, SendResult
from kiosk.door.relay import DoorRelay
from kiosk.door.service_notify import ServiceNotifier
from kiosk.door.status import PANEL_GRANTED, PANEL_REFUSED, DoorDecision, DoorStatus, write_status
from kiosk.door.threshold_override import threshold_in_force
from kiosk.errors import ConfigError, KioskError
from kiosk.liveness.gate import LivenessGate
from kiosk.liveness.head_turn import HeadTurnCheck
from kiosk.liveness.setup import LivenessSetup, load_liveness
from kiosk.liveness.setup import threshold_in_force as liveness_threshold
from kiosk.recognition.base import Recogniser
from kiosk.recognition.selection import Selection
from kiosk.storage.credentials import Card, card_for, reserved_card
from kiosk.storage.crop_store import CropStore
from kiosk.storage.thumbnails import save_thumbnail
from kiosk.vision.camera import Frame, ResilientCamera
from kiosk.vision.face_alignment import ARCFACE_SIZE
from kiosk.vision.face_detection import FaceDetector
from kiosk.vision.face_tracker import FaceTracker

if TYPE_CHECKING:
    from kiosk.context import KioskContext
    from kiosk.door.sensors import DoorEvent, DoorSensors, EventCallback

log = logging.getLogger(__name__)

Listener = Callable[[DoorDecision], None]
SensorsFactory = Callable[["EventCallback"], "DoorSensors"]
STATUS_EVERY = 1.0
STORED_DOOR_EVENTS = frozenset({"forced", "held-open", "exit-request"})
PANEL_ANSWER_SECONDS = 10.0  # a panel's LED/buzzer answer this soon after a send is about that grant


@dataclass
class DoorStats:
    """Counters the benchmark, the demo and the tests read after (or during) a run."""

    frames: int = 0
    dropped: int = 0  # frames the camera delivered that the loop was too busy to take
    faces: int = 0
    skipped_faces: int = 0
    events: int = 0
    grants: int = 0
    refusals: int = 0
    store_failures: int = 0
    pulses: int = 0
    reloads: int = 0
    reload_failures: int = 0
    pulse_latencies: list[float] = field(default_factory=list)  # first frame of the track -> relay pulse, s
    panel_sends: int = 0  # grants whose card went to every panel output
    panel_failures: int = 0  # grants whose card could not be sent to a panel output
    event_ids: list[int] = field(default_factory=list)


class DoorService:
    def __init__(
        self,
        settings: Settings,
        camera: ResilientCamera,
        detector: FaceDetector,
        selection: Selection,
        relay: DoorRelay,
        sessions: sessionmaker[Session],
        crops: CropStore,
        clock: Clock,
        loader: Callable[[], Selection] | None = None,
        sensors: SensorsFactory | None = None,
        notifier: ServiceNotifier | None = None,
        outputs: list[DoorOutput] | None = None,
        liveness: LivenessSetup | None = None,
    ):
        self.settings = settings
        self.camera = camera
        self.relay = relay
        self.outputs = outputs if outputs is not None else [RelayOutput(relay, settings.door_hardware.pulse_seconds)]
        self._notices: queue.SimpleQueue[PanelNotice] = queue.SimpleQueue()
        self._last_send: tuple[float, Verdict] | None = None  # (monotonic time, verdict) of the last card sent
        panel = [name for name in settings.door_hardware.outputs if name != "relay"]
        lengths = [settings.osdp.format if name == "osdp" else settings.wiegand.format for name in panel]
        # checked before the door starts: fits the formats, nobody's card
        self.unknown_card = reserved_card(settings.credentials, "unknown_face_card", sessions, lengths) if panel else None
        self.remote_card = reserved_card(settings.credentials, "remote_open_card", sessions, lengths) if panel else None
        if self.unknown_card is not None and self.remote_card is not None and self.unknown_card.value == self.remote_card.value:
            raise ConfigError("config: 'credentials.unknown_face_card' and 'credentials.remote_open_card' are one card to the panel")
        for output in self.outputs:
            output.listen(self._notices.put)
        self.sessions = sessions
        self.crops = crops  # the kiosk's face store: thumbnails are written and read back (MQTT) through it
        self.clock = clock
        self._selection = selection
        self._loader = loader
        self._sensors_factory = sensors
        self._sensors: DoorSensors | None = None
        self.notifier = notifier or ServiceNotifier()
        policy = settings.policy
        self.times = StageTimes()
        self.policy = DecisionPolicy(policy, threshold_in_force(settings, sessions).value, load_access_rules(sessions))
        tracker = FaceTracker(policy.track_iou, policy.track_max_missed, policy.track_min_similarity)
        # --- liveness (issue 14) ---
        self.liveness_setup = liveness
        gate = None
        if liveness is not None:
            cfg = settings.liveness
            head_turn = HeadTurnCheck(cfg.head_turn_seconds) if cfg.head_turn else None
            gate = LivenessGate(liveness.detector, liveness.threshold, cfg.frames, cfg.required, head_turn)
        self.loop = DoorLoop(detector, tracker, self.policy, policy.max_faces, self.times, gate)
        thumbs = partial(save_thumbnail, settings, crops) if settings.privacy.thumbnails else None
        self.access_log = AccessLog(sessions, settings.door, settings.home, thumbs)
        self.handover = FrameHandover(settings.home)
        self.stats = DoorStats()
        self._listeners: list[Listener] = []
        self._prompt_listeners: list[Callable[[str], None]] = []  # issue 14: the head turn to ask for
        self._track_labels: dict[int, str] = {}  # replays: the file each live track was last seen in
        self._door_events: queue.SimpleQueue[DoorEvent] = queue.SimpleQueue()
        self._seen_run = self._newest_run()
        self._model_swapped = threading.Condition()  # notified after every swap of the recogniser in force
        self._fps = 0.0
        self._status_at = 0.0
        self._status_frames = 0
        self.lockdown = Lockdown(settings.home)  # no grants while on (issue 17)
        self.mqtt_status: Callable[[], dict[str, object]] | None = None  # MQTT connection and outbox depth, set by the bridge

    # --- what the screens use ---------------------------------------------------------------

    def add_listener(self, callback: Listener) -> None:
        """Called with every decision that became an access event, on the loop's thread."""
        self._listeners.append(callback)

    def add_prompt_listener(self, callback: Callable[[str], None]) -> None:
        """Called with what the display should ask of the person in view (the head turn), on the loop's thread."""
        self._prompt_listeners.append(callback)

    @property
    def selection(self) -> Selection:
        return self._selection

    def status(self, stopped: bool = False) -> DoorStatus:
        rec = self._selection.recogniser
        if self._sensors is not None:
            door_state = self._sensors.state
        else:
            door_state = "open" if self.relay.is_open else "closed"
        return DoorStatus(
            door=self.settings.door,
            door_state=door_state,
            camera=self.camera.state,
            fps=round(self._fps, 1),
            recogniser=rec.name,
            model_version=rec.model_version,
            threshold=self.policy.threshold,
            updated=time.time(),
            pid=os.getpid(),
            stopped=stopped,
            panel="; ".join(f"{o.name}: {o.link()}" for o in self.outputs if not o.drives_lock),
            lockdown=self.lockdown.active,
            mqtt=self.mqtt_status() if self.mqtt_status is not None else None,
        )

    def wait_for_model(self, ready: Callable[[Recogniser], bool], timeout: float) -> bool:
        """Block until the recogniser in force satisfies ``ready`` (checked at once and after each
        hot reload); False if ``timeout`` seconds pass first. For callers that must know the door
        has a change (an enrolment, a removal) in force: tests, benchmarks."""
        with self._model_swapped:
            return self._model_swapped.wait_for(lambda: ready(self._selection.recogniser), timeout)

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Watch the door until ``stop`` is set or a replayed camera is exhausted."""
        self.relay.close()
        log.info("recogniser: %s", self._selection.reason)
        log.info("%s", self.liveness_setup.reason if self.liveness_setup else "liveness: off (a photo of an enrolled person opens the door)")
        log.info("camera: %s", self.camera.description)
        watcher: threading.Thread | None = None
        watcher_stop = threading.Event()
        stopped_cleanly = False
        try:
            for output in self.outputs:
                output.start()
            if self._sensors_factory is not None:
                self._sensors = self._sensors_factory(self._door_events.put)
            if self._loader is not None:
                watcher = threading.Thread(target=self._watch_models, args=(watcher_stop,), name="model-reload", daemon=True)
                watcher.start()
            self._write_status()
            self.notifier.ready(f"watching {self.settings.door}: {self._selection.reason}")
            camera_was_ok = True
            while not stop.is_set():
                self.notifier.watchdog()
                self._store_door_events()
                started = self.clock.monotonic()
                t0 = time.perf_counter()
                frame = self.camera.read()
                if frame is None:
                    if self.camera.exhausted:
                        log.info("camera replay finished")
                        break
                    if camera_was_ok and self.camera.state != "ok":
                        for verdict in self.loop.lose_everyone(self._selection.recogniser, self.clock.monotonic(), self.clock.now()):
                            self._act(verdict, None, None)
                        self._track_labels.clear()
                        self.notifier.status(f"camera {self.camera.state}: {self.camera.description}")
                    camera_was_ok = self.camera.state == "ok"
                    self._maybe_status()
                    stop.wait(min(max(self.camera.seconds_until_retry(), 0.002), 0.05))
                    continue
                camera_was_ok = True
                self.times.totals["decode"] += time.perf_counter() - t0
                self._handle(frame, started)
                self._maybe_status()
            stopped_cleanly = True
        finally:
            self.relay.close()
            watcher_stop.set()
            if self._sensors is not None:
                self._sensors.close()
            self.camera.close()
            self.stats.dropped = self.camera.dropped
            self._store_door_events()
            if watcher is not None:
                watcher.join(timeout=5.0)
            self.notifier.stopping()
            self._write_status(stopped=stopped_cleanly)

    def _handle(self, frame: Frame, started: float) -> None:
        self.handover.offer(frame.image)
        selection = self._selection  # one read: a reload swaps it between frames, never within
        result = self.loop.process(frame.image, selection.recogniser, started, self.clock.now())
        self.stats.frames += 1
        self.stats.faces += len(result.faces)
        self.stats.skipped_faces += result.skipped_faces
        if frame.label:
            self._track_labels.update(dict.fromkeys(result.track_ids, frame.label))
        if self.loop.liveness is not None:
            for text in self.loop.liveness.new_prompts(result.track_ids):
                for prompt_listener in self._prompt_listeners:
                    prompt_listener(text)
        for verdict in result.verdicts:
            self._act(verdict, result, frame)
        for track_id in result.ended:
            self._track_labels.pop(track_id, None)

    def _act(self, verdict: Verdict, result: FrameResult | None, frame: Frame | None) -> None:
        """Store the event, then (and only then) open the door, then tell the listeners."""
        details = dict(verdict.details)
        label = self._track_labels.get(verdict.track_id) or (frame.label if frame is not None else "")
        if label:
            details["frame"] = label
        thumbnail = None
        if self.settings.privacy.thumbnails and result is not None and verdict.index >= 0:
            thumbnail = result.crops[verdict.index].at(ARCFACE_SIZE)
        draft = EventDraft(
            time=self.clock.now(),
            person=verdict.person,
            granted=verdict.granted,
            probability=verdict.probability,
            reason=verdict.reason,
            recogniser=verdict.recogniser,
            model_version=verdict.model_version,
            track_id=verdict.track_id,
            tailgating=verdict.tailgating,
            thumbnail=thumbnail,
            details=details,
            liveness=verdict.liveness,
        )
        granted, reason = verdict.granted, verdict.reason
        if self.lockdown.active:  # the policy's verdict is kept in details; nobody is let in
            details["lockdown"] = True
            if granted:
                details["policy_reason"] = reason
                granted, reason = False, "lockdown"
        draft = replace(draft, granted=granted, reason=reason, details=details)
        try:
            with self.times.measure("store"):
                event_id = self.access_log.record(draft)
        except (SQLAlchemyError, OSError) as exc:
            self.stats.store_failures += 1
            log.error("access event could not be stored, door stays shut: %s", exc)
            granted, reason = False, "event could not be stored"
        else:
            self.stats.events += 1
            self.stats.event_ids.append(event_id)
            if granted:
                self._open(verdict, event_id)
            elif self.unknown_card is not None and verdict.person is None and not verdict.details.get("repeat"):
                self._send_unknown(verdict, event_id, self.unknown_card)
        if granted:
            self.stats.grants += 1
        else:
            self.stats.refusals += 1
        decision = DoorDecision(draft.time, verdict.person, verdict.probability, granted, reason, verdict.track_id, verdict.tailgating)
        self._tell(decision)

    # --- outputs: the relay and the access panel (issue 16) --------------------------------------

    def _open(self, verdict: Verdict, event_id: int) -> None:
        """Act on a stored grant through every output; what the panel outputs did is one more event."""
        panel = [o for o in self.outputs if not o.drives_lock]
        card: Card | None = None
        lookup_error = ""
        if panel and verdict.person is not None:
            try:
                card = card_for(self.sessions, verdict.person)
            except SQLAlchemyError as exc:
                lookup_error = f"card number could not be read: {exc}"
        panel_results: list[SendResult] = []
        for output in self.outputs:
            if not output.drives_lock and lookup_error:
                panel_results.append(SendResult(output.name, False, lookup_error))
                continue
            if not output.drives_lock:
                panel_results.append(self._panel_send(output, verdict.person, card))
                continue
            result = output.grant(verdict.person, card)  # the relay fails as it always did
            if result.sent:
                self.stats.pulses += 1
                self.stats.pulse_latencies.append(self.clock.monotonic() - verdict.first_seen)
        if not panel:
            return
        sent = [r.sent for r in panel_results]
        if any(sent):
            self._last_send = (self.clock.monotonic(), verdict)
        if all(sent):
            self.stats.panel_sends += 1
        else:
            self.stats.panel_failures += 1
            log.error("grant for %s not sent to the panel: %s", verdict.person, "; ".join(f"{r.output}: {r.detail}" for r in panel_results if not r.sent))
        how = "sent to panel" if all(sent) else "partly sent to panel" if any(sent) else "NOT sent to panel"
        words = "; ".join(f"{r.output} {r.detail}" for r in panel_results)
        self._record_panel(
            verdict.person, any(sent), f"{how}: {words}",
            {"door_event": "panel-send", "grant_event": event_id, "card": None if card is None else str(card),
             "outputs": {r.output: {"sent": r.sent, "detail": r.detail} for r in panel_results}},
        )

    def _send_unknown(self, verdict: Verdict, event_id: int, card: Card) -> None:
        """A stranger refused (not recognised; the policy's first refusal of the visit): the panel outputs
        send the unknown-face card, for panels that log attempts. Refusals of people it knows (liveness,
        cooldown, access hours, tailgating beside them) send nothing: a card read there would be theirs."""
        results = [self._panel_send(output, None, card) for output in self.outputs if not output.drives_lock]
        if not results:
            return
        sent = [r.sent for r in results]
        if any(sent):
            self._last_send = (self.clock.monotonic(), verdict)  # the panel's answer is about this stranger
        how = "sent to panel" if all(sent) else "partly sent to panel" if any(sent) else "NOT sent to panel"
        self._record_panel(
            None, False, f"unknown-face card {how}: " + "; ".join(f"{r.output} {r.detail}" for r in results),
            {"door_event": "panel-unknown", "refused_event": event_id, "card": str(card),
             "outputs": {r.output: {"sent": r.sent, "detail": r.detail} for r in results}},
        )

    def remote_open_refused(self) -> str | None:
        """Why a remote open cannot be carried out here, or None: in panel modes only the panel opens the lock."""
        if self.remote_card is None and not any(o.drives_lock for o in self.outputs):
            return "panel mode and no credentials.remote_open_card: the kiosk drives no lock here"
        return None

    def remote_open(self, actor: str) -> None:
        """An authorised remote open (MQTT): stored first, then the relay pulses and the panel outputs send the
        remote-open card (the panel decides); what the panel outputs did is one more event, as for a grant."""
        draft = EventDraft(time=self.clock.now(), person=None, granted=True, probability=None,
                           reason=f"remote open by {actor}", details={"remote": actor})
        event_id = self.access_log.record(draft)  # stored before anything moves, like every opening
        results: list[SendResult] = []
        for output in self.outputs:
            if output.drives_lock:
                if output.grant(None, None).sent:
                    self.stats.pulses += 1
            elif self.remote_card is not None:
                results.append(self._panel_send(output, None, self.remote_card))
        if not results:
            return
        sent = [r.sent for r in results]
        how = "sent to panel" if all(sent) else "partly sent to panel" if any(sent) else "NOT sent to panel"
        self._record_panel(
            None, any(sent), f"remote-open card {how}: " + "; ".join(f"{r.output} {r.detail}" for r in results),
            {"door_event": "panel-remote", "remote_event": event_id, "remote": actor, "card": str(self.remote_card),
             "outputs": {r.output: {"sent": r.sent, "detail": r.detail} for r in results}},
        )

    def _panel_send(self, output: DoorOutput, person: str | None, card: Card | None) -> SendResult:
        """One panel output's send; one that broke is recorded as not sent and the others still act."""
        try:
            return output.grant(person, card)
        except Exception as exc:
            log.exception("door output %s failed", output.name)
            return SendResult(output.name, False, f"failed: {exc}")

    def _store_panel_notices(self) -> None:
        """The panel's answers (LED/buzzer) and link changes: stored, and answers shown on the display."""
        while True:
            try:
                notice = self._notices.get_nowait()
            except queue.Empty:
                return
            if notice.kind == "link":
                self._record_panel(None, bool(notice.granted), f"panel link {'up' if notice.granted else 'lost'}: {notice.output} {notice.detail}",
                                   {"door_event": "panel-link", "output": notice.output, "up": notice.granted})
                continue
            if notice.kind == "key":
                self._record_key(notice)
                continue
            recent = self._last_send
            verdict = recent[1] if recent and self.clock.monotonic() - recent[0] <= PANEL_ANSWER_SECONDS else None
            person = verdict.person if verdict else None
            answer = PANEL_GRANTED if notice.granted else PANEL_REFUSED
            self._record_panel(person, bool(notice.granted), f"{answer} ({notice.output} {notice.detail})",
                               {"door_event": "panel-answer", "output": notice.output, "answer": answer.split()[0]})
            decision = DoorDecision(notice.time, person, verdict.probability if verdict else 0.0, bool(notice.granted),
                                    answer, verdict.track_id if verdict else None)
            self._tell(decision)

    def _record_key(self, notice: PanelNotice) -> None:
        """A secure channel key the panel set (or tried to): an admin action, since it changes who can talk to the door."""
        details = {"saved": bool(notice.granted), "detail": notice.detail, "install_mode": self.settings.osdp.install_mode}
        try:
            with self.sessions.begin() as session:
                session.add(AdminAction(time=notice.time, actor=f"{notice.output}-panel", action="panel-key", subject=None, details=details))
        except SQLAlchemyError as exc:
            log.error("panel key change could not be stored (%s): %s", notice.detail, exc)

    def _record_panel(self, person: str | None, granted: bool, reason: str, details: dict[str, object]) -> None:
        draft = EventDraft(time=self.clock.now(), person=person, granted=granted, probability=None, reason=reason, details=details)
        try:
            self.stats.event_ids.append(self.access_log.record(draft))
            self.stats.events += 1
        except (SQLAlchemyError, OSError) as exc:
            self.stats.store_failures += 1
            log.error("panel event could not be stored (%s): %s", reason, exc)

    def _tell(self, decision: DoorDecision) -> None:
        for listener in self._listeners:
            try:
                listener(decision)
            except Exception:  # a broken screen must not stop the door
                log.exception("door decision listener failed")

    def _store_door_events(self) -> None:
        """Alarms and exit requests from the door sensors, written from the loop's thread."""
        self._store_panel_notices()
        while True:
            try:
                event = self._door_events.get_nowait()
            except queue.Empty:
                return
            if event.kind not in STORED_DOOR_EVENTS:
                continue
            draft = EventDraft(
                time=event.time, person=None, granted=event.kind == "exit-request", probability=None,
                reason=f"door {event.kind}: {event.detail}", details={"door_event": event.kind},
            )
            try:
                self.stats.event_ids.append(self.access_log.record(draft))
                self.stats.events += 1
            except (SQLAlchemyError, OSError) as exc:
                self.stats.store_failures += 1
                log.error("door event %s could not be stored: %s", event.kind, exc)

    # --- status and hot reload ---------------------------------------------------------------

    def _maybe_status(self) -> None:
        now = time.monotonic()
        if now - self._status_at >= STATUS_EVERY:
            elapsed = now - self._status_at if self._status_at else 0.0
            self._fps = (self.stats.frames - self._status_frames) / elapsed if elapsed else 0.0
            self._status_frames = self.stats.frames
            self._status_at = now
            self._write_status()

    def _write_status(self, stopped: bool = False) -> None:
        try:
            write_status(self.settings.home, self.status(stopped))
        except OSError as exc:  # a full disk must not stop the door; the admin app sees it stale
            log.warning("status file not written: %s", exc)

    def _newest_run(self) -> tuple[int | None, int | None]:
        """The newest complete model version and the newest calibration: a change in either reloads."""
        with self.sessions() as session:
            run = session.scalar(select(func.max(TrainingRun.id)).where(TrainingRun.status == "complete"))
            calibration = session.scalar(select(func.max(Calibration.id)))
        return run, calibration

    def _watch_models(self, stop: threading.Event) -> None:
        """Background thread: load a newer complete model version and swap it in; refresh rules."""
        interval = self.settings.policy.reload_check_seconds
        while not stop.wait(interval):
            self._refresh_threshold()
            self._refresh_liveness_threshold()
            try:
                self.policy.rules = load_access_rules(self.sessions)
                newest = self._newest_run()
            except SQLAlchemyError as exc:
                log.warning("could not check for a new model: %s", exc)
                continue
            if newest == self._seen_run:
                continue
            self._seen_run = newest
            self.reload()

    def _refresh_threshold(self) -> None:
        """Pick up a threshold the admin changed; an unreadable override keeps the one in force."""
        try:
            threshold = threshold_in_force(self.settings, self.sessions)
        except (KioskError, SQLAlchemyError) as exc:
            log.error("%s; keeping threshold %.3f", exc, self.policy.threshold)
            return
        if threshold.value != self.policy.threshold:
            log.warning("threshold %.3f -> %.3f (%s)", self.policy.threshold, threshold.value, threshold.source)
            self.policy.threshold = threshold.value

    def _refresh_liveness_threshold(self) -> None:
        """Pick up a liveness threshold `kiosk calibrate` chose since the start (issue 14)."""
        gate, setup = self.loop.liveness, self.liveness_setup
        if gate is None or setup is None:
            return
        try:
            value, source = liveness_threshold(self.settings, self.sessions, setup.key)
        except SQLAlchemyError as exc:
            log.warning("could not check the liveness threshold: %s", exc)
            return
        if value != gate.threshold:
            log.warning("liveness threshold %.3f -> %.3f (%s)", gate.threshold, value, source)
            gate.threshold = value

    @property
    def sensors(self) -> DoorSensors | None:
        """The door contact and exit button, while the loop runs (None without them)."""
        return self._sensors

    def reload_now(self) -> bool:
        """Re-read the threshold, the access rules and the model in force (a remote `reload` command)."""
        self._refresh_threshold()
        self.policy.rules = load_access_rules(self.sessions)
        return self.reload()

    def reload(self) -> bool:
        """Load the model version in force now and swap it in; the old one stays if loading fails."""
        if self._loader is None:
            return False
        try:
            selection = self._loader()
        except Exception as exc:  # a corrupt or missing artifact: keep the door on the old model
            self.stats.reload_failures += 1
            log.error("new model not loaded, keeping %s: %s", self._selection.reason, exc)
            return False
        old = self._selection.recogniser
        new = selection.recogniser
        if _identity(new) == _identity(old):
            return False
        with self._model_swapped:
            self._selection = selection
            self.stats.reloads += 1
            self._model_swapped.notify_all()
        log.warning("model reloaded: %s", selection.reason)
        self.notifier.status(f"model reloaded: {selection.reason}")
        return True


def _identity(recogniser: Recogniser) -> tuple[object, ...]:
    """What makes two loaded recognisers the same: name, version, and the calibrations applied."""
    parts = [recogniser, *(getattr(recogniser, part, None) for part in ("clip", "face"))]
    return (recogniser.name, recogniser.model_version, *(getattr(p, "calibration_id", None) for p in parts))


def build_door_service(
    ctx: KioskContext,
    camera: ResilientCamera,
    relay: DoorRelay,
    clock: Clock | None = None,
    selection: Selection | None = None,
    detector: FaceDetector | None = None,
    sensors: SensorsFactory | None = None,
    notifier: ServiceNotifier | None = None,
    outputs: list[DoorOutput] | None = None,
    liveness: LivenessSetup | None = None,
) -> DoorService:
    """The door service from a context's settings, database and models, and the given hardware.

    The recogniser in force is loaded now (``selection`` overrides it) and reloaded whenever a
    newer version completes. The door's detector skips the padded second pass enrolment uses:
    at a door, the next frame is the second chance.
    """
    from kiosk.recognition.selection import load_recogniser

    settings = ctx.settings
    if detector is None:
        door_detection = settings.detection.model_copy(update={"pad_fraction": 0.0})
        detector = FaceDetector.from_settings(settings.models, door_detection)
    return DoorService(
        settings=settings,
        camera=camera,
        detector=detector,
        selection=selection or load_recogniser(ctx),
        relay=relay,
        sessions=ctx.sessions,
        crops=ctx.crops,
        clock=clock or SystemClock(),
        loader=lambda: load_recogniser(ctx),
        sensors=sensors,
        notifier=notifier,
        outputs=outputs,
        liveness=liveness or load_liveness(settings, ctx.sessions),
    )
