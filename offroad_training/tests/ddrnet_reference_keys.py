"""The reference DDRNet23-slim state-dict layout, written out from its published naming.

Built independently of ``offroad_training.model`` so tests can check that our module names and
shapes match the official checkpoints (segmentation: ``conv1 ... spp, final_layer,
seghead_extra``; ImageNet classifier: the same backbone plus ``down5``, ``last_layer``,
``linear``).
"""

from __future__ import annotations

import torch


def _bn(d: dict, prefix: str, c: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        d[f"{prefix}.{name}"] = (c,)
    d[f"{prefix}.num_batches_tracked"] = ()


def _conv(d: dict, prefix: str, cin: int, cout: int, k: int, bias: bool = False) -> None:
    d[f"{prefix}.weight"] = (cout, cin, k, k)
    if bias:
        d[f"{prefix}.bias"] = (cout,)


def _basic_stage(d: dict, prefix: str, cin: int, c: int, blocks: int, stride: int) -> None:
    for i in range(blocks):
        p = f"{prefix}.{i}"
        _conv(d, f"{p}.conv1", cin if i == 0 else c, c, 3)
        _bn(d, f"{p}.bn1", c)
        _conv(d, f"{p}.conv2", c, c, 3)
        _bn(d, f"{p}.bn2", c)
        if i == 0 and (stride != 1 or cin != c):
            _conv(d, f"{p}.downsample.0", cin, c, 1)
            _bn(d, f"{p}.downsample.1", c)


def _bottleneck(d: dict, prefix: str, cin: int, c: int) -> None:
    p = f"{prefix}.0"
    _conv(d, f"{p}.conv1", cin, c, 1)
    _bn(d, f"{p}.bn1", c)
    _conv(d, f"{p}.conv2", c, c, 3)
    _bn(d, f"{p}.bn2", c)
    _conv(d, f"{p}.conv3", c, 2 * c, 1)
    _bn(d, f"{p}.bn3", 2 * c)
    _conv(d, f"{p}.downsample.0", cin, 2 * c, 1)
    _bn(d, f"{p}.downsample.1", 2 * c)


def _backbone(d: dict, planes: int = 32) -> None:
    hi = planes * 2
    _conv(d, "conv1.0", 3, planes, 3, bias=True)
    _bn(d, "conv1.1", planes)
    _conv(d, "conv1.3", planes, planes, 3, bias=True)
    _bn(d, "conv1.4", planes)
    _basic_stage(d, "layer1", planes, planes, 2, 1)
    _basic_stage(d, "layer2", planes, planes * 2, 2, 2)
    _basic_stage(d, "layer3", planes * 2, planes * 4, 2, 2)
    _basic_stage(d, "layer4", planes * 4, planes * 8, 2, 2)
    _conv(d, "compression3.0", planes * 4, hi, 1)
    _bn(d, "compression3.1", hi)
    _conv(d, "compression4.0", planes * 8, hi, 1)
    _bn(d, "compression4.1", hi)
    _conv(d, "down3.0", hi, planes * 4, 3)
    _bn(d, "down3.1", planes * 4)
    _conv(d, "down4.0", hi, planes * 4, 3)
    _bn(d, "down4.1", planes * 4)
    _conv(d, "down4.3", planes * 4, planes * 8, 3)
    _bn(d, "down4.4", planes * 8)
    _basic_stage(d, "layer3_", planes * 2, hi, 2, 1)
    _basic_stage(d, "layer4_", hi, hi, 2, 1)
    _bottleneck(d, "layer5_", hi, hi)
    _bottleneck(d, "layer5", planes * 8, planes * 8)


def _head(d: dict, prefix: str, cin: int, mid: int, classes: int) -> None:
    _bn(d, f"{prefix}.bn1", cin)
    _conv(d, f"{prefix}.conv1", cin, mid, 3)
    _bn(d, f"{prefix}.bn2", mid)
    _conv(d, f"{prefix}.conv2", mid, classes, 1, bias=True)


def segmentation_shapes(num_classes: int = 19, aux: bool = True) -> dict[str, tuple]:
    """Key -> shape of the reference DDRNet23-slim segmentation model."""
    d: dict[str, tuple] = {}
    _backbone(d)
    spp_in, branch, out = 512, 128, 128
    for i, pool in enumerate((False, True, True, True, True)):
        off = 1 if pool else 0
        _bn(d, f"spp.scale{i}.{off}", spp_in)
        _conv(d, f"spp.scale{i}.{off + 2}", spp_in, branch, 1)
    for i in range(1, 5):
        _bn(d, f"spp.process{i}.0", branch)
        _conv(d, f"spp.process{i}.2", branch, branch, 3)
    _bn(d, "spp.compression.0", branch * 5)
    _conv(d, "spp.compression.2", branch * 5, out, 1)
    _bn(d, "spp.shortcut.0", spp_in)
    _conv(d, "spp.shortcut.2", spp_in, out, 1)
    if aux:
        _head(d, "seghead_extra", 64, 64, num_classes)
    _head(d, "final_layer", 128, 64, num_classes)
    return d


def imagenet_shapes(num_classes: int = 1000) -> dict[str, tuple]:
    """Key -> shape of the reference DDRNet23-slim ImageNet classifier."""
    d: dict[str, tuple] = {}
    _backbone(d)
    _conv(d, "down5.0", 128, 256, 3)
    _bn(d, "down5.1", 256)
    _conv(d, "down5.3", 256, 512, 3)
    _bn(d, "down5.4", 512)
    _conv(d, "last_layer.0", 512, 1024, 1)
    _bn(d, "last_layer.1", 1024)
    d["linear.weight"] = (num_classes, 1024)
    d["linear.bias"] = (num_classes,)
    return d


def random_state(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with random values of the given shapes (BN variances positive)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, s in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            out[k] = torch.rand(s, generator=g) + 0.5
        else:
            out[k] = torch.randn(s, generator=g) * 0.05
    return out


def training_wrapper_state(state: dict[str, torch.Tensor], num_classes: int = 19,
                           prefix: str = "") -> dict[str, torch.Tensor]:
    """The reference training code's saved state: its ``FullModel(model, loss)`` wrapper gives
    ``model.<key>`` for the network and ``loss.criterion.weight`` for the class-weighted
    cross-entropy; ``prefix`` adds e.g. ``module.`` (DataParallel / DDP)."""
    out = {f"{prefix}model.{k}": v for k, v in state.items()}
    out[f"{prefix}loss.criterion.weight"] = torch.linspace(0.8, 1.2, num_classes)
    return out


def training_checkpoint(state: dict[str, torch.Tensor], num_classes: int = 19) -> dict:
    """The reference training code's ``checkpoint.pth.tar``: epoch, best mIoU, the wrapper's
    state dict and an SGD optimizer state (momentum buffers) beside it."""
    wrapped = training_wrapper_state(state, num_classes)
    params = [torch.zeros(2, 3), torch.zeros(4)]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    return {"epoch": 12, "best_mIoU": 0.61, "state_dict": wrapped,
            "optimizer": optimizer.state_dict()}
