"""RELLIS-3D image labels (``pylon_camera_node_label_id/*.png``, uint8 ids) -> ontology.

Published list: the 20 classes of RELLIS-3D's ontology (ids are not contiguous). Decisions in
docs/data.md; reasoning for the debatable ones inline.
"""

from offroad_training.data.mappings import DatasetMapping, SourceClass

MAPPING = DatasetMapping("rellis3d", (
    SourceClass(0, "void", None),
    SourceClass(1, "dirt", "smooth_ground"),  # RELLIS dirt is the packed trail the robot drives
    SourceClass(3, "grass", "vegetation"),
    SourceClass(4, "tree", "obstacle"),
    SourceClass(5, "pole", "obstacle"),
    SourceClass(6, "water", "water"),
    SourceClass(7, "sky", "sky"),
    SourceClass(8, "vehicle", "dynamic"),
    SourceClass(9, "object", "obstacle"),
    SourceClass(10, "asphalt", "smooth_ground"),
    SourceClass(12, "building", "obstacle"),
    SourceClass(15, "log", "obstacle"),  # logs block a tracked robot of this size
    SourceClass(17, "person", "dynamic"),
    SourceClass(18, "fence", "obstacle"),
    # bush: woody and tall enough to stop or damage the robot; grass stays drive-over vegetation
    SourceClass(19, "bush", "obstacle"),
    SourceClass(23, "concrete", "smooth_ground"),
    SourceClass(27, "barrier", "obstacle"),
    SourceClass(31, "puddle", "water"),  # depth unknown from a camera: a hazard like water
    # mud: passable but slippery and deforming, hence rough (CAUTION), not water (HAZARD)
    SourceClass(33, "mud", "rough_ground"),
    SourceClass(34, "rubble", "rough_ground"),
), extra=(
    # Not in the published class list, but RELLIS-3D's official image benchmark loader maps these
    # raw values (annotation-tool leftovers) to grass and water; we follow it rather than drop
    # them.
    SourceClass(29, "grass (benchmark loader remap of 29)", "vegetation"),
    SourceClass(30, "grass (benchmark loader remap of 30)", "vegetation"),
    SourceClass(32, "water (benchmark loader remap of 32)", "water"),
))
