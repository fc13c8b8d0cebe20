"""Is this face good enough to enrol? Size, sharpness and pose, measured the same way every time.

Used while capturing a person at the kiosk's camera, so the admin sees at once why a frame
was refused (too far, blurred, turned away) and the person can adjust. Sharpness is the
variance of the Laplacian on the 112x112 aligned crop (so it does not grow with face size);
pose comes from the five keypoints: roll is the angle of the eye line, turn is how far the
nose sits off the eyes' midpoint as a fraction of the eye distance (0 when facing the camera).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kiosk.vision.face_alignment import ARCFACE_SIZE, align
from kiosk.vision.face_detection import Face

MIN_FACE_PX = 80  # narrower faces carry too little detail for a sample worth keeping
MIN_SHARPNESS = 40.0  # Laplacian variance on the aligned crop; motion blur falls well below
MAX_TURN = 0.35  # nose offset / eye distance; beyond this the face is clearly turned
MAX_ROLL_DEG = 20.0
MAX_TILT = 0.25  # |nose height between eyes and mouth - 0.5|: head tipped up or down


@dataclass(frozen=True)
class FaceQuality:
    width_px: float
    sharpness: float
    turn: float
    roll_deg: float
    tilt: float

    @property
    def problems(self) -> list[str]:
        out = []
        if self.width_px < MIN_FACE_PX:
            out.append(f"too small ({self.width_px:.0f} px < {MIN_FACE_PX}): come closer")
        if self.sharpness < MIN_SHARPNESS:
            out.append(f"blurred (sharpness {self.sharpness:.0f} < {MIN_SHARPNESS:.0f}): hold still")
        if abs(self.turn) > MAX_TURN:
            out.append(f"turned away (turn {self.turn:+.2f}): face the camera")
        if abs(self.roll_deg) > MAX_ROLL_DEG:
            out.append(f"head tilted sideways ({self.roll_deg:+.0f} deg)")
        if abs(self.tilt) > MAX_TILT:
            out.append(f"looking up or down (tilt {self.tilt:+.2f})")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return f"{self.width_px:.0f}px sharp {self.sharpness:.0f} turn {self.turn:+.2f} roll {self.roll_deg:+.0f}"


def pose(keypoints: np.ndarray) -> tuple[float, float, float]:
    """(turn, roll in degrees, tilt) from left eye, right eye, nose, left and right mouth corner."""
    kps = np.asarray(keypoints, dtype=np.float64).reshape(5, 2)
    left_eye, right_eye, nose, mouth_l, mouth_r = kps
    eye_mid, mouth_mid = (left_eye + right_eye) / 2, (mouth_l + mouth_r) / 2
    eye_vec = right_eye - left_eye
    eye_dist = max(float(np.linalg.norm(eye_vec)), 1e-6)
    roll = float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0])))
    axis = eye_vec / eye_dist
    turn = float(np.dot(nose - eye_mid, axis)) / eye_dist
    normal = np.array([-axis[1], axis[0]])
    height = float(np.dot(mouth_mid - eye_mid, normal))
    tilt = float(np.dot(nose - eye_mid, normal)) / height - 0.5 if abs(height) > 1e-6 else 0.0
    return turn, roll, tilt


def sharpness(crop: np.ndarray) -> float:
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def face_quality(image: np.ndarray, face: Face) -> FaceQuality:
    """Quality of a face just detected in a frame."""
    return stored_quality(face.box, face.keypoints, align(image, face.keypoints, ARCFACE_SIZE))


def stored_quality(box: np.ndarray | list[float], keypoints: np.ndarray | list[float], aligned: np.ndarray) -> FaceQuality:
    """Quality of a stored sample, from its recorded box and keypoints and its aligned crop."""
    turn, roll, tilt = pose(np.asarray(keypoints))
    if aligned.shape[0] != ARCFACE_SIZE:
        aligned = cv2.resize(aligned, (ARCFACE_SIZE, ARCFACE_SIZE), interpolation=cv2.INTER_AREA)
    width = float(box[2]) - float(box[0])
    return FaceQuality(width, sharpness(aligned), turn, roll, tilt)
