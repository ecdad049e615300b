"""Training configuration: one dataclass whose defaults are the seed's recipe.

Loaded from YAML (unknown keys are an error), then ``--set key=value`` overrides (values parsed
as YAML scalars/lists, so ``--set lr=5e-4``, ``--set class_weights=[1,1,1,1,5,5,1]``,
``--set pretrained=null`` work). The resolved config is saved next to the checkpoints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key."""


@dataclass
class TrainConfig:
    """Every value of a training run (defaults = the seed's full-run recipe)."""

    # data and output
    data_root: str = "data/unified"
    train_split: str = "train"
    val_split: str = "val"
    out_dir: str = "runs/ddrnet23_slim"
    num_classes: int = 7
    # model
    pretrained: str | None = None  # local .pth, "qai-hub-models", or null (random init)
    pretrained_allow_partial: bool = False
    aux: bool = True
    aux_weight: float = 0.4  # weight of the auxiliary head's loss (DDRNet's value)
    # input / augmentation (crop = model input, height x width)
    crop_height: int = 544
    crop_width: int = 640
    scale_min: float = 0.5
    scale_max: float = 2.0
    hflip_p: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.15
    color_jitter_p: float = 1.0
    erasing_p: float = 0.3
    erasing_scale: list[float] = field(default_factory=lambda: [0.02, 0.33])
    erasing_ratio: list[float] = field(default_factory=lambda: [0.3, 3.3])
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    # loss
    focal_gamma: float = 2.0
    class_weights: list[float] = field(default_factory=lambda: [1, 1, 1, 1, 5.0, 5.0, 1])
    ignore_index: int = 255
    # optimisation
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    epochs: int = 200
    warmup_epochs: float = 20
    min_lr_ratio: float = 0.0  # cosine ends at lr * min_lr_ratio
    grad_clip: float = 5.0
    ema_decay: float = 0.9999
    ema_ramp_steps: int = 2000  # decay_t = ema_decay * (1 - exp(-t / ramp)); 0 = constant
    amp: str = "auto"  # auto (fp16 on CUDA, off on CPU) | fp16 | bf16 | off
    # evaluation and checkpoints
    eval_every: int = 5  # epochs; the last epoch is always evaluated
    eval_limit: int | None = None  # evaluate on the first N val images only
    checkpoint_every_steps: int = 0  # also write last.pth every N steps (0 = per epoch only)
    # runtime
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: int = 4
    pin_memory: bool = True  # only takes effect on CUDA
    persistent_workers: bool = True
    prefetch_factor: int = 2
    torch_threads: int = 0  # 0 = all cores
    seed: int = 0
    fast: bool = False  # see docs/training.md: cudnn.benchmark, TF32, channels_last
    max_steps: int = 0  # stop after this many optimizer steps (0 = run all epochs)
    tensorboard: bool = True  # also log to TensorBoard when it is installed

    def validate(self) -> TrainConfig:
        """Check value ranges; raise :class:`ConfigError` naming the offending key."""
        checks = [
            ("num_classes", self.num_classes >= 1),
            ("crop_height", self.crop_height % 8 == 0 and self.crop_height > 0),
            ("crop_width", self.crop_width % 8 == 0 and self.crop_width > 0),
            ("scale_min", 0 < self.scale_min <= self.scale_max),
            ("class_weights", len(self.class_weights) == self.num_classes),
            ("batch_size", self.batch_size >= 2),
            ("lr", self.lr > 0),
            ("epochs", self.epochs >= 1),
            ("warmup_epochs", 0 <= self.warmup_epochs < self.epochs),
            ("ema_decay", 0 <= self.ema_decay < 1),
            ("amp", self.amp in ("auto", "fp16", "bf16", "off")),
            ("eval_every", self.eval_every >= 1),
            ("num_workers", self.num_workers >= 0),
            ("mean", len(self.mean) == 3 and len(self.std) == 3),
            ("erasing_scale", len(self.erasing_scale) == 2 and len(self.erasing_ratio) == 2),
        ]
        bad = [k for k, ok in checks if not ok]
        if bad:
            raise ConfigError("invalid config value(s): " + ", ".join(
                f"{k}={getattr(self, k)!r}" for k in bad))
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON-safe)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        """The resolved config as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from plain data; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}")
        defaults = cls()
        values = {k: _coerce(k, v, getattr(defaults, k), source) for k, v in data.items()}
        return cls(**values).validate()


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    """Convert YAML scalars to the field's type (e.g. ``5e-4``, which YAML 1.1 reads as text)."""
    if value is None or default is None:
        return value
    try:
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if isinstance(default, float):
            return float(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected an integer")
            return int(value)
        if isinstance(default, list):
            if not isinstance(value, list):
                raise ValueError("expected a list")
            return [float(v) for v in value]
        if isinstance(default, str):
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {key}={value!r}: {exc}") from None
    return value


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse {text!r}: {exc}") from exc
    return key.strip(), value


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
                ) -> TrainConfig:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of key: value")
        data.update(loaded)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for item in overrides:
        key, value = _parse_override(item)
        if key not in names:
            raise ConfigError(f"--set {key}: unknown key")
        data[key] = value
    return TrainConfig.from_dict(data, str(path) if path else "defaults")


def config_path(name: str) -> Path:
    """Path of a config shipped in ``offroad_training/configs`` (e.g. ``synthetic.yaml``)."""
    return Path(__file__).resolve().parents[1] / "configs" / name
