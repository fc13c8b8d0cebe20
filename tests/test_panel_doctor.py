"""`kiosk doctor` on a panel door: the OSDP key and port, the Wiegand lines, the cards, a lost link."""

from __future__ import annotations

import os
import time
from pathlib import Path

from osdp import KeyStore
from osdp_panel import pty_pair

from db.models import Person
from kiosk.admin.diagnostics import check_panel
from kiosk.config import CredentialsConfig, DoorHardwareConfig, OsdpConfig, Settings, WiegandConfig
from kiosk.context import KioskContext
from kiosk.door.status import DoorStatus
from kiosk.storage.credentials import Card, set_card


def status(panel: str) -> DoorStatus:
    return DoorStatus("front", "closed", "ok", 10.0, "face", 1, 0.8, time.time(), os.getpid(), panel=panel)


def test_doctor_checks_the_panel_outputs_and_the_cards(tmp_path: Path, pins) -> None:
    master, slave, port = pty_pair()
    key_file = tmp_path / "osdp.key"
    key_file.write_text(KeyStore.gen_key().hex())
    key_file.chmod(0o600)
    settings = Settings(
        home=tmp_path / "home",
        door_hardware=DoorHardwareConfig(pin_factory="mock", outputs=["osdp", "wiegand"]),
        osdp=OsdpConfig(port=port, key_file=key_file),
        wiegand=WiegandConfig(d0_pin=5, d1_pin=6),
    )
    ctx = KioskContext(settings)
    with ctx.sessions.begin() as session:
        session.add_all([Person(name="Ada"), Person(name="Bob"), Person(name="Cy")])
    set_card(ctx.sessions, "Ada", Card(12, 345))
    set_card(ctx.sessions, "Cy", Card(300, 1))  # facility too big for 26-bit
    try:
        found = {(f.check, f.status): f.detail for f in check_panel(ctx, None)}
        assert ("osdp key", "ok") in found and ("wiegand", "ok") in found
        assert port in found[("osdp port", "ok")]
        assert "1 of 3 people have no card number (Bob)" in found[("cards", "warn")]
        assert "Cy: card 300:1 does not fit 26-bit" in found[("cards", "fail")]
        assert pins.pin(5).state == 1 and pins.pin(6).state == 1  # released idle high

        key_file.chmod(0o644)
        bad = {(f.check, f.status) for f in check_panel(ctx, None)}
        assert ("osdp key", "fail") in bad

        lost = check_panel(ctx, status("osdp: link lost: the panel stopped polling; wiegand: ok"))
        assert [(f.check, f.status) for f in lost if f.check == "panel link"] == [("panel link", "fail")]
        up = check_panel(ctx, status("osdp: secure channel up; wiegand: ok"))
        assert [(f.check, f.status) for f in up if f.check == "panel link"] == [("panel link", "ok")]
        assert check_panel(KioskContext(Settings(home=tmp_path / "relay-only")), None) == []
    finally:
        os.close(master)
        os.close(slave)


def test_doctor_warns_of_install_mode_and_checks_the_reserved_cards(tmp_path: Path) -> None:
    master, slave, port = pty_pair()
    settings = Settings(
        home=tmp_path / "home",
        door_hardware=DoorHardwareConfig(pin_factory="mock", outputs=["osdp"]),
        osdp=OsdpConfig(port=port, key_file=tmp_path / "osdp.key", install_mode=True),  # no key yet
        credentials=CredentialsConfig(unknown_face_card="9:999", remote_open_card="9:1000"),
    )
    ctx = KioskContext(settings)
    with ctx.sessions.begin() as session:
        session.add(Person(name="Ada"))
    set_card(ctx.sessions, "Ada", Card(12, 345))
    try:
        found = {(f.check, f.status): f.detail for f in check_panel(ctx, None)}
        assert "panel may set a new secure channel key" in found[("osdp install mode", "warn")]
        assert "no key yet" in found[("osdp key", "warn")]
        assert "sends card 9:999" in found[("unknown-face card", "ok")]
        assert "sends card 9:1000" in found[("remote-open card", "ok")]
        running = check_panel(ctx, status("osdp: secure channel up (install mode)"))
        assert {(f.check, f.status) for f in running} >= {("panel link", "ok"), ("osdp install mode", "warn")}

        set_card(ctx.sessions, "Ada", Card(9, 999))  # given before the setting was made
        clash = {(f.check, f.status): f.detail for f in check_panel(ctx, None)}
        assert "is Ada's card" in clash[("unknown-face card", "fail")]
        set_card(ctx.sessions, "Ada", Card(9, 1000))
        clash = {(f.check, f.status): f.detail for f in check_panel(ctx, None)}
        assert "is Ada's card" in clash[("remote-open card", "fail")] and ("unknown-face card", "ok") in clash
        served = KioskContext(settings.model_copy(update={"osdp": OsdpConfig(port=port, key_file=tmp_path / "osdp.key")}))
        assert all(f.check != "osdp install mode" for f in check_panel(served, None))
    finally:
        os.close(master)
        os.close(slave)
