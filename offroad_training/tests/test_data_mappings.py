"""Every class of each dataset's published list is mapped, to an ontology class or ignore."""

import pytest

from offroad_core.ontology import CLASS_NAMES
from offroad_training.data.mappings import get_mapping

# The published class lists, written out independently of the tables under test.
RELLIS3D = {0: "void", 1: "dirt", 3: "grass", 4: "tree", 5: "pole", 6: "water", 7: "sky",
            8: "vehicle", 9: "object", 10: "asphalt", 12: "building", 15: "log", 17: "person",
            18: "fence", 19: "bush", 23: "concrete", 27: "barrier", 31: "puddle", 33: "mud",
            34: "rubble"}
RUGD = ["void", "dirt", "sand", "grass", "tree", "pole", "water", "sky", "vehicle",
        "container/generic-object", "asphalt", "gravel", "building", "mulch", "rock-bed", "log",
        "bicycle", "person", "fence", "bush", "sign", "rock", "bridge", "concrete",
        "picnic-table"]
RUGD_COLOURS = {"dirt": (108, 64, 20), "sky": (0, 0, 255), "water": (0, 128, 255),
                "void": (0, 0, 0), "picnic-table": (114, 85, 47), "concrete": (101, 101, 11)}
GOOSE = ("undefined traffic_cone snow cobble obstacle leaves street_light bikeway ego_vehicle "
         "pedestrian_crossing road_block road_marking car bicycle person bus forest bush moss "
         "traffic_light motorcycle sidewalk curb asphalt gravel boom_barrier rail_track "
         "tree_crown tree_trunk debris crops soil rider animal truck on_rails caravan trailer "
         "building wall rock fence guard_rail bridge tunnel pole traffic_sign misc_sign "
         "barrier_tape kick_scooter low_grass high_grass scenery_vegetation sky water wire "
         "outlier heavy_machinery container hedge barrel pipe tree_root military_vehicle").split()


def _check(mapping, published: dict[int, str]):
    table = {c.id: c for c in mapping.classes}
    assert {i: c.name for i, c in table.items()} == published
    for c in (*mapping.classes, *mapping.extra):
        assert c.target is None or c.target in CLASS_NAMES, c


def test_rellis3d_covers_published_list_and_benchmark_remaps():
    m = get_mapping("rellis3d")
    _check(m, RELLIS3D)
    assert {c.id: c.target for c in m.extra} == {29: "vegetation", 30: "vegetation",
                                                 32: "water"}
    lut, known = m.id_lut()
    assert known.sum() == 23 and lut[0] == 255 and lut[2] == 255 and not known[2]


def test_rugd_covers_published_list_with_distinct_colours():
    m = get_mapping("rugd")
    _check(m, dict(enumerate(RUGD)))
    colours = [c.rgb for c in m.classes]
    assert len(set(colours)) == len(colours)
    for name, rgb in RUGD_COLOURS.items():
        assert m.by_name()[name].rgb == rgb


def test_goose_covers_published_list():
    _check(get_mapping("goose"), dict(enumerate(GOOSE)))


@pytest.mark.parametrize(("dataset", "name", "target"), [
    ("rellis3d", "mud", "rough_ground"), ("rellis3d", "bush", "obstacle"),
    ("rellis3d", "puddle", "water"), ("rugd", "gravel", "rough_ground"),
    ("rugd", "bridge", "obstacle"), ("rugd", "rock-bed", "rough_ground"),
    ("goose", "ego_vehicle", None), ("goose", "snow", "rough_ground"),
    ("goose", "high_grass", "vegetation"), ("goose", "military_vehicle", "dynamic"),
])
def test_design_decisions(dataset, name, target):
    assert get_mapping(dataset).by_name()[name].target == target
