"""Categories take one road: the classes the model carries in SegmentationInfo.

A model whose label values are ordered differently from our ontology (the public peer system
for our robot orders sky 5, dynamic 6; ours is dynamic 5, sky 6) must give the very same grid
for the same scene, whether it carries its own categories or only its class names (the
ontology is then the fallback, looked up by name, never by index).
"""

from __future__ import annotations

import numpy as np
import pytest

from offroad_core.camera import Camera, CameraIntrinsics
from offroad_core.costmap.params import validate
from offroad_core.costmap.pipeline import CostmapPipeline, ModelInfo
from offroad_core.ontology import CLASS_NAMES, CLASSES
from offroad_costmap.test.scene import Scene

W, H = 160, 136
INTR = CameraIntrinsics.from_fov(W, H, 90)
PARAMS = {"resolution": 0.1, "camera_x": 0.3, "camera_z": 1.0, "camera_pitch": 0.26}
OUR_CATEGORIES = tuple(c.category.value for c in CLASSES)
PEER_NAMES = ("smooth_ground", "rough_ground", "vegetation", "obstacle", "water", "sky",
              "dynamic")


def grid(labels: np.ndarray, names, categories=()) -> np.ndarray:
    """The core's grid for ``labels`` read with the given class list."""
    pipeline = CostmapPipeline(validate(PARAMS))
    pipeline.set_model_info(ModelInfo(tuple(range(len(names))), tuple(names),
                                      tuple(categories)))
    pipeline.set_camera(INTR)
    return pipeline.process(labels, 0.0, 0.0).values


def our_scene(seed: int) -> np.ndarray:
    """Labels in our order with water, dynamic and sky present (water and dynamic patches
    painted on the ground: the random scenes may have none)."""
    labels = Scene.random(seed).render(Camera(INTR, validate(PARAMS).pose)).copy()
    labels[H - 40:H - 25, W // 2 - 12:W // 2 + 12] = CLASS_NAMES.index("dynamic")
    labels[H - 20:H - 5, 10:40] = CLASS_NAMES.index("water")
    assert set(np.unique(labels)) >= {CLASS_NAMES.index(n) for n in ("water", "dynamic", "sky")}
    return labels


def in_peer_order(labels: np.ndarray) -> np.ndarray:
    """The same scene as a model with the peer's class order would label it."""
    lut = np.arange(256, dtype=np.uint8)
    for ours, name in enumerate(CLASS_NAMES):
        lut[ours] = PEER_NAMES.index(name)
    return lut[labels]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_peer_class_order_gives_the_identical_grid(seed):
    labels = our_scene(seed)
    expected = grid(labels, CLASS_NAMES, OUR_CATEGORIES)
    peer_labels = in_peer_order(labels)
    peer_categories = tuple(OUR_CATEGORIES[CLASS_NAMES.index(n)] for n in PEER_NAMES)
    assert (expected >= 0).sum() > 1000                    # the camera sees ground
    assert (expected == 100).any() and (expected == 0).any()
    np.testing.assert_array_equal(grid(peer_labels, PEER_NAMES, peer_categories), expected)
    # a model that carries names only: the ontology's categories, looked up by name
    np.testing.assert_array_equal(grid(peer_labels, PEER_NAMES), expected)
    # control: read with our order, the peer's labels give another grid (the test can fail)
    assert not np.array_equal(grid(peer_labels, CLASS_NAMES, OUR_CATEGORIES), expected)


def test_the_models_own_categories_win_over_the_ontology():
    labels = our_scene(0)
    water = CLASS_NAMES.index("water")
    categories = list(OUR_CATEGORIES)
    categories[water] = "CAUTION"                          # this model calls water wadable
    ours, theirs = grid(labels, CLASS_NAMES), grid(labels, CLASS_NAMES, categories)
    changed = ours != theirs
    assert changed.any()
    assert set(np.unique(ours[changed])) == {100} and set(np.unique(theirs[changed])) == {50}
