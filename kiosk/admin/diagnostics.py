"""`kiosk doctor`'s checks: the camera, the models, the database and the GPIO, each exercised for
real (a frame read, an inference run, a write, a pin claimed) and reported with how to fix it.

Each check returns `Finding`s and never raises, so one broken part does not hide the others.
While the door service is running it holds the camera and the GPIO lines; the checks then
read its status file instead of fighting it for the devices.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from kiosk.context import KioskContext
from kiosk.door.status import DoorStatus, read_status
from kiosk.errors import KioskError, StorageFull

if TYPE_CHECKING:
    from kiosk.vision.camera import CameraSource, Frame

Status = Literal["ok", "warn", "fail"]
FRAME_WAIT_SECONDS = 5.0
SERVICE_FRESH_SECONDS = 10.0  # the service rewrites its status about once a second


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def run_checks(ctx: KioskContext, config_file: Path | None = None) -> list[Finding]:
    """Every check, in the order a frame travels: camera, models, database, recogniser, door."""
    service = running_service(ctx.settings.home)
    checks: list[tuple[str, Callable[[], list[Finding]]]] = [
        ("camera", lambda: check_camera(ctx, service)),
        ("onnx providers", lambda: check_providers(ctx)),
        ("detector", lambda: check_detector(ctx)),
        ("embedder", lambda: check_embedder(ctx)),
        ("database", lambda: check_database(ctx)),
        ("recogniser", lambda: check_recogniser(ctx)),
        ("clip", lambda: check_clip(ctx)),
        ("liveness", lambda: check_liveness(ctx)),
        ("gpio", lambda: check_gpio(ctx, service)),
        ("panel", lambda: check_panel(ctx, service)),
        ("mqtt", lambda: check_mqtt(ctx, service)),
    ]
    settings = ctx.settings
    source = f"config file {config_file}" if config_file else "no config file (defaults and KIOSK_* environment)"
    findings = [Finding("configuration", "ok", f"door {settings.door!r}, data in {settings.home}, {source}")]
    for name, check in checks:
        try:
            findings += check()
        except Exception as exc:  # a check that breaks is itself a finding, not a crash
            findings.append(Finding(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}", "report this"))
    return findings


def running_service(home: Path) -> DoorStatus | None:
    """The door service's status, if a live service wrote it within the last few seconds."""
    status = read_status(home)
    if status is None or not status.live(fresh_seconds=SERVICE_FRESH_SECONDS):
        return None
    try:
        os.kill(status.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by the service user
        pass
    return status


# --- camera --------------------------------------------------------------------------------------


def check_camera(ctx: KioskContext, service: DoorStatus | None) -> list[Finding]:
    from kiosk.vision.camera import camera_source

    spec = ctx.settings.camera.source
    if service is not None:
        status: Status = "ok" if service.camera == "ok" else "fail"
        return [Finding("camera", status, f"in use by the running door service (pid {service.pid}): {service.camera}, {service.fps:.1f} fps",
                        "" if status == "ok" else _camera_fix(spec))]
    device_problem = _video_device_problem(spec)
    if device_problem:
        return [Finding("camera", "fail", device_problem, _camera_fix(spec))]
    try:
        source = camera_source(spec, ctx.settings.camera)
        source.open()
    except KioskError as exc:
        return [Finding("camera", "fail", str(exc), _camera_fix(spec))]
    try:
        frame = _first_frame(source)
    except KioskError as exc:
        return [Finding("camera", "fail", f"{source.description} opened but failed: {exc}", _camera_fix(spec))]
    finally:
        source.close()
    if frame is None:
        return [Finding("camera", "fail", f"{source.description} opened but gave no frame in {FRAME_WAIT_SECONDS:g} s", _camera_fix(spec))]
    height, width = frame.image.shape[:2]
    return [Finding("camera", "ok", f"{source.description}: first frame {width}x{height}")]


def _first_frame(source: CameraSource) -> Frame | None:
    deadline = time.monotonic() + FRAME_WAIT_SECONDS
    while time.monotonic() < deadline:
        frame = source.read()
        if frame is not None:
            return frame
        if source.exhausted:
            return None
        time.sleep(0.02)
    return None


def _video_device_problem(spec: str) -> str | None:
    """For a V4L2 index, say plainly whether the device node is missing or not ours to open."""
    if not spec.strip().isdigit():
        return None
    node = Path(f"/dev/video{int(spec)}")
    if not node.exists():
        return f"camera.source = {spec!r} but {node} does not exist"
    if not os.access(node, os.R_OK | os.W_OK):
        return f"{node} exists but this user may not open it"
    return None


def _camera_fix(spec: str) -> str:
    text = spec.strip()
    if text.isdigit():
        return ("check the camera is plugged in (`v4l2-ctl --list-devices` lists the /dev/video* nodes), "
                "set camera.source to its index, and add the service user to the video group")
    if "!" in text:
        return "test the pipeline with `gst-launch-1.0` (it must end in appsink) and that OpenCV was built with GStreamer"
    if "://" in text:
        return "check the URL, credentials and network path to the camera (try it in `ffplay`)"
    return "set camera.source (or KIOSK_CAMERA__SOURCE) to a device index, pipeline, URL, video file or image folder"


# --- models --------------------------------------------------------------------------------------


def check_providers(ctx: KioskContext) -> list[Finding]:
    import onnxruntime

    wanted = ctx.settings.models.onnx_providers
    have = onnxruntime.get_available_providers()
    missing = [p for p in wanted if p not in have]
    if missing:
        return [Finding("onnx providers", "warn", f"onnxruntime lacks {', '.join(missing)} (has {', '.join(have)}); models run on what is left",
                        "install the GPU build of onnxruntime (the `gpu` extra), or drop them from models.onnx_providers")]
    return [Finding("onnx providers", "ok", ", ".join(wanted))]


def check_detector(ctx: KioskContext) -> list[Finding]:
    fix = "set models.detector (or KIOSK_MODELS__DETECTOR) to an SCRFD ONNX file with keypoints, e.g. scrfd_500m_bnkps.onnx"
    try:
        detector = ctx.detector
        detection = detector.detect(np.zeros((480, 640, 3), np.uint8))
    except Exception as exc:
        return [Finding("detector", "fail", _one_line(exc), fix)]
    if detection.faces:
        return [Finding("detector", "fail", f"{detector.model_path} finds faces in a black frame", fix)]
    return [Finding("detector", "ok", f"{detector.model_path} (ran on a test frame)")]


def check_embedder(ctx: KioskContext) -> list[Finding]:
    fix = "set models.embedder (or KIOSK_MODELS__EMBEDDER) to a 112x112 ArcFace-family ONNX file, e.g. mobilefacenet.onnx"
    try:
        embedder = ctx.embedder
        vector = embedder.embed([np.full((112, 112, 3), 128, np.uint8)])
    except Exception as exc:
        return [Finding("embedder", "fail", _one_line(exc), fix)]
    if vector.shape[0] != 1 or not np.all(np.isfinite(vector)):
        return [Finding("embedder", "fail", f"{embedder.model_path} gives no usable embedding", fix)]
    return [Finding("embedder", "ok", f"{embedder.model_path} ({vector.shape[1]}-d embeddings)")]


def check_recogniser(ctx: KioskContext) -> list[Finding]:
    from kiosk.recognition.selection import load_recogniser

    try:
        selection = load_recogniser(ctx)
    except Exception as exc:
        return [Finding("recogniser", "fail", _one_line(exc), _recogniser_fix(str(exc)))]
    return [Finding("recogniser", "ok", selection.reason)]


# --- liveness (issue 14) ---


def check_liveness(ctx: KioskContext) -> list[Finding]:
    """The silent check: off is a warning (a photo opens the door), broken models a failure."""
    from kiosk.liveness.setup import detector_key, liveness_wanted, load_detector, threshold_in_force

    cfg = ctx.settings.liveness
    fix = "put the MiniFASNet files at liveness.v2_model and liveness.v1se_model (or set liveness.enabled = \"off\" knowingly)"
    if not liveness_wanted(ctx.settings):
        why = "liveness.enabled = off" if cfg.enabled == "off" else f"models not found ({cfg.v2_model}, {cfg.v1se_model})"
        return [Finding("liveness", "warn", f"off: {why}; a photo of an enrolled person opens the door", fix)]
    try:
        detector = load_detector(ctx.settings)
        scores = detector.score(np.full((480, 640, 3), 128, np.uint8), [np.array([240, 160, 400, 320], np.float32)])
    except Exception as exc:
        return [Finding("liveness", "fail", _one_line(exc), fix)]
    if scores.shape != (1,) or not np.all((scores >= 0) & (scores <= 1)):
        return [Finding("liveness", "fail", f"{detector.name} gives no usable score", fix)]
    try:  # a database problem is the database check's to report, not the models'
        threshold, source = threshold_in_force(ctx.settings, ctx.sessions, detector_key(ctx.settings))
        where = f"threshold {threshold:.3f} ({source})"
    except Exception as exc:
        where = f"threshold not read: {_one_line(exc)}"
    return [Finding("liveness", "ok", f"{detector.name}, {where} (ran on a test frame)")]


def _recogniser_fix(message: str) -> str:
    if "enrol" in message:
        return "enrol people (`kiosk enroll NAME PHOTOS...`), then run `kiosk retrain`"
    if "CLIP" in message:
        return "set recognition.recogniser to auto or face, or install a build with the CLIP recogniser"
    return "run `kiosk retrain` to rebuild the model; `kiosk -vv doctor` shows more"


def check_clip(ctx: KioskContext) -> list[Finding]:
    """CLIP weights: a local file must exist; a pretrained tag needs the network on first use."""
    models, wanted = ctx.settings.models, ctx.settings.recognition.recogniser
    severity: Status = "fail" if wanted in ("clip", "hybrid") else "warn"
    weights = models.clip_pretrained
    looks_like_file = weights.endswith((".pt", ".bin", ".safetensors", ".pth")) or os.sep in weights
    if looks_like_file:
        path = Path(weights) if Path(weights).is_absolute() else ctx.settings.home / weights
        if not path.is_file():
            return [Finding("clip", severity, f"models.clip_pretrained names a file that does not exist: {path}",
                            "copy the CLIP weights there, or set models.clip_pretrained (or KIOSK_MODELS__CLIP_PRETRAINED)")]
        return [Finding("clip", "ok", f"{models.clip_model} weights file {path}")]
    return [Finding("clip", severity,
                    f"models.clip_pretrained = {weights!r} is a pretrained tag: open_clip downloads it on first use, "
                    f"which fails without a network" + ("; auto uses the face recogniser alone then" if wanted == "auto" else ""),
                    "download the weights once elsewhere and set models.clip_pretrained to the local file")]


# --- database ------------------------------------------------------------------------------------


def check_database(ctx: KioskContext) -> list[Finding]:
    from sqlalchemy import text

    from db.session import current_revision

    url = ctx.settings.database_url
    fix = f"make {ctx.settings.home} writable by the service user (`chown -R kiosk: {ctx.settings.home}`), or fix database.url"
    try:
        engine = ctx.engine
        revision = current_revision(engine)
        with engine.begin() as conn:
            conn.execute(text("SELECT count(*) FROM access_events")).scalar()
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar() if engine.dialect.name == "sqlite" else None
            # A real committed write, then its undoing: proves the file (and its WAL) take writes.
            conn.execute(text("CREATE TABLE IF NOT EXISTS doctor_write_probe (x INTEGER)"))
            conn.execute(text("DROP TABLE doctor_write_probe"))
        if not os.access(ctx.settings.home, os.W_OK):
            raise KioskError(f"the data directory {ctx.settings.home} is not writable (crops and models go there)")
    except StorageFull as exc:  # a full disk is not a permissions problem: chown would not help
        return [Finding("database", "fail", f"{_safe_url(url)}: {_one_line(exc)}",
                        f"free space on the disk holding {ctx.settings.home} (`df -h {ctx.settings.home}`)")]
    except Exception as exc:
        return [Finding("database", "fail", f"{_safe_url(url)}: {_one_line(exc)}", fix)]
    findings = [Finding("database", "ok", f"{_safe_url(url)} migrated to {revision}, writable")]
    if journal is not None and str(journal).lower() != "wal":
        findings.append(Finding("database", "fail", f"journal mode is {journal}, not WAL: the admin app and the door would block each other",
                                "put the database on a local file system that supports WAL (not a network share)"))
    return findings


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- GPIO ----------------------------------------------------------------------------------------


def check_gpio(ctx: KioskContext, service: DoorStatus | None, gpio_dev: Path | None = None) -> list[Finding]:
    """``gpio_dev``: where GPIO chips are looked for (default /dev; tests point it elsewhere)."""
    from kiosk.door.gpio_board import GPIO_DEV, open_board
    from kiosk.door.relay import build_relay
    from kiosk.door.sensors import build_sensors

    hw = ctx.settings.door_hardware
    if service is not None:
        return [Finding("gpio", "ok", f"relay and inputs held by the running door service (pid {service.pid}); door {service.door_state}")]
    try:
        board = open_board(hw, gpio_dev or GPIO_DEV)
    except KioskError as exc:
        return [Finding("gpio", "fail", str(exc), "install the board's GPIO library, or set door_hardware.pin_factory to a backend it has")]
    findings = [Finding("gpio", "warn" if board.is_mock and hw.pin_factory == "auto" else "ok", board.description,
                        "on a real door: install lgpio (Raspberry Pi) or Jetson.GPIO (Jetson)" if board.is_mock and hw.pin_factory == "auto" else "")]
    pin_fix = "check door_hardware pin numbers against the wiring, that no other program holds the pin, and that the service user is in the gpio group"
    with _claimed(build_relay, hw, board) as relay:
        if isinstance(relay, Exception):
            return [*findings, Finding("relay", "fail", _one_line(relay), pin_fix)]
        if relay.is_open:
            return [*findings, Finding("relay", "fail", "relay reads open right after start-up", "check relay_active_high against the relay board")]
        idle = "low" if hw.relay_active_high else "high"
        module = "active-high" if hw.relay_active_high else "active-low"
        findings.append(Finding("relay", "ok", f"pin {hw.relay_pin} claimed and closed: idle level {idle} ({module} module, "
                                               f"relay_active_high = {str(hw.relay_active_high).lower()})"))
        if hw.contact_pin is None and hw.exit_pin is None:
            return findings
        with _claimed(build_sensors, hw, relay, lambda event: None, board) as sensors:
            if isinstance(sensors, Exception):
                findings.append(Finding("door inputs", "fail", _one_line(sensors), pin_fix))
            else:
                if sensors.door_open is not None:
                    findings.append(Finding("door contact", "ok", f"pin {hw.contact_pin} reads the door {'open' if sensors.door_open else 'closed'}"))
                if hw.exit_pin is not None:
                    findings.append(Finding("exit button", "ok", f"pin {hw.exit_pin} claimed"))
    return findings


# --- access panel (issue 16) -----------------------------------------------------------------


def check_panel(ctx: KioskContext, service: DoorStatus | None) -> list[Finding]:
    """OSDP / Wiegand outputs: the running service's link, else the key, the port, the lines; and the cards."""
    from sqlalchemy import select

    from db.models import Person
    from kiosk.storage.credentials import all_cards, parse_card, reserved_card

    settings = ctx.settings
    panel = [o for o in settings.door_hardware.outputs if o != "relay"]
    if not panel:
        return []
    findings: list[Finding] = []
    if service is not None:
        bad = any(word in service.panel for word in ("lost", "refused", "waiting"))
        findings.append(Finding("panel link", "fail" if bad else "ok", service.panel or "the running service reports no panel output",
                                "check the RS-485 wiring (A/B, common ground), the reader address and key set in the panel, "
                                "and that the panel polls this port" if bad else ""))
    else:
        findings += _panel_hardware(ctx, panel)
    if "osdp" in panel and settings.osdp.secure_channel and settings.osdp.install_mode:
        findings.append(Finding(
            "osdp install mode", "warn", "on: a panel may set a new secure channel key (over the default key while the kiosk has none)",
            "once the panel has set its key (logged, and an admin action), set osdp.install_mode = false and restart",
        ))
    with ctx.sessions() as session:
        people = list(session.scalars(select(Person.name)))
    cards = all_cards(ctx.sessions)
    missing = [name for name in people if name not in cards]
    card_findings: list[Finding] = []
    if missing:
        card_findings.append(Finding(
            "cards", "warn",
            f"{len(missing)} of {len(people)} people have no card number ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): their grants are not sent",
            "kiosk identities card NAME FACILITY:NUMBER (their existing card), or --free with a [credentials] free range",
        ))
    formats = {name: getattr(settings, name).format for name in panel}
    for person, text in sorted(cards.items()):
        for output, length in formats.items():
            try:
                parse_card(text).data_bits(length)
            except KioskError as exc:
                card_findings.append(Finding("cards", "fail", f"{person}: {exc} ({output}.format)", "give them a card that fits, or change the format in the panel and here"))
    if not card_findings:
        card_findings.append(Finding("cards", "ok", f"all {len(people)} people have a card number that fits {', '.join(f'{o} {n}-bit' for o, n in formats.items())}"))
    for key, what, sends in (("unknown_face_card", "unknown-face card", "a stranger refused sends card {}, once per visit"),
                             ("remote_open_card", "remote-open card", "a remote open (MQTT) sends card {} to the panel")):
        if getattr(settings.credentials, key) is None:
            continue
        try:
            card = reserved_card(settings.credentials, key, ctx.sessions, formats.values())
            card_findings.append(Finding(what, "ok", sends.format(card)))
        except KioskError as exc:
            card_findings.append(Finding(what, "fail", str(exc), f"set credentials.{key} to a number the panel holds for nobody"))
    return findings + card_findings


def _panel_hardware(ctx: KioskContext, panel: list[str]) -> list[Finding]:
    """With no service running: the OSDP key and port, and the Wiegand lines, claimed and released."""
    settings = ctx.settings
    findings: list[Finding] = []
    if "osdp" in panel:
        from kiosk.door.osdp_reader import SerialChannel, key_path, load_scbk

        config = settings.osdp
        if config.secure_channel:
            try:
                if config.install_mode and config.key_file is not None and not key_path(config.key_file, settings.home).exists():
                    findings.append(Finding("osdp key", "warn", f"no key yet: install mode waits for the panel to set one in {config.key_file}",
                                            "in the panel, install this reader (secure channel, its default-key setup allowed)"))
                else:
                    load_scbk(config.key_file, settings.home)
                    findings.append(Finding("osdp key", "ok", f"secure channel key {config.key_file} is private and outside the data directory"))
            except KioskError as exc:
                findings.append(Finding("osdp key", "fail", str(exc), "write the panel's SCBK as 32 hex digits to a file outside the data directory, chmod 600"))
        else:
            findings.append(Finding("osdp key", "warn", "secure channel is off: card numbers cross the bus in clear", "set osdp.secure_channel = true and a key_file"))
        with _claimed(SerialChannel, config.port, config.baud) as channel:
            if isinstance(channel, Exception):
                findings.append(Finding("osdp port", "fail", _one_line(channel), "check osdp.port names the RS-485 adapter and the service user is in the dialout group"))
            else:
                findings.append(Finding("osdp port", "ok", f"{config.port} opens at {config.baud} baud; reader address {config.address}, {config.format}-bit card reads"))
    if "wiegand" in panel:
        from kiosk.door.gpio_board import open_board
        from kiosk.door.wiegand import build_wiegand

        try:
            board = open_board(settings.door_hardware)
        except KioskError as exc:
            return [*findings, Finding("wiegand", "fail", str(exc), "set door_hardware.pin_factory to a backend this board has")]
        w = settings.wiegand
        with _claimed(build_wiegand, w, board) as output:
            if isinstance(output, Exception):
                findings.append(Finding("wiegand", "fail", _one_line(output), "check wiegand.d0_pin / d1_pin against the wiring"))
            else:
                findings.append(Finding("wiegand", "ok", f"D0 pin {w.d0_pin}, D1 pin {w.d1_pin} claimed, idle high; {w.format}-bit, {w.pulse_us} us pulses every {w.interval_us} us"))
    return findings


@contextmanager
def _claimed(build: Callable[..., object], *args: object) -> Iterator[object]:
    """Build a device for the check, yield it (or the exception), and always release it."""
    try:
        device = build(*args)
    except Exception as exc:
        yield exc
        return
    try:
        yield device
    finally:
        for release in ("shutdown", "close"):
            if hasattr(device, release):
                getattr(device, release)()
                break


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --- MQTT (issue 17) --------------------------------------------------------------------------------


def check_mqtt(ctx: KioskContext, service: DoorStatus | None) -> list[Finding]:
    """The broker (the running service's connection, or a connection of our own), the outbox depth, and thumbnails."""
    if not ctx.settings.mqtt.enabled:
        return []
    return [_mqtt_broker(ctx, service), *_mqtt_thumbnails(ctx)]


def _mqtt_broker(ctx: KioskContext, service: DoorStatus | None) -> Finding:
    from kiosk.integrations.mqtt_client import probe
    from kiosk.integrations.outbox import Outbox
    from kiosk.integrations.signed_commands import read_secret

    cfg = ctx.settings.mqtt
    where = f"{cfg.host}:{cfg.port}"
    try:
        if cfg.command_secret_file is not None:
            read_secret(cfg.command_secret_file, "mqtt.command_secret_file")
        if service is not None and service.mqtt is not None:
            problem = None if service.mqtt.get("connected") else f"the running door service is not connected to {where}"
        else:
            problem = probe(ctx.settings)
    except KioskError as exc:
        return Finding("mqtt", "fail", str(exc), "fix the file named (chmod 600 for secrets) or the [mqtt] settings")
    depth = Outbox(ctx.sessions, "").depth()
    queued = f"{depth} event(s) in the outbox not yet acknowledged by the broker"
    if problem:
        return Finding("mqtt", "fail", f"{problem}; {queued}",
                       "check mqtt.host/port, the broker's user and password (mqtt.username, mqtt.password_file) and TLS files; "
                       "events wait in the outbox meanwhile")
    who = "the running door service is connected to" if service is not None and service.mqtt is not None else "connected to"
    return Finding("mqtt", "ok" if depth == 0 or service is not None else "warn", f"{who} {where}; {queued}",
                   "" if depth == 0 or service is not None else "start the door service: it publishes them")


def _mqtt_thumbnails(ctx: KioskContext) -> list[Finding]:
    """Whether faces leave the kiosk over MQTT: said whenever mqtt.thumbnails is on, since it needs privacy.thumbnails too."""
    settings = ctx.settings
    if not settings.mqtt.thumbnails:
        return []
    if not settings.privacy.thumbnails:
        return [Finding("mqtt thumbnails", "warn", "mqtt.thumbnails is on but privacy.thumbnails is off: no thumbnail is kept, "
                        "so none is published", "turn privacy.thumbnails on to publish them, or mqtt.thumbnails off")]
    return [Finding("mqtt thumbnails", "ok", "each event's face is published to <prefix>/thumbnail: a published face leaves "
                    "this kiosk's erasure and retention (subscribers keep their own copies)")]


def configuration_problem(exc: KioskError) -> Finding:
    """A configuration that does not load is the one thing doctor can report then."""
    return Finding("configuration", "fail", str(exc), "fix the key it names in the TOML file or its KIOSK_* environment variable")
