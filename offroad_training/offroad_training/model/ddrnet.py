"""DDRNet23-slim (Deep Dual-resolution Network) for real-time semantic segmentation.

Written for this project; the module and parameter *names* deliberately follow the reference
implementation (Hong et al., "Deep Dual-resolution Networks for Real-time and Accurate Semantic
Segmentation of Road Scenes", and its public PyTorch code) so that the official ImageNet and
Cityscapes checkpoints and the qai-hub-models weights load with a strict key check.

Layout (planes = 32, BasicBlock [2, 2, 2, 2], spp_planes = 128, head_planes = 64)::

    conv1 (stem, /4) -> layer1 (/4) -> layer2 (/8) --+--> layer3 (/16) -> layer4 (/32)
                                                     |        ^   |          ^   |
                                                     |   down3|   |compr.3   |   | -> layer5 (/64)
                                                     v        |   v     down4|   |    -> spp (DAPPM)
                                                 layer3_ (/8) -> layer4_ (/8) -> layer5_ (/8)
                                                                                  + up(spp)
                                                                                  -> final_layer

The graph uses only Conv, BatchNorm, ReLU, Add, Concat, AvgPool (incl. global) and bilinear
Resize with ``align_corners=False`` so it compiles entirely to the Hexagon HTP. Inference returns
logits at 1/8 of the input resolution; in training mode with ``aux=True`` it returns
``(main, aux)`` where ``aux`` comes from the high-resolution branch after layer3_ (the
reference's "seghead_extra").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (conventional name)
from torch import nn

BN_MOMENTUM = 0.1
SEGMENTATION_MODULES = ("spp", "final_layer", "seghead_extra")
"""Top-level modules only the segmentation network has. Everything else is the *backbone*: the
part the ImageNet classifier shares (stem, both branches, their bridges), which every pretrained
file provides and which fine-tuning trains at ``backbone_lr_factor`` x the learning rate."""


def is_backbone(name: str) -> bool:
    """Whether a parameter/state-dict name belongs to the backbone (see SEGMENTATION_MODULES)."""
    return name.split(".", 1)[0] not in SEGMENTATION_MODULES


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with ``align_corners=False`` (the only resize the graph uses)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv/BN pairs with a residual connection (ResNet basic block)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, no_relu: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.no_relu = no_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        y = y + shortcut
        return y if self.no_relu else self.relu(y)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck with expansion 2; no final ReLU by default (as in DDRNet)."""

    expansion = 2

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, no_relu: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = _bn(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.no_relu = no_relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y)) + shortcut
        return y if self.no_relu else self.relu(y)


def _make_layer(block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int,
                blocks: int, stride: int = 1) -> nn.Sequential:
    """Stack ``blocks`` residual blocks; the last one of a multi-block stage ends without ReLU."""
    out = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                                   _bn(out))
    layers: list[nn.Module] = [block(inplanes, planes, stride, downsample)]
    for i in range(1, blocks):
        layers.append(block(out, planes, 1, None, no_relu=(i == blocks - 1)))
    return nn.Sequential(*layers)


def _bn_relu_conv(cin: int, cout: int, kernel: int = 1,
                  pool: nn.Module | None = None) -> nn.Sequential:
    """(optional pool) -> BN -> ReLU -> conv, the pre-activation unit of DAPPM."""
    parts: list[nn.Module] = [] if pool is None else [pool]
    parts += [_bn(cin), nn.ReLU(), nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)]
    return nn.Sequential(*parts)


class DAPPM(nn.Module):
    """Deep Aggregation Pyramid Pooling Module: multi-scale context on the 1/64 feature map."""

    def __init__(self, inplanes: int, branch_planes: int, outplanes: int) -> None:
        super().__init__()
        self.scale0 = _bn_relu_conv(inplanes, branch_planes)
        self.scale1 = _bn_relu_conv(inplanes, branch_planes,
                                    pool=nn.AvgPool2d(5, stride=2, padding=2))
        self.scale2 = _bn_relu_conv(inplanes, branch_planes,
                                    pool=nn.AvgPool2d(9, stride=4, padding=4))
        self.scale3 = _bn_relu_conv(inplanes, branch_planes,
                                    pool=nn.AvgPool2d(17, stride=8, padding=8))
        self.scale4 = _bn_relu_conv(inplanes, branch_planes, pool=nn.AdaptiveAvgPool2d((1, 1)))
        self.process1 = _bn_relu_conv(branch_planes, branch_planes, 3)
        self.process2 = _bn_relu_conv(branch_planes, branch_planes, 3)
        self.process3 = _bn_relu_conv(branch_planes, branch_planes, 3)
        self.process4 = _bn_relu_conv(branch_planes, branch_planes, 3)
        self.compression = _bn_relu_conv(branch_planes * 5, outplanes)
        self.shortcut = _bn_relu_conv(inplanes, outplanes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Aggregate pooled context hierarchically and fuse it with a shortcut."""
        size = (x.shape[-2], x.shape[-1])
        feats = [self.scale0(x)]
        pairs = ((self.scale1, self.process1), (self.scale2, self.process2),
                 (self.scale3, self.process3), (self.scale4, self.process4))
        for scale, process in pairs:
            feats.append(process(_resize(scale(x), size) + feats[-1]))
        return self.compression(torch.cat(feats, dim=1)) + self.shortcut(x)


class SegmentHead(nn.Module):
    """BN -> ReLU -> 3x3 conv -> BN -> ReLU -> 1x1 conv (with bias) to class logits."""

    def __init__(self, inplanes: int, interplanes: int, num_classes: int) -> None:
        super().__init__()
        self.bn1 = _bn(inplanes)
        self.conv1 = nn.Conv2d(inplanes, interplanes, 3, padding=1, bias=False)
        self.bn2 = _bn(interplanes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(interplanes, num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits at the input's resolution."""
        x = self.conv1(self.relu(self.bn1(x)))
        return self.conv2(self.relu(self.bn2(x)))


class DualResNet(nn.Module):
    """The DDRNet family; :class:`DDRNet23Slim` fixes the 23-slim hyper-parameters."""

    def __init__(self, layers: tuple[int, int, int, int] = (2, 2, 2, 2), num_classes: int = 19,
                 planes: int = 32, spp_planes: int = 128, head_planes: int = 64,
                 aux: bool = True) -> None:
        super().__init__()
        hi = planes * 2  # channels of the high-resolution (1/8) branch
        self.num_classes = num_classes
        self.aux = aux
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, planes, 3, stride=2, padding=1), _bn(planes), nn.ReLU(),
            nn.Conv2d(planes, planes, 3, stride=2, padding=1), _bn(planes), nn.ReLU(),
        )
        self.relu = nn.ReLU()
        self.layer1 = _make_layer(BasicBlock, planes, planes, layers[0])
        self.layer2 = _make_layer(BasicBlock, planes, planes * 2, layers[1], stride=2)
        self.layer3 = _make_layer(BasicBlock, planes * 2, planes * 4, layers[2], stride=2)
        self.layer4 = _make_layer(BasicBlock, planes * 4, planes * 8, layers[3], stride=2)
        self.compression3 = nn.Sequential(nn.Conv2d(planes * 4, hi, 1, bias=False), _bn(hi))
        self.compression4 = nn.Sequential(nn.Conv2d(planes * 8, hi, 1, bias=False), _bn(hi))
        self.down3 = nn.Sequential(nn.Conv2d(hi, planes * 4, 3, stride=2, padding=1, bias=False),
                                   _bn(planes * 4))
        self.down4 = nn.Sequential(
            nn.Conv2d(hi, planes * 4, 3, stride=2, padding=1, bias=False), _bn(planes * 4),
            nn.ReLU(),
            nn.Conv2d(planes * 4, planes * 8, 3, stride=2, padding=1, bias=False),
            _bn(planes * 8),
        )
        self.layer3_ = _make_layer(BasicBlock, planes * 2, hi, 2)
        self.layer4_ = _make_layer(BasicBlock, hi, hi, 2)
        self.layer5_ = _make_layer(Bottleneck, hi, hi, 1)
        self.layer5 = _make_layer(Bottleneck, planes * 8, planes * 8, 1, stride=2)
        self.spp = DAPPM(planes * 16, spp_planes, planes * 4)
        if aux:
            self.seghead_extra = SegmentHead(hi, head_planes, num_classes)
        self.final_layer = SegmentHead(planes * 4, head_planes, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Return logits (N, C, H/8, W/8); in training mode with aux, ``(main, aux)``."""
        out_size = (x.shape[-2] // 8, x.shape[-1] // 8)
        relu = self.relu
        x1 = self.layer1(self.conv1(x))
        x2 = self.layer2(relu(x1))
        low = self.layer3(relu(x2))
        high = self.layer3_(relu(x2))
        low3 = low
        low = low + self.down3(relu(high))
        high = high + _resize(self.compression3(relu(low3)), out_size)
        high_after3 = high
        low = self.layer4(relu(low))
        high = self.layer4_(relu(high))
        low4 = low
        low = low + self.down4(relu(high))
        high = high + _resize(self.compression4(relu(low4)), out_size)
        high = self.layer5_(relu(high))
        context = _resize(self.spp(self.layer5(relu(low))), out_size)
        main = self.final_layer(context + high)
        if self.training and self.aux:
            return main, self.seghead_extra(high_after3)
        return main


class DDRNet23Slim(DualResNet):
    """DDRNet23-slim: BasicBlock [2, 2, 2, 2], planes 32, spp_planes 128, head_planes 64."""

    def __init__(self, num_classes: int = 7, aux: bool = True) -> None:
        super().__init__((2, 2, 2, 2), num_classes=num_classes, planes=32, spp_planes=128,
                         head_planes=64, aux=aux)


def replace_head(model: DualResNet, num_classes: int) -> DualResNet:
    """Replace the final 1x1 classifier convs (main and aux) with ``num_classes`` outputs.

    The rest of both heads and the whole backbone are kept; the new convs get Xavier-uniform
    weights and zero bias (the seed's 19 -> 7 head replacement).
    """
    heads = [model.final_layer] + ([model.seghead_extra] if model.aux else [])
    for head in heads:
        old = head.conv2
        new = nn.Conv2d(old.in_channels, num_classes, 1, bias=True)
        nn.init.xavier_uniform_(new.weight)
        nn.init.zeros_(new.bias)
        head.conv2 = new.to(old.weight.device, old.weight.dtype)
    model.num_classes = num_classes
    return model
