"""Training configuration: one dataclass whose defaults are the seed's recipe.

Loaded from YAML (unknown keys are an error), then ``--set key=value`` overrides (values parsed
as YAML scalars/lists, so ``--set lr=5e-4``, ``--set class_weights=[1,1,1,1,5,5,1]``,
``--set pretrained=null``, ``--set augment.hue=0.1`` work). The augmentation numbers are the
nested ``augment:`` section (:class:`~offroad_training.train.augment.AugmentParams`). The
resolved config (``backbone_lr_factor`` filled in) is saved next to the checkpoints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from offroad_core.exit_codes import CommandError
from offroad_training.train.augment import AugmentParams

DETERMINISTIC_MODES = ("off", "warn", "on")


class ConfigError(CommandError, ValueError):
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
    # input (crop = model input, height x width) and augmentation
    crop_height: int = 544
    crop_width: int = 640
    augment: AugmentParams = field(default_factory=AugmentParams)
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    # loss
    focal_gamma: float = 2.0
    class_weights: list[float] = field(default_factory=lambda: [1, 1, 1, 1, 5.0, 5.0, 1])
    ignore_index: int = 255
    # optimisation (batch_size is the global batch: split over the processes of a torchrun job)
    batch_size: int = 8
    lr: float = 1e-3
    backbone_lr_factor: float | None = None  # backbone lr = lr x this; null: 0.1 pretrained, 1.0
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
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)
    num_workers: int = 4
    pin_memory: bool = True  # only takes effect on CUDA
    persistent_workers: bool = True
    prefetch_factor: int = 2
    torch_threads: int = 0  # 0 = all cores (shared among the processes of one machine)
    seed: int = 0
    deterministic: str = "off"  # off | warn | on: torch.use_deterministic_algorithms
    fast: bool = False  # see docs/training.md: cudnn.benchmark, TF32, channels_last
    max_steps: int = 0  # stop after this many optimizer steps (0 = run all epochs)
    tensorboard: bool = True  # also log to TensorBoard when it is installed
    # multi-GPU (torchrun); ignored in a single process
    sync_batchnorm: bool = False  # SyncBatchNorm across processes (CUDA only)
    dist_backend: str = "auto"  # auto (nccl on CUDA, gloo on CPU) | nccl | gloo

    def validate(self) -> TrainConfig:
        """Check value ranges, fill in ``backbone_lr_factor``; raise :class:`ConfigError`."""
        if self.backbone_lr_factor is None:
            self.backbone_lr_factor = 0.1 if self.pretrained else 1.0
        checks = [
            ("num_classes", self.num_classes >= 1),
            ("crop_height", self.crop_height % 8 == 0 and self.crop_height > 0),
            ("crop_width", self.crop_width % 8 == 0 and self.crop_width > 0),
            ("class_weights", len(self.class_weights) == self.num_classes),
            ("batch_size", self.batch_size >= 2),
            ("lr", self.lr > 0),
            ("backbone_lr_factor", self.backbone_lr_factor > 0),
            ("epochs", self.epochs >= 1),
            ("warmup_epochs", 0 <= self.warmup_epochs < self.epochs),
            ("ema_decay", 0 <= self.ema_decay < 1),
            ("amp", self.amp in ("auto", "fp16", "bf16", "off")),
            ("eval_every", self.eval_every >= 1),
            ("num_workers", self.num_workers >= 0),
            ("mean", len(self.mean) == 3 and len(self.std) == 3),
            ("deterministic", self.deterministic in DETERMINISTIC_MODES),
            ("dist_backend", self.dist_backend in ("auto", "nccl", "gloo")),
            ("out_dir", not Path(self.out_dir).is_file()),
        ]
        bad = [f"{k}={getattr(self, k)!r}" for k, ok in checks if not ok]
        bad += [f"augment.{k}={getattr(self.augment, k)!r}" for k in self.augment.invalid()]
        if bad:
            raise ConfigError("invalid config value(s): " + ", ".join(bad))
        if self.fast and self.deterministic != "off":
            raise ConfigError("fast=true (cudnn.benchmark, TF32) and deterministic="
                              f"{self.deterministic} exclude each other; choose one")
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
        return _build(cls, data, source, "").validate()


def _build(cls: type, data: dict[str, Any], source: str, prefix: str) -> Any:
    """A dataclass from a mapping: unknown keys refused, values coerced, sections recursed."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        moved = [k for k in unknown if k in {f.name for f in dataclasses.fields(AugmentParams)}]
        hint = (f" ({', '.join(moved)} now belong(s) under augment:, e.g. augment.{moved[0]})"
                if moved and not prefix else "")
        raise ConfigError(f"{source}: unknown key(s) "
                          f"{', '.join(prefix + k for k in unknown)}{hint}")
    defaults = cls()
    values = {}
    for key, value in data.items():
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {prefix}{key} must be a mapping of key: value")
            values[key] = _build(type(default), value, source, f"{prefix}{key}.")
        else:
            values[key] = _coerce(prefix + key, value, default, source)
    return cls(**values)


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
            if isinstance(value, bool):  # YAML 1.1 reads on/off/yes/no as booleans
                return "on" if value else "off"
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
        raise ConfigError(f"--set {key}: cannot parse {text!r}: "
                          f"{str(exc).splitlines()[0]}") from None
    return key.strip(), value


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value")
    return loaded


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
                ) -> TrainConfig:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = _read_yaml(Path(path)) if path is not None else {}
    for item in overrides:
        key, value = _parse_override(item)
        target, parts = data, key.split(".")
        for part in parts[:-1]:
            section = target.setdefault(part, {})
            if not isinstance(section, dict):
                raise ConfigError(f"--set {key}: {part} is not a section")
            target = section
        target[parts[-1]] = value
    return TrainConfig.from_dict(data, str(path) if path else "defaults")


def config_path(name: str) -> Path:
    """Path of a config shipped in ``offroad_training/configs`` (e.g. ``synthetic.yaml``)."""
    return Path(__file__).resolve().parents[1] / "configs" / name
