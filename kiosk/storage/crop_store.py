"""Face images on disk (enrolment crops, event thumbnails): written atomically, private, optionally encrypted.

``CropStore.write`` and ``CropStore.read`` are the only way face images reach the disk and come back.
With ``privacy.key_file`` set, each file is a Fernet token (AES-128-CBC + HMAC) behind a
short marker, so a copied data directory shows no faces without the key, which must live
outside it. KioskContext builds the one CropStore of a kiosk from its settings (``ctx.crops``)
and every caller reads and writes through it, so no code path can store a face in the clear by
forgetting to hand the key on. Plain files written before encryption was turned on are still
read.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from cryptography.fernet import Fernet, InvalidToken

from kiosk.errors import ConfigError, ImageError, KioskError, StorageFull
from kiosk.vision.images import decode_image

MAGIC = b"KIOSK-FERNET-1\n"

def load_key(key_file: Path, home: Path | None) -> Fernet:
    """The Fernet cipher from a key file that is private and outside the data directory."""
    path = key_file.expanduser().resolve()
    if home is not None:
        require_outside(key_file, home)
    if not path.is_file():
        raise ConfigError(f"config: 'privacy.key_file' names a file that does not exist: {key_file} (create one with `kiosk privacy new-key {key_file}`)")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"config: 'privacy.key_file' {key_file} is readable by other users: chmod 600 it")
    try:
        return Fernet(path.read_bytes().strip())
    except ValueError:
        raise ConfigError(f"config: 'privacy.key_file' {key_file} is not a Fernet key") from None


def require_outside(key_file: Path, home: Path) -> None:
    """A key kept beside the crops it locks protects nothing when the data directory is copied."""
    if key_file.expanduser().resolve().is_relative_to(home.expanduser().resolve()):
        raise ConfigError(f"config: 'privacy.key_file' must lie outside the data directory {home}: {key_file}")


def new_key(path: Path) -> None:
    """Write a fresh crop key; never overwrites one (that would orphan every crop)."""
    write_new_key_file(path, Fernet.generate_key())


def write_new_key_file(path: Path, key: bytes) -> None:
    """A new key file readable by this user only, in private folders; an existing file is never overwritten."""
    private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KioskError(f"key file already exists, not overwritten: {path}") from None
    try:
        os.write(fd, key + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_key_file(path: Path, key: bytes) -> None:
    """Write a key file over the one there (a key set from outside, e.g. by the access panel) in one
    step: a private temporary file beside it, renamed over it; a crash leaves old or new.

    Not synced here: the caller follows with `sync_to_disk`, in a thread where it must answer fast
    (the panel waits 200 ms for its KEYSET reply; two fsyncs on a busy disk can take longer). ext4
    flushes a file renamed over another before the rename commits, so a crash still leaves old or new.
    """
    private_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # created 0600
    try:
        try:
            os.write(fd, key + b"\n")
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync_to_disk(path: Path) -> None:
    """fsync a file and its folder, so the file and the rename that put it there survive a power cut."""
    for target, flags in ((path, os.O_RDONLY), (path.parent, os.O_RDONLY)):
        fd = os.open(target, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def private_dirs(folder: Path) -> None:
    """Create a folder and any missing parents as 0700 (``mkdir(parents=True)`` gives parents the umask's mode)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for part in reversed(missing):
        part.mkdir(mode=0o700, exist_ok=True)


def person_dir(crops_dir: Path, person_id: int) -> Path:
    return crops_dir / str(person_id)


class CropStore:
    """The kiosk's face images: where enrolment crops live, and the key (if any) that seals them."""

    def __init__(self, crops_dir: Path, key_file: Path | None, home: Path):
        self.crops_dir = crops_dir
        self.key_file = key_file
        self.home = home
        self._cipher: Fernet | None = None  # the key is read and checked on first use

    def _fernet(self) -> Fernet | None:
        if self.key_file is None:
            return None
        if self._cipher is None:
            self._cipher = load_key(self.key_file, self.home)
        return self._cipher

    def check_key(self) -> None:
        """Load the configured key now (ConfigError if refused), before work that would store anything."""
        self._fernet()

    def write(self, path: Path, crop: np.ndarray) -> None:
        """PNG (lossless), encrypted when a key is configured, written to a temporary name, fsynced, renamed."""
        ok, buf = cv2.imencode(".png", crop)
        if not ok:
            raise ImageError("could not encode the aligned crop")
        data = buf.tobytes()
        cipher = self._fernet()
        if cipher is not None:
            data = MAGIC + cipher.encrypt(data)
        tmp = path.with_name(path.name + ".tmp")
        try:
            private_dirs(path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise StorageFull(f"disk full: cannot store the face image {path}; free space on its disk") from None
            raise

    def read(self, path: Path) -> np.ndarray:
        data = path.read_bytes()
        if data.startswith(MAGIC):
            cipher = self._fernet()
            if cipher is None:
                raise KioskError(f"face image {path} is encrypted, but 'privacy.key_file' is not set")
            try:
                data = cipher.decrypt(data[len(MAGIC):])
            except InvalidToken:
                raise KioskError(f"face image {path} does not decrypt with {self.key_file}: wrong key file, or the file is damaged") from None
        return decode_image(data)


def remove_person_crops(crops_dir: Path, person_id: int) -> None:
    shutil.rmtree(person_dir(crops_dir, person_id), ignore_errors=True)
