"""The door's decision rule, frame by frame (pure logic: predictions in, verdicts out)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from kiosk.config import PolicyConfig
from kiosk.door.decision_policy import AccessRule, DecisionPolicy, Observation, WeeklyWindow, parse_windows
from kiosk.recognition.base import Candidate, Prediction
from kiosk.vision.face_tracker import FaceTracker

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=timezone.utc)  # a Wednesday


def pred(person: str | None, p: float) -> Prediction:
    return Prediction("face", 7, [Candidate(person, p, p)] if person else [])


def feed(policy: DecisionPolicy, frames: list[list[tuple[int, str | None, float]]], t0: float = 0.0, dt: float = 0.05, ended=None):
    verdicts = []
    for i, frame in enumerate(frames):
        obs = [Observation(track, pred(person, p), j) for j, (track, person, p) in enumerate(frame)]
        verdicts += policy.decide(obs, t0 + i * dt, NOW, (ended or {}).get(i, []))
    return verdicts


def test_granted_only_on_k_of_n_frames_of_the_same_track() -> None:
    policy = DecisionPolicy(PolicyConfig(window_frames=5, min_frames=3), 0.8)
    v = feed(policy, [[(1, "Ada", 0.9)], [(1, "Ada", 0.5)], [(1, "Ada", 0.95)]])
    assert v == []  # two frames at threshold, not three
    v = feed(policy, [[(1, "Ada", 0.85)]], t0=1.0)
    assert [(x.person, x.granted, x.track_id) for x in v] == [("Ada", True, 1)]
    assert 0.85 <= v[0].probability <= 0.95


def test_one_event_per_visit_and_a_stranger_refused_once_then_rate_limited() -> None:
    policy = DecisionPolicy(PolicyConfig(window_frames=5, min_frames=3, refusal_repeat_seconds=30), 0.8)
    frames = [[(1, "Ada", 0.99), (2, "Bob", 0.2)]] * 60  # 3 seconds of both standing there
    v = feed(policy, frames)
    assert [(x.track_id, x.granted) for x in v] == [(1, True), (2, False)]
    assert v[1].person is None and v[1].reason == "unknown face"
    assert v[1].tailgating  # the stranger stood beside a granted person
    assert policy.suppressed_refusals == 55
    later = feed(policy, [[(2, "Bob", 0.2)]], t0=40.0)  # still there 40 s later: logged again
    assert len(later) == 1 and later[0].details["suppressed_since_last"] == 55


def test_cooldown_per_person_across_tracks() -> None:
    policy = DecisionPolicy(PolicyConfig(window_frames=3, min_frames=2, cooldown_seconds=10), 0.8)
    first = feed(policy, [[(1, "Ada", 0.9)]] * 3, ended={2: []})
    again = feed(policy, [[(2, "Ada", 0.9)]] * 3, t0=5.0, ended={0: [1]})  # lost and found within 10 s
    after = feed(policy, [[(3, "Ada", 0.9)]] * 3, t0=20.0, ended={0: [2]})
    assert [x.granted for x in first] == [True]
    assert [(x.granted, x.details.get("cooldown")) for x in again] == [(False, True)] and policy.cooldown_skips == 1
    assert [x.granted for x in after] == [True]


def test_someone_named_as_a_person_in_their_cooldown_on_another_track_leaves_an_event() -> None:
    """Serena is let in; a look-alike the recogniser takes for her arrives on a new track within 10 s."""
    policy = DecisionPolicy(PolicyConfig(window_frames=3, min_frames=2, cooldown_seconds=10), 0.8)
    first = feed(policy, [[(1, "Serena", 0.9)]] * 3)
    second = feed(policy, [[(2, "Serena", 0.9)]] * 3, t0=2.0, ended={0: [1]})
    assert [(x.track_id, x.granted) for x in first] == [(1, True)]
    assert [(x.track_id, x.person, x.granted) for x in second] == [(2, "Serena", False)]  # logged, not opened
    assert second[0].details == {"cooldown": True, "granted_track": 1} and "not opened again" in second[0].reason
    assert feed(policy, [[(2, "Serena", 0.9)]] * 10, t0=3.0) == []  # once per track, not per frame


def test_tailgating_setting_decides_whether_a_stranger_beside_refuses() -> None:
    frames = [[(1, "Ada", 0.95), (2, None, 0.0)]] * 3
    recorded = feed(DecisionPolicy(PolicyConfig(window_frames=3, min_frames=3, tailgating="record"), 0.8), frames)
    refused = feed(DecisionPolicy(PolicyConfig(window_frames=3, min_frames=3, tailgating="refuse"), 0.8), frames)
    grant = [x for x in recorded if x.track_id == 1][0]
    assert grant.granted and grant.tailgating and grant.details["strangers_beside"] == [2]
    blocked = [x for x in refused if x.track_id == 1][0]
    assert not blocked.granted and blocked.person == "Ada" and blocked.reason.startswith("tailgating")


def test_face_that_leaves_before_its_window_fills_is_still_refused() -> None:
    policy = DecisionPolicy(PolicyConfig(window_frames=10, min_frames=3), 0.8)
    v = feed(policy, [[(4, "Bob", 0.3)]] * 3 + [[]], ended={3: [4]})
    assert [(x.track_id, x.granted, x.index) for x in v] == [(4, False, -1)]
    glimpse = DecisionPolicy(PolicyConfig(window_frames=10, min_frames=3), 0.8)
    assert feed(glimpse, [[(5, "Bob", 0.3)], []], ended={1: [5]}) == []  # one frame: a false detection, not a visit


def test_another_face_taking_over_a_granted_track_is_a_new_visit() -> None:
    policy = DecisionPolicy(PolicyConfig(window_frames=3, min_frames=2), 0.8)
    v = feed(policy, [[(1, "Ada", 0.9)]] * 3 + [[(1, None, 0.1)]] * 3)
    assert [(x.person, x.granted) for x in v] == [("Ada", True), (None, False)]


def test_validity_dates_and_weekly_windows() -> None:
    weekdays = parse_windows([{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:00"}])[0]
    assert weekdays.contains(datetime(2026, 3, 4, 9, 30)) and not weekdays.contains(datetime(2026, 3, 4, 18, 0))
    assert not weekdays.contains(datetime(2026, 3, 7, 9, 30))  # Saturday
    assert AccessRule(valid_from=NOW - timedelta(days=1), valid_until=NOW + timedelta(days=1)).refusal(NOW) is None
    assert "expired" in (AccessRule(valid_until=NOW).refusal(NOW) or "")
    assert "not valid until" in (AccessRule(valid_from=NOW + timedelta(hours=1)).refusal(NOW) or "")
    night = WeeklyWindow(frozenset({4}), datetime.strptime("22:00", "%H:%M").time(), datetime.strptime("06:00", "%H:%M").time())
    assert night.contains(datetime(2026, 3, 6, 23, 0)) and night.contains(datetime(2026, 3, 7, 5, 0))  # Fri night, Sat early
    assert not night.contains(datetime(2026, 3, 7, 23, 0))
    policy = DecisionPolicy(PolicyConfig(window_frames=3, min_frames=2), 0.8, {"Ada": AccessRule(valid_until=NOW)})
    v = feed(policy, [[(1, "Ada", 0.99)]] * 3)
    assert [(x.person, x.granted) for x in v] == [("Ada", False)] and "expired" in v[0].reason


def test_tracker_keeps_a_face_across_frames_and_ends_it_after_missed_frames() -> None:
    tracker = FaceTracker(iou_threshold=0.3, max_missed=2)
    a, b = np.array([10, 10, 60, 60.0]), np.array([200, 10, 250, 60.0])
    first = tracker.update([a, b]).ids
    second = tracker.update([b + 3, a + 2]).ids
    assert second == first[::-1]
    assert tracker.update([]).ended == [] and tracker.update([]).ended == []
    assert sorted(tracker.update([]).ended) == sorted(first)


def test_tracker_starts_a_new_track_when_the_face_in_the_box_is_someone_else() -> None:
    """Same place, no empty frame between: the embedding, not the box, says who it is."""
    tracker = FaceTracker(iou_threshold=0.3, max_missed=2, min_similarity=0.3)
    box = np.array([10, 10, 60, 60.0])
    ada = np.array([1.0, 0.0, 0.0])
    ada_turning = np.array([0.8, 0.6, 0.0])  # cosine 0.8 to ada: the same person, a little changed
    bob = np.array([0.0, 0.0, 1.0])
    first = tracker.update([box], ada[None]).ids
    assert tracker.update([box + 1], ada_turning[None]).ids == first
    then = tracker.update([box + 2], bob[None])
    assert then.ids != first and tracker.identity_splits == 1
    assert tracker.update([box + 2], bob[None]).ids == then.ids
    assert FaceTracker().update([box]).ids == [1]  # without embeddings, overlap alone decides
