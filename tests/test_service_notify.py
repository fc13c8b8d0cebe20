"""systemd notify messages, received on a real datagram socket standing in for systemd's."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.clock import ManualClock
from kiosk.door.service_notify import ServiceNotifier


@pytest.fixture()
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(0.5)
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        return messages


def systemd_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_ready_watchdog_and_stopping_reach_systemd(notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    systemd_env(monkeypatch, NOTIFY_SOCKET=notify_socket.getsockname(), WATCHDOG_USEC="40000", WATCHDOG_PID=str(os.getpid()))
    clock = ManualClock()
    notifier = ServiceNotifier(clock)
    assert notifier.enabled and notifier.watchdog_seconds == pytest.approx(0.04)
    notifier.ready("watching the front door")
    notifier.watchdog()  # right after READY: too soon for another ping
    clock.advance(0.005)
    notifier.watchdog()  # still within a quarter period (10 ms)
    clock.advance(0.006)
    notifier.watchdog()
    notifier.watchdog()  # again at once: rate-limited
    notifier.status("camera reconnecting")
    notifier.stopping()
    assert received(notify_socket) == [
        "READY=1\nSTATUS=watching the front door",
        "WATCHDOG=1",
        "STATUS=camera reconnecting",
        "STOPPING=1",
    ]


def test_watchdog_meant_for_another_process_is_ignored(notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    systemd_env(monkeypatch, NOTIFY_SOCKET=notify_socket.getsockname(), WATCHDOG_USEC="1000", WATCHDOG_PID="1")
    notifier = ServiceNotifier()
    assert notifier.watchdog_seconds is None
    notifier.watchdog()
    assert received(notify_socket) == []


def test_outside_systemd_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    systemd_env(monkeypatch)
    notifier = ServiceNotifier()
    assert not notifier.enabled and notifier.watchdog_seconds is None
    notifier.ready("x")
    notifier.watchdog()
    notifier.stopping()
