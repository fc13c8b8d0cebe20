"""Session fixtures for the CLIP tests, loaded as a plugin (`pytest_plugins`) so each is built once.

Kept apart from tests/tiny_clip.py (plain helpers the tests import) because pytest can only
rewrite asserts in, and share fixtures from, a plugin module that tests do not import directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import copy_home
from tiny_clip import clip_settings, context, one_torch_thread, write_random_weights


@pytest.fixture()
def single_torch_thread() -> Iterator[None]:
    """For the CLIP test modules (`pytestmark = pytest.mark.usefixtures("single_torch_thread")`)."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_weights(tmp_path_factory.mktemp("clip") / "clip-tiny-random.pt")


@pytest.fixture(scope="session")
def clip_trained_home(
    tmp_path_factory: pytest.TempPathFactory, enrolled_dev: tuple[Path, list[tuple[str, Path]]], tiny_weights: Path, detector: object, embedder: object
) -> Path:
    """enrolled_dev plus a tiny random-weight CLIP version (one epoch) and a face version, both in force."""
    from kiosk.training.retrain import retrain

    home = copy_home(enrolled_dev[0], tmp_path_factory.mktemp("clip-home") / "home")
    ctx = context(clip_settings(home, tiny_weights, epochs=1), detector, embedder)
    with one_torch_thread():
        retrain(ctx)
    ctx.engine.dispose()
    return home
