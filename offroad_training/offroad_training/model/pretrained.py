"""Pretrained weights for DDRNet23-slim: local checkpoint files and the optional qai-hub-models.

Files from outside are read with ``torch.load(weights_only=True)`` only (no pickled code runs).

Layouts accepted (:func:`normalise_state_dict`; what was unwrapped is reported):

* containers: ``{"state_dict": ...}`` (the reference training code's ``checkpoint.pth.tar``,
  with ``epoch``/``optimizer`` beside it; official ImageNet weights), ``{"model": ...}`` (our
  ``best_model.pth``), ``{"ema": {"module": ...}}`` (our ``last.pth``), ``state_dict_ema`` /
  ``model_ema``, ``net``; nested up to four deep. EMA weights are preferred when a file holds
  both (they are the weights that were evaluated);
* key prefixes stripped *per key*, repeatedly: ``module.`` (DataParallel / DDP), ``model.``
  (the reference's training wrapper ``FullModel``, qai-hub-models), ``_orig_mod.``
  (``torch.compile``); ``loss.*`` (the wrapper's criterion, e.g. ``loss.criterion.weight``) is
  dropped.

Every load is then checked key by key against the model:

* ``segmentation``: a DDRNet segmentation checkpoint (``final_layer`` present, e.g. the
  19-class Cityscapes weights). Everything must match strictly; if the class count differs from
  the model's, the two final 1x1 classifier convs are replaced (Xavier init, backbone and the
  rest of the heads kept). A checkpoint without the auxiliary head (``seghead_extra``) leaves
  the model's auxiliary head freshly initialised; it is reported.
* ``imagenet_classifier``: the ImageNet DDRNet23-slim classifier (``linear`` with 1000 outputs,
  ``down5``, ``last_layer``; no segmentation head). Only the backbone is loaded; ``spp`` and
  both heads start from scratch, reported as a warning: expect a longer training.
* anything else, or any extra missing / unexpected / mis-shaped key, is refused with the list of
  offending keys unless ``allow_partial=True`` (then they are skipped and reported). A load that
  would initialise *no* backbone tensor is always refused: training would silently start from
  random weights.

``python -m offroad_training.model.pretrained --export-qai-hub OUT.pth`` runs in the separate
environment where ``qai-hub-models`` is installed and writes its DDRNet23-slim weights to a
plain state-dict file that this environment then loads as a local checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from offroad_core.exit_codes import CommandError
from offroad_training.model.checkpoint import WeightsReadError, read_weights
from offroad_training.model.ddrnet import DDRNet23Slim, DualResNet, is_backbone, replace_head

LOG = logging.getLogger(__name__)

QAI_HUB_SOURCE = "qai-hub-models"
HEAD_KEYS = ("final_layer.conv2.weight", "final_layer.conv2.bias",
             "seghead_extra.conv2.weight", "seghead_extra.conv2.bias")
SEGMENTATION_ONLY = ("spp.", "final_layer.", "seghead_extra.")
CLASSIFIER_ONLY = ("down5.", "last_layer.", "linear.")
CONTAINERS = ("ema", "state_dict_ema", "model_ema", "state_dict", "model", "net", "module")
"""Keys of a container dict, in order of preference (EMA first)."""
PREFIXES = ("module.", "model.", "_orig_mod.")
DROPPED = ("loss.",)


class PretrainedError(CommandError, RuntimeError):
    """Pretrained weights are unreadable, of an unknown kind or do not match the model."""


@dataclass
class Normalised:
    """A flat ``name -> tensor`` state dict and how it was obtained from the file."""

    state: dict[str, torch.Tensor]
    container: str = ""  # e.g. "state_dict" or "ema.module"; "" for a bare state dict
    stripped: dict[str, int] = field(default_factory=dict)  # prefix -> keys it was stripped from
    dropped: list[str] = field(default_factory=list)


@dataclass
class LoadReport:
    """What a pretrained load did; ``summary()`` is the text that gets logged."""

    source: str
    kind: str
    source_classes: int | None
    loaded: int = 0
    backbone_loaded: int = 0
    backbone_total: int = 0
    head_replaced: bool = False
    container: str = ""
    stripped: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return a multi-line human-readable account of the load."""
        lines = [f"pretrained weights from {self.source}: kind={self.kind}, "
                 f"classes={self.source_classes}, {self.loaded} tensors loaded "
                 f"({self.backbone_loaded} of the model's {self.backbone_total} backbone "
                 "tensors)"]
        layout = [f"container {self.container!r}"] if self.container else []
        layout += [f"prefix {p!r} stripped from {n} keys" for p, n in self.stripped.items()]
        if self.dropped:
            layout.append(f"dropped {', '.join(self.dropped)}")
        if layout:
            lines.append("  layout: " + "; ".join(layout))
        if self.kind == "imagenet_classifier":
            lines.append("  !! ImageNet classifier weights (no segmentation head): only the "
                         "backbone is initialised; spp and both heads start from scratch "
                         "-- expect a longer training than from Cityscapes")
        if self.head_replaced:
            lines.append(f"  classifier replaced: {self.source_classes} -> model classes "
                         "(Xavier init; backbone and head trunk kept)")
        if self.fresh:
            lines.append(f"  freshly initialised (absent from the checkpoint by design): "
                         f"{_groups(self.fresh)}")
        for name in ("missing", "unexpected", "mismatched"):
            keys = getattr(self, name)
            if keys:
                lines.append(f"  {name} ({len(keys)}): {', '.join(keys[:8])}"
                             f"{' ...' if len(keys) > 8 else ''}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain data (for checkpoint provenance)."""
        return {"source": self.source, "kind": self.kind, "source_classes": self.source_classes,
                "loaded": self.loaded, "backbone_loaded": self.backbone_loaded,
                "backbone_total": self.backbone_total, "head_replaced": self.head_replaced,
                "container": self.container, "stripped": dict(self.stripped),
                "dropped": list(self.dropped), "missing": self.missing,
                "unexpected": self.unexpected, "mismatched": self.mismatched,
                "fresh": _groups(self.fresh)}


def _groups(keys: list[str]) -> list[str]:
    """Collapse keys to their top-level module names, in order."""
    return list(dict.fromkeys(k.split(".")[0] for k in keys))


def read_state_dict(path: str | Path) -> Normalised:
    """Read a checkpoint file safely and return its normalised state dict."""
    try:
        obj = read_weights(path, "pretrained checkpoint")
    except WeightsReadError as exc:
        raise PretrainedError(f"{exc}; re-save the weights as a plain state dict") from None
    return normalise_state_dict(obj, str(path))


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(v, torch.Tensor) for v in obj.values())


def normalise_state_dict(obj: Any, source: str) -> Normalised:
    """Unwrap containers, strip prefixes per key and drop ``loss.*`` (see the module doc)."""
    path: list[str] = []
    for _ in range(4):
        if not isinstance(obj, dict) or _is_tensor_dict(obj):
            break
        key = next((k for k in CONTAINERS if isinstance(obj.get(k), dict) and obj[k]), None)
        if key is None:
            break
        path.append(key)
        obj = obj[key]
    if not _is_tensor_dict(obj):
        raise PretrainedError(f"{source} holds no state dict of tensors (top-level keys: "
                              f"{', '.join(map(str, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__})")  # noqa: E501
    out = Normalised(state={}, container=".".join(path))
    for raw, value in obj.items():
        key = str(raw)
        while key.startswith(PREFIXES):
            prefix = next(p for p in PREFIXES if key.startswith(p))
            out.stripped[prefix] = out.stripped.get(prefix, 0) + 1
            key = key[len(prefix):]
        if key.startswith(DROPPED):
            out.dropped.append(str(raw))
            continue
        if key in out.state:
            raise PretrainedError(f"{source}: two tensors become {key!r} once wrapper prefixes "
                                  "are stripped; the file mixes two models")
        out.state[key] = value
    if not out.state:
        raise PretrainedError(f"{source} holds only {', '.join(out.dropped[:4])}: no weights")
    return out


def _is_backbone_weight(key: str, value: torch.Tensor) -> bool:
    """A backbone weight or BN statistic (BN's integer ``num_batches_tracked`` carries none)."""
    return is_backbone(key) and value.dtype.is_floating_point


def classify_state_dict(state: dict[str, torch.Tensor]) -> tuple[str, int | None]:
    """Return ``(kind, classes)``: ``segmentation``/``imagenet_classifier``/``unknown``."""
    if "linear.weight" in state and state["linear.weight"].ndim == 2:
        return "imagenet_classifier", int(state["linear.weight"].shape[0])
    if "final_layer.conv2.weight" in state:
        return "segmentation", int(state["final_layer.conv2.weight"].shape[0])
    return "unknown", None


def load_state_dict_checked(model: DualResNet, weights: Normalised | dict[str, torch.Tensor],
                            source: str, allow_partial: bool = False) -> LoadReport:
    """Load ``weights`` into ``model`` with the checks described in the module docstring."""
    if not isinstance(weights, Normalised):
        weights = normalise_state_dict(weights, source)
    state = dict(weights.state)
    kind, classes = classify_state_dict(state)
    report = LoadReport(source=source, kind=kind, source_classes=classes,
                        container=weights.container, stripped=dict(weights.stripped),
                        dropped=list(weights.dropped))
    target = model.state_dict()
    report.backbone_total = sum(1 for k, v in target.items() if _is_backbone_weight(k, v))
    if kind == "segmentation" and classes != model.num_classes:
        for k in HEAD_KEYS:
            state.pop(k, None)
        report.head_replaced = True
    expected_fresh: tuple[str, ...] = ()
    expected_extra: tuple[str, ...] = ()
    if kind == "imagenet_classifier":
        expected_fresh, expected_extra = SEGMENTATION_ONLY, CLASSIFIER_ONLY
    elif kind == "segmentation":
        if not any(k.startswith("seghead_extra.") for k in state):
            expected_fresh = ("seghead_extra.",)
        if not model.aux:
            expected_extra = ("seghead_extra.",)
    head_keys = set(HEAD_KEYS) if report.head_replaced else set()
    for key in target:
        if key not in state and key not in head_keys:
            (report.fresh if key.startswith(expected_fresh) else report.missing).append(key)
    usable = {}
    for key, value in state.items():
        if key not in target:
            if not key.startswith(expected_extra):
                report.unexpected.append(key)
        elif tuple(value.shape) != tuple(target[key].shape):
            report.mismatched.append(f"{key} {tuple(value.shape)} vs {tuple(target[key].shape)}")
        else:
            usable[key] = value
    report.loaded = len(usable)
    report.backbone_loaded = sum(1 for k, v in usable.items() if _is_backbone_weight(k, v))
    problems = report.missing or report.unexpected or report.mismatched or kind == "unknown"
    if report.backbone_loaded == 0:
        LOG.error("%s", report.summary())
        raise PretrainedError(
            f"{source}: none of its tensors initialises the DDRNet23-slim backbone "
            f"({len(report.unexpected)} unexpected, {len(report.mismatched)} mis-shaped keys, "
            f"e.g. {', '.join((report.unexpected + report.mismatched)[:2]) or 'none'}); "
            "training would start from random weights, so this is refused")
    if problems and not allow_partial:
        LOG.error("%s", report.summary())
        raise PretrainedError(
            f"refusing a partial load from {source}: {len(report.missing)} missing, "
            f"{len(report.unexpected)} unexpected, {len(report.mismatched)} mis-shaped keys "
            f"(e.g. {', '.join((report.missing + report.unexpected + report.mismatched)[:3])}"
            f"{', kind unknown' if kind == 'unknown' else ''}); these weights do not match "
            "DDRNet23-slim. Set pretrained_allow_partial: true to load the matching tensors")
    model.load_state_dict(usable, strict=False)
    if report.head_replaced:
        replace_head(model, model.num_classes)
    level = logging.WARNING if (kind != "segmentation" or problems or report.fresh) \
        else logging.INFO
    LOG.log(level, "%s", report.summary())
    return report


def qai_hub_state_dict() -> Normalised:
    """Return the DDRNet23-slim weights of ``qai_hub_models`` (``from_pretrained()``).

    Needs the optional ``qai-hub-models`` package (and network access on first use). It pins an
    old onnxruntime and torch, so it normally lives in its own environment: there, run
    ``python -m offroad_training.model.pretrained --export-qai-hub ddrnet23s.pth`` and pass the
    file as a local checkpoint here.
    """
    try:
        from qai_hub_models.models.ddrnet23_slim import Model
    except ImportError as exc:
        raise PretrainedError(
            "qai-hub-models is not importable here (" + str(exc) + "). It pins "
            "onnxruntime<=1.22.1 and torch<=2.11, so install it in its own environment "
            "(pip install 'qai-hub-models[ddrnet23-slim]'), run `python -m "
            "offroad_training.model.pretrained --export-qai-hub ddrnet23s.pth` there, and set "
            "pretrained: ddrnet23s.pth in the training config") from None
    hub_model = Model.from_pretrained()
    # The whole wrapper's state dict: the reference network sits under "model." (stripped).
    return normalise_state_dict(dict(hub_model.state_dict()), QAI_HUB_SOURCE)


def load_pretrained(model: DualResNet, source: str | Path,
                    allow_partial: bool = False) -> LoadReport:
    """Initialise ``model`` from a local checkpoint path or ``"qai-hub-models"``."""
    if str(source) == QAI_HUB_SOURCE:
        weights = qai_hub_state_dict()
    else:
        weights = read_state_dict(source)
    return load_state_dict_checked(model, weights, str(source), allow_partial=allow_partial)


def build_model(num_classes: int = 7, pretrained: str | Path | None = None, aux: bool = True,
                allow_partial: bool = False) -> tuple[DDRNet23Slim, LoadReport | None]:
    """Build DDRNet23-slim, optionally initialised from pretrained weights.

    ``pretrained`` is a local checkpoint path or ``"qai-hub-models"``. Returns the model and
    the :class:`LoadReport` (``None`` without ``pretrained``).
    """
    model = DDRNet23Slim(num_classes=num_classes, aux=aux)
    report = load_pretrained(model, pretrained, allow_partial) if pretrained else None
    return model, report


def main(argv: list[str] | None = None) -> int:
    """Export qai-hub-models' DDRNet23-slim weights to a plain state-dict file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-qai-hub", metavar="OUT.pth", required=True,
                        help="write qai-hub-models' DDRNet23-slim state dict here")
    args = parser.parse_args(argv)
    from offroad_core.atomic import atomic_path

    state = qai_hub_state_dict().state
    kind, classes = classify_state_dict(state)
    with atomic_path(args.export_qai_hub) as tmp:
        torch.save(state, tmp)
    print(f"wrote {args.export_qai_hub}: kind={kind}, classes={classes}, {len(state)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
