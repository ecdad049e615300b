"""Per-dataset class mappings to the 7-class ontology (one data table per dataset).

Each table lists the dataset's full *published* class list (id, name and, for RUGD, the colour
of its colormap file) and the ontology class each one maps to, or ``None`` for ignore (255).
Tests check that every published class is covered and every target is an ontology class. A
label value that is in no table is *unknown*: converters map it to 255 and count it, never
guess a class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offroad_core.ontology import CLASS_ID, IGNORE_INDEX


@dataclass(frozen=True)
class SourceClass:
    """One published class of a dataset and where it goes."""

    id: int
    name: str
    target: str | None  # ontology class name, None = ignore (255)
    rgb: tuple[int, int, int] | None = None  # colour-coded datasets (RUGD) only


@dataclass(frozen=True)
class DatasetMapping:
    """A dataset's published classes plus extra label values its official loader maps."""

    dataset: str
    classes: tuple[SourceClass, ...]
    extra: tuple[SourceClass, ...] = ()  # values outside the published list (see the table)

    def target_id(self, target: str | None) -> int:
        """Ontology id of a target name (``None`` -> 255)."""
        return IGNORE_INDEX if target is None else CLASS_ID[target]

    def by_name(self) -> dict[str, SourceClass]:
        """Published classes by name."""
        return {c.name: c for c in self.classes}

    def id_lut(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(lut, known)``: uint8 (256,) value -> ontology id, bool (256,) known value."""
        lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        known = np.zeros(256, dtype=bool)
        for c in (*self.classes, *self.extra):
            lut[c.id] = self.target_id(c.target)
            known[c.id] = True
        return lut, known


def get_mapping(dataset: str) -> DatasetMapping:
    """Return the mapping table of ``dataset`` (rellis3d, rugd, goose)."""
    from offroad_training.data.mappings import goose, rellis3d, rugd

    tables = {"rellis3d": rellis3d.MAPPING, "rugd": rugd.MAPPING, "goose": goose.MAPPING}
    try:
        return tables[dataset]
    except KeyError:
        raise KeyError(f"no mapping for dataset {dataset!r}; have {', '.join(tables)}") from None
