"""The database: migrations match the models, and SQLite is set up for two processes at once."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from db.models import AccessEvent, Base, FaceSample, FeatureCache, Person
from db.session import current_revision, make_engine, session_factory, upgrade


def test_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    upgrade(engine)
    upgrade(engine)  # idempotent: a second start changes nothing
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert current_revision(engine) is not None
    assert set(inspect(engine).get_table_names()) >= {"people", "face_samples", "training_runs", "access_events", "admin_actions"}


def test_sqlite_pragmas_and_private_file(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'k.db'}", busy_timeout_ms=4321)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 4321
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    assert (tmp_path / "data" / "k.db").stat().st_mode & 0o077 == 0


def test_deleting_a_person_cascades_to_samples_and_features(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        p = Person(name="Ada")
        s.add(p)
        s.flush()
        sample = FaceSample(person_id=p.id, sha256="a" * 64, source="x", crop_path="1/a.png", det_score=0.9, box=[], keypoints=[])
        s.add(sample)
        s.flush()
        s.add(FeatureCache(sample_id=sample.id, encoder="face:test", vector=b"\0" * 8))
        s.add(AccessEvent(door="front", person_id=p.id, person_name="Ada", granted=True, probability=0.9, reason="ok"))
    with sessions.begin() as s:
        s.execute(text("DELETE FROM people WHERE name = 'Ada'"))  # the database itself enforces it
    with sessions() as s:
        assert s.scalars(select(FaceSample)).all() == []
        assert s.scalars(select(FeatureCache)).all() == []
        event = s.scalars(select(AccessEvent)).one()
        assert event.person_id is None and event.person_name == "Ada"  # the audit trail keeps the name
        assert event.time.tzinfo is not None


def test_two_writers_at_once_wait_instead_of_failing(tmp_path: Path) -> None:
    """The door service and the admin UI write the same file: the busy timeout serialises them."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    upgrade(make_engine(url))
    errors: list[BaseException] = []

    def writer(door: str) -> None:
        sessions = session_factory(make_engine(url))
        try:
            for i in range(40):
                with sessions.begin() as s:
                    s.add(AccessEvent(door=door, granted=False, probability=0.1, reason=f"r{i}"))
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(d,)) for d in ("front", "admin")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with session_factory(make_engine(url))() as s:
        assert len(s.scalars(select(AccessEvent)).all()) == 80
