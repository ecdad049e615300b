"""The model contract: what an exported model promises about its inputs and outputs.

Every ONNX file this project writes (float logits, deploy graph, QDQ, QNN EPContext model)
carries a :class:`ModelContract` in its ``metadata_props`` under keys prefixed ``offroad.``.
The segmentation node, the evaluator and the deployment chain read it from there, so no
consumer guesses input size, layout, normalisation, class names or palette.

Deploy graph (what runs on the robot):
    input  ``image``      uint8  (1, H, W, 3) RGB, channel-last; normalisation is inside the graph
    output ``labels``     uint8  (1, H, W) class ids
    output ``confidence`` uint8  (1, H, W) max softmax x 255 (optional)
Evaluation graph (``output_kind = "logits"``):
    input  ``image``      uint8 (1, H, W, 3) as above
    output ``logits``     float32 (1, C, H, W)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from offroad_core import ontology

CONTRACT_VERSION = 1
PREFIX = "offroad."

INPUT_NAME = "image"
LABELS_OUTPUT = "labels"
CONFIDENCE_OUTPUT = "confidence"
LOGITS_OUTPUT = "logits"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_HEIGHT = 544
DEFAULT_WIDTH = 640


class ContractError(ValueError):
    """A model's metadata is missing, malformed, or does not match what the caller needs."""


@dataclass(frozen=True)
class QnnInfo:
    """How a QNN context binary was built; it only runs with the same QAIRT version."""

    onnxruntime_qnn_version: str
    qairt_version: str
    soc_model: int
    htp_arch: int
    precision: str  # "int8" (W8A8), "int8+int16" (w8a8-mixed), "int16" (W8A16) or "fp16"
    binary_sha256: str


@dataclass(frozen=True)
class ModelContract:
    """Input/output contract and identity of an exported segmentation model."""

    height: int = DEFAULT_HEIGHT
    width: int = DEFAULT_WIDTH
    layout: str = "NHWC"  # input layout; the deploy graph is channel-last
    input_dtype: str = "uint8"
    color: str = "RGB"
    mean: tuple[float, float, float] = IMAGENET_MEAN  # applied inside the graph, on x / 255
    std: tuple[float, float, float] = IMAGENET_STD
    output_kind: str = "labels"  # "labels" (uint8 ids) or "logits" (float32 NCHW)
    has_confidence: bool = False
    class_names: tuple[str, ...] = ontology.CLASS_NAMES
    palette: tuple[tuple[int, int, int], ...] = tuple(c.rgb for c in ontology.CLASSES)
    class_categories: tuple[str, ...] = tuple(c.category.value for c in ontology.CLASSES)
    ignore_index: int = ontology.IGNORE_INDEX
    model_id: str = "ddrnet23_slim"
    model_version: str = "0.0.0"
    producer: dict[str, Any] = field(default_factory=dict)  # git revision, config, dataset, metrics
    qnn: QnnInfo | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts."""
        return len(self.class_names)

    def with_qnn(self, qnn: QnnInfo) -> ModelContract:
        """Return a copy that records how its QNN context binary was built."""
        return replace(self, qnn=qnn)

    def to_metadata(self) -> dict[str, str]:
        """Return the contract as ONNX ``metadata_props`` (string keys and values)."""
        meta = {f"{PREFIX}contract_version": str(CONTRACT_VERSION)}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "qnn":
                if value is not None:
                    meta[f"{PREFIX}qnn"] = json.dumps(asdict(value), sort_keys=True)
                continue
            meta[f"{PREFIX}{f.name}"] = json.dumps(value)
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str = "model") -> ModelContract:
        """Parse a contract from ``metadata_props``; raise :class:`ContractError` if malformed."""
        version = meta.get(f"{PREFIX}contract_version")
        if version is None:
            raise ContractError(
                f"{source}: no '{PREFIX}contract_version' in the ONNX metadata; it was not "
                "exported by `offroad export onnx` (or the metadata was stripped). Re-export it.")
        if int(version) != CONTRACT_VERSION:
            raise ContractError(f"{source}: contract version {version}, this code reads "
                                f"{CONTRACT_VERSION}; re-export the model with this release")
        kwargs: dict[str, Any] = {}
        try:
            for f in fields(cls):
                raw = meta.get(f"{PREFIX}{f.name}")
                if raw is None:
                    continue
                value = json.loads(raw)
                if f.name == "qnn":
                    value = QnnInfo(**value)
                elif f.name in ("mean", "std", "class_names", "class_categories"):
                    value = tuple(value)
                elif f.name == "palette":
                    value = tuple(tuple(int(v) for v in rgb) for rgb in value)
                kwargs[f.name] = value
            contract = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ContractError(f"{source}: malformed '{PREFIX}*' metadata: {exc}") from exc
        contract.validate(source)
        return contract

    def validate(self, source: str = "model") -> None:
        """Raise :class:`ContractError` when the fields are inconsistent."""
        problems = []
        if self.height <= 0 or self.width <= 0:
            problems.append(f"input size {self.width}x{self.height} is not positive")
        if self.layout not in ("NHWC", "NCHW"):
            problems.append(f"layout {self.layout!r} is not NHWC or NCHW")
        if self.output_kind not in ("labels", "logits"):
            problems.append(f"output_kind {self.output_kind!r} is not 'labels' or 'logits'")
        if len(self.palette) != self.num_classes:
            problems.append(f"{len(self.palette)} palette colours for {self.num_classes} classes")
        if len(self.class_categories) != self.num_classes:
            problems.append(
                f"{len(self.class_categories)} categories for {self.num_classes} classes")
        if not 0 <= self.ignore_index <= 255 or self.ignore_index < self.num_classes:
            problems.append(f"ignore_index {self.ignore_index} collides with a class or is "
                            "not a uint8 value")
        if problems:
            raise ContractError(f"{source}: invalid model contract: " + "; ".join(problems))


def read_contract(path: str | Path) -> ModelContract:
    """Read the contract of an ONNX file without loading its weights or external data."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ContractError(f"model file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends for corrupt files
        raise ContractError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc}); "
                            "the file is corrupt or truncated, re-copy or re-export it") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    return ModelContract.from_metadata(meta, source=str(path))


def write_contract(model: Any, contract: ModelContract) -> None:
    """Set ``contract`` on an in-memory ``onnx.ModelProto`` (replacing older ``offroad.*`` keys).

    Other metadata entries are kept.
    """
    contract.validate()
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in [*kept, *contract.to_metadata().items()]:
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value
