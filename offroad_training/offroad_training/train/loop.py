"""The training loop: seed recipe, EMA evaluation, atomic checkpoints, exact resume, torchrun.

:func:`train` = :func:`setup` (data, model, optimiser, scheduler, scaler) + :func:`restore`
(``last.pth`` on ``--resume``) + :func:`run_loop` (the epochs). One process, or one per GPU
under ``torchrun`` (:mod:`offroad_training.train.distributed`: global batch, agreed stopping,
rank-0 files).

Exact resume: ``last.pth`` holds model, EMA, optimizer (both parameter groups), scheduler, AMP
scaler, the global RNG states, the step and the position in the epoch. The data order and every
augmentation are pure functions of ``(seed, epoch, index)`` (see
:mod:`offroad_training.train.data`), so a resumed run replays exactly the batches an
uninterrupted run would have seen, with any ``num_workers`` and any number of processes.
SIGINT (Ctrl-C) and SIGTERM finish the current step, write ``last.pth`` and return exit code
130/143; SIGKILL loses at most the steps since the last checkpoint (``checkpoint_every_steps``,
else the epoch), never a file: every checkpoint is written atomically.

Outputs in ``out_dir`` (rank 0): ``config.yaml`` (resolved), ``train_log.csv`` (one row per
step), ``eval_log.csv`` (one row per evaluation), ``eval_epoch<N>.json``, ``last.pth``,
``best_model.pth`` (EMA weights of the best mIoU) and TensorBoard events when installed.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from offroad_core.atomic import atomic_write_text
from offroad_core.evaluation import EvalResult
from offroad_core.provenance import provenance
from offroad_training.model.pretrained import build_model
from offroad_training.train.checkpoint import (
    ResumeError,
    load_checkpoint_dict,
    resume_config,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from offroad_training.train.config import ConfigError, TrainConfig
from offroad_training.train.data import EpochBatchSampler, SegmentationTrainSet, normalise
from offroad_training.train.distributed import Distributed, RankLostError, is_peer_failure
from offroad_training.train.ema import ModelEma
from offroad_training.train.evaluation import evaluate_distributed, torch_predictor
from offroad_training.train.logs import RunLogs
from offroad_training.train.losses import FocalLoss
from offroad_training.train.optim import build_optimizer, describe_groups, group_lrs
from offroad_training.train.runtime import (
    Reproducibility,
    StopFlag,
    amp_dtype,
    resolve_device,
    seed_worker,
)

LOG = logging.getLogger(__name__)

@dataclass
class TrainResult:
    """What a call to :func:`train` ended with."""

    step: int
    epoch: int
    best_miou: float
    last_eval: EvalResult | None
    interrupted: str | None  # "SIGINT"/"SIGTERM" when stopped by a signal
    out_dir: Path
    is_main: bool = True  # rank 0 (the process that wrote the files)


@dataclass
class Session:
    """Everything one run holds; built by :func:`setup`, driven by :func:`run_loop`."""

    cfg: TrainConfig
    dist: Distributed
    device: torch.device
    dtype: torch.dtype | None
    val_ds: Any
    sampler: EpochBatchSampler
    loader: torch.utils.data.DataLoader
    raw: torch.nn.Module  # the network (what checkpoints hold)
    model: torch.nn.Module  # what the step runs: ``raw`` or DDP around it
    ema: ModelEma
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    criterion: FocalLoss
    steps_per_epoch: int
    total_steps: int
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_miou: float = -1.0
    pretrained_report: dict[str, Any] | None = None
    logs: RunLogs | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def out(self) -> Path:
        """The run directory."""
        return Path(self.cfg.out_dir)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor,
                   signal_name: str | None) -> tuple[float, str | None]:
        """One optimizer step; return the global batch's loss and the agreed stop signal."""
        cfg = self.cfg
        images = normalise(images.to(self.device, non_blocking=True), cfg.mean, cfg.std)
        labels = labels.to(self.device, non_blocking=True)
        if cfg.fast:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):
            outputs = self.model(images)
        main, aux = outputs if cfg.aux else (outputs, None)
        total, count = self.criterion.sum_and_count(main, labels)
        if aux is not None:
            total = total + cfg.aux_weight * self.criterion.sum_and_count(aux, labels)[0]
        flags = [float(signal_name == "SIGINT"), float(signal_name == "SIGTERM")]
        stats = torch.tensor([float(count), float(total.detach()), *flags],
                             dtype=torch.float64, device=self.dist.device)
        self.dist.all_reduce_sum(stats)  # pixels, loss sum and stop flags of the global batch
        pixels = max(float(stats[0]), 1.0)
        loss = total * (self.dist.world_size / pixels)  # DDP averages: global-mean gradient
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lrs = group_lrs(self.optimizer)
        self.scheduler.step()
        self.ema.update(self.raw)
        self.step += 1
        self.batch_in_epoch += 1
        value = float(stats[1]) / pixels
        if self.logs:
            self.logs.step({"step": self.step, "epoch": self.epoch, "loss": repr(value),
                            "lr": repr(lrs["head"]), "lr_backbone": repr(lrs["backbone"]),
                            "seconds": f"{time.perf_counter() - self.started:.3f}"}, lrs)
        if not math.isfinite(value):
            raise FloatingPointError(f"loss is {value} at step {self.step}: lower lr, check the "
                                     "labels, or use amp=off")
        agreed = "SIGINT" if stats[2] > 0 else "SIGTERM" if stats[3] > 0 else None
        return value, agreed

    def provenance(self, **extra: Any) -> dict[str, Any]:
        """Provenance of a checkpoint written now."""
        return provenance(dataset=str(self.cfg.data_root), train_split=self.cfg.train_split,
                          pretrained=self.pretrained_report, step=self.step, epoch=self.epoch,
                          world_size=self.dist.world_size, **extra)

    def save_last(self) -> None:
        """Write ``last.pth`` (rank 0, atomically)."""
        if not self.dist.is_main:
            return
        save_checkpoint(self.out / "last.pth", {
            "model": self.raw.state_dict(), "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "step": self.step, "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch, "best_miou": self.best_miou,
            "rng": rng_state(), "world_size": self.dist.world_size,
            "config": self.cfg.to_dict(), "provenance": self.provenance()})

    def evaluate(self) -> EvalResult:
        """Score the EMA weights on the val split (sharded over the ranks); keep the best."""
        cfg = self.cfg
        predict = torch_predictor(self.ema.module, cfg.mean, cfg.std, self.device, self.dtype)
        result = evaluate_distributed(predict, self.val_ds, self.dist, limit=cfg.eval_limit,
                                      height=cfg.crop_height, width=cfg.crop_width,
                                      num_classes=cfg.num_classes)
        miou = result.miou if math.isfinite(result.miou) else 0.0
        improved = miou > self.best_miou
        self.best_miou = max(self.best_miou, miou)
        if self.dist.is_main:
            result.save_json(self.out / f"eval_epoch{self.epoch + 1:03d}.json", step=self.step,
                             checkpoint=str(self.out / "last.pth"))
            if improved:
                save_checkpoint(self.out / "best_model.pth", {
                    "model": self.ema.module.state_dict(), "config": cfg.to_dict(),
                    "metrics": result.to_dict(), "step": self.step, "epoch": self.epoch,
                    "provenance": self.provenance(metrics={"miou": miou})})
            assert self.logs is not None
            self.logs.evaluation({"step": self.step, "epoch": self.epoch, "miou": f"{miou:.6f}",
                                  "pixel_accuracy": f"{result.pixel_accuracy:.6f}",
                                  "best_miou": f"{self.best_miou:.6f}"})
        LOG.info("epoch %d step %d: val mIoU %.4f (best %.4f)\n%s", self.epoch + 1, self.step,
                 miou, self.best_miou, result.table())
        return result


def _open_dataset(root: str, split: str) -> Any:
    from offroad_training.data.unified import UnifiedDataset

    return UnifiedDataset(root, split)


def setup(cfg: TrainConfig, dist: Distributed, device: torch.device, fresh: bool) -> Session:
    """Data, model (``pretrained`` weights on a ``fresh`` start), EMA, optimiser, scheduler,
    scaler."""
    train_ds = _open_dataset(cfg.data_root, cfg.train_split)
    val_ds = _open_dataset(cfg.data_root, cfg.val_split)
    sampler = EpochBatchSampler(len(train_ds.ids), cfg.batch_size, cfg.seed, dist.rank,
                                dist.world_size)
    workers = cfg.num_workers
    loader = torch.utils.data.DataLoader(
        SegmentationTrainSet(train_ds, cfg.augment, cfg.crop_height, cfg.crop_width),
        batch_sampler=sampler, num_workers=workers,
        pin_memory=cfg.pin_memory and device.type == "cuda",
        persistent_workers=cfg.persistent_workers and workers > 0,
        prefetch_factor=cfg.prefetch_factor if workers > 0 else None,
        worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(cfg.seed))
    raw, report = build_model(cfg.num_classes, cfg.pretrained if fresh else None,
                              cfg.aux, cfg.pretrained_allow_partial)
    if fresh and not cfg.pretrained and cfg.backbone_lr_factor != 1.0:
        LOG.warning("backbone_lr_factor %s without pretrained weights: a random backbone "
                    "learns at %s x lr", cfg.backbone_lr_factor, cfg.backbone_lr_factor)
    raw.to(device)
    if cfg.fast:
        raw.to(memory_format=torch.channels_last)
    ema = ModelEma(raw, cfg.ema_decay, cfg.ema_ramp_steps)
    if cfg.sync_batchnorm and dist.enabled:
        if device.type != "cuda":
            raise ConfigError("sync_batchnorm needs CUDA devices (torch's SyncBatchNorm has no "
                              "CPU kernels); set sync_batchnorm: false")
        raw = torch.nn.SyncBatchNorm.convert_sync_batchnorm(raw)
    steps_per_epoch = sampler.batches_per_epoch()
    total_steps = cfg.epochs * steps_per_epoch
    optimizer, scheduler = build_optimizer(raw, cfg, round(cfg.warmup_epochs * steps_per_epoch),
                                           total_steps)
    LOG.info("parameter groups: %s", describe_groups(optimizer))
    dtype = amp_dtype(cfg.amp, device)
    return Session(
        cfg=cfg, dist=dist, device=device, dtype=dtype, val_ds=val_ds, sampler=sampler,
        loader=loader, raw=raw, model=dist.wrap(raw, device), ema=ema, optimizer=optimizer,
        scheduler=scheduler, scaler=torch.amp.GradScaler(device.type,
                                                         enabled=dtype == torch.float16),
        criterion=FocalLoss(cfg.focal_gamma, cfg.class_weights, cfg.ignore_index).to(device),
        steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        pretrained_report=report.to_dict() if report else None)


def restore(s: Session, ckpt: dict[str, Any] | None) -> None:
    """Continue from ``last.pth``'s state (every rank reads the same file)."""
    if ckpt is not None:
        s.raw.load_state_dict(ckpt["model"])
        s.ema.load_state_dict(ckpt["ema"])
        try:
            s.optimizer.load_state_dict(ckpt["optimizer"])
        except ValueError as exc:
            raise ResumeError(f"last.pth's optimizer state does not fit ({exc}); it was written "
                              "by another version: start a new out_dir") from None
        s.scheduler.load_state_dict(ckpt["scheduler"])
        s.scaler.load_state_dict(ckpt["scaler"])
        s.step, s.epoch = int(ckpt["step"]), int(ckpt["epoch"])
        s.batch_in_epoch, s.best_miou = int(ckpt["batch_in_epoch"]), float(ckpt["best_miou"])
        s.pretrained_report = ckpt.get("provenance", {}).get("pretrained")
        set_rng_state(ckpt["rng"])
        saved_world = int(ckpt.get("world_size", 1))
        if saved_world != s.dist.world_size:
            LOG.warning("resuming a %d-process run with %d processes: the same global batches "
                        "follow in the same order; batch-norm statistics are now taken over "
                        "%d images per process instead of %d, so the numbers differ from an "
                        "uninterrupted run", saved_world, s.dist.world_size,
                        s.sampler.share, s.cfg.batch_size // saved_world)
        LOG.info("resumed from %s at step %d (epoch %d, batch %d)", s.out / "last.pth", s.step,
                 s.epoch, s.batch_in_epoch)
    if s.batch_in_epoch >= s.steps_per_epoch:
        s.epoch, s.batch_in_epoch = s.epoch + 1, 0
    if s.dist.is_main:
        s.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(s.out / "config.yaml", s.cfg.to_yaml())
        s.logs = RunLogs(s.out, s.step, s.cfg.tensorboard)


def run_loop(s: Session, progress: bool) -> TrainResult:
    """The epochs: train, evaluate every ``eval_every`` epochs, checkpoint; stop on signals."""
    from tqdm import tqdm

    cfg, last_eval, interrupted = s.cfg, None, None
    max_steps = min(cfg.max_steps or s.total_steps, s.total_steps)
    bar = tqdm(total=max_steps, initial=s.step, unit="step", dynamic_ncols=True,
               disable=not (progress and s.dist.is_main))
    try:
        with StopFlag() as stop:
            while s.epoch < cfg.epochs and s.step < max_steps and interrupted is None:
                s.sampler.set_epoch(s.epoch, s.batch_in_epoch)
                s.model.train()
                for images, labels in s.loader:
                    loss, interrupted = s.train_step(images, labels, stop.signal)
                    bar.update(1)
                    bar.set_postfix(epoch=s.epoch + 1, loss=f"{loss:.4f}")
                    if interrupted or s.step >= max_steps:
                        break
                    if cfg.checkpoint_every_steps and s.step % cfg.checkpoint_every_steps == 0:
                        s.save_last()
                if interrupted is None and s.batch_in_epoch >= s.steps_per_epoch:
                    if (s.epoch + 1) % cfg.eval_every == 0 or s.epoch + 1 == cfg.epochs:
                        last_eval = s.evaluate()
                    s.epoch, s.batch_in_epoch = s.epoch + 1, 0
                s.save_last()
    finally:
        bar.close()
        if s.logs:
            s.logs.close()
    if interrupted:
        LOG.warning("stopped by %s at step %d; resume with --resume", interrupted, s.step)
    return TrainResult(step=s.step, epoch=s.epoch, best_miou=s.best_miou, last_eval=last_eval,
                       interrupted=interrupted, out_dir=s.out, is_main=s.dist.is_main)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train (or resume) with ``cfg``; see the module docstring for the outputs."""
    ckpt: dict[str, Any] | None = None
    if resume:
        ckpt = load_checkpoint_dict(Path(cfg.out_dir) / "last.pth")
        cfg = resume_config(ckpt["config"], cfg)
    cfg.validate()
    dist = Distributed.from_env(cfg.dist_backend)
    clean = False
    try:
        device = resolve_device(cfg.device, dist.local_rank)
        threads = cfg.torch_threads or max(1, (os.cpu_count() or 1) // dist.local_world_size)
        with Reproducibility(cfg.seed, threads, cfg.deterministic, cfg.fast, device):
            session = setup(cfg, dist, device, fresh=ckpt is None)
            restore(session, ckpt)
            result = run_loop(session, progress)
        clean = True
        return result
    except RuntimeError as exc:
        if dist.enabled and is_peer_failure(exc):
            raise RankLostError(
                f"rank {dist.rank}: another process of this {dist.world_size}-process job "
                f"stopped ({str(exc).splitlines()[0][:160]}); {Path(cfg.out_dir) / 'last.pth'} "
                "is the last complete checkpoint: run the same command with --resume") from None
        raise
    finally:
        dist.close(clean)
