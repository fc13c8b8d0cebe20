"""CLIP's frozen image tower exported to ONNX and run by onnxruntime: the fast path at the door.

The image tower never changes after loading (only the text tower is fine-tuned, and the door
uses saved class embeddings), so it can be exported once per weights file. onnxruntime runs
it faster than eager torch on a small CPU (issue 4 measured RN50: 30 ms against 50 ms on two
threads) and gives the same features to within float rounding, so features it computes may
share the torch encoder's cache key. The file carries the preprocessing (size, mean, std) and
the encoder key in its metadata, so it is used without the torch model.

On a CPU-only box the tower can also run in int8 (`recognition.clip_runtime = "onnx-int8"`):
about 2.5x faster on this development CPU (avx512-vnni), at the price of features that are
no longer exact; how far they stray is measured on the site's own stored faces and bounded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from kiosk.errors import KioskError
from kiosk.onnx_runtime import available_providers, session_options

if TYPE_CHECKING:
    from kiosk.recognition.clip_model import ClipModel  # torch: only the export needs it, and is handed one

log = logging.getLogger(__name__)

OPSET = 17
MIN_INT8_CROPS = 8  # crops to calibrate on, and as many again to check against


def export_image_tower(clip: ClipModel, path: Path) -> Path:
    """Write the image tower (crops in CLIP's normalised layout -> unit features) to an ONNX file."""
    import torch

    class UnitImageFeatures(torch.nn.Module):
        def __init__(self, visual: torch.nn.Module):
            super().__init__()
            self.visual = visual

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(self.visual(image), dim=-1)

    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, clip.image_size, clip.image_size)
    visual_params = list(clip.model.visual.parameters())
    # With every weight frozen, torch's MultiheadAttention takes its fused inference kernel,
    # which has no ONNX form; marking the weights trainable for the trace keeps the plain ops.
    for param in visual_params:
        param.requires_grad_(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                UnitImageFeatures(clip.model.visual).eval(),
                (example,),
                str(path),
                dynamo=False,  # the dynamo exporter needs onnxscript, which the kiosk does not ship
                input_names=["image"],
                output_names=["features"],
                dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}},
                opset_version=OPSET,
            )
    finally:
        for param in visual_params:
            param.requires_grad_(False)
    import onnx

    model = onnx.load(str(path))
    meta = {"encoder_key": clip.encoder_key, "size": clip.image_size, "mean": clip.mean.tolist(), "std": clip.std.tolist()}
    model.metadata_props.add(key="kiosk_clip", value=json.dumps(meta))
    onnx.save(model, str(path))
    return path


class OnnxImageTower:
    """encode_images() with the same contract as ClipModel.encode_images, on onnxruntime."""

    def __init__(self, path: Path, providers: list[str], threads: int = 0):
        import onnxruntime

        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), sess_options=session_options(threads), providers=available_providers(providers))
        meta = json.loads(self.session.get_modelmeta().custom_metadata_map["kiosk_clip"])
        self.meta: dict[str, object] = meta
        self.encoder_key: str = meta["encoder_key"]
        self.image_size = int(meta["size"])
        self.mean = np.asarray(meta["mean"], dtype=np.float32)
        self.std = np.asarray(meta["std"], dtype=np.float32)
        self.runtime = "onnx-int8" if "int8_min_cosine" in meta else "onnx"  # said in the door's start-up reason

    def inputs(self, crops: list[np.ndarray]) -> np.ndarray:
        """Crops (BGR, uint8) as the tower's input: resized, RGB, CLIP-normalised, NCHW."""
        size = self.image_size
        sized = [c if c.shape[0] == size else cv2.resize(c, (size, size), interpolation=cv2.INTER_CUBIC) for c in crops]
        rgb = np.stack(sized)[..., ::-1].astype(np.float32) / 255.0
        return np.ascontiguousarray(((rgb - self.mean) / self.std).transpose(0, 3, 1, 2))

    def encode_images(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, 0), dtype=np.float32)
        return self.session.run(["features"], {"image": self.inputs(crops)})[0]


def towers_folder(artifacts_dir: Path) -> Path:
    """Where the exported (and quantised) image towers live, beside the model versions."""
    return artifacts_dir / "clip-image"


def forget_int8_towers(artifacts_dir: Path) -> int:
    """Delete the int8 towers: they were calibrated on stored crops, so an erasure takes them too."""
    towers = list(towers_folder(artifacts_dir).glob("*-int8.onnx"))
    for path in towers:
        path.unlink(missing_ok=True)
    return len(towers)


def onnx_image_tower(clip: ClipModel, folder: Path, providers: list[str], threads: int = 0) -> OnnxImageTower:
    """The tower for these weights from ``folder``, exported there first if it is not there yet.

    One file per encoder key (architecture + weights checksum), so new weights get a new
    export and old ones are never used by mistake. The export is written beside the final
    name and renamed into place, so an interrupted export is redone rather than loaded.
    """
    path = folder / f"clip-image-{hashlib.sha256(clip.encoder_key.encode()).hexdigest()[:16]}.onnx"
    if not path.exists():
        log.info("exporting CLIP's image tower (%s) to %s, once for these weights", clip.name, path)
        partial = path.with_suffix(".partial")
        export_image_tower(clip, partial)
        os.replace(partial, path)
    tower = OnnxImageTower(path, providers, threads)
    if tower.encoder_key != clip.encoder_key:
        raise KioskError(f"{path} holds the tower of {tower.encoder_key}, not {clip.encoder_key}")
    return tower


def int8_image_tower(
    fp32: OnnxImageTower, crops: Callable[[], list[np.ndarray]], min_cosine: float, providers: list[str], threads: int = 0
) -> OnnxImageTower:
    """The fp32 tower quantised to int8, or the fp32 tower itself where int8 strays too far.

    Static quantisation (QDQ, per-channel weights) calibrated on stored face crops: every
    other crop calibrates, the rest measure how far int8 strays, as the smallest cosine
    between a crop's int8 and fp32 features. That figure is kept in the int8 file, and the
    int8 tower is used only while it is at least ``min_cosine``; otherwise the fp32 tower
    stays, with a warning. Quantised once per weights, like the export.
    """
    path = fp32.path.with_name(fp32.path.stem + "-int8.onnx")
    if not path.exists():
        faces = crops()
        if len(faces) < 2 * MIN_INT8_CROPS:
            log.warning("clip_runtime onnx-int8: %d stored crops, %d needed to quantise; using fp32", len(faces), 2 * MIN_INT8_CROPS)
            return fp32
        _quantise(fp32, faces[0::2], faces[1::2], path)
    tower = OnnxImageTower(path, providers, threads)
    measured = float(tower.meta["int8_min_cosine"])  # type: ignore[arg-type]
    if measured < min_cosine:
        log.warning("CLIP int8 tower strays to cosine %.4f from fp32 (recognition.clip_int8_min_cosine %.4f); using fp32", measured, min_cosine)
        return fp32
    log.info("CLIP image tower int8 (%s), cosine to fp32 at least %.4f", path.name, measured)
    return tower


def _quantise(fp32: OnnxImageTower, calibrate: list[np.ndarray], check: list[np.ndarray], path: Path) -> None:
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Crops(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(fp32.inputs([c]) for c in calibrate)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"image": batch}

    log.info("quantising CLIP's image tower to int8 on %d stored crops, once for these weights", len(calibrate))
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        prepared, quantised = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32.path), str(prepared), skip_symbolic_shape=True)  # ONNX shape inference suffices for a CNN or ViT
        quantize_static(
            str(prepared), str(quantised), Crops(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )
        a = fp32.encode_images(check)
        session = onnxruntime.InferenceSession(str(quantised), sess_options=session_options(), providers=["CPUExecutionProvider"])
        b = session.run(["features"], {"image": fp32.inputs(check)})[0]
        cosine = float(np.min(np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))
        model = onnx.load(str(quantised))
        meta = {**fp32.meta, "int8_min_cosine": cosine, "int8_checked_on": len(check)}
        for prop in list(model.metadata_props):
            if prop.key == "kiosk_clip":
                model.metadata_props.remove(prop)
        model.metadata_props.add(key="kiosk_clip", value=json.dumps(meta))
        onnx.save(model, str(quantised))
        os.replace(quantised, path)
