"""The door's decision rule: who is let in, who is refused, and when that is written down.

Every face in a frame is fed to its track's window of the last N predictions. A track is
granted when K of those N frames name the same person at or above the threshold: one
lucky frame never opens the door, and one blurred frame does not refuse a regular. Each
visit (track) produces one event: a grant, or a refusal once its window is full without
K agreeing frames. A refused track that stays is logged again at most every
``refusal_repeat_seconds`` (someone trying their luck cannot flood the log), and a person
just granted is not granted again within ``cooldown_seconds`` when their track is lost and
found again; that other track still leaves an event (not opened, "cooldown"), since it may
be someone else the recogniser took for them. A stranger in the frame beside a granted person is tailgating: always recorded,
and refused when ``policy.tailgating`` says so. A person may also be limited to validity
dates and weekly windows (the Person row); outside them the named person is refused.

The policy is pure: no database, no clock of its own, so it is tested frame by frame.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from datetime import time as dtime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Person
from kiosk.config import PolicyConfig
from kiosk.liveness.base import ATTACK_REASON
from kiosk.recognition.base import Prediction

if TYPE_CHECKING:
    from kiosk.liveness.gate import LivenessGate

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class WeeklyWindow:
    days: frozenset[int]  # 0 = Monday
    start: dtime
    end: dtime  # an end before the start runs past midnight

    def contains(self, local: datetime) -> bool:
        t, day = local.time(), local.weekday()
        if self.start <= self.end:
            return day in self.days and self.start <= t < self.end
        return (day in self.days and t >= self.start) or ((day - 1) % 7 in self.days and t < self.end)


@dataclass(frozen=True)
class AccessRule:
    """When a person may come in; no limits means always."""

    valid_from: datetime | None = None
    valid_until: datetime | None = None
    windows: tuple[WeeklyWindow, ...] = ()

    def refusal(self, now: datetime) -> str | None:
        """Why this person may not come in at ``now`` (aware), or None if they may."""
        if self.valid_from is not None and now < self.valid_from:
            return f"access not valid until {self.valid_from.isoformat(timespec='minutes')}"
        if self.valid_until is not None and now >= self.valid_until:
            return f"access expired at {self.valid_until.isoformat(timespec='minutes')}"
        if self.windows:
            local = now.astimezone()  # weekly windows are in the door's local time
            if not any(w.contains(local) for w in self.windows):
                return f"outside access hours ({local.strftime('%a %H:%M')})"
        return None


def parse_windows(raw: list[Any]) -> tuple[WeeklyWindow, ...]:
    """Person.weekly_windows JSON: [{"days": [0..6], "start": "HH:MM", "end": "HH:MM"}, ...]."""
    out = []
    for item in raw or []:
        out.append(
            WeeklyWindow(
                frozenset(int(d) for d in item.get("days", range(7))),
                dtime.fromisoformat(item["start"]),
                dtime.fromisoformat(item["end"]),
            )
        )
    return tuple(out)


def load_access_rules(sessions: sessionmaker[Session]) -> dict[str, AccessRule]:
    """The limits of everyone who has any; a malformed window refuses that person (fail-secure)."""
    rules: dict[str, AccessRule] = {}
    with sessions() as session:
        for person in session.scalars(select(Person)):
            if person.valid_from is None and person.valid_until is None and not person.weekly_windows:
                continue
            try:
                windows = parse_windows(person.weekly_windows)
            except (KeyError, ValueError, TypeError):
                windows = (WeeklyWindow(frozenset(), dtime(0), dtime(0)),)  # matches nothing
            rules[person.name] = AccessRule(person.valid_from, person.valid_until, windows)
    return rules


@dataclass(frozen=True)
class Observation:
    """One face in one frame: its track and what the recogniser said."""

    track_id: int
    prediction: Prediction
    index: int  # position of the face in the frame's face list (for its crop/thumbnail)


@dataclass(frozen=True)
class Verdict:
    """A decision worth an access event."""

    track_id: int
    person: str | None
    probability: float
    granted: bool
    reason: str
    recogniser: str
    model_version: int | None
    first_seen: float  # monotonic time of the track's first frame (for latency)
    index: int  # the face's position in this frame; -1 for a track that has just left
    tailgating: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    liveness: float | None = None  # the track's fused p(live), where the liveness check ran


@dataclass
class _TrackState:
    first_seen: float
    window: deque[tuple[str | None, float]]  # (top person, probability) per frame
    granted: bool = False
    person: str | None = None  # whom the visit was granted to
    refused_at: float | None = None
    suppressed: int = 0  # refusals not logged since the last one
    beside_grant: bool = False
    model: tuple[str, int | None] = ("", None)  # the recogniser and version of the last frame


class DecisionPolicy:
    def __init__(self, config: PolicyConfig, threshold: float, rules: dict[str, AccessRule] | None = None):
        self.config = config
        self.threshold = threshold
        self.rules = rules or {}
        self.liveness: LivenessGate | None = None  # issue 14: when set, a grant also needs a live track
        self._tracks: dict[int, _TrackState] = {}
        self._last_grant: dict[str, tuple[float, int]] = {}  # person -> (monotonic time, track) of their grant
        self.suppressed_refusals = 0
        self.cooldown_skips = 0

    def decide(self, observations: list[Observation], monotonic: float, now: datetime, ended: list[int] = ()) -> list[Verdict]:  # type: ignore[assignment]
        """This frame's verdicts (most frames have none: decisions wait for K of N frames).

        ``ended`` are tracks the tracker gave up: a face that left before its window filled
        is still refused (and logged) if it was seen for at least K frames.
        """
        verdicts: list[Verdict] = []
        for track_id in ended:
            state = self._tracks.pop(track_id, None)
            if state is None or state.granted or state.refused_at is not None or len(state.window) < self.config.min_frames:
                continue
            person, hits, mean_p = self._best(state)
            if self.liveness is not None and person is not None and hits >= self.config.min_frames:
                # recognised, but gone before the liveness check said live: refused for that
                refusal = self._liveness_refusal(track_id, state, person, mean_p, monotonic, None, -1)
            else:
                refusal = self._window_refusal(track_id, state, person, hits, monotonic, None, -1)
            if refusal is not None:
                verdicts.append(refusal)
        for obs in observations:
            state = self._tracks.get(obs.track_id)
            if state is None:
                state = self._tracks[obs.track_id] = _TrackState(monotonic, deque(maxlen=self.config.window_frames))
            state.window.append((obs.prediction.person, obs.prediction.probability))
            state.model = (obs.prediction.recogniser, obs.prediction.model_version)
        strangers = [o for o in observations if not self._tracks[o.track_id].granted and o.prediction.probability < self.threshold]
        granted_now: list[Observation] = []
        for obs in observations:
            state = self._tracks[obs.track_id]
            if state.granted and self._someone_else(state):
                # the granted person left and another face took their place in the same box
                state.granted, state.person, state.refused_at, state.first_seen = False, None, None, monotonic
            if state.granted:
                granted_now.append(obs)
                continue
            person, hits, mean_p = self._best(state)
            if hits >= self.config.min_frames and person is not None:
                verdict = self._grant(obs, state, person, mean_p, [s for s in strangers if s is not obs], monotonic, now)
                if verdict is not None and verdict.granted:
                    granted_now.append(obs)
            elif len(state.window) >= self.config.window_frames:
                verdict = self._window_refusal(obs.track_id, state, person, hits, monotonic, obs.prediction, obs.index)
            else:
                verdict = None
            if verdict is not None:
                verdicts.append(verdict)
        if granted_now:  # a stranger refused in the frame of a granted person is tailgating
            for obs in observations:
                if not self._tracks[obs.track_id].granted and obs.prediction.probability < self.threshold:
                    self._tracks[obs.track_id].beside_grant = True
        return [self._mark_tailgating(v) for v in verdicts]

    def _window_refusal(
        self, track_id: int, state: _TrackState, person: str | None, hits: int, monotonic: float,
        prediction: Prediction | None, index: int,
    ) -> Verdict | None:
        best_p = max(p for _, p in state.window)
        reason = (
            "unknown face"
            if hits == 0
            else f"not recognised: {hits} of {len(state.window)} frames >= {self.threshold:.2f} (need {self.config.min_frames})"
        )
        details = {"best_candidate": person, "frames_at_threshold": hits}
        if prediction is not None and prediction.note and hits == 0:  # issue 15: e.g. awaiting CLIP's retrain
            reason = prediction.note
        return self._refuse(track_id, state, None, best_p, reason, monotonic, details, prediction, index)

    def _someone_else(self, state: _TrackState) -> bool:
        """A full window without one frame of the granted person at the threshold."""
        return len(state.window) >= self.config.window_frames and not any(
            p == state.person and q >= self.threshold for p, q in state.window
        )

    def _best(self, state: _TrackState) -> tuple[str | None, int, float]:
        """The person most often at or above threshold in the window, their count and mean probability."""
        counts: dict[str, list[float]] = {}
        for person, p in state.window:
            if person is not None and p >= self.threshold:
                counts.setdefault(person, []).append(p)
        if not counts:
            top = max(state.window, key=lambda item: item[1])
            return top[0], 0, top[1]
        person, probs = max(counts.items(), key=lambda kv: (len(kv[1]), sum(kv[1])))
        return person, len(probs), sum(probs) / len(probs)

    def _grant(
        self, obs: Observation, state: _TrackState, person: str, probability: float,
        strangers: list[Observation], monotonic: float, now: datetime,
    ) -> Verdict | None:
        last = self._last_grant.get(person)
        if last is not None and monotonic - last[0] < self.config.cooldown_seconds:
            state.granted, state.person = True, person  # not opened twice within the cooldown ...
            self.cooldown_skips += 1
            if last[1] == obs.track_id:
                return None
            # ... but another track named as them is a visit of its own: the same person found again,
            # or someone the recogniser takes for them. Either way it is written down.
            pred = obs.prediction
            reason = (
                f"recognised as {person} {monotonic - last[0]:.0f} s after their grant "
                f"(cooldown {self.config.cooldown_seconds:g} s): not opened again"
            )
            details = {"cooldown": True, "granted_track": last[1]}
            return Verdict(
                obs.track_id, person, probability, False, reason, pred.recogniser, pred.model_version,
                state.first_seen, obs.index, details=details,
            )
        liveness = None
        if self.liveness is not None:  # issue 14
            judgement = self.liveness.judge(obs.track_id)
            if judgement.state == "pending":
                return None  # not yet: the next frames decide
            if judgement.state != "live":
                return self._liveness_refusal(obs.track_id, state, person, probability, monotonic, obs.prediction, obs.index)
            liveness = judgement.score
        rule = self.rules.get(person)
        why_not = rule.refusal(now) if rule is not None else None
        if why_not is not None:
            return self._refuse(obs.track_id, state, person, probability, why_not, monotonic, {}, obs.prediction, obs.index)
        details: dict[str, Any] = {"frames_at_threshold": sum(1 for p, q in state.window if p == person and q >= self.threshold)}
        if strangers:
            details["strangers_beside"] = [s.track_id for s in strangers]
            if self.config.tailgating == "refuse":
                reason = f"tailgating: {len(strangers)} unknown face(s) beside {person}"
                return self._refuse(obs.track_id, state, person, probability, reason, monotonic, details, obs.prediction, obs.index, True)
        state.granted, state.person = True, person
        self._last_grant[person] = (monotonic, obs.track_id)
        pred = obs.prediction
        if pred.note:  # issue 15: granted on less than the usual evidence (the face alone), said on the event
            details["note"] = pred.note
        return Verdict(
            obs.track_id, person, probability, True, "recognised", pred.recogniser, pred.model_version,
            state.first_seen, obs.index, tailgating=bool(strangers), details=details, liveness=liveness,
        )

    def _liveness_refusal(
        self, track_id: int, state: _TrackState, person: str, probability: float, monotonic: float,
        prediction: Prediction | None, index: int,
    ) -> Verdict | None:
        """Recognised, but the track is not judged live (or left before it was): which check, and its score."""
        assert self.liveness is not None
        judgement = self.liveness.judge(track_id)
        details = {"liveness_check": judgement.check, "liveness_state": judgement.state, **judgement.details}
        verdict = self._refuse(track_id, state, person, probability, ATTACK_REASON, monotonic, details, prediction, index)
        return None if verdict is None else replace(verdict, liveness=judgement.score)

    def _refuse(
        self, track_id: int, state: _TrackState, person: str | None, probability: float, reason: str,
        monotonic: float, details: dict[str, Any], prediction: Prediction | None, index: int, tailgating: bool = False,
    ) -> Verdict | None:
        if state.refused_at is not None and monotonic - state.refused_at < self.config.refusal_repeat_seconds:
            state.suppressed += 1
            self.suppressed_refusals += 1
            return None
        if state.refused_at is not None:
            details = {**details, "repeat": True, "suppressed_since_last": state.suppressed}
        state.refused_at, state.suppressed = monotonic, 0
        recogniser, version = (prediction.recogniser, prediction.model_version) if prediction else state.model
        return Verdict(
            track_id, person, probability, False, reason, recogniser, version,
            state.first_seen, index, tailgating=tailgating or state.beside_grant, details=details,
        )

    def _mark_tailgating(self, verdict: Verdict) -> Verdict:
        state = self._tracks.get(verdict.track_id)
        if verdict.granted or verdict.tailgating or state is None or not state.beside_grant:
            return verdict
        return replace(verdict, tailgating=True)
