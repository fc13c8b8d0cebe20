"""A tiny open_clip architecture with RANDOM weights, for testing CLIP plumbing, never accuracy.

No pretrained CLIP weights exist here, so CLIP tests check the mechanics (loading, exactness
of the scaling tricks, training on synthetic separable features, versioning, the commands),
and nothing they print is a recognition result.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import DETECTOR, EMBEDDER

from kiosk.config import ModelPaths, RecognitionConfig, Settings, TrainingConfig
from kiosk.context import KioskContext

TINY_CONFIG = Path(__file__).parent / "data" / "clip-tiny.json"
TINY_NAME = TINY_CONFIG.stem
FAST_TRAINING = {"epochs": 2, "learning_rate": 1e-3}


def write_random_weights(path: Path, seed: int = 0) -> Path:
    """Save a randomly initialised tiny CLIP as a local weights file (what an operator would configure)."""
    import open_clip
    import torch

    open_clip.add_model_config(TINY_CONFIG)
    torch.manual_seed(seed)
    torch.save(open_clip.create_model(TINY_NAME).state_dict(), path)
    return path


def clip_paths(weights: Path | str) -> ModelPaths:
    return ModelPaths(detector=DETECTOR, embedder=EMBEDDER, clip_model=TINY_NAME, clip_pretrained=str(weights), clip_config=TINY_CONFIG)


def clip_settings(home: Path, weights: Path | str, recogniser: str = "hybrid", **training: object) -> Settings:
    return Settings(
        home=home,
        models=clip_paths(weights),
        recognition=RecognitionConfig(recogniser=recogniser),  # type: ignore[arg-type]
        training=TrainingConfig(**(FAST_TRAINING | training)),  # type: ignore[arg-type]
    )


def clip_env(weights: Path | str, recogniser: str = "hybrid") -> dict[str, str]:
    """The same configuration for a `kiosk` subprocess."""
    return {
        "KIOSK_MODELS__CLIP_MODEL": TINY_NAME,
        "KIOSK_MODELS__CLIP_PRETRAINED": str(weights),
        "KIOSK_MODELS__CLIP_CONFIG": str(TINY_CONFIG),
        "KIOSK_RECOGNITION__RECOGNISER": recogniser,
    }


def context(settings: Settings, detector: object, embedder: object) -> KioskContext:
    ctx = KioskContext(settings)
    ctx.__dict__["detector"] = detector
    ctx.__dict__["embedder"] = embedder
    return ctx


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread while CLIP tests run: on the shared, oversubscribed test machine two
    spinning threads made the tiny model ten times slower (27 s against 2.5 s for one fine-tune)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
