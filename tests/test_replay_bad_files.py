"""A replayed folder holding a 0-byte or corrupt image: that file is skipped (said once), the rest play,
and the replay ends by itself. Before, the bad file was retried as a failed camera, forever."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from conftest import DEV, photos

from kiosk.config import CameraConfig
from kiosk.vision.camera import ReplaySource, ResilientCamera


def bad_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "replay"
    folder.mkdir()
    good = photos(DEV / "Tony_Blair")
    shutil.copy(good[0], folder / "1-good.jpg")
    (folder / "2-empty.jpg").write_bytes(b"")
    (folder / "3-corrupt.jpg").write_bytes(good[1].read_bytes()[:300])
    shutil.copy(good[2], folder / "4-good.jpg")
    return folder


def test_bad_files_are_skipped_once_each_and_the_replay_ends(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = ReplaySource.from_path(bad_folder(tmp_path), CameraConfig(hold_frames=3, gap_frames=1), repeat=2)
    camera = ResilientCamera(source, CameraConfig(reconnect_initial_seconds=0.01, reconnect_max_seconds=0.01))
    labels = []
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):  # far more reads than frames: the replay must end on its own
            frame = camera.read()
            if frame is None:
                assert camera.exhausted, "a read without a frame before the end: the camera was failing"
                break
            labels.append(frame.label)
    assert camera.state == "exhausted" and camera.failures == 0
    good = ["1-good.jpg"] * 3 + ["(empty doorway)"] + ["4-good.jpg"] * 3 + ["(empty doorway)"]
    assert labels == good * 2
    skipped = [r.getMessage() for r in caplog.records if "skipping replayed file" in r.getMessage()]
    assert len(skipped) == 2  # once per bad file, not once per pass
    assert "2-empty.jpg" in skipped[0] and "empty file" in skipped[0]
    assert "3-corrupt.jpg" in skipped[1] and "corrupt" in skipped[1]


def test_a_folder_that_vanishes_is_still_a_camera_failure(tmp_path: Path) -> None:
    folder = bad_folder(tmp_path)
    source = ReplaySource.from_path(folder, CameraConfig(hold_frames=1, gap_frames=0))
    camera = ResilientCamera(source, CameraConfig(reconnect_initial_seconds=0.01, reconnect_max_seconds=0.01))
    assert camera.read() is not None
    moved = folder.rename(tmp_path / "away")
    assert camera.read() is None and camera.state == "reconnecting" and not camera.exhausted
    assert not source.unreadable  # nothing marked bad: the files come back with the folder
    moved.rename(folder)
