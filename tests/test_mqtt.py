"""Events out and signed commands in over MQTT, against a real mosquitto (password file, ACL)
with paho clients on the other side: the real door loop on replayed photos, the real SQLite
file, gpiozero's mock pins, and `kiosk run` as a real process where a kill is the point.
Every wait is on a message or an event, with a timeout that only fails a test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, STRANGERS, copy_home, dev_people, kiosk_env, make_settings, photos, run_kiosk
from gpiozero.pins.mock import MockFactory
from mqtt_broker import USERS, WAIT, Broker, mosquitto_binary
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_door_service import replay_dir

from db.models import AccessEvent, AdminAction, OutboxMessage
from kiosk.admin.diagnostics import check_mqtt
from kiosk.config import (
    CameraConfig,
    CredentialsConfig,
    DoorHardwareConfig,
    MqttConfig,
    PolicyConfig,
    PrivacyConfig,
    Settings,
    WiegandConfig,
)
from kiosk.context import KioskContext
from kiosk.door.gpio_board import open_board
from kiosk.door.lockdown import Lockdown
from kiosk.door.relay import build_relay
from kiosk.door.service import DoorService, build_door_service
from kiosk.door.status import read_status
from kiosk.door.wiegand import build_wiegand, frame_bits
from kiosk.integrations.mqtt_client import MqttBridge
from kiosk.integrations.outbox import Outbox
from kiosk.integrations.signed_commands import sign
from kiosk.storage.credentials import Card
from kiosk.storage.crop_store import MAGIC, new_key
from kiosk.vision.camera import ReplaySource, ResilientCamera

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed: run .ci/services/mosquitto")

RELAY_PIN, CONTACT_PIN, D0, D1 = 17, 27, 23, 24
PREFIX = "kiosk/front"
SECRET = b"a shared secret for the tests"


class SteppedClock:
    """The bridge's wall clock, set by the test (command windows), monotonic from the system."""

    def __init__(self) -> None:
        self.at = datetime.now(timezone.utc)

    def monotonic(self) -> float:
        import time

        return time.monotonic()

    def now(self) -> datetime:
        return self.at


@pytest.fixture()
def broker() -> Iterator[Broker]:
    b = Broker.create()
    b.start()
    yield b
    b.remove()


@pytest.fixture()
def home(enrolled_dev, tmp_path: Path) -> Path:
    return copy_home(enrolled_dev[0], tmp_path / "home")


def secret_files(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(exist_ok=True)
    password, secret = folder / "mqtt-password", folder / "command-secret"
    for path, text in ((password, USERS["kiosk"]), (secret, SECRET.decode())):
        path.write_text(text + "\n")
        path.chmod(0o600)
    return password, secret


def mqtt_config(broker: Broker, folder: Path, **overrides: object) -> MqttConfig:
    password, secret = secret_files(folder)
    return MqttConfig(enabled=True, host=broker.host, port=broker.port, username="kiosk", password_file=password,
                      command_secret_file=secret, status_seconds=0.5, **overrides)


def door_settings(home: Path, mqtt: MqttConfig, **policy: object) -> Settings:
    hardware = DoorHardwareConfig(pin_factory="mock", relay_pin=RELAY_PIN, relay_active_high=True, pulse_seconds=0.2, contact_pin=CONTACT_PIN,
                          input_pull="down", held_open_seconds=30)
    return make_settings(
        home, mqtt=mqtt, door_hardware=hardware,
        camera=CameraConfig(hold_frames=3, gap_frames=2),
        policy=PolicyConfig(**{"window_frames": 3, "min_frames": 2, "track_max_missed": 1, **policy}),
    )


def build_door(settings: Settings, folder: Path | None, detector, embedder, clock=None) -> tuple[DoorService, MqttBridge]:
    """The door service on a replayed folder (or none) with the MQTT bridge attached and started."""
    from kiosk.door.sensors import build_sensors

    ctx = KioskContext(settings)
    ctx.__dict__["embedder"] = embedder
    board = open_board(settings.door_hardware)
    relay = build_relay(settings.door_hardware, board)
    # without a folder the loop is not run (commands only); the camera still needs something to name
    source = ReplaySource.from_path(folder, settings.camera) if folder else ReplaySource([photos(dev_people()[0])[0]], Path("."))
    # panel mode (a reader on the site's access panel): Wiegand, the kiosk drives no lock
    outputs = [build_wiegand(settings.wiegand, board)] if settings.door_hardware.outputs == ["wiegand"] else None
    service = build_door_service(ctx, ResilientCamera(source, settings.camera), relay, detector=detector, outputs=outputs,
                                 sensors=lambda on_event: build_sensors(settings.door_hardware, relay, on_event, board))
    bridge = MqttBridge(settings, ctx.sessions, clock=clock)
    bridge.client.reconnect_delay_set(0.05, 0.2)  # a restarted broker is found at once, not after a 30 s backoff
    bridge.attach(service)
    bridge.start()
    return service, bridge


def rows(home: Path, model):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{home / 'kiosk.db'}")
    with Session(engine) as s:
        out = list(s.scalars(select(model).order_by(model.id)))
    engine.dispose()
    return out


def payloads(messages) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(m.payload) for m in messages]


def onlines(client) -> int:  # type: ignore[no-untyped-def]
    return len([m for m in client.on(f"{PREFIX}/availability") if m.payload == b"online"])


def wait_online(client, seen: int = 0) -> None:  # type: ignore[no-untyped-def]
    """Wait for one more "online" than the client had seen before the kiosk (re)started."""
    client.wait_for(lambda ms: onlines(client) > seen, "availability online")


# --- events --------------------------------------------------------------------------------------


def replay_with_bridge(settings, shown, tmp_path, detector, embedder, sub):  # type: ignore[no-untyped-def]
    """Replay ``shown`` through a door with its MQTT bridge; the events it stored, and what ``sub``
    had received once every one of them was published."""
    service, bridge = build_door(settings, replay_dir(tmp_path, shown), detector, embedder)
    try:
        wait_online(sub)
        service.run(threading.Event())
        stored = rows(settings.home, AccessEvent)
        got = sub.wait_for(lambda ms: len([m for m in ms if m.topic == f"{PREFIX}/events"]) >= len(stored), "all events")
    finally:
        bridge.stop()
        service.relay.shutdown()
        sub.close()
    return stored, got


def test_events_arrive_with_the_audit_fields_and_an_event_id(broker, home, tmp_path, detector, embedder, pins) -> None:
    people = dev_people()[:2]
    stranger = sorted(p for p in STRANGERS.iterdir() if p.is_dir())[0]
    shown = [(p.name, photos(p)[12]) for p in people] + [("stranger", photos(stranger)[0])]
    settings = door_settings(home, mqtt_config(broker, tmp_path / "secrets"))
    sub = broker.client("controller")
    sub.subscribe(f"{PREFIX}/#")
    stored, got = replay_with_bridge(settings, shown, tmp_path, detector, embedder, sub)
    events = payloads(m for m in got if m.topic == f"{PREFIX}/events")
    audit = run_kiosk(["audit", "--format", "json"], home)
    assert audit.returncode == 0, audit.stderr
    expected = json.loads(audit.stdout)
    assert [{k: e[k] for k in expected[0]} for e in events] == expected  # the same fields and values
    assert [e["event_id"] for e in events] == [e.id for e in stored]
    assert {e["event_type"] for e in events if e["granted"]} == {"granted"}
    assert "unknown" in {e["event_type"] for e in events if not e["granted"]}
    assert sorted(e["person"] for e in events if e["granted"]) == sorted(p.name for p in people)
    last_person = [m.payload.decode() for m in got if m.topic == f"{PREFIX}/last_person"]
    assert last_person and last_person[-1] == [e["person"] for e in events if e["granted"]][-1]
    assert all(r.sent_at is not None for r in rows(home, OutboxMessage))


def test_discovery_is_retained_valid_json_one_device(broker, home, tmp_path, detector, embedder, pins) -> None:
    settings = door_settings(home, mqtt_config(broker, tmp_path / "secrets"))
    watcher = broker.client("controller")
    watcher.subscribe(f"{PREFIX}/availability")
    service, bridge = build_door(settings, None, detector, embedder)
    try:
        wait_online(watcher)
        late = broker.client("viewer")  # connects after: sees only what the broker retained
        late.subscribe("homeassistant/#")
        got = late.wait_for(lambda ms: len(ms) >= 9, "discovery configs")
    finally:
        bridge.stop()
        watcher.close()
    assert all(m.retain for m in got)
    configs = {m.topic.split("/")[1] + "/" + m.topic.split("/")[3]: json.loads(m.payload) for m in got}
    assert {"event/access", "binary_sensor/contact", "binary_sensor/forced", "binary_sensor/held_open",
            "sensor/last_person", "binary_sensor/lockdown", "binary_sensor/relay"} <= set(configs)
    assert len({json.dumps(c["device"], sort_keys=True) for c in configs.values()}) == 1
    assert {c["availability_topic"] for c in configs.values()} == {f"{PREFIX}/availability"}
    assert "unknown" in configs["event/access"]["event_types"]
    assert not any(k.startswith(("button/", "switch/")) for k in configs)  # no unsigned controls unless turned on
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)


@pytest.mark.parametrize(("mqtt_thumbnails", "privacy_thumbnails"), [(True, True), (True, False), (False, True)],
                         ids=["both-on", "privacy-off", "mqtt-off"])
def test_thumbnails_go_out_as_plain_jpeg_faces_only_when_both_settings_allow(
    broker, home, tmp_path, detector, embedder, pins, mqtt_thumbnails: bool, privacy_thumbnails: bool
) -> None:
    person = dev_people()[0]
    stranger = sorted(p for p in STRANGERS.iterdir() if p.is_dir())[0]
    key = tmp_path / "keys" / "crop.key"  # thumbnails encrypted at rest: what goes out must be the plain face
    new_key(key)
    settings = door_settings(home, mqtt_config(broker, tmp_path / "secrets", thumbnails=mqtt_thumbnails))
    settings.privacy = PrivacyConfig(key_file=key, thumbnails=privacy_thumbnails)
    sub = broker.client("controller")
    sub.subscribe(f"{PREFIX}/#")
    sub.subscribe("homeassistant/#")
    # a thumbnail goes out just before its event: once every event is here, so is every thumbnail
    stored, got = replay_with_bridge(settings, [(person.name, photos(person)[12]), ("stranger", photos(stranger)[0])],
                                     tmp_path, detector, embedder, sub)
    faces = [m for m in got if m.topic == f"{PREFIX}/thumbnail"]
    discovery = {m.topic.split("/")[1]: json.loads(m.payload) for m in got if m.topic.startswith("homeassistant/image/")}
    doctor = [f for f in check_mqtt(KioskContext(settings), None) if f.check == "mqtt thumbnails"]
    assert len(stored) >= 2 and all((e.thumbnail_path is not None) is privacy_thumbnails for e in stored)
    if not (mqtt_thumbnails and privacy_thumbnails):
        assert faces == [] and discovery == {}
        assert [f.status for f in doctor] == (["warn"] if mqtt_thumbnails else [])
        return
    assert [f.status for f in doctor] == ["ok"] and "leaves this kiosk's erasure and retention" in doctor[0].detail
    assert discovery["image"]["image_topic"] == f"{PREFIX}/thumbnail" and discovery["image"]["content_type"] == "image/jpeg"
    assert len(faces) == len(stored) and not any(m.retain for m in faces)
    order = [m.topic.rsplit("/", 1)[1] for m in got if m.topic in (f"{PREFIX}/thumbnail", f"{PREFIX}/events")]
    assert order == ["thumbnail", "events"] * len(stored)
    crops = KioskContext(settings).crops
    for message, event in zip(faces, stored):
        on_disk = (home / event.thumbnail_path).read_bytes()
        assert on_disk.startswith(MAGIC) and message.payload.startswith(b"\xff\xd8\xff")  # encrypted at rest, plain JPEG out
        published = cv2.imdecode(np.frombuffer(message.payload, np.uint8), cv2.IMREAD_COLOR)
        kept = crops.read(home / event.thumbnail_path)
        assert published.shape == kept.shape == (112, 112, 3)
        same_face = float(embedder.embed([published])[0] @ embedder.embed([kept])[0])
        assert same_face > 0.95, same_face


def test_last_will_marks_a_killed_kiosk_offline(broker, home, tmp_path) -> None:
    password, secret = secret_files(tmp_path / "secrets")
    person = dev_people()[0]
    folder = replay_dir(tmp_path, [(person.name, photos(person)[12])])
    env = kiosk_env(home) | {
        "KIOSK_MQTT__ENABLED": "true", "KIOSK_MQTT__HOST": broker.host, "KIOSK_MQTT__PORT": str(broker.port),
        "KIOSK_MQTT__USERNAME": "kiosk", "KIOSK_MQTT__PASSWORD_FILE": str(password),
        "KIOSK_DOOR_HARDWARE__PIN_FACTORY": "mock", "GPIOZERO_PIN_FACTORY": "mock",
    }
    sub = broker.client("controller")
    sub.subscribe(f"{PREFIX}/availability")
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "run", "--camera", str(folder), "--repeat", "100000", "--fps", "10", "--quiet"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        sub.wait_for(lambda ms: ms and ms[-1].payload == b"online", "online from the kiosk process")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT)
        sub.wait_for(lambda ms: ms[-1].payload == b"offline", "the last will")
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
    assert proc.returncode == -signal.SIGKILL
    late = broker.client("viewer")
    late.subscribe(f"{PREFIX}/availability")
    retained = late.wait_for(lambda ms: len(ms) >= 1, "retained availability")
    assert retained[0].payload == b"offline" and retained[0].retain
    late.close()


# --- commands ------------------------------------------------------------------------------------


def send(client, payload: dict | bytes | str) -> dict:  # type: ignore[no-untyped-def]
    """Publish a command and wait for the kiosk's answer on command/result (in order, one at a time)."""
    before = len(client.on(f"{PREFIX}/command/result"))
    client.publish(f"{PREFIX}/command", payload if isinstance(payload, (bytes, str)) else json.dumps(payload))
    got = client.wait_for(lambda ms: len([m for m in ms if m.topic == f"{PREFIX}/command/result"]) > before, "a command result")
    return json.loads([m for m in got if m.topic == f"{PREFIX}/command/result"][before].payload)


def readme_signed(command: str, args: dict, timestamp: float) -> dict:
    """The README's signing recipe, written out independently of kiosk.integrations.signed_commands."""
    import hashlib
    import hmac
    import secrets

    message = {"command": command, "args": args, "sender": "alice-phone", "timestamp": timestamp, "nonce": secrets.token_hex(16)}
    content = json.dumps(message | {"topic": f"{PREFIX}/command"}, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return message | {"signature": hmac.new(SECRET, content.encode(), hashlib.sha256).hexdigest()}


def signed(command: str, clock: SteppedClock, **args: object) -> dict:
    return sign(SECRET, f"{PREFIX}/command", command, "alice-phone", clock.now().timestamp(), args)


def opened(pins: MockFactory) -> int:
    """How many times the relay pin went high."""
    return sum(1 for s in pins.pin(RELAY_PIN).states if s.state)


def until_closed(service: DoorService) -> None:
    """Wait for the relay's own timer to close it, so the next pulse is a new rising edge."""
    closed = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if not service.relay.is_open:
            return
        closed.wait(0.01)
    raise TimeoutError("relay never closed")


def test_signed_open_and_lockdown_work_and_everything_else_is_refused_and_logged(broker, home, tmp_path, detector, embedder, pins) -> None:
    clock = SteppedClock()
    settings = door_settings(home, mqtt_config(broker, tmp_path / "secrets", command_window_seconds=30))
    ctl = broker.client("controller")
    ctl.subscribe(f"{PREFIX}/#")
    service, bridge = build_door(settings, None, detector, embedder, clock=clock)
    try:
        wait_online(ctl)
        ok = send(ctl, readme_signed("open", {}, int(clock.now().timestamp())))
        assert ok["accepted"] and ok["detail"] == "done"
        assert opened(pins) == 1
        until_closed(service)

        good = signed("open", clock)
        assert send(ctl, good)["accepted"]
        replay = send(ctl, good)
        unsigned = send(ctl, {k: v for k, v in signed("open", clock).items() if k != "signature"})
        forged = send(ctl, signed("open", clock) | {"sender": "mallory"})  # content changed after signing
        wrong_key = send(ctl, sign(b"not the secret", f"{PREFIX}/command", "open", "x", clock.now().timestamp()))
        other_door = send(ctl, sign(SECRET, "kiosk/back/command", "open", "x", clock.now().timestamp()))
        stale_msg = signed("open", clock)
        clock.at += timedelta(seconds=31)
        stale = send(ctl, stale_msg)
        future = send(ctl, sign(SECRET, f"{PREFIX}/command", "open", "x", (clock.now() + timedelta(seconds=31)).timestamp()))
        malformed = [send(ctl, p) for p in (b"\xff\xfe", "[]", "not json", json.dumps(signed("lockdown", clock)),
                                           json.dumps(signed("lockdown", clock, on="yes")), json.dumps(signed("explode", clock)))]
        assert opened(pins) == 2  # the two good opens, nothing else
        assert replay["detail"].startswith("replayed")
        assert unsigned["detail"] == "unsigned"
        assert forged["detail"] == wrong_key["detail"] == other_door["detail"] == "bad signature"
        assert stale["detail"].startswith("stale") and future["detail"].startswith("stale")
        assert all(m["detail"].startswith("malformed") and not m["accepted"] for m in malformed)

        on = send(ctl, signed("lockdown", clock, on=True))
        assert on["accepted"] and service.lockdown.active
        ctl.wait_for(lambda ms: any(m.topic == f"{PREFIX}/state" and json.loads(m.payload)["lockdown"] for m in ms), "lockdown in the state")
        refused_open = send(ctl, signed("open", clock))
        assert not refused_open["accepted"] and "lockdown" in refused_open["detail"]
        assert opened(pins) == 2
    finally:
        bridge.stop()
        service.relay.shutdown()
        ctl.close()
    assert Lockdown(home).active  # survives a restart

    actions = rows(home, AdminAction)
    done = [a for a in actions if a.action in ("mqtt-open", "mqtt-lockdown")]
    assert [(a.action, a.actor, a.details["result"]) for a in done] == [
        ("mqtt-open", "mqtt:alice-phone", "done"), ("mqtt-open", "mqtt:alice-phone", "done"),
        ("mqtt-lockdown", "mqtt:alice-phone", "done"), ("mqtt-open", "mqtt:alice-phone", "refused: lockdown is on")]
    refusals = [a.details["reason"] for a in actions if a.action == "mqtt-refused"]
    assert len(refusals) == 13 and refusals[0].startswith("replayed") and refusals[1] == "unsigned"
    remote = [e for e in rows(home, AccessEvent) if e.details.get("remote")]
    assert len(remote) == 2 and all(e.granted and e.details["remote"] == "mqtt:alice-phone" for e in remote)
    check = run_kiosk(["audit", "verify"], home)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_remote_open_in_panel_mode_sends_the_remote_open_card_never_the_relay(broker, home, tmp_path, detector, embedder, pins) -> None:
    from test_wiegand import decode

    clock = SteppedClock()
    settings = door_settings(home, mqtt_config(broker, tmp_path / "secrets", command_window_seconds=30))
    settings.door_hardware = settings.door_hardware.model_copy(update={"outputs": ["wiegand"]})
    settings.wiegand = WiegandConfig(d0_pin=D0, d1_pin=D1)
    ctl = broker.client("controller")
    ctl.subscribe(f"{PREFIX}/#")
    answers = []
    for remote_card in (None, "7:4242"):  # the same door without, then with, a remote-open card
        settings.credentials = CredentialsConfig(remote_open_card=remote_card)
        seen = onlines(ctl)
        service, bridge = build_door(settings, None, detector, embedder, clock=clock)
        try:
            wait_online(ctl, seen)
            for pin in (pins.pin(D0), pins.pin(D1)):
                pin.clear_states()
            bases = pins.pin(D0)._last_change, pins.pin(D1)._last_change
            answers.append(send(ctl, signed("open", clock)))
        finally:
            bridge.stop()
            for output in service.outputs:
                output.close()
            service.relay.shutdown()
    ctl.close()
    refused, done = answers
    assert not refused["accepted"] and "no credentials.remote_open_card" in refused["detail"]
    assert done["accepted"] and done["detail"] == "done"
    assert opened(pins) == 0  # the kiosk drives no lock in panel mode
    assert [bit for bit, _, _ in decode(pins.pin(D0), pins.pin(D1), *bases)] == frame_bits(Card(7, 4242), 26)  # one frame, the second door's
    events = rows(home, AccessEvent)
    remote = [e for e in events if e.details.get("remote") and "door_event" not in e.details]
    sent = [e for e in events if e.details.get("door_event") == "panel-remote"]
    assert len(remote) == 1 and remote[0].granted and remote[0].details["remote"] == "mqtt:alice-phone"
    assert [(e.details["card"], e.details["remote_event"]) for e in sent] == [("7:4242", remote[0].id)]
    assert sent[0].reason.startswith("remote-open card sent to panel: wiegand card 7:4242")
    actions = [(a.action, a.details["result"]) for a in rows(home, AdminAction) if a.action == "mqtt-open"]
    assert actions == [("mqtt-open", refused["detail"]), ("mqtt-open", "done")]


def test_lockdown_refuses_grants_across_a_restart_and_a_replay_stays_refused(broker, home, tmp_path, detector, embedder, pins) -> None:
    clock = SteppedClock()
    person = dev_people()[1]
    settings = door_settings(home, mqtt_config(broker, tmp_path / "secrets"))
    ctl = broker.client("controller")
    ctl.subscribe(f"{PREFIX}/#")
    service, bridge = build_door(settings, None, detector, embedder, clock=clock)
    lockdown = signed("lockdown", clock, on=True)
    try:
        wait_online(ctl)
        assert send(ctl, lockdown)["accepted"]
    finally:
        bridge.stop()
        service.relay.shutdown()
    # a restarted kiosk: lockdown still on, the nonce still remembered
    seen = onlines(ctl)
    service, bridge = build_door(settings, replay_dir(tmp_path, [(person.name, photos(person)[12])]), detector, embedder, clock=clock)
    try:
        wait_online(ctl, seen)
        assert send(ctl, lockdown)["detail"].startswith("replayed")
        service.run(threading.Event())
        assert opened(pins) == 0
        off = send(ctl, signed("lockdown", clock, on=False))
        assert off["accepted"] and not service.lockdown.active
    finally:
        bridge.stop()
        service.relay.shutdown()
        ctl.close()
    events = rows(home, AccessEvent)
    assert events and all(not e.granted for e in events)
    assert any(e.reason == "lockdown" and e.details["policy_reason"] for e in events)


def test_a_client_the_acl_denies_cannot_command(broker, home, tmp_path, detector, embedder, pins) -> None:
    clock = SteppedClock()
    settings = door_settings(home, mqtt_config(broker, tmp_path / "secrets"))
    ctl = broker.client("controller")
    ctl.subscribe(f"{PREFIX}/#")
    viewer = broker.client("viewer")
    service, bridge = build_door(settings, None, detector, embedder, clock=clock)
    try:
        wait_online(ctl)
        viewer.publish(f"{PREFIX}/command", json.dumps(signed("open", clock)))  # validly signed, but not allowed
        assert send(ctl, signed("reload", clock))["accepted"]  # handled after anything the viewer got through
    finally:
        bridge.stop()
        service.relay.shutdown()
        ctl.close()
        viewer.close()
    assert opened(pins) == 0
    assert [a.action for a in rows(home, AdminAction) if a.action.startswith("mqtt")] == ["mqtt-reload"]


def test_home_assistant_commands_only_when_turned_on_and_logged(broker, home, tmp_path, detector, embedder, pins) -> None:
    settings = door_settings(home, mqtt_config(broker, tmp_path / "secrets", home_assistant_commands=True))
    hass = broker.client("hass")
    hass.subscribe(f"{PREFIX}/#")
    hass.subscribe("homeassistant/#")
    service, bridge = build_door(settings, None, detector, embedder)
    try:
        wait_online(hass)
        configs = {m.topic: json.loads(m.payload) for m in hass.wait_for(
            lambda ms: len([m for m in ms if m.topic.startswith("homeassistant/")]) >= 10, "discovery") if m.topic.startswith("homeassistant/")}
        button = configs["homeassistant/button/kiosk-front/open/config"]
        switch = configs["homeassistant/switch/kiosk-front/lockdown/config"]
        hass.publish(button["command_topic"], button["payload_press"])
        hass.publish(switch["command_topic"], switch["payload_on"])
        hass.wait_for(lambda ms: any(m.topic == f"{PREFIX}/state" and json.loads(m.payload)["lockdown"] for m in ms), "lockdown on")
        hass.publish(button["command_topic"], "garbage")
        hass.publish(switch["command_topic"], switch["payload_off"])
        hass.wait_for(lambda ms: [json.loads(m.payload)["lockdown"] for m in ms if m.topic == f"{PREFIX}/state"][-1] is False, "lockdown off")
    finally:
        bridge.stop()
        service.relay.shutdown()
        hass.close()
    assert opened(pins) == 1
    assert [(a.actor, a.action, a.details.get("unsigned")) for a in rows(home, AdminAction) if a.action.startswith("mqtt")] == [
        ("mqtt:home-assistant", "mqtt-open", True), ("mqtt:home-assistant", "mqtt-lockdown", True),
        ("mqtt", "mqtt-refused", None), ("mqtt:home-assistant", "mqtt-lockdown", True)]


# --- the broker away ---------------------------------------------------------------------------------


def test_a_broker_outage_loses_nothing_across_a_kiosk_restart(broker, home, tmp_path, detector, embedder, pins) -> None:
    people = dev_people()
    settings = door_settings(home, mqtt_config(broker, tmp_path / "secrets"), cooldown_seconds=0.0)
    sub = broker.client("controller", client_id="consumer", clean_session=False)  # a persistent session, as a consumer keeps
    sub.subscribe(f"{PREFIX}/events")

    def visits(name: str, photo: int, who: list[Path]) -> Path:
        return replay_dir(tmp_path, [(p.name, photos(p)[photo]) for p in who], name)

    def all_arrived(what: str) -> list:  # type: ignore[type-arg]
        stored = len(rows(home, AccessEvent))
        return sub.wait_for(lambda ms: len({json.loads(m.payload)["event_id"] for m in ms}) >= stored, what)

    service, bridge = build_door(settings, visits("before", 12, people[:2]), detector, embedder)
    try:
        service.run(threading.Event())
        all_arrived("events before the outage")
    finally:
        bridge.stop()
        service.relay.shutdown()
    sub.sync()  # so the broker has no delivery to the consumer left to redo after its restart
    broker.stop()
    # the broker is away: a kiosk decides visits, the broker comes back while it runs
    service, bridge = build_door(settings, visits("during", 13, people[2:5]), detector, embedder)
    try:
        service.run(threading.Event())
        assert bridge.outbox.depth() >= 3
        broker.start()
        all_arrived("events decided during the outage")
    finally:
        bridge.stop()
        service.relay.shutdown()
    sub.sync()
    broker.stop()
    # away again, and the kiosk is restarted before it comes back
    service, bridge = build_door(settings, visits("restart", 14, people[5:8]), detector, embedder)
    try:
        service.run(threading.Event())
    finally:
        bridge.stop()  # stopping with the broker away: the events wait in the outbox
        service.relay.shutdown()
    unsent = len([r for r in rows(home, OutboxMessage) if r.sent_at is None])
    status = read_status(home)
    assert unsent >= 3 and status is not None and status.mqtt == {"connected": False, "outbox": unsent, "broker": f"127.0.0.1:{broker.port}"}
    assert check_mqtt(KioskContext(settings), None)[0].detail.endswith(f"{unsent} event(s) in the outbox not yet acknowledged by the broker")
    broker.start()
    service, bridge = build_door(settings, None, detector, embedder)
    try:
        got = all_arrived("events from before the restart")
    finally:
        bridge.stop()
        service.relay.shutdown()
        sub.close()
    ids = [json.loads(m.payload)["event_id"] for m in got]
    assert ids == [e.id for e in rows(home, AccessEvent)]  # every event exactly once, in order
    assert len(ids) >= 8 and bridge.outbox.depth() == 0


def test_the_outbox_prunes_only_acknowledged_rows_oldest_first(tmp_path) -> None:
    settings = make_settings(tmp_path / "home")
    ctx = KioskContext(settings)
    outbox = Outbox(ctx.sessions, "t")
    with ctx.sessions.begin() as session:
        session.add_all(OutboxMessage(event_id=i, topic="t", payload="{}") for i in range(10))
    ids = [r.id for r in outbox.pending(0, 100)]
    outbox.mark_sent(ids[:6], datetime.now(timezone.utc))
    assert outbox.depth() == 4
    assert outbox.prune(keep_sent=2) == 4
    left = rows(settings.home, OutboxMessage)
    assert [r.event_id for r in left] == [4, 5, 6, 7, 8, 9] and outbox.depth() == 4
    assert outbox.prune(keep_sent=0) == 2 and outbox.depth() == 4


def test_doctor_reports_the_broker_and_the_outbox_depth(broker, tmp_path) -> None:
    settings = make_settings(tmp_path / "home", mqtt=mqtt_config(broker, tmp_path / "secrets"))
    ctx = KioskContext(settings)
    with ctx.sessions.begin() as session:
        session.add_all(OutboxMessage(event_id=i, topic="t", payload="{}") for i in range(3))
    found = check_mqtt(ctx, None)
    assert [f.status for f in found] == ["warn"]
    assert found[0].detail == f"connected to 127.0.0.1:{broker.port}; 3 event(s) in the outbox not yet acknowledged by the broker"
    settings.mqtt.password_file.chmod(0o644)
    found = check_mqtt(ctx, None)
    assert found[0].status == "fail" and "readable by others" in found[0].detail
    settings.mqtt.password_file.write_text("wrong password\n")
    settings.mqtt.password_file.chmod(0o600)
    found = check_mqtt(ctx, None)
    assert found[0].status == "fail" and "refused the connection" in found[0].detail and "3 event(s)" in found[0].detail
    broker.stop()
    found = check_mqtt(ctx, None)
    assert found[0].status == "fail" and "cannot reach the broker" in found[0].detail
    assert check_mqtt(KioskContext(make_settings(tmp_path / "other")), None) == []  # MQTT off: nothing to say
