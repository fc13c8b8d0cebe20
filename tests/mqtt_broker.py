"""A real mosquitto for the MQTT tests: 127.0.0.1 only, a free port, a password file and an ACL.

Run as root, mosquitto drops to the ``mosquitto`` user before it reads its password file and
ACL, so they live in a temporary folder of their own, owned by that user and private to it
(pytest's tmp_path sits under a 0700 folder the broker could not enter). Persistence is on,
so a stopped and restarted broker keeps a subscriber's persistent session and its queued
messages, as a real one does. ``.ci/services/mosquitto`` installs the package.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

WAIT = 120.0  # seconds any single wait may take before the test fails (never a pass condition; a loaded CI box starts a kiosk slowly)

USERS = {
    "kiosk": "kiosk-secret",  # the door service
    "controller": "controller-secret",  # may send commands
    "viewer": "viewer-secret",  # may read, may not command
    "hass": "hass-secret",  # Home Assistant: reads, and writes only the plain ha/ commands
}
ACL = """\
user kiosk
topic readwrite kiosk/#
topic readwrite homeassistant/#

user controller
topic read kiosk/#
topic read homeassistant/#
topic write kiosk/+/command

user viewer
topic read kiosk/#
topic read homeassistant/#

user hass
topic read kiosk/#
topic read homeassistant/#
topic write kiosk/+/ha/#
"""


def mosquitto_binary(name: str = "mosquitto") -> str | None:
    """mosquitto lives in /usr/sbin, which a non-root PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Broker:
    """One mosquitto process; `stop` and `start` again keep the port and the persisted state."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    host = "127.0.0.1"

    @classmethod
    def create(cls) -> "Broker":
        folder = Path(tempfile.mkdtemp(prefix="kiosk-mosquitto-"))
        broker = cls(folder)
        broker._write_files()
        return broker

    def _write_files(self) -> None:
        passwd = self.folder / "passwd"
        passwd.touch(mode=0o600)
        for user, secret in USERS.items():
            subprocess.run([mosquitto_binary("mosquitto_passwd") or "mosquitto_passwd", "-b", str(passwd), user, secret],
                           check=True, capture_output=True)
        (self.folder / "acl").write_text(ACL)
        (self.folder / "data").mkdir()
        (self.folder / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {self.folder / 'passwd'}\n"
            f"acl_file {self.folder / 'acl'}\n"
            "persistence true\n"
            f"persistence_location {self.folder / 'data'}/\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\n"
        )
        self.folder.chmod(0o700)
        for path in self.folder.rglob("*"):
            path.chmod(0o700 if path.is_dir() else 0o600)
        if os.geteuid() == 0:  # the broker reads these after dropping to its own user
            user = pwd.getpwnam("mosquitto")
            for path in [self.folder, *self.folder.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)

    def start(self) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed: run .ci/services/mosquitto")
        self.process = subprocess.Popen([binary, "-c", str(self.folder / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_listening()

    def _wait_listening(self) -> None:
        done = threading.Event()
        while not done.wait(0.02):
            if self.process is not None and self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {err}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                continue

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file and exits."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def client(self, user: str, client_id: str = "", clean_session: bool = True) -> "Subscriber":
        return Subscriber(self, user, client_id, clean_session)


class Subscriber:
    """A paho client on the other side: records every message and lets a test wait for them."""

    def __init__(self, broker: Broker, user: str, client_id: str, clean_session: bool):
        self.messages: list[mqtt.MQTTMessage] = []
        self._changed = threading.Condition()
        self._subscriptions: list[tuple[str, int]] = []
        # acknowledged by hand, before the test sees the message: see `sync`
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session, manual_ack=True)
        self.client.username_pw_set(user, USERS[user])
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self._connected = threading.Event()
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(WAIT):
            raise TimeoutError("test client could not connect")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        for topic, qos in self._subscriptions:
            client.subscribe(topic, qos)
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        client.ack(message.mid, message.qos)
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the broker's SUBACK, so nothing published after is missed."""
        acked = threading.Event()
        self.client.on_subscribe = lambda *args: acked.set()
        self._subscriptions.append((topic, qos))
        self.client.subscribe(topic, qos)
        if not acked.wait(WAIT):
            raise TimeoutError(f"no SUBACK for {topic}")

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(WAIT)

    def sync(self) -> None:
        """Return once the broker has processed every acknowledgement this client sent for what the
        test has seen: a broker stopped before that redelivers those messages on restart (QoS 1)."""
        self.publish("sync/barrier", b"", qos=1)  # PUBACKed in order, even where the ACL drops it

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self._changed:
            return [m for m in self.messages if mqtt.topic_matches_sub(topic, m.topic)]

    def wait_for(self, predicate, what: str = "messages") -> list[mqtt.MQTTMessage]:  # type: ignore[no-untyped-def]
        """Wait until predicate(messages) is true; returns the messages then."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self.messages), WAIT):
                raise TimeoutError(f"timed out waiting for {what}; got {[(m.topic, m.payload[:80]) for m in self.messages]}")
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
