"""The MQTT outbox: every access event is written, in its own transaction, as a message to publish.

An event and its outbox row commit together or not at all, so an event the door stored is
never lost to MQTT, whatever the broker (away, restarting) or the kiosk (killed, restarted)
does. Rows are published in id order (the order the events were committed) and marked sent
when the broker acknowledges them (QoS 1 PUBACK); one acknowledged but not yet marked when
the kiosk dies is published again, so consumers de-duplicate by ``event_id``. Sent rows beyond
``mqtt.outbox_keep_sent`` are pruned, oldest first; unsent rows are never pruned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import AccessEvent, OutboxMessage
from kiosk.storage.audit_query import event_row


def event_type(event: AccessEvent) -> str:
    """What Home Assistant's event entity triggers on: granted, refused, unknown, lockdown, remote-open, or a door event."""
    details = event.details or {}
    if details.get("door_event"):
        return str(details["door_event"])
    if details.get("remote"):
        return "remote-open"
    if event.granted:
        return "granted"
    if event.reason == "lockdown":
        return "lockdown"
    return "refused" if event.person_name else "unknown"


def event_payload(event: AccessEvent) -> dict[str, object]:
    """`kiosk audit --format json`'s fields, plus event_id (for de-duplication), the event type and flags."""
    details = event.details or {}
    payload = event_row(event) | {"event_id": event.id, "event_type": event_type(event), "lockdown": bool(details.get("lockdown"))}
    for flag in ("liveness", "door_event", "remote"):  # present only on the events that have them
        if flag in details:
            payload[flag] = details[flag]
    return payload


@dataclass(frozen=True)
class Pending:
    id: int
    event_id: int | None
    topic: str
    payload: str


class Outbox:
    def __init__(self, sessions: sessionmaker[Session], topic: str):
        self.sessions = sessions
        self.topic = topic

    def add_event(self, session: Session, event: AccessEvent) -> None:
        """AccessLog's in-transaction hook: the event's message commits with the event."""
        session.add(OutboxMessage(event_id=event.id, topic=self.topic, payload=json.dumps(event_payload(event))))

    def pending(self, after_id: int, limit: int) -> list[Pending]:
        """Unsent messages after ``after_id`` (those already handed to the client), in order."""
        with self.sessions() as session:
            rows = session.scalars(
                select(OutboxMessage).where(OutboxMessage.sent_at.is_(None), OutboxMessage.id > after_id).order_by(OutboxMessage.id).limit(limit)
            )
            return [Pending(r.id, r.event_id, r.topic, r.payload) for r in rows]

    def mark_sent(self, ids: list[int], when: datetime) -> None:
        with self.sessions.begin() as session:
            session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(sent_at=when))

    def prune(self, keep_sent: int) -> int:
        """Delete all but the newest ``keep_sent`` acknowledged messages; returns how many went."""
        with self.sessions.begin() as session:
            cutoff = session.scalar(
                select(OutboxMessage.id).where(OutboxMessage.sent_at.is_not(None)).order_by(OutboxMessage.id.desc()).offset(keep_sent).limit(1)
            )
            if cutoff is None:
                return 0
            result = session.execute(delete(OutboxMessage).where(OutboxMessage.sent_at.is_not(None), OutboxMessage.id <= cutoff))
            return int(result.rowcount or 0)

    def depth(self) -> int:
        """Messages not yet acknowledged by the broker."""
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))) or 0)
