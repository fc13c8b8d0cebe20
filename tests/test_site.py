"""A site of many doors on a real PostgreSQL 15 (started by .ci/services/postgres for these tests).

Two real door services (their own data directories and SQLite replicas, the real detector and
face model, gpiozero mock pins) join one site database; people are enrolled, retrained and
erased centrally only; the server is stopped and started again under the doors.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import DEV, dev_people, make_settings, photos, run_kiosk
from gpiozero.pins.mock import MockFactory
from pg_server import PgServer, pg_server_fixture, site_url_fixture  # noqa: F401 (the fixtures pg_server, site_url)
from sqlalchemy import Engine, create_engine, delete, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from visit_camera import VisitCamera

from db.models import AccessEvent, Base, Credential, Door, Person, TrainingRun
from db.session import current_revision, make_engine, upgrade
from kiosk.config import (
    CameraConfig,
    DatabaseConfig,
    DetectionConfig,
    DoorHardwareConfig,
    ModelPaths,
    PolicyConfig,
    SiteConfig,
    WiegandConfig,
)
from kiosk.context import KioskContext
from kiosk.door.assembly import build_outputs
from kiosk.door.gpio_board import open_board
from kiosk.door.relay import build_relay
from kiosk.door.service import DoorService, build_door_service
from kiosk.errors import ConfigError, KioskError
from kiosk.site.audit import verify_site
from kiosk.site.link import SiteLink
from kiosk.site.roles import READ_ONLY, add_door, init_site, list_doors
from kiosk.site.uploader import outbox_depth
from kiosk.vision.camera import ResilientCamera
from kiosk.vision.face_detection import FaceDetector

HEAD = "0008_site_liveness"
WAIT = 90.0  # seconds a condition may take on a loaded 2-core machine before the test fails


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll a condition until it holds; fail naming it after the timeout (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class SiteDoor:
    """One door of the site: its own home and SQLite, its link to the site, its running service."""

    def __init__(self, name: str, home: Path, url: str, password_file: Path, detector: FaceDetector, embedder, pins: MockFactory, pin: int,
                 wiegand: tuple[int, int] | None = None):
        """``wiegand``: the door is a reader on an access panel, sending cards on these D0/D1 pins."""
        self.name = name
        self.settings = make_settings(
            home,
            site=SiteConfig(url=url, door=name, password_file=password_file, poll_seconds=0.5, upload_seconds=0.2, retry_seconds=0.2),
            camera=CameraConfig(reconnect_initial_seconds=0.01, reconnect_max_seconds=0.05, stall_seconds=3600.0),
            policy=PolicyConfig(reload_check_seconds=0.1, window_frames=3, min_frames=2, track_max_missed=1, cooldown_seconds=0.0),
            door_hardware=DoorHardwareConfig(pin_factory="mock", relay_pin=pin, pulse_seconds=0.05, outputs=["wiegand"] if wiegand else ["relay"]),
            **({"wiegand": WiegandConfig(d0_pin=wiegand[0], d1_pin=wiegand[1])} if wiegand else {}),
        )
        self.ctx = KioskContext(self.settings)
        self.ctx.__dict__["embedder"] = embedder
        self.link = SiteLink(self.settings, self.ctx.sessions)
        assert self.link.catch_up()
        self.camera = VisitCamera()
        board = open_board(self.settings.door_hardware)
        relay = build_relay(self.settings.door_hardware, board)
        self.outputs = build_outputs(self.settings, relay, board)
        self.service: DoorService = build_door_service(self.ctx, ResilientCamera(self.camera, self.settings.camera), relay,
                                                       detector=detector, outputs=self.outputs)
        self.service.add_listener(self.link.wake)
        self.decisions: list[tuple[str, bool]] = []
        self.service.add_listener(lambda d: self.decisions.append((d.person or "", d.granted)))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.service.run, args=(self.stop,), name=f"door-{name}")
        self.link.start()
        self.thread.start()

    def decide(self, photo: Path, label: str) -> tuple[str, bool]:
        """Show one visit, wait until the loop is past it; its grant if any, else its first refusal."""
        before = len(self.decisions)
        assert self.camera.visit(photo, hold=3, gap=2, label=label).wait(WAIT), f"{self.name}'s loop stopped taking frames"
        assert len(self.decisions) > before, f"no decision at {self.name}"
        made = self.decisions[before:]
        return next((d for d in made if d[1]), made[0])

    def model_version(self) -> int | None:
        return self.service.selection.recogniser.model_version

    def local_events(self) -> list[AccessEvent]:
        with self.ctx.sessions() as s:
            return list(s.scalars(select(AccessEvent).order_by(AccessEvent.id)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        for output in self.outputs:
            output.close()
        self.link.stop()
        self.ctx.engine.dispose()


def admin_context(url: str, home: Path, embedder) -> KioskContext:
    ctx = KioskContext(make_settings(home, database=DatabaseConfig(url=url)))
    ctx.__dict__["embedder"] = embedder
    return ctx


def enrol_and_train(ctx: KioskContext, detector: FaceDetector, embedder, people: list[Path]) -> int:
    from kiosk.admin.enrolment import Enroller
    from kiosk.recognition.face_recogniser import train_face_model
    from kiosk.recognition.model_registry import ModelRegistry
    from kiosk.storage.samples import cached_features, load_samples

    enroller = Enroller(ctx.sessions, detector, ctx.crops)
    for person in people:
        enroller.enroll(person.name, photos(person)[:8])
    samples = load_samples(ctx.sessions, ctx.settings.crops_dir)
    feats = cached_features(ctx.sessions, ctx.crops, samples, embedder.encoder_key, embedder.embed)
    return train_face_model(ModelRegistry(ctx.sessions, ctx.settings.artifacts_dir), embedder, samples, feats)


def downgrade(engine: Engine, revision: str) -> None:
    """Alembic's downgrade, on the engine's connection (db.session.upgrade only goes up)."""
    from alembic import command
    from alembic.config import Config

    from db.session import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def door_url(url: str, role: str) -> str:
    return make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


def register(admin: KioskContext, name: str, tmp_path: Path) -> tuple[str, Path]:
    door, password = add_door(admin.engine, admin.sessions, name, f"{name} entrance")
    secret = tmp_path / f"{name}.password"
    secret.write_text(password)
    return door_url(admin.settings.database.url, door.role_name), secret


@pytest.fixture(scope="module")
def door_detector() -> FaceDetector:
    from conftest import DETECTOR

    return FaceDetector.from_settings(ModelPaths(detector=DETECTOR), DetectionConfig(pad_fraction=0.0))


def test_migrations_on_postgres_build_exactly_the_models(site_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(site_url)
    assert init_site(engine) == HEAD
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []
        triggers = set(conn.scalars(text("SELECT event_object_table FROM information_schema.triggers WHERE trigger_name = 'kiosk_site_changed'")))
        secured = set(conn.scalars(text("SELECT relname FROM pg_class WHERE relrowsecurity")))
    assert triggers == {"people", "credentials", "training_runs", "calibrations", "threshold_overrides", "liveness_calibrations"}
    assert secured == {"access_events", "doors"}
    downgrade(engine, "0002_trust")  # and back down, on PostgreSQL as on SQLite
    assert current_revision(engine) == "0002_trust"
    upgrade(engine)
    engine.dispose()


def test_password_from_a_file_and_tls_options_reach_the_driver(site_url: str, pg_server: PgServer, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(make_url(site_url).password + "\n")
    bare = make_url(site_url).set(password=None).render_as_string(hide_password=False)
    settings = make_settings(tmp_path, database=DatabaseConfig(url=bare, password_file=secret))
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT 1")) == 1
    engine.dispose()
    # sslmode goes to libpq as given: this test server has no TLS, so "require" must be refused by it
    tls = make_engine(make_url(settings.database_url).update_query_dict({"sslmode": "require"}).render_as_string(hide_password=False))
    with pytest.raises(OperationalError, match="SSL"):
        tls.connect()
    tls.dispose()
    with pytest.raises(ConfigError, match="password file"):
        _ = make_settings(tmp_path, database=DatabaseConfig(url=bare, password_file=tmp_path / "missing")).database_url


def test_a_door_role_reads_what_it_needs_appends_its_own_events_and_nothing_else(site_url: str, tmp_path: Path, embedder) -> None:
    admin = admin_context(site_url, tmp_path / "admin", embedder)
    init_site(admin.engine)
    east_url, east_pw = register(admin, "east", tmp_path)
    register(admin, "west", tmp_path)
    with admin.sessions.begin() as s:
        s.add(Person(name="Someone"))
        s.add(AccessEvent(door="west", granted=False, reason="west's own", door_event_id=1))
    east = create_engine(make_url(east_url).set(password=east_pw.read_text()))
    row = {"door": "east", "granted": True, "reason": "r", "time": "2026-01-01T00:00:00+00:00", "details": "{}", "tailgating": False}
    insert = text("INSERT INTO access_events (door, granted, reason, time, details, tailgating, door_event_id) "
                  "VALUES (:door, :granted, :reason, :time, CAST(:details AS json), :tailgating, :n)")
    with east.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM people")) == 1
        conn.execute(insert, {**row, "n": 1})
        assert conn.execute(text("SELECT door FROM access_events")).scalars().all() == ["east"]  # west's row is invisible
        assert conn.execute(text("SELECT name FROM doors")).scalars().all() == ["east"]
    refused = [
        (insert, {**row, "door": "west", "n": 2}),  # pretending to be another door
        (text("UPDATE access_events SET reason = 'changed'"), {}),
        (text("DELETE FROM access_events"), {}),
        (text("UPDATE people SET name = 'x'"), {}),
        (text("DELETE FROM people"), {}),
        (text("UPDATE doors SET name = 'x'"), {}),
        (text("SELECT * FROM face_samples"), {}),
        (text("SELECT * FROM admin_credentials"), {}),
        (text("SELECT * FROM admin_actions"), {}),
        (text("UPDATE credentials SET card = 'x'"), {}),
        (text("DELETE FROM credentials"), {}),
        (text("INSERT INTO threshold_overrides (id, threshold, set_by, set_at) VALUES (1, 0.1, 'east', now())"), {}),
        (text("UPDATE liveness_calibrations SET threshold = 0.0"), {}),
    ]
    for statement, params in refused:
        with pytest.raises(DBAPIError, match="permission denied|row-level security"), east.begin() as conn:
            conn.execute(statement, params)
    # what it may do, table by table: read the replicated tables, append events, nothing more
    privileges = text(
        "SELECT tablename, array_agg(p ORDER BY p) FROM pg_tables, unnest(ARRAY['DELETE', 'INSERT', 'SELECT', 'TRUNCATE', 'UPDATE']) p "
        "WHERE schemaname = 'public' AND has_table_privilege(quote_ident(tablename), p) GROUP BY tablename"
    )
    with east.connect() as conn:
        held = {table: list(granted) for table, granted in conn.execute(privileges)}
    assert held == {**{t: ["SELECT"] for t in READ_ONLY}, "doors": ["SELECT"], "access_events": ["INSERT", "SELECT"]}
    assert {"credentials", "threshold_overrides", "liveness_calibrations"} <= set(READ_ONLY)
    east.dispose()
    with admin.sessions() as s:
        assert sorted(s.scalars(select(AccessEvent.reason))) == ["r", "west's own"]
        assert s.scalar(select(Person.name)) == "Someone"

    # a door registered before the cards, the threshold and the liveness calibrations were
    # replicated may read them after the upgrade
    downgrade(admin.engine, "0006_site")
    east = create_engine(make_url(east_url).set(password=east_pw.read_text()))
    for table in ("credentials", "liveness_calibrations"):
        with pytest.raises(DBAPIError, match="permission denied"), east.connect() as conn:
            conn.execute(text(f"SELECT * FROM {table}"))
    upgrade(admin.engine)
    with east.connect() as conn:
        for table in ("credentials", "threshold_overrides", "liveness_calibrations"):
            assert conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0
    east.dispose()
    admin.engine.dispose()


def test_two_doors_follow_the_site_and_survive_its_outage(
    site_url: str, pg_server: PgServer, tmp_path: Path, door_detector, embedder, pins: MockFactory,
) -> None:
    subject, other, stranger = dev_people()[0], dev_people()[1], sorted((DEV.parent / "faces-dev-strangers").iterdir())[0]
    admin = admin_context(site_url, tmp_path / "admin", embedder)
    init_site(admin.engine)
    first = enrol_and_train(admin, door_detector, embedder, [other])
    doors = [SiteDoor(name, tmp_path / name, *register(admin, name, tmp_path), door_detector, embedder, pins, pin)
             for name, pin in (("east", 17), ("west", 22))]
    try:
        for door in doors:
            assert door.model_version() == first
            assert door.decide(photos(subject)[12], "subject")[1] is False  # not enrolled yet

        # enrolled and trained once, centrally: both doors learn of it without being touched
        second = enrol_and_train(admin, door_detector, embedder, [subject])
        for door in doors:
            wait_for(lambda d=door: d.model_version() == second, f"{door.name} to load model v{second}")
            assert door.decide(photos(subject)[13], "subject") == (subject.name, True)

        # erased centrally: refused at both, and nothing of them left at either door
        from kiosk.admin.erasure import forget_person

        erased = forget_person(admin, subject.name)
        assert erased.rebuilt_face_version is not None
        for door in doors:
            wait_for(lambda d=door: d.model_version() == erased.rebuilt_face_version, f"{door.name} to load v{erased.rebuilt_face_version}")
            assert door.decide(photos(subject)[14], "subject")[1] is False
            assert door.link.last_sync is not None and door.link.last_sync.erasure_verified
            with door.ctx.sessions() as s:
                assert s.scalar(select(Person.id).where(Person.name == subject.name)) is None
                assert s.scalar(select(TrainingRun.id).where(TrainingRun.id == second)) is None
            assert not any(door.settings.artifacts_dir.glob(f"*-v{second}"))

        for door in doors:  # everything so far reached the site
            wait_for(lambda d=door: outbox_depth(d.ctx.sessions) == 0, f"{door.name}'s outbox to empty")

        # the site goes down: the doors decide from their replicas and keep their events
        pg_server.stop()
        for door in doors:
            wait_for(lambda d=door: not d.link.follower.connected.is_set(), f"{door.name} to notice the outage")
        for door in doors:
            before = len(door.local_events())
            assert door.decide(photos(other)[12], "other") == (other.name, True)
            assert door.decide(next(stranger.glob("*.jpg")), "stranger")[1] is False
            assert door.decide(photos(other)[13], "other") == (other.name, True)
            kept = len(door.local_events()) - before
            assert kept >= 3 and outbox_depth(door.ctx.sessions) == kept
        pg_server.start()
        for door in doors:
            wait_for(lambda d=door: outbox_depth(d.ctx.sessions) == 0, f"{door.name} to send what it kept")

        with admin.sessions() as s:
            for door in doors:
                local = [(e.id, e.row_hash) for e in door.local_events()]
                central = s.execute(select(AccessEvent.door_event_id, AccessEvent.row_hash)
                                    .where(AccessEvent.door == door.name).order_by(AccessEvent.id)).all()
                assert [tuple(r) for r in central] == local  # every event once, in the door's order
            assert s.scalar(select(func.count(AccessEvent.id))) == sum(len(d.local_events()) for d in doors)
        reports = verify_site(admin.sessions)
        assert [r.chain for r in reports] == ["admin_actions", "access_events[east]", "access_events[west]"]
        assert all(r.ok for r in reports) and all(r.rows == len(d.local_events()) for r, d in zip(reports[1:], doors))
        wait_for(lambda: all(d.outbox_depth == 0 and d.replica_current and d.last_contact for d in list_doors(admin.engine, admin.sessions)),
                 "both doors to report to the site")
    finally:
        for door in doors:
            door.close()
        if not pg_server.running:
            pg_server.start()

    # `kiosk audit verify` at the site: each door's chain; a row altered centrally is found
    done = run_kiosk(["audit", "verify"], tmp_path / "admin", timeout=120, KIOSK_DATABASE__URL=site_url)
    assert done.returncode == 0, done.stderr
    assert "access_events[east]: " in done.stdout and "access_events[west]: " in done.stdout and "BROKEN" not in done.stdout
    with admin.engine.begin() as conn:
        conn.execute(text("UPDATE access_events SET reason = 'altered' WHERE door = 'west' AND door_event_id = 2"))
    done = run_kiosk(["audit", "verify"], tmp_path / "admin", timeout=120, KIOSK_DATABASE__URL=site_url)
    assert done.returncode == 1 and "access_events[west]: BROKEN" in done.stdout and "content altered (door event 2)" in done.stdout
    admin.engine.dispose()


def test_an_upload_links_the_sites_people_reports_health_sparingly_and_outlives_a_restart(
    site_url: str, pg_server: PgServer, tmp_path: Path, embedder,
) -> None:
    """One site statement per batch looks each event's person up there (one erased since keeps
    only the name, as on the door); uploads report the door's health at most every
    HEALTH_SECONDS (an injected clock); the first upload after a server restart reconnects by
    itself instead of failing on the connection the server dropped."""
    from kiosk.site.link import HEALTH_SECONDS

    admin = admin_context(site_url, tmp_path / "admin", embedder)
    init_site(admin.engine)
    with admin.sessions.begin() as s:
        ada = Person(name="Ada")
        s.add(ada)
        s.flush()
        ada_id = ada.id
    url, secret = register(admin, "east", tmp_path)
    door = KioskContext(make_settings(tmp_path / "east", door="east", site=SiteConfig(url=url, door="east", password_file=secret)))
    now = [1000.0]
    link = SiteLink(door.settings, door.sessions, clock=lambda: now[0])

    def store(person_id: int | None, name: str | None) -> None:
        with door.sessions.begin() as s:
            s.add(AccessEvent(time=datetime.now(timezone.utc), door="east", person_id=person_id, person_name=name, granted=person_id is not None,
                              probability=0.9, reason="test"))

    def last_contact() -> datetime | None:
        with admin.sessions() as s:
            return s.scalar(select(Door.last_contact).where(Door.name == "east"))

    try:
        assert link.catch_up()  # the replica now holds Ada; this door alone still knows Gone
        reported = last_contact()
        assert reported is not None  # catching up reports
        with door.sessions.begin() as s:
            s.add(Person(id=ada_id + 1000, name="Gone"))
        store(ada_id, "Ada")
        store(ada_id + 1000, "Gone")
        store(None, None)
        assert link.upload() == 3
        with admin.sessions() as s:
            rows = s.execute(select(AccessEvent.door_event_id, AccessEvent.person_id, AccessEvent.person_name).order_by(AccessEvent.door_event_id)).all()
        assert [tuple(r) for r in rows] == [(1, ada_id, "Ada"), (2, None, "Gone"), (3, None, None)]
        assert last_contact() == reported  # an upload reports only once HEALTH_SECONDS have passed

        now[0] += HEALTH_SECONDS - 0.1
        store(None, None)
        assert link.upload() == 1 and last_contact() == reported
        now[0] += 0.1
        store(None, None)
        assert link.upload() == 1 and last_contact() > reported

        pg_server.stop()
        pg_server.start()
        store(None, None)
        assert link.upload() == 1  # the pooled connection died with the server: sent on a new one
        admin.engine.dispose()
        with admin.sessions() as s:
            assert s.scalar(select(func.count(AccessEvent.id))) == 6
    finally:
        if not pg_server.running:
            pg_server.start()
        link.site.dispose()
        admin.engine.dispose()


def test_a_liveness_calibration_made_at_the_site_sets_a_doors_threshold(site_url: str, tmp_path: Path, embedder) -> None:
    """`kiosk calibrate --part liveness` against the site writes a row; the site's trigger moves
    its version, the door's next sync copies the row, and the door applies it to its models."""
    from db.models import LivenessCalibration
    from kiosk.liveness.setup import threshold_in_force

    admin = admin_context(site_url, tmp_path / "admin", embedder)
    init_site(admin.engine)
    url, secret = register(admin, "east", tmp_path)
    door = KioskContext(make_settings(tmp_path / "east", door="east", site=SiteConfig(url=url, door="east", password_file=secret)))
    link = SiteLink(door.settings, door.sessions)
    key = "silent-face:test"
    try:
        assert link.catch_up()
        assert threshold_in_force(door.settings, door.sessions, key)[1].startswith("default")
        with admin.sessions.begin() as s:
            row = LivenessCalibration(detector=key, target_bpcer=0.05, threshold=0.27, metrics={"bpcer": 0.05})
            s.add(row)
            s.flush()
            row_id = row.id
        assert link.catch_up() and link.last_sync is not None and link.last_sync.changed
        assert threshold_in_force(door.settings, door.sessions, key) == (0.27, f"calibration {row_id} for BPCER 5%")
        with admin.sessions.begin() as s:
            s.execute(delete(LivenessCalibration))
        assert link.catch_up()  # withdrawn at the site: withdrawn at the door
        assert threshold_in_force(door.settings, door.sessions, key)[1].startswith("default")
    finally:
        link.stop()
        door.engine.dispose()
        admin.engine.dispose()


def test_a_card_and_a_threshold_set_centrally_reach_both_doors(site_url: str, tmp_path: Path, door_detector, embedder, pins: MockFactory) -> None:
    """Both doors are readers on access panels: each sends the card the site gave, from its replica."""
    from kiosk.admin.erasure import forget_person
    from kiosk.door.threshold_override import set_threshold, threshold_in_force
    from kiosk.storage.credentials import Card, card_for, set_card

    subject = dev_people()[0]
    admin = admin_context(site_url, tmp_path / "admin", embedder)
    init_site(admin.engine)
    enrol_and_train(admin, door_detector, embedder, [subject])
    doors = [SiteDoor(name, tmp_path / name, *register(admin, name, tmp_path), door_detector, embedder, pins, pin, wiegand)
             for name, pin, wiegand in (("east", 17, (23, 24)), ("west", 22, (5, 6)))]
    try:
        for door in doors:
            assert card_for(door.ctx.sessions, subject.name) is None
            assert door.service.policy.threshold == 0.8  # the configured one

        set_card(admin.sessions, subject.name, Card(12, 345), actor="alice")
        set_threshold(admin.settings, admin.sessions, 0.75, "alice")
        assert not (admin.settings.home / "threshold.json").exists()  # the site's row, not the admin machine's file
        for door in doors:
            wait_for(lambda d=door: card_for(d.ctx.sessions, subject.name) == Card(12, 345), f"the card at {door.name}")
            wait_for(lambda d=door: d.service.policy.threshold == 0.75, f"the site's threshold in force at {door.name}")
            assert threshold_in_force(door.settings, door.ctx.sessions).source.startswith("set at the site by alice")
            assert door.decide(photos(subject)[12], "subject") == (subject.name, True)
            sent = [e for e in door.local_events() if e.details.get("door_event") == "panel-send"]
            assert [(e.person_name, e.details["card"], e.reason.startswith("sent to panel")) for e in sent] == [(subject.name, "12:345", True)]
        with pytest.raises(KioskError, match="set at its site"):  # a site door's own admin cannot fork it
            set_threshold(doors[0].settings, doors[0].ctx.sessions, 0.9, "local")

        forget_person(admin, subject.name)
        for door in doors:
            wait_for(lambda d=door: card_for(d.ctx.sessions, subject.name) is None, f"the card gone from {door.name}")
            assert door.link.last_sync is not None and door.link.last_sync.erasure_verified
            with door.ctx.sessions() as s:
                assert s.scalar(select(func.count(Credential.id))) == 0
            assert door.service.policy.threshold == 0.75  # the override outlives the person
    finally:
        for door in doors:
            door.close()
        admin.engine.dispose()


def test_the_admin_apps_door_screen_lists_the_sites_doors_as_kiosk_site_doors_does(site_url: str, tmp_path: Path, door_detector, embedder) -> None:
    import asyncio
    import re

    from textual.widgets import DataTable, Static
    from ui_home import PIN, admin_app, sign_in, wait_until

    from db.models import utcnow
    from kiosk.admin.auth import AdminAuth

    admin = admin_context(site_url, tmp_path / "admin", embedder)
    init_site(admin.engine)
    AdminAuth(admin.sessions).set_secret("admin", PIN, actor="admin")
    east_url, east_pw = register(admin, "east", tmp_path)
    register(admin, "west", tmp_path)  # registered, never seen
    with admin.sessions.begin() as s:
        s.add(Person(name="Ada"))  # a change the doors replicate: site version 1
    east = make_settings(tmp_path / "east", site=SiteConfig(url=east_url, door="east", password_file=east_pw))
    door = KioskContext(east)
    with door.sessions.begin() as s:
        s.add(AccessEvent(door="east", person_name="Ada", granted=True, probability=0.9, reason="recognised"))
    link = SiteLink(east, door.sessions)
    assert link.catch_up()  # its replica synced and its event sent: it reports to its doors row
    link.stop()
    door.engine.dispose()
    admin.engine.dispose()
    done = run_kiosk(["site", "doors", "--json"], tmp_path / "admin", KIOSK_DATABASE__URL=site_url)
    listed = {d["name"]: d for d in json.loads(done.stdout)}
    version = listed["east"]["site_version"]
    assert version > 0 and listed["east"]["replica_version"] == version and listed["east"]["outbox_depth"] == 0
    assert (listed["west"]["last_contact"], listed["west"]["replica_version"], listed["west"]["outbox_depth"]) == (None, None, None)
    table = run_kiosk(["site", "doors"], tmp_path / "admin", KIOSK_DATABASE__URL=site_url).stdout.splitlines()
    assert table[0].split() == ["door", "location", "last", "contact", "replica", "outbox"]
    assert table[2].split() == ["west", "west", "entrance", "never", "-", "-"] and table[1].split()[-2:] == [f"{version}/{version}", "0"]

    async def drive() -> tuple[list[list[str]], list[str], str, str]:
        app = admin_app(tmp_path / "admin", door_detector, embedder, site_url, clock=utcnow)
        async with app.run_test(size=(80, 24)) as pilot:
            await sign_in(pilot)  # the door screen comes first
            screen = app.screen
            await wait_until(pilot, lambda: screen.query("#site-doors") and screen.query_one("#site-doors", DataTable).row_count == 2,
                             what="the site's doors")
            await wait_until(pilot, lambda: screen.query_one("#feed", DataTable).row_count == 1, what="east's event")
            doors, feed = screen.query_one("#site-doors", DataTable), screen.query_one("#feed", DataTable)
            rows = [[str(cell) for cell in doors.get_row_at(i)] for i in range(doors.row_count)]
            status = str(screen.query_one("#door-status", Static).render())
            await pilot.press("f5")
            await wait_until(pilot, lambda: app.current_mode == "calibration" and "In force" in str(app.screen.query_one("#threshold-box", Static).render()),
                             what="the calibration screen's threshold")
            return rows, [str(cell) for cell in feed.get_row_at(0)], status, str(app.screen.query_one("#threshold-box", Static).render())

    rows, event, status, calibration = asyncio.run(drive())
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [("east", "east entrance", f"{version}/{version}", "0"), ("west", "west entrance", "-", "-")]
    assert re.fullmatch(r"\d+ s ago", rows[0][2]) and rows[1][2] == "never"
    assert event[1:3] == ["east", "Ada"]  # the feed names each event's door
    assert f"2 registered, site version {version}, 1 replica(s) behind" in status and "none set at the site (each door's recognition.threshold)" in status
    assert calibration == "In force: none set at the site (each door's recognition.threshold)"  # not the admin machine's own setting


def test_kiosk_site_commands_prepare_register_and_list(site_url: str, tmp_path: Path) -> None:
    home = tmp_path / "admin"
    done = run_kiosk(["site", "init"], home, KIOSK_DATABASE__URL=site_url)
    assert done.returncode == 0 and f"revision {HEAD}" in done.stdout, done.stderr
    assert make_url(site_url).password not in done.stdout
    secret = tmp_path / "east.password"
    done = run_kiosk(["site", "door", "add", "east", "--location", "east entrance", "--password-file", str(secret)], home,
                     KIOSK_DATABASE__URL=site_url)
    assert done.returncode == 0, done.stderr
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.read_text().strip() not in done.stdout
    role = done.stdout.split("database role ")[1].split()[0]
    east = create_engine(make_url(site_url).set(username=role, password=secret.read_text().strip()))
    with east.connect() as conn:
        assert conn.scalar(text("SELECT current_user")) == role
    east.dispose()
    again = run_kiosk(["site", "door", "add", "east"], home, KIOSK_DATABASE__URL=site_url)
    assert again.returncode == 2 and "already registered" in again.stderr and "Traceback" not in again.stderr
    done = run_kiosk(["site", "doors", "--json"], home, KIOSK_DATABASE__URL=site_url)
    [row] = json.loads(done.stdout)
    assert (row["name"], row["location"], row["last_contact"], row["outbox_depth"]) == ("east", "east entrance", None, None)
    sqlite = run_kiosk(["site", "init"], tmp_path / "single")
    assert sqlite.returncode == 2 and "PostgreSQL" in sqlite.stderr and len(sqlite.stderr.strip().splitlines()) == 1


def test_a_site_door_refuses_to_change_what_the_site_owns(tmp_path: Path) -> None:
    """Its replica is rewritten from the site: a person, model, calibration or card made at the
    door would be lost at the next sync, or clash with the site's ids. Each is refused, naming
    the site, and nothing is written; the retrain timer beside the door finds nothing due."""
    home = tmp_path / "east"
    door = {"KIOSK_SITE__URL": "postgresql+psycopg://door@127.0.0.1:9/site", "KIOSK_SITE__DOOR": "east"}  # never contacted
    photo = str(photos(dev_people()[0])[0])
    for args, what in (
        (["enroll", "Ada", photo], "enrolment"),
        (["enroll-batch", str(DEV)], "enrolment"),
        (["retrain"], "retraining"),
        (["calibrate"], "calibration"),
        (["identities", "remove", "Ada"], "erasure"),
        (["identities", "card", "Ada", "12:345"], "setting a card"),
    ):
        done = run_kiosk(args, home, **door)
        assert done.returncode == 2, (args, done.stderr)
        assert f"error: {what} is done once, at the site, not at door 'east'" in done.stderr and "database.url" in done.stderr
    done = run_kiosk(["retrain", "--if-due"], home, **door)
    assert done.returncode == 0 and "this door's models come from its site" in done.stderr
    assert not (home / "kiosk.db").exists() and not (home / "crops").exists()  # refused before anything was opened
    done = run_kiosk(["enroll", "Ada", photo], home)  # the same home as a single door: allowed
    assert done.returncode == 0, done.stderr


def test_the_admin_app_at_a_site_door_offers_the_door_and_the_audit_only(tmp_path: Path, door_detector, embedder) -> None:
    import asyncio

    from ui_home import PIN, sign_in, wait_until

    from kiosk.admin.auth import AdminAuth
    from kiosk.ui.admin_app import AdminApp

    door = KioskContext(make_settings(tmp_path / "east", site=SiteConfig(url="postgresql+psycopg://door@127.0.0.1:9/site", door="east")))
    door.__dict__["detector"], door.__dict__["embedder"] = door_detector, embedder
    AdminAuth(door.sessions).set_secret("admin", PIN, actor="admin")

    async def drive() -> list[str]:
        app = AdminApp(door, poll_seconds=30.0)
        seen = []
        async with app.run_test(size=(80, 24)) as pilot:
            await sign_in(pilot)
            for key in ("f2", "f3", "f5", "f4"):
                await pilot.press(key)
                await pilot.pause()
                seen.append(app.current_mode)
            await wait_until(pilot, lambda: any("managed on the site database" in str(n.message) for n in app._notifications), what="the notice")
        return seen

    assert asyncio.run(drive()) == ["door", "door", "door", "audit"]
