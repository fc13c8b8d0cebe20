"""The kiosk's configuration: one TOML file, overridable key by key from the environment.

Precedence, highest first: ``KIOSK_<SECTION>__<KEY>`` environment variables, the TOML file
(``--config`` or ``KIOSK_CONFIG``), then the defaults below. Every field carries its own
description, which ``kiosk config show`` prints above the key, so the documentation cannot
drift from the code.
"""

from __future__ import annotations

import json
import os
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError, TomlConfigSettingsSource

from kiosk.errors import ConfigError

DEFAULT_HOME = Path("/var/lib/kiosk")


class Section(BaseModel):
    """A config section: unknown keys are errors, not silently ignored typos."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelPaths(Section):
    detector: Path = Field(
        Path("models/scrfd_500m_bnkps.onnx"),
        description="SCRFD face detector ONNX file with keypoints (relative paths are under home).",
    )
    embedder: Path = Field(
        Path("models/mobilefacenet.onnx"),
        description="ArcFace-family face embedder ONNX file, 112x112 input (relative paths are under home).",
    )
    clip_model: str = Field("RN50", description="open_clip architecture name.")
    clip_pretrained: str = Field(
        "openai",
        description="open_clip pretrained tag, or a local weights file (.pt/.bin/.safetensors).",
    )
    clip_config: Path | None = Field(
        None,
        description="open_clip model config JSON registered before loading (its file name, less .json, is the "
        "architecture name for clip_model); unset uses open_clip's built-in configs.",
    )
    clip_download: bool = Field(
        False,
        description="Let open_clip download a pretrained tag's weights when they are not in the local cache "
        "(off: an offline kiosk fails fast and runs the face recogniser alone).",
    )
    clip_cache_dir: Path | None = Field(
        None, description="Where pretrained tags' weights are cached; unset uses open_clip's default cache."
    )
    onnx_providers: list[str] = Field(
        ["CPUExecutionProvider"],
        description="onnxruntime execution providers, in order of preference (CUDA/TensorRT on the box).",
    )


class DetectionConfig(Section):
    score_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Minimum SCRFD face score.")
    input_size: int = Field(640, ge=160, description="Square SCRFD input size in pixels.")
    min_face_px: int = Field(
        40, ge=8, description="Faces narrower than this (pixels) are ignored as too small to trust."
    )
    pad_fraction: float = Field(
        0.5,
        ge=0.0,
        description="Padding added on each side for the second detection pass on tight crops.",
    )
    max_side: int = Field(
        4096,
        ge=256,
        description="Images larger than this on their long side are decoded at reduced size.",
    )


class RecognitionConfig(Section):
    recogniser: Literal["auto", "clip", "face", "hybrid"] = Field(
        "auto",
        description="Which recogniser decides: auto = hybrid when CLIP loads, else face alone.",
    )
    threshold: float = Field(
        0.80, ge=0.0, le=1.0, description="Probability the door requires (the paper's 80%)."
    )
    prompt_template: str = Field(
        "This is the image of a person named {name}",
        description="CLIP prompt per person; {name} is replaced by the person's name.",
    )
    hybrid_gate: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Hybrid: faces the face verifier puts below this probability are refused without running "
        "CLIP (exact, since the hybrid needs both to clear the threshold); must not exceed the threshold.",
    )
    hybrid_clip_refresh_frames: int = Field(
        10,
        ge=1,
        description="Hybrid at the door: CLIP's answer for a face track is reused for up to this many frames while "
        "the face verifier (run on every frame) keeps naming the same person; 1 runs CLIP on every frame.",
    )
    clip_runtime: Literal["onnx", "onnx-int8", "torch"] = Field(
        "onnx",
        description="How CLIP's frozen image tower runs when recognising: onnx = exported once per weights under "
        "the data directory and run by onnxruntime (faster on a small CPU); onnx-int8 = that export quantised to "
        "int8 on the stored face crops (faster again on a CPU, not exact: see clip_int8_min_cosine); "
        "torch = eager open_clip.",
    )
    clip_int8_min_cosine: float = Field(
        0.99,
        gt=0.0,
        le=1.0,
        description="onnx-int8 is used only if every checked stored crop's int8 features keep at least this cosine "
        "to the fp32 features; otherwise the fp32 tower runs, with a warning.",
    )

    # --- issue 15: people enrolled after the CLIP version in force ---
    awaiting_clip: Literal["refuse", "face"] = Field(
        "refuse",
        description="Hybrid: a person the face model knows but the CLIP version in force does not yet (enrolled "
        "since the last CLIP retrain): refuse = refused with the reason 'awaiting retrain'; face = decided by the "
        "face recogniser alone at awaiting_clip_threshold (the event says so).",
    )
    awaiting_clip_threshold: float = Field(
        0.95,
        ge=0.0,
        le=1.0,
        description="awaiting_clip = face: the face recogniser's probability required without CLIP's second "
        "opinion; must not be below the threshold (the door's threshold applies as well).",
    )

    @model_validator(mode="after")
    def _gate_below_threshold(self) -> "RecognitionConfig":
        if self.awaiting_clip == "face" and self.awaiting_clip_threshold < self.threshold:
            raise ValueError(f"awaiting_clip_threshold {self.awaiting_clip_threshold} is below threshold {self.threshold}: the face alone would need less than both together")
        if self.hybrid_gate > self.threshold:
            raise ValueError(f"hybrid_gate {self.hybrid_gate} is above threshold {self.threshold}: the hybrid would refuse people it should grant")
        return self


class TrainingConfig(Section):
    seed: int = Field(0, description="Seed for the deterministic 80/20 split and the optimiser.")
    validation_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Share held back for validation.")
    epochs: int = Field(10, ge=1, description="Text-tower fine-tuning epochs.")
    batch_size: int = Field(16, ge=1, description="Images per optimiser step (the paper's 16).")
    learning_rate: float = Field(1e-5, gt=0.0, description="AdamW learning rate.")
    weight_decay: float = Field(0.2, ge=0.0, description="AdamW weight decay.")
    text_chunk_size: int = Field(
        64, ge=1, description="Prompts re-encoded at once in the gradient-cached backward pass."
    )
    large_batch: bool = Field(
        False,
        description="Train CLIP with large_batch_size images per step instead of batch_size: every step encodes "
        "every person's prompt, so fewer, larger steps make a big site's epoch far cheaper.",
    )
    large_batch_size: int = Field(1024, ge=1, description="Images per optimiser step when large_batch is on.")
    # --- issue 15: a retrain never starves the door ---
    threads: int = Field(
        1,
        ge=1,
        description="torch and onnxruntime threads a retrain (admin app, `kiosk retrain`, the timer) may use; the "
        "door's own threads are in the door's process and never shared with it.",
    )
    nice: int = Field(
        10, ge=0, le=19, description="Added to a retrain process's niceness, so the door loop wins the CPU."
    )
    idle_scheduling: bool = Field(
        True,
        description="Run a retrain under Linux's SCHED_IDLE: it gets a core only when the door leaves one idle. "
        "A niceness of 10 still takes about a tenth of a busy core; on a 2-core box that cost the door a third "
        "of its frame rate (bench/door_while_training.py). Off: niceness alone.",
    )
    catch_up_people: int = Field(
        5,
        ge=1,
        description="`kiosk retrain --if-due` (the hourly timer) retrains CLIP once this many enrolled people are "
        "not yet in the CLIP version in force ...",
    )
    catch_up_hours: float = Field(
        24.0, gt=0.0, description="... or once the longest of them has waited this many hours."
    )


class CalibrationConfig(Section):
    stranger_prior: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="Share of door attempts expected from people other than the one named (prior odds of a stranger); 0.5 = even odds.",
    )
    target_fpir: float = Field(
        0.001, ge=0.0, le=1.0, description="Stranger acceptance rate the evaluation report finds a threshold for."
    )


class DatabaseConfig(Section):
    url: str = Field(
        "",
        description="SQLAlchemy URL; empty means SQLite at <home>/kiosk.db.",
    )
    busy_timeout_ms: int = Field(10000, ge=0, description="SQLite busy timeout in milliseconds.")
    password_file: Path | None = Field(
        None,
        description=(
            "File holding the database password (a PostgreSQL site database), kept out of the URL; "
            "libpq's PGPASSWORD/PGPASSFILE work too. TLS options go in the URL's query (?sslmode=verify-full&sslrootcert=...)."
        ),
    )


# --- site database (issue 18) -------------------------------------------------------------
class SiteConfig(Section):
    url: str = Field(
        "",
        description=(
            "The site database this door joins (postgresql+psycopg://door_role@host/db?sslmode=...); "
            "empty: a single door, nothing is replicated or uploaded."
        ),
    )
    door: str = Field("", description="This door's registered name at the site (`kiosk site door add`); also its name in the access log.")
    password_file: Path | None = Field(None, description="File holding this door's database password (printed once by `kiosk site door add`).")
    poll_seconds: float = Field(
        30.0, gt=0.0, description="How often the door checks the site for changes when no notification came (LISTEN/NOTIFY is the prompt path)."
    )
    upload_seconds: float = Field(2.0, gt=0.0, description="How often the door sends its unsent events when no decision woke the uploader.")
    retry_seconds: float = Field(5.0, gt=0.0, description="Wait between attempts to reach the site database while it is down.")

    @model_validator(mode="after")
    def _door_named(self) -> "SiteConfig":
        if self.url and not self.door:
            raise ValueError("site.door must name this door when site.url is set")
        return self
# --- end site database ------------------------------------------------------------------------


PinSpec = int | str


class DoorHardwareConfig(Section):
    pin_factory: Literal["auto", "mock", "lgpio", "rpigpio", "pigpio", "native", "jetson"] = Field(
        "auto",
        description=(
            "GPIO backend: auto = Jetson.GPIO on a Jetson, else gpiozero's default pin factory, "
            "else gpiozero's mock pins (logged; refused on a machine with a GPIO chip, /dev/gpiochip*); "
            "jetson = Jetson.GPIO; mock = simulated pins; the others are gpiozero pin factories."
        ),
    )
    jetson_numbering: Literal["BCM", "BOARD", "CVM", "TEGRA_SOC"] = Field(
        "BCM",
        description="Jetson.GPIO pin numbering; BCM gives the same numbers as on a Raspberry Pi header.",
    )
    relay_pin: PinSpec = Field(
        17, description="Lock relay output: a BCM number (17) or a gpiozero pin name (GPIO17, BOARD11)."
    )
    relay_active_high: bool = Field(
        False,
        description="True if a high level energises the relay; false (the default) for the active-low relay "
        "modules most boards are sold with, which the kiosk then holds high while the door is locked.",
    )
    pulse_seconds: float = Field(3.0, gt=0.0, le=60.0, description="How long the lock is released per opening.")
    contact_pin: PinSpec | None = Field(
        None, description="Door-contact input (reed switch); unset disables held-open and forced-door alarms."
    )
    contact_open_level: Literal["high", "low"] = Field(
        "high",
        description="Level the contact input reads when the door is open (a switch to ground with a pull-up: high).",
    )
    held_open_seconds: float = Field(
        30.0, gt=0.0, description="A door left open longer than this raises a held-open alarm."
    )
    exit_pin: PinSpec | None = Field(
        None, description="Request-to-exit button input; pressing it releases the lock for pulse_seconds."
    )
    exit_pressed_level: Literal["high", "low"] = Field(
        "low", description="Level the exit-button input reads while pressed (a button to ground: low)."
    )
    exit_grace_seconds: float = Field(
        10.0, ge=0.0, description="A door opened this soon after an exit request is not a forced door."
    )
    input_pull: Literal["up", "down", "off"] = Field(
        "up", description="Internal pull resistor on the contact and exit inputs (Jetson: use external resistors)."
    )
    bounce_seconds: float = Field(0.05, ge=0.0, description="Debounce time for the contact and exit inputs.")
    outputs: list[Literal["relay", "osdp", "wiegand"]] = Field(
        ["relay"],
        description="What a grant does: relay = pulse the kiosk's own lock relay; osdp / wiegand = send the "
        "person's card number to the site's access panel, which decides and drives the lock (see [osdp], "
        "[wiegand]); one or several.",
    )

    @field_validator("outputs")
    @classmethod
    def _some_outputs(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError("list one or more of relay, osdp, wiegand, each once")
        return value

    @field_validator("relay_pin", "contact_pin", "exit_pin", mode="before")
    @classmethod
    def _numeric_pin(cls, value: Any) -> Any:
        """'17' from the environment means BCM 17, the same as the number 17 in TOML."""
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value


class CameraConfig(Section):
    source: str = Field(
        "0",
        description=(
            "Camera: a V4L2 device index (0), a GStreamer pipeline ending in appsink (a Jetson CSI camera), "
            "an RTSP/HTTP URL, a video file, or a folder of images replayed as frames (ends the run when done)."
        ),
    )
    hold_frames: int = Field(
        5, ge=1, description="Replayed folders: each still is shown for this many frames (a person standing there)."
    )
    gap_frames: int = Field(
        6,
        ge=0,
        description="Replayed folders: empty frames between stills (the doorway empty between visits; more than "
        "policy.track_max_missed makes each still its own visit).",
    )
    replay_fps: float = Field(
        0.0,
        ge=0.0,
        description="Replays: 0 = every frame in turn, as fast as the loop goes; >0 = paced like a live camera, "
        "so frames the loop is too slow for are dropped.",
    )
    reconnect_initial_seconds: float = Field(
        0.5, gt=0.0, description="First wait before reopening a camera that failed; doubled on each failure."
    )
    reconnect_max_seconds: float = Field(30.0, gt=0.0, description="Longest wait between attempts to reopen a camera.")
    stall_seconds: float = Field(
        5.0, gt=0.0, description="A live camera that delivers no frame for this long is closed and reopened."
    )


class PolicyConfig(Section):
    window_frames: int = Field(5, ge=1, description="N: the last N frames of a face track are considered.")
    min_frames: int = Field(
        3, ge=1, description="K: a person is granted when K of the last N frames of their track reach the threshold."
    )
    max_faces: int = Field(
        10, ge=1, description="Faces decided per frame, largest first; more are counted but not recognised (a flood)."
    )
    track_iou: float = Field(
        0.3, gt=0.0, lt=1.0, description="Minimum box overlap (IoU) for a face to continue a track from the last frame."
    )
    track_max_missed: int = Field(
        5, ge=0, description="Frames a track survives without its face before the visit is over."
    )
    track_min_similarity: float = Field(
        0.3,
        ge=-1.0,
        le=1.0,
        description="A face whose embedding's cosine to its track's last frame falls below this is someone else: "
        "a new track (visit). Different people score below 0.3 in 99.6% of pairs, one person's photos above it in 96%.",
    )
    cooldown_seconds: float = Field(
        10.0, ge=0.0, description="After a grant, the same person is not granted or logged again for this long."
    )
    refusal_repeat_seconds: float = Field(
        30.0,
        ge=0.0,
        description="A face track refused once is logged again at most this often while it stays (abuse rate limit).",
    )
    tailgating: Literal["record", "refuse"] = Field(
        "record",
        description="A stranger beside a granted person: record = open and flag the event; refuse = keep the door shut.",
    )
    reload_check_seconds: float = Field(
        2.0, gt=0.0, description="How often the running kiosk looks for a newer model version or changed access rules."
    )

    @model_validator(mode="after")
    def _k_within_n(self) -> "PolicyConfig":
        if self.min_frames > self.window_frames:
            raise ValueError(f"min_frames ({self.min_frames}) cannot exceed window_frames ({self.window_frames})")
        return self


class AuditConfig(Section):
    key_file: Path | None = Field(
        None,
        description="HMAC key that chains the audit trail, so rows written by anyone without it do not verify; "
        "must lie outside the data directory, owner-only (`kiosk audit new-key PATH`; an existing log is moved "
        "under it once with `kiosk audit rekey`). Unset: the chain is plain sha256, which anyone can extend.",
    )


class PrivacyConfig(Section):
    key_file: Path | None = Field(
        None,
        description="Fernet key that encrypts face crops and thumbnails at rest; must lie outside the data "
        "directory (create it with `kiosk privacy new-key PATH`). Unset: stored unencrypted.",
    )
    thumbnails: bool = Field(False, description="Keep a face thumbnail with each access event.")
    thumbnail_retention_days: int = Field(
        7, ge=1, description="Event thumbnails older than this are deleted by the daily `kiosk audit purge`."
    )
    event_retention_days: int = Field(
        0,
        ge=0,
        description="Access events and admin actions older than this are purged daily (the chain stays "
        "verifiable from an anchor); 0 keeps them forever.",
    )


# --- MQTT (issue 17): events out, signed commands in; kiosk/integrations/ -------------------
class MqttConfig(Section):
    enabled: bool = Field(False, description="Publish events, door state and status to an MQTT broker and take signed commands.")
    host: str = Field("localhost", description="MQTT broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="MQTT broker port (8883 is the usual one with TLS).")
    username: str = Field("", description="Broker user name; empty connects without one.")
    password_file: Path | None = Field(
        None, description="File holding the broker password (first line); must be readable by its owner only."
    )
    topic_prefix: str = Field("", description="Topics start with this; empty means kiosk/<door>.")
    client_id: str = Field("", description="MQTT client id; empty means kiosk-<door>.")
    qos: Literal[1, 2] = Field(1, description="QoS of events: an event is marked sent when the broker acknowledges it.")
    keepalive_seconds: int = Field(30, ge=5, description="MQTT keepalive; the broker publishes the last will after 1.5x this without a word.")
    tls_ca_file: Path | None = Field(None, description="CA certificate that signed the broker's; set to connect with TLS.")
    tls_cert_file: Path | None = Field(None, description="Client certificate for TLS client authentication (with tls_key_file).")
    tls_key_file: Path | None = Field(None, description="Private key of tls_cert_file; readable by its owner only.")
    status_seconds: float = Field(10.0, gt=0.0, description="How often the status (fps, camera, recogniser, outbox depth) is published.")
    discovery: bool = Field(True, description="Publish Home Assistant discovery messages (retained) so the kiosk appears there.")
    discovery_prefix: str = Field("homeassistant", description="Home Assistant's MQTT discovery prefix.")
    command_secret_file: Path | None = Field(
        None,
        description="Shared secret (file, owner-only) that commands are signed with (HMAC-SHA256); unset: no commands are taken.",
    )
    command_window_seconds: float = Field(
        30.0, gt=0.0, le=600.0, description="A command's timestamp must be within this many seconds of the kiosk's clock."
    )
    home_assistant_commands: bool = Field(
        False,
        description="Also take Home Assistant's unsigned open/lockdown on <prefix>/ha/... (trusting the broker's ACL alone "
        "for those topics) and offer them as a button and a switch in discovery.",
    )
    thumbnails: bool = Field(
        False,
        description="Publish each event's face thumbnail (JPEG, decrypted) to <prefix>/thumbnail and offer it to Home "
        "Assistant as an image; only while privacy.thumbnails keeps them, else nothing is published. A published face "
        "leaves the kiosk's erasure and retention: the broker's subscribers keep their own copies.",
    )
    outbox_keep_sent: int = Field(
        1000, ge=0, description="Events already acknowledged by the broker kept in the outbox; older ones are pruned."
    )
    drain_seconds: float = Field(
        3.0, ge=0.0, description="On stop, how long to keep publishing unsent events to a connected broker before disconnecting."
    )


class AdminConfig(Section):
    exports_dir: Path = Field(
        Path("exports"),
        description="Where the admin app writes CSV exports (created owner-only; relative paths are under home).",
    )


# --- access panels (issue 16): credentials, OSDP and Wiegand outputs -------------------------

CardFormat = Literal[26, 34]


class CredentialsConfig(Section):
    free_facility: int | None = Field(
        None, ge=0, le=65535,
        description="Facility code of the free range people without a card get their number from; unset with "
        "free_first = raw numbers.",
    )
    free_first: int | None = Field(
        None, ge=0, description="First number of the free range; unset: nobody is given a number automatically."
    )
    free_last: int | None = Field(None, ge=0, description="Last number of the free range (inclusive).")
    unknown_face_card: str | None = Field(
        None, pattern=r"^[0-9]+(:[0-9]+)?$",
        description="Card (FACILITY:NUMBER or a raw NUMBER) the panel outputs send once per visit of a face "
        "refused as not recognised, for panels that log attempts; never a card anyone holds. Unset: strangers "
        "send nothing.",
    )
    remote_open_card: str | None = Field(
        None, pattern=r"^[0-9]+(:[0-9]+)?$",
        description="Card (FACILITY:NUMBER or a raw NUMBER) the panel outputs send for a remote open (MQTT `open`) "
        "in panel modes; give it access to this door in the panel. Never a card anyone holds. Unset: a remote "
        "open in panel modes is refused and logged (the kiosk drives no lock there).",
    )

    @model_validator(mode="after")
    def _range(self) -> "CredentialsConfig":
        if (self.free_first is None) != (self.free_last is None):
            raise ValueError("set both free_first and free_last, or neither")
        if self.free_first is not None and self.free_last is not None and self.free_first > self.free_last:
            raise ValueError(f"free_first {self.free_first} is above free_last {self.free_last}")
        if self.unknown_face_card is not None and self.unknown_face_card == self.remote_open_card:
            raise ValueError("unknown_face_card and remote_open_card must differ: the panel must tell a stranger from a remote open")
        return self


class OsdpConfig(Section):
    port: str = Field("/dev/ttyUSB0", description="Serial device of the RS-485 adapter (any tty, a pty included).")
    baud: int = Field(9600, description="Line speed the panel polls at (9600, 19200, 38400, 57600, 115200).")
    address: int = Field(0, ge=0, le=126, description="This reader's OSDP address on the bus, as set in the panel.")
    format: CardFormat = Field(26, description="Wiegand bits sent in each card read: 26 (H10301) or 34.")
    secure_channel: bool = Field(
        True, description="Require OSDP's secure channel; off only for a panel that cannot do it."
    )
    key_file: Path | None = Field(
        None,
        description="File holding the 16-byte secure channel base key (SCBK) as 32 hex digits; owner-only and "
        "outside the data directory. Required while secure_channel is on.",
    )
    output_drives_relay: bool = Field(
        False,
        description="Let the panel's OSDP output commands pulse the kiosk's own lock relay (a site that wires the "
        "lock to the kiosk); off: they are ignored.",
    )
    link_timeout_seconds: float = Field(
        3.0, gt=0.0, description="A secure channel not set up this long after the panel starts polling is logged as refused."
    )
    install_mode: bool = Field(
        False,
        description="OSDP install mode: the panel may set a new key (KEYSET, over the default key SCBK-D if the "
        "kiosk has none yet), which is written to key_file. Only while installing; off in service.",
    )

    @model_validator(mode="after")
    def _install_needs_a_key_file(self) -> "OsdpConfig":
        if self.install_mode and (not self.secure_channel or self.key_file is None):
            raise ValueError("install_mode needs secure_channel = true and a key_file to keep the panel's key in")
        return self


class WiegandConfig(Section):
    d0_pin: PinSpec = Field(23, description="GPIO driving the panel's DATA0 (D0) line, through a level shifter.")
    d1_pin: PinSpec = Field(24, description="GPIO driving the panel's DATA1 (D1) line, through a level shifter.")
    format: CardFormat = Field(26, description="Frame length: 26 (H10301) or 34 bits.")
    pulse_us: int = Field(50, ge=20, le=500, description="Width of each bit's low pulse, microseconds.")
    interval_us: int = Field(2000, ge=200, le=20000, description="From one bit's start to the next bit's start, microseconds.")

    @field_validator("d0_pin", "d1_pin", mode="before")
    @classmethod
    def _numeric_pin(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @model_validator(mode="after")
    def _pulse_inside_interval(self) -> "WiegandConfig":
        if self.pulse_us * 2 > self.interval_us:
            raise ValueError(f"pulse_us {self.pulse_us} must be at most half of interval_us {self.interval_us}")
        return self


# --- end of access panels ------------------------------------------------------------------


# --- liveness (issue 14) -------------------------------------------------------------------


class LivenessConfig(Section):
    enabled: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Presentation-attack check before a grant: auto = on whenever both models exist; on = the door "
        "refuses to start without them; off = recognition alone opens the door (a photo can).",
    )
    v2_model: Path = Field(
        Path("models/minifasnet_v2_2.7_80x80.onnx"),
        description="Silent-Face MiniFASNetV2 ONNX (fed the face box enlarged 2.7x); relative paths are under home.",
    )
    v1se_model: Path = Field(
        Path("models/minifasnet_v1se_4.0_80x80.onnx"),
        description="Silent-Face MiniFASNetV1SE ONNX (fed the face box enlarged 4.0x); relative paths are under home.",
    )
    threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="p(live) a frame must reach; unset = the threshold the newest `kiosk calibrate` chose for this "
        "site, else 0.5.",
    )
    frames: int = Field(5, ge=1, description="N: the last N scored frames of a face track are considered.")
    required: int = Field(
        3, ge=1, description="K: a track is live when K of its last N scored frames reach the threshold."
    )
    target_bpcer: float = Field(
        0.05,
        gt=0.0,
        lt=1.0,
        description="`kiosk calibrate` sets the threshold refusing this share of the site's live faces (BPCER).",
    )
    head_turn: bool = Field(
        False,
        description="Active check for high-security doors: the display asks for a small head turn (left or right, "
        "at random) and the landmarks must move as a 3D head does.",
    )
    head_turn_seconds: float = Field(
        4.0, gt=0.0, description="How long a visit has to show the asked head turn before it is refused."
    )

    @model_validator(mode="after")
    def _k_within_n(self) -> "LivenessConfig":
        if self.required > self.frames:
            raise ValueError(f"required ({self.required}) cannot exceed frames ({self.frames})")
        return self


class Settings(BaseSettings):
    """Everything the kiosk reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="KIOSK_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    home: Path = Field(DEFAULT_HOME, description="Data directory (KIOSK_HOME): database, crops, models.")
    door: str = Field("front", description="This door's name in the access log.")
    models: ModelPaths = Field(default_factory=ModelPaths)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    door_hardware: DoorHardwareConfig = Field(default_factory=DoorHardwareConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    site: SiteConfig = Field(default_factory=SiteConfig)
    credentials: CredentialsConfig = Field(default_factory=CredentialsConfig)  # access panels (issue 16)
    osdp: OsdpConfig = Field(default_factory=OsdpConfig)
    wiegand: WiegandConfig = Field(default_factory=WiegandConfig)
    liveness: LivenessConfig = Field(default_factory=LivenessConfig)  # issue 14
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    @model_validator(mode="after")
    def _anchor_model_paths(self) -> "Settings":
        """Relative model paths live under the data directory, wherever KIOSK_HOME puts it."""
        for key in ("detector", "embedder", "clip_config"):
            path = getattr(self.models, key)
            if path is not None and not path.is_absolute():
                object.__setattr__(self.models, key, self.home / path)
        # --- liveness (issue 14) ---
        for key in ("v2_model", "v1se_model"):
            path = getattr(self.liveness, key)
            if not path.is_absolute():
                object.__setattr__(self.liveness, key, self.home / path)
        return self

    @model_validator(mode="after")
    def _site_door_is_the_door(self) -> "Settings":
        """A site door's events carry its registered name: the site's row-level security checks it."""
        if self.site.door and self.door != self.site.door:
            if "door" in self.model_fields_set:
                raise ValueError(f"door ({self.door!r}) and site.door ({self.site.door!r}) must be the same name")
            object.__setattr__(self, "door", self.site.door)
        return self

    @property
    def site_database(self) -> bool:
        """The database is a site's (PostgreSQL): an admin's view of many doors, no door service beside it."""
        return self.database_url.startswith("postgresql")

    @property
    def site_door(self) -> bool:
        """A door of a site, on its own replica: its people, models and calibrations are changed at the site."""
        return bool(self.site.url) and not self.site_database

    @property
    def database_url(self) -> str:
        if not self.database.url:
            return f"sqlite:///{self.home / 'kiosk.db'}"
        return with_password(self.database.url, self.database.password_file)

    @property
    def crops_dir(self) -> Path:
        return self.home / "crops"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "models"

    @property
    def exports_dir(self) -> Path:
        return self.home / self.admin.exports_dir  # an absolute exports_dir stays as it is

    @property
    def mqtt_thumbnails(self) -> bool:
        """Faces go out over MQTT: asked for (mqtt.thumbnails) and kept at all (privacy.thumbnails), never one alone."""
        return self.mqtt.thumbnails and self.privacy.thumbnails


def with_password(url: str, password_file: Path | None) -> str:
    """The URL with the password read from its file (the file is read at use, never stored)."""
    if password_file is None:
        return url
    from sqlalchemy.engine import make_url

    try:
        password = password_file.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"password file {password_file}: {exc.strerror}") from None
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def load_settings(config_file: Path | None = None) -> Settings:
    """Read the configuration (file from the argument or KIOSK_CONFIG), every mistake one ConfigError line."""
    if config_file is None and os.environ.get("KIOSK_CONFIG"):
        config_file = Path(os.environ["KIOSK_CONFIG"])
    cls = Settings
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        cls = type("FileSettings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}})
    try:
        return cls()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except SettingsError as exc:  # an environment value pydantic-settings could not even parse
        raise ConfigError(_describe_env(exc)) from None


def _describe_env(exc: SettingsError) -> str:
    """Name the variable: a list or table key set from the environment must be written as JSON."""
    for name, value in sorted(os.environ.items()):
        parts = name.removeprefix(Settings.model_config["env_prefix"]).lower().split(Settings.model_config["env_nested_delimiter"])
        if name.startswith(Settings.model_config["env_prefix"]) and len(parts) == 2 and _is_collection(parts[0], parts[1]):
            try:
                json.loads(value)
            except ValueError:
                example = json.dumps(value.split(","))
                return f"config: {name} must be written as JSON, e.g. {name}='{example}' (got {value!r})"
    return f"config: cannot read the environment: {exc}"


def _is_collection(section: str, key: str) -> bool:
    field = Settings.model_fields.get(section)
    annotation = field.annotation if field is not None else None
    inner = getattr(annotation, "model_fields", {}).get(key)
    if inner is None:
        return False
    target = inner.annotation
    return target in (list, dict) or typing.get_origin(target) in (list, dict)


def _describe(exc: ValidationError) -> str:
    """The first validation problem as one line naming the key, as the file would spell it."""
    err = exc.errors()[0]
    key = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"config: unknown key '{key}'"
    env = "KIOSK_" + "__".join(str(p).upper() for p in err["loc"])
    return f"config: '{key}' (or {env}): {err['msg']} (got {err.get('input')!r})"


def require_file(key: str, path: Path | None) -> Path:
    """A model path must exist before anything tries to load it."""
    if path is None:
        raise ConfigError(f"config: '{key}' is not set")
    if not path.is_file():
        env = "KIOSK_" + "__".join(part.upper() for part in key.split("."))
        raise ConfigError(
            f"config: '{key}' names a file that does not exist: {path} "
            f"(set '{key}' in the config file or {env}; README.md, \"Models and licences\", lists the models)"
        )
    return path


def to_toml(settings: Settings) -> str:
    """The configuration in force as commented TOML (each key's description above it)."""
    lines: list[str] = []
    top = {k: f for k, f in Settings.model_fields.items() if not _is_section(f.annotation)}
    for name, field in top.items():
        lines += _key_lines(name, getattr(settings, name), field.description)
    for name, field in Settings.model_fields.items():
        if name in top:
            continue
        section: BaseModel = getattr(settings, name)
        lines += ["", f"[{name}]"]
        for key, sub in type(section).model_fields.items():
            lines += _key_lines(key, getattr(section, key), sub.description)
    return "\n".join(lines) + "\n"


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _key_lines(key: str, value: Any, description: str | None) -> list[str]:
    out = [f"# {description}"] if description else []
    if value is None:
        out.append(f"# {key} =  (unset)")
    else:
        out.append(f"{key} = {_toml_value(value)}")
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
