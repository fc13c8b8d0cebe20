"""The CLIP model as the kiosk uses it: loaded from the configuration, image tower frozen.

Loading follows open_clip (an architecture name plus a pretrained tag or a local weights
file; a model config JSON can register a custom architecture). A pretrained tag is taken
from the local cache unless `models.clip_download` allows fetching it, so an offline kiosk
learns at once that CLIP is unavailable instead of retrying a hub for a minute.

The text tower is run on prompts cut to the longest tokenised prompt rather than the
77-token context: exact, because the text tower's attention is causal (no token sees a
later one) and the pooled feature is read at the end-of-text token, so the padding after
it never influences the output. Cutting is what makes encoding every person's prompt at
every optimiser step affordable.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from kiosk.config import ModelPaths
from kiosk.errors import KioskError
from kiosk.storage.checksums import file_sha256

log = logging.getLogger(__name__)

# Pooling modes that read the end-of-text token: with these, cutting the context is exact.
EOT_POOLING = ("argmax", "eos")
TEXT_TOWER = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")


class ClipUnavailable(KioskError):
    """The configured CLIP weights cannot be loaded (missing file, tag not cached, bad config)."""


@dataclass(frozen=True)
class TokenisedPrompts:
    """Token ids (n, L) cut to the longest prompt, L <= the model's context length."""

    ids: torch.Tensor

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __getitem__(self, index: slice) -> TokenisedPrompts:
        return TokenisedPrompts(self.ids[index])


class ClipModel:
    """An open_clip CLIP with its image tower locked, plus the exact cut-context text encoder."""

    def __init__(self, model: torch.nn.Module, name: str, weights_id: str, tokenizer: object):
        if not all(hasattr(model, part) for part in TEXT_TOWER) or getattr(model, "attn_mask", None) is None:
            raise ClipUnavailable(f"CLIP architecture {name} has no causal open_clip text transformer; it is not supported")
        if model.text_pool_type not in EOT_POOLING:
            raise ClipUnavailable(f"CLIP architecture {name} pools text by {model.text_pool_type!r}, not at end-of-text")
        model.lock_image_tower()
        for param in model.parameters():
            param.requires_grad_(False)
        model.eval()
        self.model = model
        self.name = name
        self.weights_id = weights_id
        self.tokenizer = tokenizer
        cfg = _preprocess_cfg(model)
        self.image_size = int(cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0])
        self.mean = np.asarray(cfg["mean"], dtype=np.float32)
        self.std = np.asarray(cfg["std"], dtype=np.float32)
        self.encoder_key = f"clip:{name}:{weights_id}"
        self.runtime = "torch"  # as OnnxImageTower.runtime: said in the door's start-up reason

    @classmethod
    def from_settings(cls, models: ModelPaths) -> ClipModel:
        """Build the configured model, or raise ClipUnavailable with one line saying why."""
        import open_clip

        name = models.clip_model
        config_id = ""
        if models.clip_config is not None:
            if not models.clip_config.is_file():
                raise ClipUnavailable(f"models.clip_config names a file that does not exist: {models.clip_config}")
            open_clip.add_model_config(models.clip_config)
            config_id = "+cfg" + file_sha256(models.clip_config)[:12]
        if open_clip.get_model_config(name) is None:
            raise ClipUnavailable(f"models.clip_model {name!r} is not an open_clip architecture")
        weights, weights_id, overrides = _resolve_weights(models)
        try:
            model = open_clip.create_model(name, pretrained=weights, **overrides)
        except Exception as exc:  # open_clip raises RuntimeError/KeyError/OSError for bad checkpoints
            raise ClipUnavailable(f"CLIP {name} weights {models.clip_pretrained!r} could not be loaded: {exc}") from None
        return cls(model, name, weights_id + config_id, open_clip.get_tokenizer(name))

    # -- image tower -----------------------------------------------------------------------

    def image_tensor(self, crops: list[np.ndarray]) -> torch.Tensor:
        """Aligned BGR uint8 crops to CLIP's normalised RGB input (n, 3, S, S)."""
        sized = [
            c if c.shape[0] == self.image_size else cv2.resize(c, (self.image_size, self.image_size), interpolation=cv2.INTER_CUBIC)
            for c in crops
        ]
        rgb = np.stack(sized)[..., ::-1].astype(np.float32) / 255.0
        return torch.from_numpy(((rgb - self.mean) / self.std).transpose(0, 3, 1, 2).copy())

    @torch.inference_mode()
    def encode_images(self, crops: list[np.ndarray]) -> np.ndarray:
        """Unit image features (n, d) for aligned BGR crops (224x224 from FaceCrops.at(224))."""
        if not crops:
            return np.zeros((0, 0), dtype=np.float32)
        feats = self.model.encode_image(self.image_tensor(crops), normalize=True)
        return feats.float().numpy()

    # -- text tower ------------------------------------------------------------------------

    def tokenise(self, prompts: list[str]) -> TokenisedPrompts:
        """Tokenise at the full context, then cut every prompt to the longest one's length."""
        ids = self.tokenizer(prompts)
        length = int((ids != 0).sum(dim=1).max()) if len(prompts) else 1
        return TokenisedPrompts(ids[:, :length].contiguous())

    def encode_text(self, prompts: TokenisedPrompts) -> torch.Tensor:
        """Raw (unnormalised) text features (n, d); grads flow if enabled by the caller.

        Mirrors open_clip's CLIP.encode_text with the positional embedding and the causal mask
        cut to the prompts' length.
        """
        m = self.model
        ids = prompts.ids
        length = ids.shape[1]
        x = m.token_embedding(ids) + m.positional_embedding[:length]
        x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
        x = m.ln_final(x)
        if m.text_pool_type == "argmax":
            pooled = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)]
        else:
            pooled = x[torch.arange(x.shape[0]), (ids == m.text_eos_id).int().argmax(dim=-1)]
        if isinstance(m.text_projection, torch.nn.Linear):
            return m.text_projection(pooled)
        return pooled @ m.text_projection

    def text_parameters(self) -> dict[str, torch.nn.Parameter]:
        """The text tower's parameters by state-dict name: the only weights fine-tuning changes."""
        return {n: p for n, p in self.model.named_parameters() if n.split(".")[0] in TEXT_TOWER}

    def text_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.text_parameters().items()}

    def load_text_state(self, state: dict[str, torch.Tensor]) -> None:
        params = self.text_parameters()
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())


def normalise(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def _preprocess_cfg(model: torch.nn.Module) -> dict[str, object]:
    from open_clip import get_model_preprocess_cfg

    return get_model_preprocess_cfg(model)


def _resolve_weights(models: ModelPaths) -> tuple[str, str, dict[str, object]]:
    """(what to hand open_clip, the weights' identity for cache keys, create_model overrides)."""
    import open_clip

    value = models.clip_pretrained
    path = Path(value).expanduser()
    tag_cfg = open_clip.get_pretrained_cfg(models.clip_model, value)
    if not tag_cfg:
        if path.suffix in (".pt", ".pth", ".bin", ".safetensors") or os.sep in value:
            if not path.is_file():
                raise ClipUnavailable(f"models.clip_pretrained names a weights file that does not exist: {path}")
            return str(path), "file-" + file_sha256(path)[:16], {}
        tags = open_clip.list_pretrained_tags_by_model(models.clip_model)
        raise ClipUnavailable(f"models.clip_pretrained {value!r} is neither a weights file nor a tag of {models.clip_model} {tags}")
    cache_dir = str(models.clip_cache_dir) if models.clip_cache_dir else None
    if models.clip_download:
        return value, value, {"cache_dir": cache_dir}
    cached = _cached_tag_file(tag_cfg, cache_dir)
    if cached is None:
        raise ClipUnavailable(
            f"CLIP {models.clip_model} weights {value!r} are not in the local cache and models.clip_download is off"
        )
    overrides: dict[str, object] = {
        "force_preprocess_cfg": {k: tag_cfg[k] for k in ("mean", "std") if k in tag_cfg},
        "force_quick_gelu": bool(tag_cfg.get("quick_gelu", False)),
    }
    return cached, value, overrides


def _cached_tag_file(tag_cfg: dict[str, object], cache_dir: str | None) -> str | None:
    """The tag's weights file if a previous download left it in the local cache; no network."""
    hub = str(tag_cfg.get("hf_hub", ""))
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)
        filename = filename or "open_clip_pytorch_model.bin"
        for name in (filename.rsplit(".", 1)[0] + ".safetensors", "open_clip_model.safetensors", filename):
            found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
            if isinstance(found, str):
                return found
    url = str(tag_cfg.get("url", ""))
    if url:
        candidate = Path(cache_dir or Path("~/.cache/clip").expanduser()) / os.path.basename(url)
        if candidate.is_file():
            return str(candidate)
    return None

