"""The parts a command needs, built once and only when first used (settings, database, models).

Commands receive this object instead of reaching for globals, so tests hand in their own
settings and the admin UI and the door service build the same parts the same way.
"""

from __future__ import annotations

import logging
import os
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.audit_chain import CHAINS, written_before_key
from db.session import make_engine, restrict_permissions, session_factory, upgrade
from kiosk.config import Settings
from kiosk.errors import ConfigError
from kiosk.recognition.face_embedder import FaceEmbedder
from kiosk.storage.audit_key import load_audit_key
from kiosk.storage.crop_store import CropStore
from kiosk.vision.face_detection import FaceDetector

log = logging.getLogger(__name__)


class KioskContext:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.crops = CropStore(settings.crops_dir, settings.privacy.key_file, settings.home)

    @cached_property
    def engine(self) -> Engine:
        """The database, migrated to the current schema on first use (first start included)."""
        self._prepare_home()
        engine = make_engine(self.settings.database_url, self.settings.database.busy_timeout_ms)
        upgrade(engine)
        return engine

    def _prepare_home(self) -> None:
        """The data directory, created private; a file or an unusable place there is one clear line."""
        home = self.settings.home
        where = f"the data directory (home, KIOSK_HOME) {home}"
        if home.exists() and not home.is_dir():
            raise ConfigError(f"config: {where} is a file, not a folder")
        try:
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            restrict_permissions(home)
        except OSError as exc:
            raise ConfigError(f"config: {where} cannot be created or used: {exc.strerror or exc}") from None
        if not os.access(home, os.W_OK | os.X_OK):
            raise ConfigError(f"config: {where} is not writable by this user")

    @cached_property
    def audit_key(self) -> bytes | None:
        """The audit chain's HMAC key (audit.key_file), checked like the crop key; None when unset."""
        key_file = self.settings.audit.key_file
        return None if key_file is None else load_audit_key(key_file, self.settings.home)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions that chain under the audit key; a log not yet moved under a configured key is refused."""
        sessions = session_factory(self.engine, self.audit_key)
        if self.audit_key is not None:
            with sessions() as session:
                unkeyed = [t for t in CHAINS if written_before_key(session, t, self.audit_key)]
            if unkeyed:
                raise ConfigError(
                    f"the audit log ({', '.join(unkeyed)}) was written without audit.key_file: run `kiosk audit rekey` "
                    "once to move it under the key (README.md, \"Hardening: keyed audit trail, full disk, one person per track\")"
                )
        return sessions

    @cached_property
    def detector(self) -> FaceDetector:
        return FaceDetector.from_settings(self.settings.models, self.settings.detection)

    @cached_property
    def embedder(self) -> FaceEmbedder:
        return FaceEmbedder.from_settings(self.settings.models)
