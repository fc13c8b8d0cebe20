"""The face front end on real photos: detection, the enrolment face rule, alignment, odd formats."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DEV, photos

from kiosk.vision.face_alignment import CLIP_SIZE, align, template
from kiosk.vision.face_detection import Face, FaceDetector, primary_face
from kiosk.vision.images import decode_image


def _face(x1: float, y1: float, x2: float, y2: float) -> Face:
    return Face(box=np.array([x1, y1, x2, y2], np.float32), score=0.9, keypoints=np.zeros((5, 2), np.float32))


def test_primary_face_prefers_central_over_slightly_larger_edge_face() -> None:
    central = _face(200, 80, 300, 200)
    edge = _face(0, 70, 110, 200)
    assert primary_face([edge, central], (250, 500, 3)) is central
    assert primary_face([], (250, 500, 3)) is None


def test_primary_face_on_a_real_two_person_frame(detector: FaceDetector) -> None:
    """A photo in the centre, a second person's photo shrunk at the left edge: the centre wins."""
    main = cv2.imread(str(DEV / "Tony_Blair" / "1.jpg"))
    other = cv2.resize(cv2.imread(str(DEV / "Kofi_Annan" / "1.jpg")), (180, 180))
    frame = np.zeros((250, 750, 3), np.uint8)
    frame[:, 250:500] = main
    frame[35:215, 0:180] = other
    faces = detector.detect(frame).faces
    assert len(faces) >= 2
    chosen = primary_face(faces, frame.shape)
    assert chosen is not None and 250 < chosen.centre[0] < 500


def test_padded_second_pass_rescues_tight_crops(detector: FaceDetector) -> None:
    rescued = 0
    people = sorted(p for p in DEV.iterdir() if p.is_dir())[:8]
    for person in people:
        img = cv2.imread(str(photos(person)[0]))
        face = primary_face(detector.detect(img).faces, img.shape)
        assert face is not None
        x1, y1, x2, y2 = (int(v) for v in face.box)
        w, h = x2 - x1, y2 - y1
        tight = np.ascontiguousarray(img[y1 + h // 8 : y2 - h // 10, x1 + w // 10 : x2 - w // 10])
        assert not detector.detect(tight).faces or detector.detect(tight).padded
        result = detector.detect(tight)
        rescued += bool(result.faces and result.padded)
    assert rescued == len(people)


def test_no_face_is_a_result_with_a_reason(detector: FaceDetector) -> None:
    blank = np.full((300, 300, 3), 128, np.uint8)
    result = detector.detect(blank)
    assert not result and "blank" in result.reason
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    result = detector.detect(noise)
    assert not result and result.reason.startswith("no face")


def test_grayscale_and_pgm_images_are_detected(detector: FaceDetector, tmp_path: Path) -> None:
    gray = cv2.imread(str(DEV / "Colin_Powell" / "1.jpg"), cv2.IMREAD_GRAYSCALE)
    ok, pgm = cv2.imencode(".pgm", gray)
    assert ok
    img = decode_image(pgm.tobytes())
    assert img.shape == (250, 250, 3)
    assert detector.detect(img).faces


def test_aligned_eyes_land_on_the_template(detector: FaceDetector) -> None:
    """Re-detect the face inside each aligned crop: its eyes must sit on the template's eyes.

    The check is independent of the warp's own arithmetic: a wrong transform, a mirrored crop
    or swapped keypoints would put the re-detected eyes far from where the template says.
    """
    want = template(CLIP_SIZE)[:2]
    errors = []
    for person in sorted(p for p in DEV.iterdir() if p.is_dir()):
        for path in photos(person)[:2]:
            img = cv2.imread(str(path))
            face = primary_face(detector.detect(img).faces, img.shape)
            assert face is not None, path
            crop = align(img, face.keypoints, CLIP_SIZE)
            # SCRFD places keypoints best with some context around the face, as in a photo.
            canvas = cv2.copyMakeBorder(crop, CLIP_SIZE, CLIP_SIZE, CLIP_SIZE, CLIP_SIZE, cv2.BORDER_CONSTANT)
            again = primary_face(detector.detect(canvas).faces, canvas.shape)
            assert again is not None, path
            errors.append(np.linalg.norm(again.keypoints[:2] - CLIP_SIZE - want, axis=1).mean())
    errors_112 = np.array(errors) / (CLIP_SIZE / 112)  # in the 112-pixel crop recognisers use
    print(f"eye error at 112 px: median {np.median(errors_112):.2f}, p95 {np.percentile(errors_112, 95):.2f}, max {errors_112.max():.2f}")
    assert np.median(errors_112) < 3.0
    assert np.percentile(errors_112, 95) < 5.0


@pytest.mark.parametrize("size", [0, 100, 150])
def test_alignment_refuses_sizes_off_the_template_grid(size: int) -> None:
    with pytest.raises(ValueError):
        template(size)
