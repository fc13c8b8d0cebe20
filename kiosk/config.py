"""The kiosk's configuration: one TOML file, overridable key by key from the environment.

Precedence, highest first: ``KIOSK_<SECTION>__<KEY>`` environment variables, the TOML file
(``--config`` or ``KIOSK_CONFIG``), then the defaults below. Every field carries its own
description, which ``kiosk config show`` prints above the key, so the documentation cannot
drift from the code.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from kiosk.errors import ConfigError

DEFAULT_HOME = Path("/var/lib/kiosk")


class Section(BaseModel):
    """A config section: unknown keys are errors, not silently ignored typos."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelPaths(Section):
    detector: Path = Field(
        Path("models/scrfd_500m_bnkps.onnx"),
        description="SCRFD face detector ONNX file with keypoints (relative paths are under home).",
    )
    embedder: Path = Field(
        Path("models/mobilefacenet.onnx"),
        description="ArcFace-family face embedder ONNX file, 112x112 input (relative paths are under home).",
    )
    clip_model: str = Field("RN50", description="open_clip architecture name.")
    clip_pretrained: str = Field(
        "openai",
        description="open_clip pretrained tag, or a local weights file (.pt/.bin/.safetensors).",
    )
    clip_config: Path | None = Field(
        None,
        description="open_clip model config JSON registered before loading (its file name, less .json, is the "
        "architecture name for clip_model); unset uses open_clip's built-in configs.",
    )
    clip_download: bool = Field(
        False,
        description="Let open_clip download a pretrained tag's weights when they are not in the local cache "
        "(off: an offline kiosk fails fast and runs the face recogniser alone).",
    )
    clip_cache_dir: Path | None = Field(
        None, description="Where pretrained tags' weights are cached; unset uses open_clip's default cache."
    )
    liveness: Path | None = Field(
        None, description="MiniFASNet anti-spoofing ONNX file; unset disables liveness."
    )
    onnx_providers: list[str] = Field(
        ["CPUExecutionProvider"],
        description="onnxruntime execution providers, in order of preference (CUDA/TensorRT on the box).",
    )


class DetectionConfig(Section):
    score_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Minimum SCRFD face score.")
    input_size: int = Field(640, ge=160, description="Square SCRFD input size in pixels.")
    min_face_px: int = Field(
        40, ge=8, description="Faces narrower than this (pixels) are ignored as too small to trust."
    )
    pad_fraction: float = Field(
        0.5,
        ge=0.0,
        description="Padding added on each side for the second detection pass on tight crops.",
    )
    max_side: int = Field(
        4096,
        ge=256,
        description="Images larger than this on their long side are decoded at reduced size.",
    )


class RecognitionConfig(Section):
    recogniser: Literal["auto", "clip", "face", "hybrid"] = Field(
        "auto",
        description="Which recogniser decides: auto = hybrid when CLIP loads, else face alone.",
    )
    threshold: float = Field(
        0.80, ge=0.0, le=1.0, description="Probability the door requires (the paper's 80%)."
    )
    prompt_template: str = Field(
        "This is the image of a person named {name}",
        description="CLIP prompt per person; {name} is replaced by the person's name.",
    )


class TrainingConfig(Section):
    seed: int = Field(0, description="Seed for the deterministic 80/20 split and the optimiser.")
    validation_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Share held back for validation.")
    epochs: int = Field(10, ge=1, description="Text-tower fine-tuning epochs.")
    batch_size: int = Field(16, ge=1, description="Images per optimiser step (the paper's 16).")
    learning_rate: float = Field(1e-5, gt=0.0, description="AdamW learning rate.")
    weight_decay: float = Field(0.2, ge=0.0, description="AdamW weight decay.")
    text_chunk_size: int = Field(
        64, ge=1, description="Prompts re-encoded at once in the gradient-cached backward pass."
    )
    large_batch: bool = Field(
        False,
        description="Train CLIP with large_batch_size images per step instead of batch_size: every step encodes "
        "every person's prompt, so fewer, larger steps make a big site's epoch far cheaper.",
    )
    large_batch_size: int = Field(1024, ge=1, description="Images per optimiser step when large_batch is on.")


class DatabaseConfig(Section):
    url: str = Field(
        "",
        description="SQLAlchemy URL; empty means SQLite at <home>/kiosk.db.",
    )
    busy_timeout_ms: int = Field(10000, ge=0, description="SQLite busy timeout in milliseconds.")


class Settings(BaseSettings):
    """Everything the kiosk reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="KIOSK_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    home: Path = Field(DEFAULT_HOME, description="Data directory (KIOSK_HOME): database, crops, models.")
    door: str = Field("front", description="This door's name in the access log.")
    models: ModelPaths = Field(default_factory=ModelPaths)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _toml_path()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @model_validator(mode="after")
    def _anchor_model_paths(self) -> "Settings":
        """Relative model paths live under the data directory, wherever KIOSK_HOME puts it."""
        for key in ("detector", "embedder", "liveness", "clip_config"):
            path = getattr(self.models, key)
            if path is not None and not path.is_absolute():
                object.__setattr__(self.models, key, self.home / path)
        return self

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.home / 'kiosk.db'}"

    @property
    def crops_dir(self) -> Path:
        return self.home / "crops"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "models"


_config_file: Path | None = None


def _toml_path() -> Path | None:
    path = _config_file or (Path(os.environ["KIOSK_CONFIG"]) if os.environ.get("KIOSK_CONFIG") else None)
    return path


def load_settings(config_file: Path | None = None) -> Settings:
    """Read the configuration, turning every mistake into one ConfigError line."""
    global _config_file
    _config_file = Path(config_file) if config_file is not None else None
    path = _toml_path()
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _config_file = None


def _describe(exc: ValidationError) -> str:
    """The first validation problem as one line naming the key, as the file would spell it."""
    err = exc.errors()[0]
    key = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"config: unknown key '{key}'"
    env = "KIOSK_" + "__".join(str(p).upper() for p in err["loc"])
    return f"config: '{key}' (or {env}): {err['msg']} (got {err.get('input')!r})"


def require_file(key: str, path: Path | None) -> Path:
    """A model path must exist before anything tries to load it."""
    if path is None:
        raise ConfigError(f"config: '{key}' is not set")
    if not path.is_file():
        raise ConfigError(f"config: '{key}' names a file that does not exist: {path}")
    return path


def to_toml(settings: Settings) -> str:
    """The configuration in force as commented TOML (each key's description above it)."""
    lines: list[str] = []
    top = {k: f for k, f in Settings.model_fields.items() if not _is_section(f.annotation)}
    for name, field in top.items():
        lines += _key_lines(name, getattr(settings, name), field.description)
    for name, field in Settings.model_fields.items():
        if name in top:
            continue
        section: BaseModel = getattr(settings, name)
        lines += ["", f"[{name}]"]
        for key, sub in type(section).model_fields.items():
            lines += _key_lines(key, getattr(section, key), sub.description)
    return "\n".join(lines) + "\n"


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _key_lines(key: str, value: Any, description: str | None) -> list[str]:
    out = [f"# {description}"] if description else []
    if value is None:
        out.append(f"# {key} =  (unset)")
    else:
        out.append(f"{key} = {_toml_value(value)}")
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
