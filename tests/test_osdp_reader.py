"""The kiosk as an OSDP reader, against a real libosdp control panel over a pseudo-terminal.

Every wait is on a queue or an event with a generous timeout: libosdp polls on its own
threads, and a loaded machine only makes the waits longer, never the answers different.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Iterator
from pathlib import Path

import pytest
from osdp import CardFormat, KeyStore
from osdp_panel import TestPanel, card_bits, pty_pair

from kiosk.config import OsdpConfig
from kiosk.door.osdp_reader import OsdpReader, SerialChannel, load_scbk
from kiosk.door.outputs import PanelNotice
from kiosk.door.wiegand import frame_bits
from kiosk.errors import ConfigError
from kiosk.storage.credentials import Card

ADDRESS = 101
WAIT = 30.0  # libosdp declares a silent link dead after about 8 s; everything else takes milliseconds


class Relay:
    """Records what the panel's output commands asked of the lock relay."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[str, float]] = queue.Queue()

    def pulse(self, seconds: float) -> None:
        self.calls.put(("pulse", seconds))

    def close(self) -> None:
        self.calls.put(("close", 0.0))


class Bench:
    """A pty with the kiosk's reader on the slave side and a test panel on the master side."""

    def __init__(self, key: bytes | None, relay: Relay | None = None, length: int = 26):
        self.master, self.slave, path = pty_pair()
        self.config = OsdpConfig(port=path, baud=115200, address=ADDRESS, format=length, secure_channel=key is not None,
                                 link_timeout_seconds=3.0)
        self.notices: queue.Queue[PanelNotice] = queue.Queue()
        self.reader = OsdpReader(SerialChannel(path, 115200), self.config, key, relay=relay)  # type: ignore[arg-type]
        self.reader.listen(self.notices.put)
        self.reader.start()
        self.panel: TestPanel | None = None

    def connect(self, key: bytes | None) -> TestPanel:
        self.panel = TestPanel(self.master, ADDRESS, key)
        return self.panel

    def link_up(self) -> None:
        """Wait for the link to come up; a slow handshake on a loaded machine may be called refused first."""
        while not self.notice("link").granted:
            pass

    def notice(self, kind: str) -> PanelNotice:
        while True:
            got = self.notices.get(timeout=WAIT)
            if got.kind == kind:
                return got

    def close(self) -> None:
        if self.panel is not None:
            self.panel.close()
        self.reader.close()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture()
def key() -> bytes:
    return KeyStore.gen_key()


@pytest.fixture()
def bench(key: bytes) -> Iterator[Bench]:
    bench = Bench(key, relay=Relay())
    yield bench
    bench.close()


def test_a_grant_arrives_at_the_panel_as_a_card_read_over_the_secure_channel(bench: Bench, key: bytes) -> None:
    panel = bench.connect(key)
    bench.link_up()
    assert bench.reader.link() == "secure channel up"
    result = bench.reader.grant("Ada", Card(12, 3456))
    assert result.sent, result.detail
    event = panel.card_read(WAIT)
    assert event is not None and event["format"] == CardFormat.Wiegand and event["length"] == 26
    assert panel.secure()  # the panel took it over the secure channel
    bits = card_bits(event)
    assert bits == frame_bits(Card(12, 3456), 26)
    assert int("".join(map(str, bits[1:9])), 2) == 12 and int("".join(map(str, bits[9:25])), 2) == 3456


def test_34_bit_and_raw_numbers_and_people_without_a_card(key: bytes) -> None:
    bench = Bench(key, length=34)
    try:
        panel = bench.connect(key)
        bench.link_up()
        assert not bench.reader.grant("Bob", None).sent  # nothing to send, and nothing is sent
        assert bench.reader.grant("Ada", Card(None, 0xDEADBEEF)).sent
        event = panel.card_read(WAIT)
        assert event is not None and event["length"] == 34
        bits = card_bits(event)
        assert int("".join(map(str, bits[1:33])), 2) == 0xDEADBEEF and bits == frame_bits(Card(None, 0xDEADBEEF), 34)
        assert panel.card_read(0.5) is None  # exactly one read: Bob's grant sent nothing
    finally:
        bench.close()


def test_a_panel_with_another_key_is_refused_and_logged(bench: Bench, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "kiosk.door.osdp_reader")
    panel = bench.connect(KeyStore.gen_key())
    refused = bench.notice("link")
    assert refused.granted is False and "key differs" in refused.detail
    assert "key differs" in caplog.text and "key differs" in bench.reader.link()
    result = bench.reader.grant("Ada", Card(12, 3456))
    assert not result.sent and "link down" in result.detail
    assert panel.card_read(1.0) is None and not panel.secure()


def test_led_and_buzzer_answer_a_card_read_and_output_drives_the_relay(bench: Bench, key: bytes) -> None:
    panel = bench.connect(key)
    bench.link_up()
    panel.led("green")  # acknowledged by the reader: an LED command that answers no card read is only its state
    assert bench.reader.led == "green" and bench.notices.empty()
    assert bench.reader.grant("Ada", Card(1, 2)).sent
    assert panel.card_read(WAIT) is not None
    panel.buzzer(2)
    panel.led("green")
    answer = bench.notice("answer")
    assert answer.granted is True and answer.detail == "LED green, 2 beeps"
    assert bench.reader.grant("Ada", Card(1, 2)).sent and panel.card_read(WAIT) is not None
    panel.led("red")
    refused = bench.notice("answer")
    assert refused.granted is False and refused.detail == "LED red"
    panel.output(4, timer_count=25)  # temporary on for 2.5 s
    assert bench.reader.relay.calls.get(timeout=WAIT) == ("pulse", 2.5)  # type: ignore[union-attr]
    panel.output(1)
    assert bench.reader.relay.calls.get(timeout=WAIT) == ("close", 0.0)  # type: ignore[union-attr]


def test_the_link_drops_and_comes_back(bench: Bench, key: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "kiosk.door.osdp_reader")
    panel = bench.connect(key)
    bench.link_up()
    panel.close()  # the panel stops polling (powered off, cable cut)
    bench.panel = None
    lost = bench.notice("link")
    assert lost.granted is False and "link lost" in lost.detail and "link lost" in caplog.text
    down = bench.reader.grant("Ada", Card(3, 4))
    assert not down.sent and "link down" in down.detail
    panel = bench.connect(key)
    bench.link_up()
    assert bench.reader.grant("Ada", Card(3, 4)).sent
    event = panel.card_read(WAIT)
    assert event is not None and card_bits(event) == frame_bits(Card(3, 4), 26)


def test_the_key_file_must_be_private_outside_the_data_directory_and_well_formed(tmp_path: Path, key: bytes) -> None:
    home = tmp_path / "home"
    home.mkdir()
    good = tmp_path / "osdp.key"
    good.write_text(key.hex() + "\n")
    good.chmod(0o600)
    assert load_scbk(good, home) == key
    inside = home / "osdp.key"
    inside.write_text(key.hex())
    inside.chmod(0o600)
    with pytest.raises(ConfigError, match="outside the data directory"):
        load_scbk(inside, home)
    good.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_scbk(good, home)
    good.chmod(0o600)
    good.write_text("abcd")
    with pytest.raises(ConfigError, match="32 hex digits"):
        load_scbk(good, home)
    with pytest.raises(ConfigError, match="key_file' is not set"):
        load_scbk(None, home)
