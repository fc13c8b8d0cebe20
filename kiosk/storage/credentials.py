"""Card numbers for the site's access panel: the credential a recognised face stands for.

When the kiosk is a reader on an access panel (OSDP, Wiegand), a grant sends the person's card
number and the panel decides. The number must match the card the panel already knows, so an
admin types it in (`--card FACILITY:NUMBER`, or a raw NUMBER for other formats); face-only
people get the next free number from a configured range. Each change is an admin action in the
audit chain; the credential goes with the person when they are erased (the row cascades).
Two optional reserved cards are kept off everyone's record: the unknown-face card
(`credentials.unknown_face_card`), what the panel is sent for a stranger, and the remote-open card
(`credentials.remote_open_card`), what it is sent for a remote open (MQTT) in panel modes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.models import AdminAction, Credential, Person
from kiosk.config import CredentialsConfig
from kiosk.errors import ConfigError, KioskError

MAX_FACILITY = 0xFFFF
MAX_NUMBER = 0xFFFF
MAX_RAW = 0xFFFFFFFF  # the 32 data bits of a 34-bit frame


@dataclass(frozen=True)
class Card:
    """A facility code and card number, or a raw number (facility None)."""

    facility: int | None
    number: int

    def __str__(self) -> str:
        return str(self.number) if self.facility is None else f"{self.facility}:{self.number}"

    @property
    def value(self) -> int:
        """The number the panel decodes from the frame: 12:345 and the raw 786777 are the same card to it."""
        return self.number if self.facility is None else (self.facility << 16) | self.number

    def data_bits(self, length: int) -> int:
        """The frame's data field (length - 2 parity bits), or KioskError if the card does not fit."""
        width = length - 2
        value = self.value
        if self.facility is not None:
            fac_bits = width - 16  # H10301: 8-bit facility; 34-bit: 16-bit facility, both 16-bit number
            if self.facility >= 1 << fac_bits:
                raise KioskError(f"card {self} does not fit {length}-bit: facility above {(1 << fac_bits) - 1}")
        if value >= 1 << width:
            raise KioskError(f"card {self} does not fit {length}-bit: more than {width} data bits")
        return value


def parse_card(text: str) -> Card:
    """'FACILITY:NUMBER' or 'NUMBER' (raw); one clear line for anything else."""
    parts = text.strip().split(":")
    if len(parts) > 2 or not all(p.strip().isdigit() for p in parts):
        raise KioskError(f"card {text!r}: expected FACILITY:NUMBER (e.g. 12:3456) or a raw NUMBER")
    if len(parts) == 1:
        number = int(parts[0])
        if number > MAX_RAW:
            raise KioskError(f"card {text!r}: a raw number must be at most {MAX_RAW}")
        return Card(None, number)
    facility, number = int(parts[0]), int(parts[1])
    if facility > MAX_FACILITY or number > MAX_NUMBER:
        raise KioskError(f"card {text!r}: facility and number must each be at most {MAX_NUMBER}")
    return Card(facility, number)


def card_of(row: Credential) -> Card:
    return Card(row.facility, row.number)


def set_card(
    sessions: sessionmaker[Session], name: str, card: Card, actor: str = "cli", config: CredentialsConfig | None = None,
) -> Card | None:
    """Give NAME this card (replacing theirs); returns the card they had. Unique per site, and never a
    reserved card of `config` (the panel would log every stranger, or every remote open, as NAME)."""
    refuse_reserved_card(card, name, config)
    with sessions.begin() as session:
        person = _person(session, name)
        holder = session.scalar(select(Person.name).join(Credential).where(Credential.card == str(card)))
        if holder is not None and holder != name:
            raise KioskError(f"card {card} already belongs to {holder}")
        row = session.scalar(select(Credential).where(Credential.person_id == person.id))
        previous = card_of(row) if row is not None else None
        if row is None:
            row = Credential(person_id=person.id, card=str(card), facility=card.facility, number=card.number)
            session.add(row)
        else:
            row.card, row.facility, row.number = str(card), card.facility, card.number
        session.add(AdminAction(
            actor=actor, action="card", subject=name,
            details={"card": str(card), "previous": None if previous is None else str(previous)},
        ))
    return previous


def assign_free_card(sessions: sessionmaker[Session], name: str, config: CredentialsConfig, actor: str = "cli") -> Card | None:
    """The lowest unused number of the free range for NAME, if a range is set and they have no card yet."""
    if config.free_first is None or config.free_last is None:
        return None
    reserved = {card.value for key in RESERVED_CARDS if (card := configured_card(config, key)) is not None}
    for _attempt in range(3):  # another writer may take the same number between our read and our insert
        with sessions() as session:
            person = _person(session, name)
            if session.scalar(select(Credential.id).where(Credential.person_id == person.id)) is not None:
                return None
            used = set(session.scalars(
                select(Credential.number).where(
                    Credential.facility.is_(None) if config.free_facility is None else Credential.facility == config.free_facility,
                    Credential.number.between(config.free_first, config.free_last),
                )
            ))
        number = next((
            n for n in range(config.free_first, config.free_last + 1)
            if n not in used and Card(config.free_facility, n).value not in reserved
        ), None)
        if number is None:
            raise KioskError(f"the free card range {config.free_first}-{config.free_last} is used up: give {name} a card with --card")
        card = Card(config.free_facility, number)
        try:
            with sessions.begin() as session:
                session.add(Credential(person_id=person.id, card=str(card), facility=card.facility, number=card.number))
                session.add(AdminAction(actor=actor, action="card", subject=name, details={"card": str(card), "free_range": True}))
        except IntegrityError:
            continue
        return card
    raise KioskError(f"could not assign {name} a free card number (the range is being assigned elsewhere): try again")


def card_for(sessions: sessionmaker[Session], name: str) -> Card | None:
    with sessions() as session:
        row = session.scalar(select(Credential).join(Person).where(Person.name == name))
        return None if row is None else card_of(row)


def all_cards(sessions: sessionmaker[Session]) -> dict[str, str]:
    """Person name -> card text, for listings."""
    with sessions() as session:
        return {name: card for name, card in session.execute(select(Person.name, Credential.card).join(Credential))}


def _person(session: Session, name: str) -> Person:
    person = session.scalar(select(Person).where(Person.name == name))
    if person is None:
        raise KioskError(f"no enrolled person named {name!r}")
    return person


def card_holder(sessions: sessionmaker[Session], card: Card) -> str | None:
    with sessions() as session:
        return session.scalar(select(Person.name).join(Credential).where(Credential.card == str(card)))


# credentials.<key> -> who the panel would take for its holder: nobody may hold a reserved card
RESERVED_CARDS = {"unknown_face_card": "every stranger", "remote_open_card": "every remote open"}


def configured_card(config: CredentialsConfig | None, key: str) -> Card | None:
    """`credentials.<key>` (a reserved card) as a Card (None when unset); ConfigError for one out of range."""
    text = None if config is None else getattr(config, key)
    if text is None:
        return None
    try:
        return parse_card(text)
    except KioskError as exc:
        raise ConfigError(f"config: 'credentials.{key}': {exc}") from None


def refuse_reserved_card(card: Card, name: str, config: CredentialsConfig | None) -> None:
    """KioskError if `card` is, to the panel, a reserved card: nobody may stand for every stranger or remote open."""
    for key, stands_for in RESERVED_CARDS.items():
        reserved = configured_card(config, key)
        if reserved is not None and reserved.value == card.value:
            raise KioskError(f"card {card} is the card for {stands_for} (credentials.{key}): give {name} another")


def reserved_card(config: CredentialsConfig, key: str, sessions: sessionmaker[Session], lengths: Iterable[int]) -> Card | None:
    """A reserved card, checked before the door starts: it fits every panel format and nobody holds it
    (the panel would log a stranger, or a remote open, as that person). ConfigError otherwise."""
    card = configured_card(config, key)
    if card is None:
        return None
    for length in lengths:
        try:
            card.data_bits(length)
        except KioskError as exc:
            raise ConfigError(f"config: 'credentials.{key}': {exc}") from None
    holder = next((name for name, text in all_cards(sessions).items() if parse_card(text).value == card.value), None)
    if holder is not None:
        raise ConfigError(
            f"config: 'credentials.{key}' {card} is {holder}'s card: {RESERVED_CARDS[key]} would be logged as them; "
            "choose a number nobody holds"
        )
    return card
