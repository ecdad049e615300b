"""The 7-class traversability ontology: the single source of truth for ids, names, colours and
categories.

Index order is part of the model contract: a model's output channel ``i`` is class ``i`` here.
Everything else (dataset mappings, model metadata, the costmap's default category table, the
palette of overlays) is derived from :data:`CLASSES`.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

IGNORE_INDEX = 255
"""Label value meaning "no class": void, unlabelled or unknown. Never trained on or scored."""


class Category(enum.StrEnum):
    """Traversability category of a class for a tracked robot, ordered from best to worst.

    UNKNOWN is not "worst": it is absence of evidence (sky, void), which the costmap publishes
    as unknown (-1), never as free.
    """

    FREE = "FREE"
    CAUTION = "CAUTION"
    BLOCKED = "BLOCKED"
    HAZARD = "HAZARD"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class OntologyClass:
    """One class of the ontology."""

    id: int
    name: str
    rgb: tuple[int, int, int]
    category: Category
    members: str
    vertical: bool = False  # stands off the ground (marked at its ground contact, occludes)


CLASSES: tuple[OntologyClass, ...] = (
    OntologyClass(0, "smooth_ground", (128, 64, 128), Category.FREE,
                  "asphalt, concrete, packed dirt, dirt road, fine gravel path"),
    OntologyClass(1, "rough_ground", (190, 140, 70), Category.CAUTION,
                  "loose gravel, rubble, rock bed, mulch, sand, mud"),
    OntologyClass(2, "vegetation", (60, 180, 60), Category.CAUTION,
                  "grass, low undergrowth, crops (drive-over)"),
    OntologyClass(3, "obstacle", (220, 40, 40), Category.BLOCKED,
                  "trees, bushes, logs, rocks, poles, fences, walls, buildings, objects", True),
    OntologyClass(4, "water", (30, 90, 230), Category.HAZARD, "water, puddles"),
    OntologyClass(5, "dynamic", (250, 200, 0), Category.HAZARD,
                  "people, animals, vehicles, bicycles", True),
    OntologyClass(6, "sky", (135, 206, 235), Category.UNKNOWN, "sky"),
)

NUM_CLASSES = len(CLASSES)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
CLASS_ID: dict[str, int] = {c.name: c.id for c in CLASSES}
CATEGORY_OF: dict[str, Category] = {c.name: c.category for c in CLASSES}
VERTICAL_CLASSES: tuple[str, ...] = tuple(c.name for c in CLASSES if c.vertical)
IGNORE_RGB: tuple[int, int, int] = (0, 0, 0)


def palette_array() -> np.ndarray:
    """Return a (256, 3) uint8 lookup table: class id -> RGB, every other value (ignore) black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    for c in CLASSES:
        lut[c.id] = c.rgb
    lut[IGNORE_INDEX] = IGNORE_RGB
    return lut


def colorize(labels: np.ndarray) -> np.ndarray:
    """Map a uint8 label image (H, W) to an RGB image (H, W, 3) with the ontology palette."""
    if labels.dtype != np.uint8:
        raise TypeError(f"labels must be uint8, got {labels.dtype}")
    return palette_array()[labels]


def class_id(name: str) -> int:
    """Return the id of a class by name, with a clear error for an unknown name."""
    try:
        return CLASS_ID[name]
    except KeyError:
        raise KeyError(f"unknown class {name!r}; classes are {', '.join(CLASS_NAMES)}") from None


def to_dict() -> dict[str, Any]:
    """Return the ontology as plain data (for JSON/YAML export and model metadata)."""
    return {
        "ignore_index": IGNORE_INDEX,
        "classes": [
            {"id": c.id, "name": c.name, "rgb": list(c.rgb), "category": c.category.value,
             "members": c.members}
            for c in CLASSES
        ],
    }


def export(path: str | Path) -> Path:
    """Write the ontology to ``path`` as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
    from offroad_core.atomic import atomic_write_text

    path = Path(path)
    data = to_dict()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    elif path.suffix == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        raise ValueError(f"ontology export: use a .json, .yaml or .yml path, got {path}")
    atomic_write_text(path, text)
    return path
