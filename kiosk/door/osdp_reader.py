"""OSDP out to an access panel: the kiosk as a peripheral device (a reader) on the panel's RS-485 bus.

libosdp runs the PD in-process: its thread answers the panel's polls over the serial port
(pyserial; any tty, a pseudo-terminal included). A grant becomes a card read event carrying
the person's card as a raw Wiegand frame (26 or 34 bits, the panel decodes facility and
number with its own format setting). Secure channel is on by default, with the SCBK from an
owner-only key file outside the data directory; a panel with another key is refused by
libosdp and the refusal logged and reported. Only in install mode (`osdp.install_mode`) may a
panel open the secure channel with OSDP's default key (SCBK-D) while the kiosk has no key yet;
a new key the panel sets (KEYSET, in install mode or over the secure channel with the current
key) is written to the key file before libosdp acknowledges it, or refused if it cannot be.

Back from the panel: LED commands (green = granted, red = refused) after a card read are the
panel's answer, shown on the door display and stored; buzzer commands are remembered with
the LED state; an output command can drive the kiosk's own relay where a site wires the lock
to the kiosk (`osdp.output_drives_relay`). The link is watched: a lost link is logged and
reported (the door service stores it, `kiosk doctor` and the admin door screen show it);
card reads still queued when it drops are flushed, never delivered late, and recorded as not
delivered. Recognition goes on whatever the link does. The kiosk knows no tamper or power
state of its own, so it reports none.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import osdp
from osdp import Capability, CardFormat, Command, CommandLEDColor, Event, LibFlag, LogLevel, PDCapabilities, PDInfo, PeripheralDevice

from kiosk.config import OsdpConfig
from kiosk.door.outputs import DoorOutput, NoticeCallback, PanelNotice, SendResult, notice
from kiosk.door.relay import DoorRelay
from kiosk.door.wiegand import frame_bits
from kiosk.errors import ConfigError, KioskError
from kiosk.storage.credentials import Card
from kiosk.storage.crop_store import replace_key_file, sync_to_disk

if TYPE_CHECKING:
    from kiosk.config import Settings

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.05
ANSWER_SECONDS = 10.0  # an LED command this soon after a card read is the panel's answer to it
LED_ANSWERS = {"green": True, "red": False}
KEYSET_SCBK = 1  # KEYSET key type: the secure channel base key

SaveKey = Callable[[bytes], None]


def key_path(key_file: Path, home: Path) -> Path:
    """Where the key lives; never inside the data directory, whose copies would carry it."""
    path = key_file.expanduser().resolve()
    if path.is_relative_to(home.expanduser().resolve()):
        raise ConfigError(f"config: 'osdp.key_file' must lie outside the data directory {home}: {key_file}")
    return path


def load_scbk(key_file: Path | None, home: Path) -> bytes:
    """The 16-byte SCBK from a private key file outside the data directory (32 hex digits)."""
    if key_file is None:
        raise ConfigError("config: 'osdp.key_file' is not set; the secure channel needs the panel's SCBK (or set osdp.secure_channel = false)")
    path = key_path(key_file, home)
    try:
        info = path.stat()
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config: 'osdp.key_file' {key_file} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"config: 'osdp.key_file' {key_file} is readable by other users: chmod 600 it")
    if info.st_uid != os.getuid():
        raise ConfigError(f"config: 'osdp.key_file' {key_file} belongs to another user")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 16:
        raise ConfigError(f"config: 'osdp.key_file' {key_file} must hold the 16-byte SCBK as 32 hex digits")
    return key


def save_scbk(key: bytes, key_file: Path, home: Path) -> None:
    """Keep a key the panel set where load_scbk reads it: replaced in one step (a crash leaves the old
    key or the new, never half of one), owner-only, and read back through the same checks."""
    if len(key) != 16:
        raise KioskError(f"an SCBK is 16 bytes, the panel sent {len(key)}")
    path = key_path(key_file, home)
    # called before libosdp replies to the panel's KEYSET: the fsyncs go to a thread, so a busy disk
    # cannot hold the reply past the panel's 200 ms timeout (it would drop the reader for minutes)
    replace_key_file(path, key.hex().encode())
    if load_scbk(key_file, home) != key:
        raise KioskError(f"{key_file} does not read back as the key just written")
    threading.Thread(target=_sync_key, args=(path,), name="osdp-key-sync", daemon=True).start()


def _sync_key(path: Path) -> None:
    try:
        sync_to_disk(path)
    except OSError as exc:
        log.error("OSDP new key in %s could not be synced to disk (%s): a power cut now may lose it", path, exc)


def pack_bits(bits: list[int]) -> bytes:
    """Wiegand bits MSB first, the last byte padded with zeros (OSDP's raw card data)."""
    value = 0
    for bit in bits:
        value = (value << 1) | bit
    pad = -len(bits) % 8
    return (value << pad).to_bytes((len(bits) + pad) // 8, "big")


def _led_color(code: int) -> str:
    names = {getattr(CommandLEDColor, n): n.lower() for n in ("Black", "Red", "Green", "Amber", "Blue", "Magenta", "Cyan", "White")}
    return names.get(code, f"colour {code}")


class SerialChannel(osdp.Channel):
    """The RS-485 port for libosdp; a port that fails reads as silence (the link watcher reports it)."""

    def __init__(self, port: str, baud: int):
        import serial

        super().__init__()
        try:
            self.serial = serial.Serial(port, baud, timeout=0, write_timeout=1.0)
        except (serial.SerialException, ValueError) as exc:
            raise KioskError(f"OSDP port {port} cannot be opened: {exc}") from None
        self.port = port
        self._failed = False

    def read(self, max_bytes: int) -> bytes:
        try:
            return self.serial.read(max_bytes)
        except Exception as exc:  # libosdp's thread must not die on a pulled adapter
            self._fault(exc)
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return self.serial.write(buf) or 0
        except Exception as exc:
            self._fault(exc)
            return 0

    def flush(self) -> None:
        try:
            self.serial.reset_input_buffer()
        except Exception as exc:
            self._fault(exc)

    def close(self) -> None:
        self.serial.close()

    def _fault(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            log.error("OSDP port %s failed: %s", self.port, exc)


class OsdpReader(DoorOutput):
    """A libosdp peripheral device that sends grants as card reads and hears the panel back."""

    name = "osdp"

    def __init__(
        self,
        channel: SerialChannel,
        config: OsdpConfig,
        scbk: bytes | None,
        relay: DoorRelay | None = None,
        relay_seconds: float = 3.0,
        save_key: SaveKey | None = None,
    ):
        self.config = config
        self.secure = config.secure_channel
        self.install = self.secure and config.install_mode
        self._save_key = save_key
        self._keyed = scbk is not None or not self.secure  # False: install mode until the panel sets a key
        self.relay = relay
        self.relay_seconds = relay_seconds
        self._channel = channel
        self._listeners: list[NoticeCallback] = []
        self._lock = threading.Lock()
        self._pending: deque[str] = deque()  # cards read out but not yet acknowledged by the panel
        self._asked_at: float | None = None  # monotonic time of the last card read the panel has not answered
        self.led = "off"  # the panel's last LED colour and beeps: the door display's state
        self.beeps = 0
        self.state = "waiting for the panel" if self._keyed else "install mode: waiting for the panel to set the key"
        self._usable = False
        self._refused = False
        self._online_since: float | None = None
        caps = [
            (Capability.CardDataFormat, 1, 1),
            (Capability.LEDControl, 1, 1),
            (Capability.AudibleControl, 1, 1),
        ]
        if relay is not None:
            caps.append((Capability.OutputControl, 1, 1))
        if self.secure:
            caps.append((Capability.CommunicationSecurity, 1, 1))
        # install mode cannot enforce the secure channel: enforcing forbids the default key SCBK-D
        flags = [LibFlag.InstallMode] if self.install else [LibFlag.EnforceSecure] if self.secure else []
        if not self.secure:
            log.warning("OSDP secure channel is off: card numbers cross the bus in clear")
        if self.install:
            log.warning("OSDP install mode is on: a panel may set a new key%s; turn osdp.install_mode off once it has",
                        "" if scbk is not None else " over the default key SCBK-D (no card reads until it has)")
        info = PDInfo(config.address, channel, scbk=scbk if self.secure else None, flags=flags, name="kiosk")
        self.pd = PeripheralDevice(
            info, PDCapabilities(caps), log_level=LogLevel.Warning,
            command_handler=self._command, event_completion_handler=self._delivered,
        )
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="osdp-link", daemon=True)

    def start(self) -> None:
        """Answer the panel from now on: started with the door loop, once the models are loaded, since
        loading them holds the interpreter long enough to miss the panel's 200 ms reply deadline."""
        if not self._watcher.is_alive() and not self._stop.is_set():
            self._channel.flush()  # polls that queued up before we listened are stale
            self.pd.start()
            self._watcher.start()

    # --- DoorOutput ---------------------------------------------------------------------------

    def listen(self, callback: NoticeCallback) -> None:
        self._listeners.append(callback)

    def link(self) -> str:
        return self.state

    def grant(self, person: str | None, card: Card | None) -> SendResult:
        if card is None:
            return SendResult(self.name, False, f"{person or 'this person'} has no card number")
        try:
            bits = frame_bits(card, self.config.format)
        except KioskError as exc:
            return SendResult(self.name, False, str(exc))
        if not self._usable:
            return SendResult(self.name, False, f"link down ({self.state})")
        event = {
            "event": Event.CardRead, "reader_no": 0, "direction": 0, "format": CardFormat.Wiegand,
            "length": len(bits), "data": pack_bits(bits),
        }
        # Never hold self._lock while libosdp's lock is taken: its thread calls back into us holding its own.
        with self._lock:
            self._pending.append(str(card))
            self._asked_at = time.monotonic()
        queued = self.pd.submit_event(event)
        if not queued:
            with self._lock:
                if self._pending and self._pending[-1] == str(card):
                    self._pending.pop()
            return SendResult(self.name, False, "libosdp refused the card read (event queue full)")
        return SendResult(self.name, True, f"card {card} as {len(bits)}-bit card read")

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        started = self._watcher.is_alive()
        try:
            if started:
                self._watcher.join(timeout=2.0)
                self.pd.teardown()
        finally:
            self._channel.close()

    # --- from libosdp's thread ----------------------------------------------------------------

    def _command(self, command: dict[str, Any]) -> tuple[int, None]:
        kind = command.get("command")
        if kind == Command.Keyset:
            return (0 if self._on_keyset(command) else -1), None  # -1: libosdp answers NAK, the old key stays
        if kind == Command.LED:
            self._on_led(_led_color(command.get("on_color", -1)))
        elif kind == Command.Buzzer:
            self.beeps = int(command.get("rep_count", 0)) if command.get("control_code") == 2 else 0
        elif kind == Command.Output:
            self._on_output(command)
        return 0, None

    def _on_led(self, colour: str) -> None:
        self.led = colour
        with self._lock:
            asked = self._asked_at
            answered = colour in LED_ANSWERS and asked is not None and time.monotonic() - asked <= ANSWER_SECONDS
            if answered:
                self._asked_at = None  # one answer per card read
        if answered:
            beeps = f", {self.beeps} beep{'s' * (self.beeps != 1)}" if self.beeps else ""
            self.beeps = 0  # beeps go with the answer they came before
            self._tell(notice(self.name, "answer", LED_ANSWERS[colour], f"LED {colour}{beeps}"))

    def _on_keyset(self, command: dict[str, Any]) -> bool:
        """A new SCBK from the panel: saved before libosdp acknowledges and switches to it, so the kiosk
        still has the panel's key after a restart; one that cannot be saved is refused."""
        key = bytes(command.get("data") or b"")
        saved = False
        if command.get("type") != KEYSET_SCBK or len(key) != 16:
            detail = f"refused a new key from the panel: not a 16-byte SCBK (type {command.get('type')}, {len(key)} bytes)"
        elif self._save_key is None:
            detail = "refused a new key from the panel: no osdp.key_file to keep it in"
        else:
            try:
                self._save_key(key)
            except (KioskError, OSError) as exc:
                detail = f"refused a new key from the panel: it could not be saved to {self.config.key_file} ({exc})"
            else:
                saved = True
                how = "in install mode" if self.install else "over the secure channel"
                detail = f"the panel set a new secure channel key ({how}), saved to {self.config.key_file}"
        if saved:
            log.warning("OSDP %s%s", detail, "; now set osdp.install_mode = false" if self.install else "")
        else:
            log.error("OSDP %s", detail)
        self._tell(notice(self.name, "key", saved, detail))
        if saved:
            self._keyed = True  # after the key notice, so the link's "up" that may follow comes after it
        return saved

    def _on_output(self, command: dict[str, Any]) -> None:
        if self.relay is None:
            log.info("OSDP output command ignored (osdp.output_drives_relay is off): %s", command)
            return
        code, timer = command.get("control_code"), command.get("timer_count", 0) or 0
        if code == 4 and timer > 0:  # temporary on, timer in 100 ms units
            self.relay.pulse(timer / 10)
        elif code == 2:  # permanent on: the kiosk never holds its lock open without a deadline
            log.warning("OSDP permanent-on output command: relay opened for %.1f s only", self.relay_seconds)
            self.relay.pulse(self.relay_seconds)
        elif code in (1, 3):
            self.relay.close()

    def _delivered(self, _event: dict[str, Any], status: int) -> None:
        with self._lock:
            card = self._pending.popleft() if self._pending else "?"
        if status != 0:
            self._tell(notice(self.name, "link", False, f"card {card} NOT delivered (status {status})"))

    # --- the link -----------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            online, secure = self.pd.is_online(), self.pd.is_sc_active()
            now = time.monotonic()
            usable = online and self._keyed and (secure or not self.secure)
            if usable or not online:
                self._online_since = None
            elif self._online_since is None:  # polled, but no secure channel: since when
                self._online_since = now
            if usable and not self._usable:
                self._usable, self._refused = True, False
                self.state = "up (no secure channel)" if not self.secure else "secure channel up (install mode)" if self.install else "secure channel up"
                log.warning("OSDP link to the panel %s", self.state)
                self._tell(notice(self.name, "link", True, self.state))
            elif not usable and self._usable:
                self._usable = False
                self.state = "link lost: the panel stopped polling"
                lost = self._flush()
                log.error("OSDP %s%s", self.state, f"; not delivered: {', '.join(lost)}" if lost else "")
                self._tell(notice(self.name, "link", False, self.state + (f"; cards not delivered: {', '.join(lost)}" if lost else "")))
            elif (
                not usable and self.secure and not self._refused and self._online_since is not None
                and now - self._online_since >= self.config.link_timeout_seconds
            ):
                self._refused = True
                self.state = (
                    "secure channel refused: the panel's key differs from osdp.key_file, or it dropped the channel" if self._keyed
                    else "install mode: the panel has not set a key (set it to install this reader without enforcing its key)"
                )
                log.error("OSDP %s", self.state)
                self._tell(notice(self.name, "link", False, self.state))

    def _flush(self) -> list[str]:
        """Card reads the panel never took are dropped, not delivered late when the link returns."""
        with self._lock:
            lost = list(self._pending)
            self._pending.clear()
            self._asked_at = None
        with self.pd.lock:
            self.pd.ctx.flush_events()
        return lost

    def _tell(self, message: PanelNotice) -> None:
        for callback in self._listeners:
            try:
                callback(message)
            except Exception:
                log.exception("OSDP notice listener failed")


def build_osdp(settings: Settings, relay: DoorRelay) -> OsdpReader:
    """The configured reader on its serial port; the key is checked before the port is opened (in install
    mode the key file may not exist yet: the panel's key will be written there)."""
    config = settings.osdp
    scbk: bytes | None = None
    save_key: SaveKey | None = None
    if config.secure_channel:
        no_key_yet = config.install_mode and config.key_file is not None and not key_path(config.key_file, settings.home).exists()
        scbk = None if no_key_yet else load_scbk(config.key_file, settings.home)
        if config.key_file is not None:
            save_key = partial(save_scbk, key_file=config.key_file, home=settings.home)
    channel = SerialChannel(config.port, config.baud)
    try:
        return OsdpReader(
            channel, config, scbk,
            relay=relay if config.output_drives_relay else None,
            relay_seconds=settings.door_hardware.pulse_seconds,
            save_key=save_key,
        )
    except BaseException:
        channel.close()
        raise
