"""The door service's MQTT client: events, door state and status out; signed commands in.

The door never waits on the broker. The door loop only adds an outbox row in the event's own
transaction (kiosk/integrations/outbox.py); a publisher thread of this bridge sends those rows
in order, one batch at a time, and marks them sent on the broker's acknowledgement. paho's own
network thread connects, reconnects with backoff, and re-sends an unacknowledged batch after a
reconnect; the next batch goes out only when the previous one is acknowledged, so the order
holds across outages. Door state (relay, contact, alarms, lockdown) is published retained when
it changes, the status (fps, camera, recogniser, model version, outbox depth) every
``mqtt.status_seconds``, and availability ``online`` retained on every connect with
``offline`` as the retained last will, so a killed kiosk shows as offline.

Topics, under ``mqtt.topic_prefix`` (default ``kiosk/<door>``): ``events``, ``state``,
``status``, ``availability``, ``last_person``, ``command`` (in), ``command/result`` (out),
with ``mqtt.home_assistant_commands`` ``ha/open`` and ``ha/lockdown`` (in), and with
``mqtt.thumbnails`` and ``privacy.thumbnails`` both on ``thumbnail``: the event's stored face as
JPEG, read back at publish time, so one expired or erased meanwhile is never sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.models import AccessEvent, AdminAction
from kiosk.clock import Clock, SystemClock
from kiosk.config import Settings
from kiosk.errors import KioskError
from kiosk.integrations.home_assistant import discovery_messages
from kiosk.integrations.outbox import Outbox, Pending
from kiosk.integrations.signed_commands import Command, Refused, Verifier, parse, read_secret
from kiosk.storage.thumbnails import thumbnail_jpeg

if TYPE_CHECKING:
    from kiosk.door.service import DoorService

log = logging.getLogger(__name__)

BATCH = 100  # outbox rows handed to the client at once
POLL_SECONDS = 0.2  # how often door state is compared with what was last published
PRUNE_EVERY = 50  # acknowledged batches between outbox prunes


class MqttBridge:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], clock: Clock | None = None):
        cfg = settings.mqtt
        self.settings = settings
        self.sessions = sessions
        self.clock = clock or SystemClock()
        self.prefix = (cfg.topic_prefix or f"kiosk/{settings.door}").rstrip("/")
        self.client_id = cfg.client_id or f"kiosk-{settings.door}"
        self.outbox = Outbox(sessions, f"{self.prefix}/events")
        self.command_topic = f"{self.prefix}/command"
        secret = read_secret(cfg.command_secret_file, "mqtt.command_secret_file") if cfg.command_secret_file else None
        self.verifier = Verifier(secret, self.command_topic, cfg.command_window_seconds) if secret else None
        if cfg.thumbnails and not settings.privacy.thumbnails:
            log.warning("mqtt.thumbnails is on but privacy.thumbnails is off: no thumbnail is kept, so none is published")
        self.service: DoorService | None = None
        self.client = self._make_client()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._inflight: dict[int, Pending] = {}  # mid -> outbox row, touched by the publisher thread only
        self._handed = 0  # the last outbox id handed to the client
        self._batches = 0
        self._depth = self.outbox.depth()
        self._last_state: dict[str, object] | None = None
        self._thread = threading.Thread(target=self._publish_loop, name="mqtt-publisher", daemon=True)

    def _make_client(self) -> mqtt.Client:
        client = make_client(self.settings, self.client_id)
        client.will_set(f"{self.prefix}/availability", "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # --- lifecycle -----------------------------------------------------------------------------

    def attach(self, service: DoorService) -> None:
        """Events go to the outbox in their own transaction; the status file shows the outbox depth."""
        self.service = service
        service.access_log.in_transaction.append(self._add_event)
        service.mqtt_status = self.summary

    def start(self) -> None:
        """Connect in the background (retrying while the broker is away) and start publishing."""
        cfg = self.settings.mqtt
        self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_seconds)
        self.client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        """Publish what is unsent for up to ``mqtt.drain_seconds`` if connected, say offline, disconnect."""
        deadline = time.monotonic() + self.settings.mqtt.drain_seconds
        drained = threading.Event()
        while self._connected.is_set() and (self._inflight or self._depth) and time.monotonic() < deadline:
            self._wake.set()
            drained.wait(0.02)
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        if self._connected.is_set():
            info = self.client.publish(f"{self.prefix}/availability", "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(deadline - time.monotonic(), 0.5))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def summary(self) -> dict[str, object]:
        """For the status file and `kiosk doctor`: connected, and the events not yet acknowledged."""
        return {"connected": self._connected.is_set(), "outbox": self._depth, "broker": f"{self.settings.mqtt.host}:{self.settings.mqtt.port}"}

    # --- paho callbacks (its network thread) ----------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the connection: %s", reason)
            return
        log.info("MQTT connected to %s:%s", self.settings.mqtt.host, self.settings.mqtt.port)
        # subscribe first: the broker handles this connection's packets in order, so whoever sees
        # "online" can command at once
        if self.verifier is not None:
            client.subscribe(self.command_topic, qos=1)
        if self.settings.mqtt.home_assistant_commands:
            client.subscribe(f"{self.prefix}/ha/+", qos=1)
        client.publish(f"{self.prefix}/availability", "online", qos=1, retain=True)
        if self.settings.mqtt.discovery:
            for topic, payload in discovery_messages(self.settings, self.prefix, self.client_id):
                client.publish(topic, payload, qos=1, retain=True)
        self._last_state = None  # republish the state on every connect
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self._connected.is_set() and not self._stop.is_set():
            log.warning("MQTT disconnected (%s); events wait in the outbox", reason)
        self._connected.clear()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self._acks.put(mid)
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            if message.topic == self.command_topic:
                self._signed_command(message.payload)
            elif message.topic.startswith(f"{self.prefix}/ha/"):
                self._home_assistant_command(message.topic.rsplit("/", 1)[1], message.payload)
        except (SQLAlchemyError, KioskError, OSError) as exc:  # nothing was acted on without its log row
            log.error("MQTT command on %s not handled: %s", message.topic, exc)
        except Exception:  # never let one message end paho's network thread (and with it the bridge)
            log.exception("MQTT command on %s failed", message.topic)

    # --- the publisher thread ------------------------------------------------------------------

    def _add_event(self, session: Session, event: AccessEvent) -> None:
        self.outbox.add_event(session, event)
        sa_event.listen(session, "after_commit", self._event_committed, once=True)

    def _event_committed(self, session: Session) -> None:
        self._depth += 1
        self._wake.set()

    def _publish_loop(self) -> None:
        next_status = 0.0
        while not self._stop.is_set():
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
            try:
                self._settle_acks()
                if not self._connected.is_set():
                    continue
                self._publish_events()
                self._publish_state()
                if time.monotonic() >= next_status:
                    self._depth = self.outbox.depth()
                    self._publish_status()
                    next_status = time.monotonic() + self.settings.mqtt.status_seconds
            except SQLAlchemyError as exc:  # a busy or full database: try again on the next round
                log.warning("MQTT outbox not read: %s", exc)
            except Exception:  # the publisher must outlive any one bad round; the door goes on regardless
                log.exception("MQTT publisher round failed")

    def _settle_acks(self) -> None:
        acked: set[int] = set()
        while True:
            try:
                acked.add(self._acks.get_nowait())
            except queue.Empty:
                break
        done = [mid for mid in self._inflight if mid in acked]  # other mids: state, status, discovery
        if not done:
            return
        self.outbox.mark_sent([self._inflight.pop(mid).id for mid in done], self.clock.now())
        if not self._inflight:
            self._depth = self.outbox.depth()
            self._batches += 1
            if self._batches % PRUNE_EVERY == 0:
                self.outbox.prune(self.settings.mqtt.outbox_keep_sent)
            self._wake.set()  # the next batch may go now

    def _publish_events(self) -> None:
        """The next batch, once the previous one is acknowledged (paho re-sends it after a reconnect)."""
        if self._inflight:
            return
        if self._handed == 0:
            self.outbox.prune(self.settings.mqtt.outbox_keep_sent)
        rows = self.outbox.pending(self._handed, BATCH)
        faces = self._thumbnail_paths(rows) if self.settings.mqtt_thumbnails else {}
        for row in rows:
            if row.event_id in faces:
                self._publish_thumbnail(faces[row.event_id])
            info = self.client.publish(row.topic, row.payload, qos=self.settings.mqtt.qos)
            self._inflight[info.mid] = row
            self._handed = row.id
            payload = json.loads(row.payload)
            if payload.get("granted") and payload.get("person"):
                self.client.publish(f"{self.prefix}/last_person", payload["person"], qos=1, retain=True)

    def _thumbnail_paths(self, rows: list[Pending]) -> dict[int, str]:
        """The thumbnails these events still have (none once expired or erased), by event id."""
        ids = [row.event_id for row in rows if row.event_id is not None]
        with self.sessions() as session:
            found = session.execute(
                select(AccessEvent.id, AccessEvent.thumbnail_path).where(AccessEvent.id.in_(ids), AccessEvent.thumbnail_path.is_not(None))
            )
            return {event_id: path for event_id, path in found}

    def _publish_thumbnail(self, relative: str) -> None:
        """The face just before its event, so whoever the event wakes finds this face already there."""
        if self.service is None:  # the crop store (and its key) comes with the door service
            return
        try:
            jpeg = thumbnail_jpeg(self.service.crops, self.settings.home, relative)
        except (KioskError, OSError) as exc:  # a damaged or undecryptable file must not hold the events up
            log.warning("MQTT thumbnail %s not published: %s", relative, exc)
            return
        if jpeg is not None:
            self.client.publish(f"{self.prefix}/thumbnail", jpeg, qos=1, retain=False)

    def door_state(self) -> dict[str, object]:
        """Relay, contact, alarms and lockdown as the door service sees them now."""
        assert self.service is not None
        service = self.service
        sensors = service.sensors
        state = sensors.state if sensors is not None else None
        contact = None
        if sensors is not None and sensors.door_open is not None:
            contact = "open" if sensors.door_open else "closed"
        return {
            "relay": "open" if service.relay.is_open else "closed",
            "contact": contact,
            "forced": state == "forced",
            "held_open": state == "held-open",
            "lockdown": service.lockdown.active,
        }

    def _publish_state(self) -> None:
        if self.service is None:
            return
        state = self.door_state()
        if state != self._last_state:
            self.client.publish(f"{self.prefix}/state", json.dumps(state), qos=1, retain=True)
            self._last_state = state

    def _publish_status(self) -> None:
        if self.service is None:
            return
        status = self.service.status()
        payload = {
            "time": self.clock.now().isoformat(), "door": status.door, "door_state": status.door_state,
            "camera": status.camera, "fps": status.fps, "recogniser": status.recogniser,
            "model_version": status.model_version, "threshold": status.threshold,
            "lockdown": status.lockdown, "outbox": self._depth,
        }
        self.client.publish(f"{self.prefix}/status", json.dumps(payload), qos=1, retain=True)

    # --- commands (paho's network thread) --------------------------------------------------------

    def _signed_command(self, payload: bytes) -> None:
        """Verify, log in the admin-action chain with the nonce in one transaction, then act."""
        assert self.verifier is not None
        now = self.clock.now()
        refusal: Refused | None = None
        with self.sessions.begin() as session:
            try:
                fields = parse(payload)
                command = self.verifier.check(session, fields, now)
            except Refused as exc:
                refusal, fields = exc, _claimed(payload)
                self._log_refusal(session, str(refusal), fields, payload)
            else:
                result = self._outcome(command.command, command.args)
                session.add(AdminAction(
                    time=now, actor=f"mqtt:{command.sender}", action=f"mqtt-{command.command}", subject=self.settings.door,
                    details={"args": command.args, "nonce": command.nonce, "timestamp": command.timestamp, "result": result},
                ))
        if refusal is not None:  # logged and committed; answered; never acted on
            self._result(fields.get("nonce"), fields.get("command"), False, str(refusal))
            return
        self._act(command, result)
        self._result(command.nonce, command.command, result == "done", result)

    def _home_assistant_command(self, name: str, payload: bytes) -> None:
        """Home Assistant's plain open/lockdown: the broker's ACL on <prefix>/ha/ is the only gate."""
        text = payload.decode("utf-8", "replace").strip().upper()
        if name == "open" and text == "PRESS":
            command = Command("open", {}, "home-assistant", self.clock.now().timestamp(), "")
        elif name == "lockdown" and text in ("ON", "OFF"):
            command = Command("lockdown", {"on": text == "ON"}, "home-assistant", self.clock.now().timestamp(), "")
        else:
            with self.sessions.begin() as session:
                self._log_refusal(session, f"malformed Home Assistant command {name!r}", {"sender": "home-assistant"}, payload)
            return
        result = self._outcome(command.command, command.args)
        with self.sessions.begin() as session:
            session.add(AdminAction(time=self.clock.now(), actor="mqtt:home-assistant", action=f"mqtt-{command.command}",
                                    subject=self.settings.door, details={"args": command.args, "unsigned": True, "result": result}))
        self._act(command, result)

    def _outcome(self, command: str, args: dict[str, Any]) -> str:
        """What a verified command will do: 'done', or why not (logged with it)."""
        if self.service is None:
            return "refused: the door service is not running"
        if command == "open" and self.service.lockdown.active:
            return "refused: lockdown is on"
        if command == "open" and (why := self.service.remote_open_refused()):
            return f"refused: {why}"
        return "done"

    def _act(self, command: Command, result: str) -> None:
        if result != "done" or self.service is None:
            return
        service = self.service
        actor = f"mqtt:{command.sender}"
        if command.command == "open":
            service.remote_open(actor)  # the relay, or the remote-open card to the panel in panel modes
        elif command.command == "lockdown":
            service.lockdown.set(bool(command.args["on"]), actor, self.clock.now())
            self._wake.set()
        elif command.command == "reload":
            threading.Thread(target=service.reload_now, name="mqtt-reload", daemon=True).start()

    def _log_refusal(self, session: Session, reason: str, fields: dict[str, Any], payload: bytes) -> None:
        log.warning("MQTT command refused: %s", reason)
        session.add(AdminAction(
            time=self.clock.now(), actor="mqtt", action="mqtt-refused",
            subject=str(fields.get("command"))[:200] if fields.get("command") is not None else None,
            details={"reason": reason, "claimed_sender": str(fields.get("sender"))[:80] if fields.get("sender") else None,
                     "payload_sha256": hashlib.sha256(payload).hexdigest(), "payload_bytes": len(payload)},
        ))

    def _result(self, nonce: object, command: object, accepted: bool, detail: str) -> None:
        body = {"nonce": nonce if isinstance(nonce, str) else None, "command": command if isinstance(command, str) else None,
                "accepted": accepted, "detail": detail}
        self.client.publish(f"{self.command_topic}/result", json.dumps(body), qos=1)


def make_client(settings: Settings, client_id: str) -> mqtt.Client:
    """A paho client with the configured credentials and TLS; secrets must be owner-only files."""
    cfg = settings.mqtt
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.suppress_exceptions = True  # a failing callback is logged (below), and paho's network thread lives on
    client.enable_logger(log)
    if cfg.username:
        password = read_secret(cfg.password_file, "mqtt.password_file").decode() if cfg.password_file else None
        client.username_pw_set(cfg.username, password)
    if cfg.tls_ca_file is not None:
        if cfg.tls_key_file is not None:
            read_secret(cfg.tls_key_file, "mqtt.tls_key_file")  # owner-only, or refuse to start
        try:
            client.tls_set(ca_certs=str(cfg.tls_ca_file), certfile=str(cfg.tls_cert_file) if cfg.tls_cert_file else None,
                           keyfile=str(cfg.tls_key_file) if cfg.tls_key_file else None, cert_reqs=ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise KioskError(f"config: mqtt TLS files unusable: {exc}") from None
    return client


def probe(settings: Settings, timeout: float = 5.0) -> str | None:
    """Connect once as `kiosk doctor` (its own client id, no last will); None when the broker accepts us."""
    cfg = settings.mqtt
    client = make_client(settings, f"{cfg.client_id or 'kiosk-' + settings.door}-doctor")
    answer: list[Any] = []
    done = threading.Event()

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        answer.append(reason)
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.port, keepalive=max(cfg.keepalive_seconds, 10))
    except (OSError, ssl.SSLError) as exc:
        return f"cannot reach the broker at {cfg.host}:{cfg.port}: {exc}"
    client.loop_start()
    try:
        if not done.wait(timeout):
            return f"the broker at {cfg.host}:{cfg.port} did not answer within {timeout:g} s"
        if answer[0].is_failure:
            return f"the broker at {cfg.host}:{cfg.port} refused the connection: {answer[0]}"
        return None
    finally:
        client.disconnect()
        client.loop_stop()


def _claimed(payload: bytes) -> dict[str, Any]:
    """What a refused message says about itself (for the log only; none of it is trusted)."""
    try:
        fields = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return fields if isinstance(fields, dict) else {}
