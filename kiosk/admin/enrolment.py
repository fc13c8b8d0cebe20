"""Enrolment: photos in, one aligned face sample per photo stored, every file's outcome reported.

Each sample is committed on its own, after its crop is safely on disk, so an interruption or a
bad file never costs the samples already stored. The person is created in the same
transaction as their first sample, so an enrolment that stores nothing (every photo refused,
a photo that is already someone else's, a refused crop key) leaves no empty person behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import AdminAction, FaceSample, Person
from kiosk.admin.person_names import person_name
from kiosk.errors import ImageError, KioskError
from kiosk.storage.crop_store import CropStore, person_dir, remove_person_crops
from kiosk.vision.face_alignment import CLIP_SIZE, align
from kiosk.vision.face_detection import FaceDetector, primary_face
from kiosk.vision.images import IMAGE_SUFFIXES, decode_image

STORED, DUPLICATE, FAILED = "stored", "duplicate", "failed"


@dataclass
class FileResult:
    path: str
    status: str  # stored | duplicate | failed
    reason: str = ""
    faces: int = 0
    score: float | None = None


@dataclass
class EnrollSummary:
    person: str
    results: list[FileResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def ok(self) -> bool:
        return self.count(FAILED) == 0

    def as_dict(self) -> dict[str, object]:
        return {
            "person": self.person,
            "stored": self.count(STORED),
            "duplicates": self.count(DUPLICATE),
            "failed": self.count(FAILED),
            "files": [asdict(r) for r in self.results],
        }


def expand_paths(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """Files to try, each with an error if the path itself is unusable (missing folder and such)."""
    out: list[tuple[Path, str]] = []
    for path in paths:
        if not path.exists():
            out.append((path, _broken_link(path) if path.is_symlink() else "no such file or folder"))
        elif path.is_dir():
            # A link whose target is gone is neither a file nor a folder: report it, never skip it silently.
            files = sorted(p for p in path.rglob("*") if (p.is_file() or _dangling(p)) and not p.name.startswith("."))
            if not files:
                out.append((path, "folder holds no files"))
            out += [(p, _broken_link(p) if _dangling(p) else "") for p in files]
        else:
            out.append((path, ""))
    return out


def _dangling(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def _broken_link(path: Path) -> str:
    return f"broken link: points to {path.readlink()}, which does not exist"


class Enroller:
    """Finds, aligns and stores face samples for one person at a time."""

    def __init__(self, sessions: sessionmaker[Session], detector: FaceDetector, crops: CropStore, max_side: int = 4096):
        self.sessions = sessions
        self.detector = detector
        self.crops = crops
        self.max_side = max_side

    def enroll(
        self,
        name: str,
        paths: Iterable[Path],
        progress: Callable[[int, int, FileResult], None] | None = None,
        actor: str = "cli",
    ) -> EnrollSummary:
        name = person_name(name)
        self.crops.check_key()  # a refused key file stops the enrolment before anything is stored
        files = expand_paths(paths)
        summary = EnrollSummary(person=name)
        for index, (path, problem) in enumerate(files, start=1):
            result = FileResult(str(path), FAILED, problem) if problem else self._enroll_file(name, path)
            summary.results.append(result)
            if progress:
                progress(index, len(files), result)
        if summary.count(STORED):
            with self.sessions.begin() as session:
                session.add(AdminAction(actor=actor, action="enroll", subject=name, details=summary.as_dict() | {"files": None}))
        return summary

    def _enroll_file(self, name: str, path: Path) -> FileResult:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            return FileResult(str(path), FAILED, f"not an image file name ({path.suffix or 'no extension'})")
        try:
            data = path.read_bytes()
            image = decode_image(data, self.max_side)
        except ImageError as exc:
            return FileResult(str(path), FAILED, str(exc))
        except OSError as exc:
            return FileResult(str(path), FAILED, f"cannot read: {exc.strerror or exc}")
        digest = hashlib.sha256(data).hexdigest()
        with self.sessions() as session:
            existing = session.execute(
                select(Person.name).join(FaceSample).where(FaceSample.sha256 == digest)
            ).scalar_one_or_none()
        if existing == name:
            return FileResult(str(path), DUPLICATE, f"already enrolled for {existing}")
        if existing is not None:  # one photo cannot be two people: refused, not skipped
            return FileResult(str(path), FAILED, f"this photo is already enrolled for {existing!r}")
        detection = self.detector.detect(image)
        face = primary_face(detection.faces, image.shape)
        if face is None:
            return FileResult(str(path), FAILED, detection.reason)
        crop = align(image, face.keypoints, CLIP_SIZE)
        crop_path: Path | None = None
        try:
            with self.sessions.begin() as session:
                person_id = self._person_id(session, name)
                crop_path = person_dir(self.crops.crops_dir, person_id) / f"{digest}.png"
                self.crops.write(crop_path, crop)
                session.add(
                    FaceSample(
                        person_id=person_id,
                        sha256=digest,
                        source=str(path.resolve()),
                        crop_path=str(crop_path.relative_to(self.crops.crops_dir)),
                        det_score=face.score,
                        box=_floats(face.box),
                        keypoints=_floats(face.keypoints),
                    )
                )
        except Exception:
            if crop_path is not None:
                crop_path.unlink(missing_ok=True)
            raise
        return FileResult(str(path), STORED, faces=len(detection.faces), score=round(face.score, 3))

    @staticmethod
    def _person_id(session: Session, name: str) -> int:
        """The person's id, creating them inside the caller's transaction (rolled back with it)."""
        person = session.scalar(select(Person).where(Person.name == name))
        if person is None:
            person = Person(name=name)
            session.add(person)
            session.flush()
        return person.id


def _floats(values: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in np.asarray(values).ravel()]


def list_identities(sessions: sessionmaker[Session]) -> list[dict[str, object]]:
    with sessions() as session:
        rows = session.execute(
            select(Person.name, func.count(FaceSample.id), Person.valid_from, Person.valid_until)
            .outerjoin(FaceSample)
            .group_by(Person.id)
            .order_by(Person.name)
        ).all()
    return [
        {
            "name": name,
            "samples": count,
            "valid_from": vf.isoformat() if vf else None,
            "valid_until": vu.isoformat() if vu else None,
        }
        for name, count, vf, vu in rows
    ]


def remove_identity(sessions: sessionmaker[Session], crops_dir: Path, name: str, actor: str = "cli") -> int:
    """Erase a person: samples, cached features (cascade), crops on disk; record the removal."""
    with sessions.begin() as session:
        person = session.scalar(select(Person).where(Person.name == name))
        if person is None:
            raise KioskError(f"no enrolled person named {name!r}")
        person_id, count = person.id, len(person.samples)
        session.delete(person)
        session.add(AdminAction(actor=actor, action="remove", subject=name, details={"samples": count}))
    remove_person_crops(crops_dir, person_id)
    return count
