"""Who is in the models in force, who waits for CLIP, and when CLIP's catch-up retrain is due.

An enrolment refreshes the face model at once (kiosk/training/refresh.py), but CLIP's text
tower has to be fine-tuned again to learn a new person: until then the person has no CLIP
class, and the door does what recognition.awaiting_clip says. The catch-up retrain is queued
by the enrolment itself (the person is simply pending) and runs when the pending people
reach training.catch_up_people or the oldest has waited training.catch_up_hours:
`kiosk retrain --if-due`, run hourly by systemd/kiosk-retrain.timer, one at a time (a retrain
already running is left alone), cancellable with `systemctl stop kiosk-retrain`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from db.models import Person, TrainingRun, utcnow
from kiosk.context import KioskContext
from kiosk.processes import owner_gone
from kiosk.recognition.model_registry import ModelRegistry

FACE, CLIP = "face", "clip"


@dataclass(frozen=True)
class InForce:
    """A model version in force and the people it knows."""

    version: int
    people: frozenset[str]


def in_force(ctx: KioskContext, recogniser: str) -> InForce | None:
    """The newest complete version of ``recogniser`` and its people (from its artifact), or None."""
    registry = ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir)
    run = registry.in_force(recogniser)
    if run is None:
        return None
    try:
        meta = json.loads((registry.folder(run) / "meta.json").read_text())
    except (OSError, ValueError):
        return InForce(run.id, frozenset())  # a damaged artifact knows nobody: the door refuses rather than guesses
    return InForce(run.id, frozenset(meta.get("people", [])))


def clip_used(ctx: KioskContext) -> bool:
    """CLIP takes part at this door: configured, or under auto with a CLIP version trained."""
    wanted = ctx.settings.recognition.recogniser
    if wanted in (CLIP, "hybrid"):
        return True
    return wanted == "auto" and ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir).in_force(CLIP) is not None


@dataclass(frozen=True)
class Pending:
    person: str
    since: datetime  # when they were enrolled: how long they have waited for CLIP


def clip_pending(ctx: KioskContext) -> list[Pending]:
    """Enrolled people the CLIP version in force does not know, oldest first; [] where CLIP is not used."""
    if not clip_used(ctx):
        return []
    clip = in_force(ctx, CLIP)
    known = clip.people if clip is not None else frozenset()
    with ctx.sessions() as session:
        rows = session.execute(select(Person.name, Person.created_at).where(Person.samples.any()).order_by(Person.created_at)).all()
    return [Pending(name, created) for name, created in rows if name not in known]


def running_retrain(ctx: KioskContext) -> TrainingRun | None:
    """A training run still under way in a live process (this host), or None."""
    with ctx.sessions() as session:
        runs = session.scalars(select(TrainingRun).where(TrainingRun.status == "running")).all()
    return next((run for run in runs if not owner_gone((run.params or {}).get("owner"))), None)


def catch_up_due(ctx: KioskContext, now: datetime | None = None) -> tuple[bool, str]:
    """Whether CLIP's catch-up retrain should run now, and why (or why not), in one line."""
    pending = clip_pending(ctx)
    if not pending:
        return False, "nobody is waiting for CLIP"
    training = ctx.settings.training
    waited = (now or utcnow()) - pending[0].since
    oldest = f"{len(pending)} waiting for CLIP, the longest for {_hours(waited)}"
    if len(pending) >= training.catch_up_people:
        return True, f"{oldest} (at least {training.catch_up_people} people)"
    if waited >= timedelta(hours=training.catch_up_hours):
        return True, f"{oldest} (at least {training.catch_up_hours:g} h)"
    return False, f"{oldest}: due at {training.catch_up_people} people or {training.catch_up_hours:g} h"


def clip_due_at(ctx: KioskContext, pending: list[Pending]) -> datetime | None:
    """When the oldest pending person's wait reaches training.catch_up_hours (the latest the catch-up starts)."""
    if not pending:
        return None
    return pending[0].since + timedelta(hours=ctx.settings.training.catch_up_hours)


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} min"


@dataclass(frozen=True)
class Membership:
    """Whether each person is in the models in force, and when they will be where not."""

    face: InForce | None
    clip: InForce | None  # None where CLIP is not used, or nothing is trained yet
    clip_used: bool
    clip_due: datetime | None  # the latest the catch-up starts for those waiting; None if nobody waits
    clip_due_now: bool

    def describe(self, person: str, fmt: Callable[[datetime], str]) -> str:
        """One short cell: 'yes', or what is missing and when it comes ('clip by 03-05 09:00')."""
        parts = []
        if self.face is None or person not in self.face.people:
            parts.append("face: next refresh")
        if self.clip_used and (self.clip is None or person not in self.clip.people):
            if self.clip_due_now:
                parts.append("clip: catch-up due now")
            elif self.clip_due is not None:
                parts.append(f"clip by {fmt(self.clip_due)}")
            else:
                parts.append("clip: next retrain")
        return "; ".join(parts) or "yes"


def membership(ctx: KioskContext, now: datetime | None = None) -> Membership:
    """What the People screen shows per person, read once for everyone."""
    used = clip_used(ctx)
    pending = clip_pending(ctx) if used else []
    due_now = catch_up_due(ctx, now)[0] if pending else False
    return Membership(in_force(ctx, FACE), in_force(ctx, CLIP) if used else None, used, clip_due_at(ctx, pending), due_now)
