"""Pretrained weights for DDRNet23-slim: local checkpoint files and the optional qai-hub-models.

Files from outside are read with ``torch.load(weights_only=True)`` only (no pickled code runs).
Every load is checked key by key against the model and reported loudly (the seed's risk 1):

* ``segmentation``: a DDRNet segmentation checkpoint (``final_layer`` present, e.g. the
  19-class Cityscapes weights). Everything must match strictly; if the class count differs from
  the model's, the two final 1x1 classifier convs are replaced (Xavier init, backbone and the
  rest of the heads kept). A checkpoint without the auxiliary head (``seghead_extra``) leaves
  the model's auxiliary head freshly initialised; it is reported.
* ``imagenet_classifier``: the ImageNet DDRNet23-slim classifier (``linear`` with 1000 outputs,
  ``down5``, ``last_layer``; no segmentation head). Only the backbone is loaded; ``spp`` and
  both heads start from scratch. The missing/unexpected keys must be exactly that layout; the
  load is allowed but reported as a warning: expect a longer training than from Cityscapes.
* anything else, or any extra missing / unexpected / mis-shaped key, is refused with the list of
  offending keys unless ``allow_partial=True`` (then they are skipped and reported).

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

from offroad_training.model.ddrnet import DualResNet, replace_head

LOG = logging.getLogger(__name__)

QAI_HUB_SOURCE = "qai-hub-models"
HEAD_KEYS = ("final_layer.conv2.weight", "final_layer.conv2.bias",
             "seghead_extra.conv2.weight", "seghead_extra.conv2.bias")
SEGMENTATION_ONLY = ("spp.", "final_layer.", "seghead_extra.")
CLASSIFIER_ONLY = ("down5.", "last_layer.", "linear.")
WRAPPER_KEYS = ("state_dict", "model", "net")
PREFIXES = ("module.", "model.")


class PretrainedError(RuntimeError):
    """Pretrained weights are unreadable, of an unknown kind or do not match the model."""


@dataclass
class LoadReport:
    """What a pretrained load did; ``summary()`` is the text that gets logged."""

    source: str
    kind: str
    source_classes: int | None
    loaded: int = 0
    head_replaced: bool = False
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return a multi-line human-readable account of the load."""
        lines = [f"pretrained weights from {self.source}: kind={self.kind}, "
                 f"classes={self.source_classes}, {self.loaded} tensors loaded"]
        if self.kind == "imagenet_classifier":
            lines.append("  !! ImageNet classifier weights (no segmentation head): only the "
                         "backbone is initialised; spp and both heads start from scratch "
                         "(seed risk 1) -- expect a longer training than from Cityscapes")
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
                "loaded": self.loaded, "head_replaced": self.head_replaced,
                "missing": self.missing, "unexpected": self.unexpected,
                "mismatched": self.mismatched, "fresh": _groups(self.fresh)}


def _groups(keys: list[str]) -> list[str]:
    """Collapse keys to their top-level module names, in order."""
    return list(dict.fromkeys(k.split(".")[0] for k in keys))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file safely and return a flat ``name -> tensor`` state dict.

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` containers and strips the
    ``module.`` (DataParallel) and ``model.`` (training wrapper, qai-hub-models) prefixes.
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"pretrained checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PretrainedError(
            f"cannot read {path} with torch.load(weights_only=True): {exc}. Only plain "
            "state dicts of tensors are accepted; re-save the weights as a state dict") from exc
    return normalise_state_dict(obj, str(path))


def normalise_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Unwrap a container and strip wrapper prefixes; raise if no tensors are found."""
    for _ in range(3):
        if isinstance(obj, dict) and not _is_tensor_dict(obj):
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not _is_tensor_dict(obj):
        raise PretrainedError(f"{source} holds no state dict of tensors")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    for prefix in PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _is_tensor_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def classify_state_dict(state: dict[str, torch.Tensor]) -> tuple[str, int | None]:
    """Return ``(kind, classes)``: ``segmentation``/``imagenet_classifier``/``unknown``."""
    if "linear.weight" in state and state["linear.weight"].ndim == 2:
        return "imagenet_classifier", int(state["linear.weight"].shape[0])
    if "final_layer.conv2.weight" in state:
        return "segmentation", int(state["final_layer.conv2.weight"].shape[0])
    return "unknown", None


def load_state_dict_checked(model: DualResNet, state: dict[str, torch.Tensor], source: str,
                            allow_partial: bool = False) -> LoadReport:
    """Load ``state`` into ``model`` with the checks described in the module docstring."""
    kind, classes = classify_state_dict(state)
    report = LoadReport(source=source, kind=kind, source_classes=classes)
    target = model.state_dict()
    state = dict(state)
    if kind == "segmentation" and classes != model.num_classes:
        for k in HEAD_KEYS:
            state.pop(k, None)
        report.head_replaced = True
    expected_fresh: tuple[str, ...] = ()
    expected_extra: tuple[str, ...] = ()
    if kind == "imagenet_classifier":
        expected_fresh, expected_extra = SEGMENTATION_ONLY, CLASSIFIER_ONLY
    elif kind == "segmentation":
        has_aux = any(k.startswith("seghead_extra.") for k in state)
        if not has_aux:
            expected_fresh = ("seghead_extra.",)
        if not model.aux:
            expected_extra = ("seghead_extra.",)
    head_keys = set(HEAD_KEYS) if report.head_replaced else set()
    for key in target:
        if key in state:
            continue
        if key in head_keys:
            continue
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
    problems = report.missing or report.unexpected or report.mismatched or kind == "unknown"
    if problems and not allow_partial:
        raise PretrainedError(
            f"refusing a partial load from {source}:\n{report.summary()}\n"
            "These weights do not match DDRNet23-slim. Pass allow_partial=True "
            "(config: pretrained_allow_partial: true) to load the matching tensors anyway.")
    model.load_state_dict(usable, strict=False)
    report.loaded = len(usable)
    if report.head_replaced:
        replace_head(model, model.num_classes)
    level = logging.WARNING if (kind != "segmentation" or problems or report.fresh) \
        else logging.INFO
    LOG.log(level, "%s", report.summary())
    return report


def qai_hub_state_dict() -> dict[str, torch.Tensor]:
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
    net = getattr(hub_model, "model", hub_model)
    return normalise_state_dict(dict(net.state_dict()), QAI_HUB_SOURCE)


def load_pretrained(model: DualResNet, source: str | Path,
                    allow_partial: bool = False) -> LoadReport:
    """Initialise ``model`` from a local checkpoint path or ``"qai-hub-models"``."""
    if str(source) == QAI_HUB_SOURCE:
        state = qai_hub_state_dict()
    else:
        state = read_state_dict(source)
    return load_state_dict_checked(model, state, str(source), allow_partial=allow_partial)


def main(argv: list[str] | None = None) -> int:
    """Export qai-hub-models' DDRNet23-slim weights to a plain state-dict file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-qai-hub", metavar="OUT.pth", required=True,
                        help="write qai-hub-models' DDRNet23-slim state dict here")
    args = parser.parse_args(argv)
    from offroad_core.atomic import atomic_path

    state = qai_hub_state_dict()
    kind, classes = classify_state_dict(state)
    with atomic_path(args.export_qai_hub) as tmp:
        torch.save(state, tmp)
    print(f"wrote {args.export_qai_hub}: kind={kind}, classes={classes}, {len(state)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
