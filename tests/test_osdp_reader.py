"""The kiosk as an OSDP reader, against a real libosdp control panel over a pseudo-terminal.

Every wait is on a queue or an event with a generous timeout: libosdp polls on its own
threads, and a loaded machine only makes the waits longer, never the answers different.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from osdp import CardFormat, KeyStore
from osdp_panel import TestPanel, card_bits, pty_pair

from kiosk.config import OsdpConfig, Settings
from kiosk.door.osdp_reader import OsdpReader, SerialChannel, build_osdp, load_scbk
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
    """A pty with the kiosk's reader on the slave side and a test panel on the master side; the reader is
    built from `key`, or by `build` from the pty's path (as `kiosk run` builds it from the settings)."""

    def __init__(self, key: bytes | None, relay: Relay | None = None, length: int = 26, build: Callable[[str], OsdpReader] | None = None):
        self.master, self.slave, path = pty_pair()
        self.config = OsdpConfig(port=path, baud=115200, address=ADDRESS, format=length, secure_channel=key is not None,
                                 link_timeout_seconds=3.0)
        self.notices: queue.Queue[PanelNotice] = queue.Queue()
        if build is not None:
            self.reader = build(path)
        else:
            self.reader = OsdpReader(SerialChannel(path, 115200), self.config, key, relay=relay)  # type: ignore[arg-type]
        self.reader.listen(self.notices.put)
        self.reader.start()
        self.panel: TestPanel | None = None

    def connect(self, key: bytes | None, enforce: bool = True) -> TestPanel:
        self.panel = TestPanel(self.master, ADDRESS, key, enforce)
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


def configured(home: Path, key_file: Path, install_mode: bool) -> Callable[[str], OsdpReader]:
    """The reader `kiosk run` builds from [osdp] settings, on the bench's pty."""
    def build(port: str) -> OsdpReader:
        osdp = OsdpConfig(port=port, baud=115200, address=ADDRESS, key_file=key_file, install_mode=install_mode, link_timeout_seconds=3.0)
        return build_osdp(Settings(home=home, osdp=osdp), Relay())  # type: ignore[arg-type]
    return build


def granted_card_arrives(bench: Bench, panel: TestPanel) -> None:
    assert bench.reader.grant("Ada", Card(7, 77)).sent
    event = panel.card_read(WAIT)
    assert event is not None and card_bits(event) == frame_bits(Card(7, 77), 26) and panel.secure()


def test_install_mode_takes_the_panels_key_and_the_next_start_uses_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "kiosk.door.osdp_reader")
    home, key_file, new = tmp_path / "home", tmp_path / "etc" / "osdp.key", KeyStore.gen_key()
    installing = Bench(None, build=configured(home, key_file, install_mode=True))  # no key file yet
    try:
        assert installing.reader.link() == "install mode: waiting for the panel to set the key"
        assert not installing.reader.grant("Ada", Card(7, 77)).sent  # nothing goes out over the default key
        panel = installing.connect(new, enforce=False)  # the panel installing a reader: SCBK-D, then KEYSET
        taken = installing.notice("key")
        assert taken.granted is True and str(key_file) in taken.detail and "install mode" in taken.detail
        installing.link_up()
        assert installing.reader.link() == "secure channel up (install mode)"
        granted_card_arrives(installing, panel)
    finally:
        installing.close()
    assert key_file.read_text() == new.hex() + "\n" and key_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in key_file.parent.iterdir()] == ["osdp.key"]  # no temporary file left beside it
    assert "now set osdp.install_mode = false" in caplog.text and new.hex() not in caplog.text

    serving = Bench(None, build=configured(home, key_file, install_mode=False))  # restarted in service
    try:
        panel = serving.connect(new)  # the panel enforcing the key it set
        serving.link_up()
        assert serving.reader.link() == "secure channel up"
        granted_card_arrives(serving, panel)
    finally:
        serving.close()


def test_outside_install_mode_the_default_key_is_refused_and_the_key_file_kept(tmp_path: Path, key: bytes) -> None:
    key_file = tmp_path / "osdp.key"
    key_file.write_text(key.hex())
    key_file.chmod(0o600)
    bench = Bench(None, build=configured(tmp_path / "home", key_file, install_mode=False))
    try:
        panel = bench.connect(KeyStore.gen_key(), enforce=False)  # its key fails, then it tries SCBK-D
        refused = bench.notice("link")
        assert refused.granted is False and "key differs" in refused.detail
        assert not panel.secure() and bench.notices.empty()  # no key notice: nothing was taken
    finally:
        bench.close()
    assert load_scbk(key_file, tmp_path / "home") == key


def test_a_panel_with_the_key_may_change_it_and_the_file_follows(tmp_path: Path, key: bytes) -> None:
    key_file, new = tmp_path / "osdp.key", KeyStore.gen_key()
    key_file.write_text(key.hex())
    key_file.chmod(0o600)
    bench = Bench(None, build=configured(tmp_path / "home", key_file, install_mode=False))
    try:
        panel = bench.connect(key)
        bench.link_up()
        panel.keyset(new)
        changed = bench.notice("key")
        assert changed.granted is True and "over the secure channel" in changed.detail
        assert load_scbk(key_file, tmp_path / "home") == new
        panel.wait_ready(WAIT)  # libosdp restarts the channel with the new key on both sides
        if not bench.reader.grant("Ada", Card(7, 77)).sent:  # the reader saw the restart, not yet the channel back
            bench.link_up()
            assert bench.reader.grant("Ada", Card(7, 77)).sent
        event = panel.card_read(WAIT)
        assert event is not None and card_bits(event) == frame_bits(Card(7, 77), 26) and panel.secure()
    finally:
        bench.close()


def test_a_key_that_cannot_be_kept_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "kiosk.door.osdp_reader")
    (tmp_path / "etc").write_text("a file where the key's folder should be")
    bench = Bench(None, build=configured(tmp_path / "home", tmp_path / "etc" / "osdp.key", install_mode=True))
    try:
        panel = bench.connect(KeyStore.gen_key(), enforce=False)
        refused = bench.notice("key")
        assert refused.granted is False and "could not be saved" in refused.detail and "could not be saved" in caplog.text
        assert not bench.reader.grant("Ada", Card(7, 77)).sent and panel.card_read(1.0) is None
    finally:
        bench.close()
