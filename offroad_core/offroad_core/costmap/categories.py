"""Class name -> traversability category -> OccupancyGrid value.

One road: the categories come from the model (``SegmentationInfo.class_categories``, written
into the model's metadata at export); the ontology is only the fallback for a model that
carries none. Parameters override per class name as ``"name=CATEGORY"``. Label values come
from ``SegmentationInfo`` too (class ids and names), so the costmap never assumes an index
order.

Severity levels (used by the reduction, worst wins): 0 no evidence, 1 FREE, 2 CAUTION,
3 BLOCKED, 4 HAZARD. UNKNOWN classes (sky) and the ignore value give no evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from offroad_core.ontology import CATEGORY_OF, IGNORE_INDEX, VERTICAL_CLASSES, Category

NO_EVIDENCE = 0
LEVELS: dict[Category, int] = {Category.UNKNOWN: NO_EVIDENCE, Category.FREE: 1,
                               Category.CAUTION: 2, Category.BLOCKED: 3, Category.HAZARD: 4}
NUM_LEVELS = 5
UNKNOWN_VALUE = -1
DEFAULT_VERTICAL_CLASSES = VERTICAL_CLASSES


class CategoryError(ValueError):
    """Invalid category table (unknown category name, malformed override)."""


def model_categories(class_names: Sequence[str], class_categories: Sequence[str],
                     overrides: dict[str, Category]) -> dict[str, Category]:
    """Category of every class of a model, by name: the model's own categories (one per
    class), else the ontology's for a model that carries none; ``overrides`` win."""
    if class_categories and len(class_categories) != len(class_names):
        raise CategoryError(f"{len(class_names)} class names but {len(class_categories)} "
                            "categories")
    table: dict[str, Category] = {}
    for i, name in enumerate(class_names):
        if class_categories:
            try:
                table[name] = Category(str(class_categories[i]).upper())
            except ValueError:
                raise CategoryError(f"class {name!r} has category {class_categories[i]!r}, not "
                                    f"one of {', '.join(c.value for c in Category)}") from None
        elif name in CATEGORY_OF:
            table[name] = CATEGORY_OF[name]
    table.update({name: cat for name, cat in overrides.items() if name in class_names})
    return table


def parse_overrides(overrides: Iterable[str]) -> dict[str, Category]:
    """Parse ``"class_name=CATEGORY"`` strings; raise :class:`CategoryError` on a bad entry."""
    table = {}
    for entry in overrides:
        name, sep, value = entry.partition("=")
        name, value = name.strip(), value.strip().upper()
        if not sep or not name:
            raise CategoryError(f"category override {entry!r}: expected 'class_name=CATEGORY'")
        try:
            table[name] = Category(value)
        except ValueError:
            raise CategoryError(f"category override {entry!r}: category must be one of "
                                f"{', '.join(c.value for c in Category)}") from None
    return table


@dataclass(frozen=True)
class CategoryValues:
    """OccupancyGrid value of each category (UNKNOWN is always -1)."""

    free: int = 0
    caution: int = 50
    blocked: int = 100
    hazard: int = 100

    def __post_init__(self) -> None:
        for name in ("free", "caution", "blocked", "hazard"):
            value = getattr(self, name)
            if not 0 <= value <= 100:
                raise CategoryError(f"{name} value {value} is outside 0..100")

    def level_lut(self) -> np.ndarray:
        """int8 array: severity level (0..4) -> grid value (level 0 -> -1)."""
        return np.array([UNKNOWN_VALUE, self.free, self.caution, self.blocked, self.hazard],
                        dtype=np.int8)


@dataclass(frozen=True)
class LabelTable:
    """Per label value (0..255): severity level and whether the class stands off the ground."""

    levels: np.ndarray
    vertical: np.ndarray
    unmapped: tuple[str, ...]
    ignore_value: int = IGNORE_INDEX

    @classmethod
    def build(cls, class_ids: Sequence[int], class_names: Sequence[str],
              categories: dict[str, Category],
              vertical_classes: Iterable[str] = DEFAULT_VERTICAL_CLASSES,
              ignore_value: int = IGNORE_INDEX) -> LabelTable:
        """Build the lookup tables from the model's classes (SegmentationInfo ids and names).

        Classes missing from ``categories`` give no evidence and are listed in ``unmapped``;
        label values that name no class (and ``ignore_value``) give no evidence either.
        """
        if len(class_ids) != len(class_names):
            raise CategoryError(f"{len(class_ids)} class ids but {len(class_names)} names")
        levels = np.zeros(256, dtype=np.uint8)
        vertical = np.zeros(256, dtype=bool)
        vertical_set = set(vertical_classes)
        unmapped = []
        for value, name in zip(class_ids, class_names, strict=True):
            if not 0 <= int(value) <= 255:
                raise CategoryError(f"class {name!r} has label value {value} outside 0..255")
            if name not in categories:
                unmapped.append(name)
                continue
            levels[int(value)] = LEVELS[categories[name]]
            vertical[int(value)] = name in vertical_set
        levels[ignore_value] = NO_EVIDENCE
        vertical[ignore_value] = False
        return cls(levels, vertical, tuple(unmapped), int(ignore_value))
