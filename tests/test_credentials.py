"""Card numbers for the access panel: parsed strictly, unique per site, audited, erased with the person."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DEV, photos, run_kiosk
from sqlalchemy import select

from db.audit_chain import verify_all
from db.models import AdminAction, Credential, Person
from kiosk.admin.enrolment import remove_identity
from kiosk.config import CredentialsConfig, Settings
from kiosk.context import KioskContext
from kiosk.errors import ConfigError, KioskError
from kiosk.storage.credentials import Card, assign_free_card, card_for, parse_card, reserved_card, set_card


@pytest.fixture()
def ctx(tmp_path: Path) -> KioskContext:
    ctx = KioskContext(Settings(home=tmp_path / "home"))
    with ctx.sessions.begin() as session:
        session.add_all([Person(name="Ada"), Person(name="Bob"), Person(name="Cy")])
    return ctx


def test_cards_parse_strictly() -> None:
    assert parse_card("12:3456") == Card(12, 3456)
    assert parse_card(" 987654 ") == Card(None, 987654)
    for bad in ("", "12:", ":5", "a:1", "1:2:3", "-1", "70000:1", "1:70000", str(1 << 32)):
        with pytest.raises(KioskError):
            parse_card(bad)


def test_cards_fit_the_frame_or_say_why() -> None:
    assert Card(255, 65535).data_bits(26) == (255 << 16) | 65535
    assert Card(1000, 7).data_bits(34) == (1000 << 16) | 7
    assert Card(None, (1 << 24) - 1).data_bits(26) == (1 << 24) - 1
    with pytest.raises(KioskError, match="facility above 255"):
        Card(256, 1).data_bits(26)
    with pytest.raises(KioskError, match="24 data bits"):
        Card(None, 1 << 24).data_bits(26)


def test_a_card_is_unique_per_site_and_every_change_is_audited(ctx: KioskContext) -> None:
    assert set_card(ctx.sessions, "Ada", Card(12, 345)) is None
    with pytest.raises(KioskError, match="already belongs to Ada"):
        set_card(ctx.sessions, "Bob", Card(12, 345))
    assert set_card(ctx.sessions, "Ada", Card(12, 346)) == Card(12, 345)
    set_card(ctx.sessions, "Bob", Card(12, 345))  # free again
    with pytest.raises(KioskError, match="no enrolled person"):
        set_card(ctx.sessions, "Nobody", Card(1, 1))
    assert card_for(ctx.sessions, "Ada") == Card(12, 346)
    with ctx.sessions() as session:
        actions = session.execute(select(AdminAction.subject, AdminAction.details).where(AdminAction.action == "card")).all()
    assert [(s, d["card"], d["previous"]) for s, d in actions] == [("Ada", "12:345", None), ("Ada", "12:346", "12:345"), ("Bob", "12:345", None)]
    assert all(report.ok for report in verify_all(ctx.sessions))


def test_face_only_people_get_the_lowest_free_number_of_the_range(ctx: KioskContext) -> None:
    config = CredentialsConfig(free_facility=9, free_first=100, free_last=101)
    set_card(ctx.sessions, "Ada", Card(9, 100))
    assert assign_free_card(ctx.sessions, "Bob", config) == Card(9, 101)
    assert assign_free_card(ctx.sessions, "Bob", config) is None  # has one already: unchanged
    with pytest.raises(KioskError, match="used up"):
        assign_free_card(ctx.sessions, "Cy", config)
    assert assign_free_card(ctx.sessions, "Cy", CredentialsConfig()) is None  # no range configured


def test_the_card_goes_with_the_person(ctx: KioskContext) -> None:
    set_card(ctx.sessions, "Ada", Card(1, 2))
    remove_identity(ctx.sessions, ctx.settings.crops_dir, "Ada")
    with ctx.sessions() as session:
        assert session.scalars(select(Credential)).all() == []


def test_cli_enrols_with_a_card_and_changes_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    person = sorted(p for p in DEV.iterdir() if p.is_dir())[0]
    enrolled = run_kiosk(["enroll", "Ada", str(photos(person)[0]), "--card", "12:345"], home)
    assert enrolled.returncode == 0, enrolled.stderr
    taken = run_kiosk(["enroll", "Bob", str(photos(person)[1]), "--card", "12:345"], home)
    assert taken.returncode == 2 and "already belongs to Ada" in taken.stderr
    assert run_kiosk(["identities", "card", "Ada", "bogus"], home).returncode == 2
    changed = run_kiosk(["identities", "card", "Ada", "13:1"], home)
    assert changed.returncode == 0 and "was 12:345" in changed.stdout
    listed = run_kiosk(["identities", "--json"], home)
    assert [(p["name"], p["card"]) for p in json.loads(listed.stdout)] == [("Ada", "13:1")]


@pytest.mark.parametrize("key", ["unknown_face_card", "remote_open_card"])
def test_nobody_may_hold_a_reserved_card(ctx: KioskContext, key: str) -> None:
    config = CredentialsConfig(**{key: "9:999"}, free_facility=9, free_first=998, free_last=1000)
    for same in (Card(9, 999), Card(None, (9 << 16) | 999)):  # the raw number is the same card to the panel
        with pytest.raises(KioskError, match=f"credentials.{key}"):
            set_card(ctx.sessions, "Ada", same, config=config)
    assert card_for(ctx.sessions, "Ada") is None
    assert [assign_free_card(ctx.sessions, name, config) for name in ("Ada", "Bob")] == [Card(9, 998), Card(9, 1000)]
    with pytest.raises(KioskError, match="used up"):
        assign_free_card(ctx.sessions, "Cy", config)
    assert reserved_card(config, key, ctx.sessions, [26, 34]) == Card(9, 999)
    with pytest.raises(ConfigError, match="does not fit 26-bit"):
        reserved_card(CredentialsConfig(**{key: "300:1"}), key, ctx.sessions, [26])
    set_card(ctx.sessions, "Cy", Card(9, 999))  # given before the setting existed: the door will not start
    with pytest.raises(ConfigError, match="is Cy's card"):
        reserved_card(config, key, ctx.sessions, [26])
    assert reserved_card(CredentialsConfig(), key, ctx.sessions, [26]) is None
    with pytest.raises(ValueError, match=key):
        CredentialsConfig(**{key: "9-999"})
    with pytest.raises(ValueError, match="must differ"):
        CredentialsConfig(unknown_face_card="9:999", remote_open_card="9:999")
