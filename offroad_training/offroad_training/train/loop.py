"""The training loop: seed recipe, EMA evaluation, atomic checkpoints, exact resume.

Exact resume (CPU): ``last.pth`` holds model, EMA, optimizer, scheduler, AMP scaler, the global
RNG states, the step and the position in the epoch. The data order and every augmentation are
pure functions of ``(seed, epoch, index)`` (see :mod:`offroad_training.train.data`), so a resumed
run replays exactly the batches an uninterrupted run would have seen, with any ``num_workers``.
SIGINT (Ctrl-C) and SIGTERM finish the current step, write ``last.pth`` and return exit code
130/143; SIGKILL loses at most the steps since the last checkpoint (``checkpoint_every_steps``,
else the epoch), never a file: every checkpoint is written atomically.

Outputs in ``out_dir``: ``config.yaml`` (resolved), ``train_log.csv`` (one row per step),
``eval_log.csv`` (one row per evaluation), ``eval_epoch<N>.json``, ``last.pth``,
``best_model.pth`` (EMA weights of the best mIoU) and TensorBoard events when installed.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (conventional name)

from offroad_core.atomic import atomic_write_text
from offroad_core.evaluation import EvalResult, evaluate
from offroad_core.provenance import provenance
from offroad_training.model.ddrnet import DDRNet23Slim
from offroad_training.train.augment import AugmentParams
from offroad_training.train.checkpoint import (
    ResumeError,
    load_checkpoint_dict,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from offroad_training.train.config import TrainConfig
from offroad_training.train.data import EpochBatchSampler, SegmentationTrainSet, normalise
from offroad_training.train.ema import ModelEma
from offroad_training.train.losses import FocalLoss

LOG = logging.getLogger(__name__)

RUNTIME_KEYS = ("num_workers", "pin_memory", "persistent_workers", "prefetch_factor",
                "torch_threads", "tensorboard", "max_steps", "device", "eval_limit")
"""Config keys a resumed run may change (they do not alter the numbers being computed)."""

TRAIN_LOG_FIELDS = ("step", "epoch", "loss", "lr", "seconds")
EVAL_LOG_FIELDS = ("step", "epoch", "miou", "pixel_accuracy", "best_miou")


@dataclass
class TrainResult:
    """What a call to :func:`train` ended with."""

    step: int
    epoch: int
    best_miou: float
    last_eval: EvalResult | None
    interrupted: str | None  # "SIGINT"/"SIGTERM" when stopped by a signal
    out_dir: Path


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warm-up from ~0 to 1 over ``warmup_steps``, then cosine to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class _LrLambda:
    """Picklable step -> lr factor (its numbers are stored in the scheduler state)."""

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float) -> None:
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_ratio = min_ratio

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.warmup_steps, self.total_steps, self.min_ratio)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; clear error for an absent CUDA device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return device


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: fp16 on CUDA and bf16 on request; ``auto`` is off on CPU."""
    mode = cfg.amp
    if mode == "auto":
        mode = "fp16" if device.type == "cuda" else "off"
    if mode == "fp16" and device.type != "cuda":
        raise RuntimeError("amp=fp16 needs CUDA; use amp=bf16 or amp=off on CPU")
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mode)


def torch_predictor(model: torch.nn.Module, mean: list[float], std: list[float],
                    device: torch.device | str = "cpu",
                    dtype: torch.dtype | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(rgb uint8 (H, W, 3)) -> labels uint8 (H, W)`` for :func:`evaluate`.

    Logits (1/8 resolution) are upsampled bilinearly (``align_corners=False``) to the input
    size and arg-maxed, as the exported labels graph does.
    """
    device = torch.device(device)

    @torch.no_grad()
    def predict(rgb: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
        x = normalise(x, mean, std)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(x)
        logits = F.interpolate(logits.float(), size=rgb.shape[:2], mode="bilinear",
                               align_corners=False)
        return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()

    return predict


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between steps (handlers restored on exit)."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signal = signal.Signals(signum).name
        LOG.warning("%s received: finishing this step and saving a resumable checkpoint",
                    self.signal)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _open_dataset(root: str, split: str) -> Any:
    from offroad_training.data.unified import UnifiedDataset

    return UnifiedDataset(root, split)


def _rewrite_log(path: Path, fields: tuple[str, ...], keep: Callable[[dict], bool]) -> None:
    """Keep only the rows ``keep`` accepts (drop rows a killed run wrote after its checkpoint)."""
    rows: list[dict] = []
    if path.exists():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if keep(r)]
    text = ",".join(fields) + "\n" + "".join(
        ",".join(str(r[k]) for k in fields) + "\n" for r in rows)
    atomic_write_text(path, text)


class _CsvLog:
    """Append-only CSV log, flushed every row (survives SIGKILL up to the last row)."""

    def __init__(self, path: Path, fields: tuple[str, ...]) -> None:
        new = not path.exists()
        self.file = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=fields)
        if new:
            self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _tensorboard(cfg: TrainConfig, out: Path) -> Any:
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _check_resume_config(saved: dict[str, Any], cfg: TrainConfig) -> TrainConfig:
    current = cfg.to_dict()
    differ = sorted(k for k in saved if k not in RUNTIME_KEYS and saved.get(k) != current.get(k))
    if differ:
        raise ResumeError(
            "the config differs from the checkpoint's in " + ", ".join(
                f"{k} ({saved.get(k)!r} -> {current.get(k)!r})" for k in differ)
            + ": resume with the same config, or start a new out_dir")
    merged = dict(saved)
    merged.update({k: current[k] for k in RUNTIME_KEYS})
    return TrainConfig.from_dict(merged, "resumed config")


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or resume) with ``cfg``; see the module docstring for the outputs."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt: dict[str, Any] | None = None
    if resume:
        ckpt = load_checkpoint_dict(out / "last.pth")
        cfg = _check_resume_config(ckpt["config"], cfg)
    cfg.validate()
    torch.set_num_threads(cfg.torch_threads or os.cpu_count() or 1)
    device = resolve_device(cfg.device)
    dtype = amp_dtype(cfg, device)
    if cfg.fast and device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    train_ds = _open_dataset(cfg.data_root, cfg.train_split)
    val_ds = _open_dataset(cfg.data_root, cfg.val_split)
    params = AugmentParams(
        height=cfg.crop_height, width=cfg.crop_width, scale_min=cfg.scale_min,
        scale_max=cfg.scale_max, hflip_p=cfg.hflip_p, brightness=cfg.brightness,
        contrast=cfg.contrast, saturation=cfg.saturation, hue=cfg.hue,
        color_jitter_p=cfg.color_jitter_p, erasing_p=cfg.erasing_p,
        erasing_scale=tuple(cfg.erasing_scale), erasing_ratio=tuple(cfg.erasing_ratio))
    sampler = EpochBatchSampler(len(train_ds.ids), cfg.batch_size, cfg.seed)
    workers = cfg.num_workers
    loader = torch.utils.data.DataLoader(
        SegmentationTrainSet(train_ds, params), batch_sampler=sampler, num_workers=workers,
        pin_memory=cfg.pin_memory and device.type == "cuda",
        persistent_workers=cfg.persistent_workers and workers > 0,
        prefetch_factor=cfg.prefetch_factor if workers > 0 else None,
        generator=torch.Generator().manual_seed(cfg.seed))

    model = DDRNet23Slim(num_classes=cfg.num_classes, aux=cfg.aux)
    pretrained_report = None
    if cfg.pretrained and ckpt is None:
        from offroad_training.model.pretrained import load_pretrained

        pretrained_report = load_pretrained(model, cfg.pretrained,
                                            allow_partial=cfg.pretrained_allow_partial).to_dict()
    model.to(device)
    if cfg.fast:
        model.to(memory_format=torch.channels_last)
    ema = ModelEma(model, cfg.ema_decay, cfg.ema_ramp_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=tuple(cfg.betas))
    steps_per_epoch = sampler.batches_per_epoch()
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _LrLambda(warmup_steps, total_steps, cfg.min_lr_ratio))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    criterion = FocalLoss(cfg.focal_gamma, cfg.class_weights, cfg.ignore_index).to(device)

    step, epoch, batch_in_epoch, best_miou = 0, 0, 0, -1.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        step, epoch = int(ckpt["step"]), int(ckpt["epoch"])
        batch_in_epoch, best_miou = int(ckpt["batch_in_epoch"]), float(ckpt["best_miou"])
        pretrained_report = ckpt.get("provenance", {}).get("pretrained")
        set_rng_state(ckpt["rng"])
        LOG.info("resumed from %s at step %d (epoch %d, batch %d)", out / "last.pth", step,
                 epoch, batch_in_epoch)
    if batch_in_epoch >= steps_per_epoch:
        epoch, batch_in_epoch = epoch + 1, 0

    atomic_write_text(out / "config.yaml", cfg.to_yaml())
    _rewrite_log(out / "train_log.csv", TRAIN_LOG_FIELDS, lambda r: int(r["step"]) <= step)
    _rewrite_log(out / "eval_log.csv", EVAL_LOG_FIELDS, lambda r: int(r["step"]) <= step)
    train_log = _CsvLog(out / "train_log.csv", TRAIN_LOG_FIELDS)
    eval_log = _CsvLog(out / "eval_log.csv", EVAL_LOG_FIELDS)
    tb = _tensorboard(cfg, out)

    def prov(**extra: Any) -> dict[str, Any]:
        return provenance(dataset=str(cfg.data_root), train_split=cfg.train_split,
                          pretrained=pretrained_report, step=step, epoch=epoch, **extra)

    def save_last() -> None:
        save_checkpoint(out / "last.pth", {
            "model": model.state_dict(), "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "step": step, "epoch": epoch,
            "batch_in_epoch": batch_in_epoch, "best_miou": best_miou, "rng": rng_state(),
            "config": cfg.to_dict(), "provenance": prov()})

    def run_eval() -> EvalResult:
        nonlocal best_miou
        predict = torch_predictor(ema.module, cfg.mean, cfg.std, device, dtype)
        result = evaluate(predict, val_ds, limit=cfg.eval_limit, height=cfg.crop_height,
                          width=cfg.crop_width, num_classes=cfg.num_classes)
        miou = result.miou if math.isfinite(result.miou) else 0.0
        result.save_json(out / f"eval_epoch{epoch + 1:03d}.json", step=step,
                         checkpoint=str(out / "last.pth"))
        if miou > best_miou:
            best_miou = miou
            save_checkpoint(out / "best_model.pth", {
                "model": ema.module.state_dict(), "config": cfg.to_dict(),
                "metrics": result.to_dict(), "step": step, "epoch": epoch,
                "provenance": prov(metrics={"miou": miou})})
        eval_log.write({"step": step, "epoch": epoch, "miou": f"{miou:.6f}",
                        "pixel_accuracy": f"{result.pixel_accuracy:.6f}",
                        "best_miou": f"{best_miou:.6f}"})
        if tb:
            tb.add_scalar("val/miou", miou, step)
        LOG.info("epoch %d step %d: val mIoU %.4f (best %.4f)\n%s", epoch + 1, step, miou,
                 best_miou, result.table())
        return result

    from tqdm import tqdm

    last_eval: EvalResult | None = None
    interrupted: str | None = None
    max_steps = cfg.max_steps or total_steps
    bar = tqdm(total=min(total_steps, max_steps), initial=step, disable=not progress,
               unit="step", dynamic_ncols=True)
    started = time.perf_counter()
    try:
        with _StopFlag() as stop:
            while epoch < cfg.epochs and step < max_steps and interrupted is None:
                sampler.set_epoch(epoch, batch_in_epoch)
                model.train()
                for images, labels in loader:
                    images = normalise(images.to(device, non_blocking=True), cfg.mean, cfg.std)
                    labels = labels.to(device, non_blocking=True)
                    if cfg.fast:
                        images = images.contiguous(memory_format=torch.channels_last)
                    with torch.autocast(device.type, dtype=dtype or torch.float32,
                                        enabled=dtype is not None):
                        out_main = model(images)
                    if cfg.aux:
                        main, aux = out_main
                        loss = criterion(main, labels) + cfg.aux_weight * criterion(aux, labels)
                    else:
                        loss = criterion(out_main, labels)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    lr = optimizer.param_groups[0]["lr"]
                    scheduler.step()
                    ema.update(model)
                    step += 1
                    batch_in_epoch += 1
                    value = float(loss.detach())
                    train_log.write({"step": step, "epoch": epoch, "loss": repr(value),
                                     "lr": repr(lr),
                                     "seconds": f"{time.perf_counter() - started:.3f}"})
                    if tb:
                        tb.add_scalar("train/loss", value, step)
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}", lr=f"{lr:.2e}")
                    if not math.isfinite(value):
                        raise FloatingPointError(f"loss is {value} at step {step}: lower lr, "
                                                 "check the labels, or use amp=off")
                    if stop.signal or step >= max_steps:
                        interrupted = stop.signal
                        break
                    if cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0:
                        save_last()
                if interrupted is None and batch_in_epoch >= steps_per_epoch:
                    if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                        last_eval = run_eval()
                    epoch, batch_in_epoch = epoch + 1, 0
                save_last()
    finally:
        bar.close()
        train_log.close()
        eval_log.close()
        if tb:
            tb.close()
    if interrupted:
        LOG.warning("stopped by %s at step %d; resume with --resume", interrupted, step)
    return TrainResult(step=step, epoch=epoch, best_miou=best_miou, last_eval=last_eval,
                       interrupted=interrupted, out_dir=out)
