import json

import numpy as np
import pytest
import yaml

from offroad_core import ontology


def test_ids_are_contiguous_and_match_index_order():
    assert [c.id for c in ontology.CLASSES] == list(range(ontology.NUM_CLASSES))
    assert ontology.NUM_CLASSES == 7
    assert ontology.IGNORE_INDEX == 255


def test_design_categories():
    categories = {c.name: c.category for c in ontology.CLASSES}
    assert categories == {
        "smooth_ground": ontology.Category.FREE,
        "rough_ground": ontology.Category.CAUTION,
        "vegetation": ontology.Category.CAUTION,
        "obstacle": ontology.Category.BLOCKED,
        "water": ontology.Category.HAZARD,
        "dynamic": ontology.Category.HAZARD,
        "sky": ontology.Category.UNKNOWN,
    }


def test_palette_colours_are_distinct_and_ignore_is_black():
    colours = {c.rgb for c in ontology.CLASSES}
    assert len(colours) == ontology.NUM_CLASSES
    lut = ontology.palette_array()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(lut[255]) == (0, 0, 0)


def test_colorize_maps_ids_and_rejects_non_uint8():
    labels = np.array([[0, 4], [255, 6]], dtype=np.uint8)
    rgb = ontology.colorize(labels)
    assert tuple(rgb[0, 1]) == ontology.CLASSES[4].rgb
    assert tuple(rgb[1, 0]) == (0, 0, 0)
    with pytest.raises(TypeError):
        ontology.colorize(labels.astype(np.int32))


def test_class_id_lookup_names_the_alternatives():
    assert ontology.class_id("water") == 4
    with pytest.raises(KeyError, match="smooth_ground"):
        ontology.class_id("mud")


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_export_round_trips(tmp_path, suffix):
    path = ontology.export(tmp_path / f"ontology{suffix}")
    text = path.read_text()
    data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    assert data == ontology.to_dict()
    assert [c["name"] for c in data["classes"]] == list(ontology.CLASS_NAMES)


def test_export_refuses_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="json"):
        ontology.export(tmp_path / "ontology.txt")
