"""Site database load: N door processes append events to one PostgreSQL, through an outage.

    python bench/site_load.py                               # 50 doors x 2 events/s, a 10 s outage
    python bench/site_load.py --outage 60 --seconds 100     # the reported figure: a 60 s outage

A private PostgreSQL 15 is started (.ci/services/postgres, 127.0.0.1 only) and stopped at the
end. Each simulated door is a process with its own SQLite, its own database role, and the real
door code: every event is committed and hash-chained locally (AccessLog), then sent by the
real uploader (SiteLink.upload: the door's site engine, upload_pending, health reports) in
order. Printed:

Each door's events arrive as a Poisson stream at ``--rate`` (independent visitors).

- events/s stored at the site while it was up, against the rate offered;
- commit latency at the site (one upload transaction, commit included), median and p99,
  from WARM_UP_S after the start (fifty processes taking their first steps at once) to the
  outage;
- catch-up: once the server is back, the time until every event the doors kept is at the site;
- a real door's decision latency (detector + face model + policy + local commit + relay, the
  time from a track's first frame to the relay pulse) with the site up, slow (its events table
  locked, so uploads hang) and down, in the same run, after the load doors have finished.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # pg_server: the one place that starts a private server

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

WARM_UP_S = 2.0


def door_process(name: str, home: str, url: str, rate: float, seconds: float, drain: float,
                 ready: mp.Queue, go, start, results: mp.Queue) -> None:
    from db.session import make_engine, session_factory, upgrade
    from kiosk.config import Settings, SiteConfig
    from kiosk.door.access_log import AccessLog, EventDraft
    from kiosk.site.link import SiteLink

    local = make_engine(f"sqlite:///{home}/kiosk.db")
    upgrade(local)
    sessions = session_factory(local)
    log = AccessLog(sessions, name, Path(home))
    settings = Settings(home=Path(home), site=SiteConfig(url=url, door=name))
    link = SiteLink(settings, sessions)  # the door's own site engine, uploader and health reports
    if not link.catch_up():  # as a door does on start: sync, send, report (and so connect) before its first visitor
        raise RuntimeError(f"{name} could not reach the site")
    ready.put(name)
    go.wait()
    start_at, stop_at = start.value, start.value + seconds
    drain_until = stop_at + drain
    latencies: list[tuple[float, float]] = []  # (wall time, seconds) of each site transaction
    failures = 0
    wake, done = threading.Event(), threading.Event()

    def uploader() -> None:
        """The door's upload thread, as SiteLink runs it: woken by each event, retrying while the site is down."""
        nonlocal failures
        while True:
            wake.wait(settings.site.upload_seconds)
            wake.clear()
            timings: list[float] = []
            last_round = done.is_set()  # read before the round: an event stored during it needs another
            try:
                link.upload(timings)
                now = time.time()
                latencies.extend((now, t) for t in timings)
                if last_round:
                    return
            except Exception:  # the site is down: events stay at the door
                failures += 1
                if done.is_set() and time.time() > drain_until:
                    return
                time.sleep(settings.site.retry_seconds)

    thread = threading.Thread(target=uploader)
    thread.start()
    # Independent doors: each one's visits are a Poisson stream (seeded by its name), not a
    # metronome that all fifty doors would beat at the same instant.
    arrivals = random.Random(name)
    due, i = start_at, 0
    while True:
        due += arrivals.expovariate(rate)
        if due >= stop_at:
            break
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        log.record(EventDraft(time=datetime.now(timezone.utc), person=None, granted=False, probability=0.1,
                              reason="bench", track_id=i))
        i += 1
        wake.set()
    done.set()
    wake.set()
    thread.join()
    results.put((name, i, failures, latencies))
    link.site.dispose()
    local.dispose()


def site_counts(admin_url: str) -> dict[str, int]:
    """Each door's newest event at the site; retried while the server is starting or swamped."""
    engine = create_engine(admin_url, connect_args={"connect_timeout": 10})
    try:
        for attempt in range(30):
            try:
                with engine.connect() as conn:
                    return dict(tuple(r) for r in conn.execute(text("SELECT door, max(door_event_id) FROM access_events GROUP BY door")))
            except OperationalError:
                time.sleep(0.2)
        raise RuntimeError("the site database did not answer")
    finally:
        engine.dispose()


def local_max(home: Path) -> int:
    engine = create_engine(f"sqlite:///{home}/kiosk.db")
    try:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT coalesce(max(id), 0) FROM access_events"))
    finally:
        engine.dispose()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def load(server, admin_url: str, root: Path, args: argparse.Namespace) -> None:
    from db.session import make_engine, session_factory
    from kiosk.site.roles import add_door, init_site

    engine = make_engine(admin_url)
    init_site(engine)
    sessions = session_factory(engine)
    doors = []
    for n in range(args.doors):
        name = f"door{n:02d}"
        row, password = add_door(engine, sessions, name, "bench")
        doors.append((name, make_url(admin_url).set(username=row.role_name, password=password).render_as_string(hide_password=False)))
    engine.dispose()
    ctx = mp.get_context("spawn")
    ready, results, go, start = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
    procs = []
    for name, url in doors:
        home = root / name
        home.mkdir()
        procs.append(ctx.Process(target=door_process, args=(name, str(home), url, args.rate, args.seconds,
                                                         args.outage + 120, ready, go, start, results)))
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=600)
    start_at = start.value = time.time() + 1.0
    outage_at = start_at + args.outage_after
    go.set()
    time.sleep(max(0.0, outage_at - time.time()))
    stored_before = sum(site_counts(admin_url).values())
    up_seconds = time.time() - start_at
    server.stop()
    down_at = time.time()
    time.sleep(max(0.0, args.outage - (time.time() - down_at)))
    server.start()
    back_at = time.time()
    kept = {name: local_max(root / name) for name, _ in doors}  # every event committed by the time it was back
    while True:
        at_site = site_counts(admin_url)
        if all(at_site.get(name, 0) >= n for name, n in kept.items()):
            break
        if time.time() - back_at > args.outage + 300:
            print("catch-up: NOT complete after the outage + 300 s", file=sys.stderr)
            break
        time.sleep(0.05)
    catch_up = time.time() - back_at
    collected = [results.get(timeout=args.seconds + args.outage + 300) for _ in procs]
    for p in procs:
        p.join()
    emitted = sum(c[1] for c in collected)
    at_site = site_counts(admin_url)
    steady = [lat for c in collected for (t, lat) in c[3] if start_at + WARM_UP_S <= t < outage_at]
    print(f"doors: {args.doors} processes x {args.rate:g} events/s offered = {args.doors * args.rate:g} events/s; "
          f"{emitted} events committed at the doors in {args.seconds:g} s = {emitted / args.seconds:.1f} events/s")
    print(f"stored at the site while up: {stored_before} events in {up_seconds:.1f} s = {stored_before / up_seconds:.1f} events/s sustained")
    print(f"site commit latency (one upload transaction, from {WARM_UP_S:g} s after the start to the outage): median {statistics.median(steady) * 1000:.1f} ms, "
          f"p99 {pct(steady, 0.99) * 1000:.1f} ms over {len(steady)} commits")
    print(f"outage: {args.outage:g} s (server stopped); {sum(kept.values()) - stored_before} events kept at the doors meanwhile "
          f"(+ any not yet sent before it); catch-up after the server was back: {catch_up:.2f} s")
    print(f"every event at the site once: {sum(at_site.values()) == emitted} ({sum(at_site.values())} of {emitted})")


def decision_latency(server, admin_url: str, root: Path, phase_seconds: float) -> None:
    """One real door with the site up, slow and down: pulse latency per phase."""
    from door_common import DETECTOR, DEV, EMBEDDER, mock_relay, photos

    from db.session import make_engine
    from kiosk.admin.enrolment import Enroller
    from kiosk.config import CameraConfig, DatabaseConfig, ModelPaths, PolicyConfig, Settings, SiteConfig
    from kiosk.context import KioskContext
    from kiosk.door.service import build_door_service
    from kiosk.recognition.face_recogniser import train_face_model
    from kiosk.recognition.model_registry import ModelRegistry
    from kiosk.site.link import SiteLink
    from kiosk.site.roles import add_door
    from kiosk.storage.samples import cached_features, load_samples
    from kiosk.vision.camera import ReplaySource, ResilientCamera

    models = ModelPaths(detector=DETECTOR, embedder=EMBEDDER)
    admin = KioskContext(Settings(home=root / "admin", models=models, database=DatabaseConfig(url=admin_url)))
    people = sorted(p for p in DEV.iterdir() if p.is_dir())[:3]
    enroller = Enroller(admin.sessions, admin.detector, admin.crops)
    for person in people:
        enroller.enroll(person.name, photos(person)[:8])
    samples = load_samples(admin.sessions, admin.settings.crops_dir)
    feats = cached_features(admin.sessions, admin.crops, samples, admin.embedder.encoder_key, admin.embedder.embed)
    train_face_model(ModelRegistry(admin.sessions, admin.settings.artifacts_dir), admin.embedder, samples, feats)
    row, password = add_door(admin.engine, admin.sessions, "timed", "bench")
    secret = root / "timed.password"
    secret.write_text(password)
    url = make_url(admin_url).set(username=row.role_name, password=None).render_as_string(hide_password=False)
    settings = Settings(home=root / "timed", models=models,
                        site=SiteConfig(url=url, door="timed", password_file=secret, upload_seconds=0.2, retry_seconds=1.0),
                        policy=PolicyConfig(cooldown_seconds=0.0, window_frames=3, min_frames=2, track_max_missed=1))
    ctx = KioskContext(settings)
    link = SiteLink(settings, ctx.sessions)
    assert link.catch_up(), "the timed door could not reach the site"
    source = ReplaySource([photos(people[0])[12]], people[0], hold=3, gap=2, repeat=10**6)
    service = build_door_service(ctx, ResilientCamera(source, CameraConfig()), mock_relay())
    service.add_listener(link.wake)
    link.start()
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,))
    worker.start()
    locker = make_engine(admin_url)
    figures = []
    try:
        for phase in ("up", "slow", "down"):
            conn = None
            if phase == "slow":  # uploads and heartbeats wait on this lock for the whole phase
                conn = locker.connect()
                conn.begin()
                conn.execute(text("LOCK TABLE access_events IN ACCESS EXCLUSIVE MODE"))
            if phase == "down":
                server.stop()
            first = len(service.stats.pulse_latencies)
            time.sleep(phase_seconds)
            lat = service.stats.pulse_latencies[first:]
            if conn is not None:
                conn.rollback()
                conn.close()
            figures.append((phase, lat))
    finally:
        stop.set()
        worker.join(timeout=60)
        if not server.running:
            server.start()
        link.stop()
        locker.dispose()
    for phase, lat in figures:
        print(f"decision latency, site {phase:4}: median {statistics.median(lat) * 1000:.0f} ms, p99 {pct(lat, 0.99) * 1000:.0f} ms "
              f"over {len(lat)} grants" if lat else f"decision latency, site {phase}: no grants")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doors", type=int, default=50)
    parser.add_argument("--rate", type=float, default=2.0, help="events per second per door")
    parser.add_argument("--seconds", type=float, default=40.0, help="how long the doors produce events")
    parser.add_argument("--outage-after", type=float, default=15.0, help="seconds into the run the server stops")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the server stays down")
    parser.add_argument("--phase-seconds", type=float, default=15.0, help="decision latency: seconds per phase (0: skip)")
    args = parser.parse_args()
    if args.outage_after + args.outage >= args.seconds:
        parser.error("the outage must end before the doors stop (--outage-after + --outage < --seconds)")
    from pg_server import PgServer

    server = PgServer()
    root = Path(tempfile.mkdtemp(prefix="kiosk-site-bench-"))
    try:
        server.start()
        (root / "load").mkdir()
        load(server, server.new_database("load"), root / "load", args)
        if args.phase_seconds > 0:
            (root / "decide").mkdir()
            decision_latency(server, server.new_database("decide"), root / "decide", args.phase_seconds)
    finally:
        server.remove()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
