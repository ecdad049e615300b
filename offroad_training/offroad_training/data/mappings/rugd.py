"""RUGD colour labels (``RUGD_annotations/<seq>/*.png``) -> ontology.

Label PNGs are RGB; a pixel's class is the exact RGB match in ``RUGD_annotation-colormap.txt``
(lines ``index name r g b``). The colours below are that published colormap; when the file is
present in the dataset root the adapter reads it and maps its classes by name through this
table, so a differing release is read as distributed.
"""

from offroad_training.data.mappings import DatasetMapping, SourceClass

MAPPING = DatasetMapping("rugd", (
    SourceClass(0, "void", None, (0, 0, 0)),
    SourceClass(1, "dirt", "smooth_ground", (108, 64, 20)),  # dirt trails: the driven surface
    SourceClass(2, "sand", "rough_ground", (255, 229, 204)),  # loose, tracks sink: CAUTION
    SourceClass(3, "grass", "vegetation", (0, 102, 0)),
    SourceClass(4, "tree", "obstacle", (0, 255, 0)),
    SourceClass(5, "pole", "obstacle", (0, 153, 153)),
    SourceClass(6, "water", "water", (0, 128, 255)),
    SourceClass(7, "sky", "sky", (0, 0, 255)),
    SourceClass(8, "vehicle", "dynamic", (255, 255, 0)),
    SourceClass(9, "container/generic-object", "obstacle", (255, 0, 127)),
    SourceClass(10, "asphalt", "smooth_ground", (64, 64, 64)),
    # gravel: RUGD's gravel is loose trail gravel (fine gravel *paths* are rare in RUGD), so rough
    SourceClass(11, "gravel", "rough_ground", (255, 128, 0)),
    SourceClass(12, "building", "obstacle", (255, 0, 0)),
    SourceClass(13, "mulch", "rough_ground", (153, 76, 0)),
    SourceClass(14, "rock-bed", "rough_ground", (102, 102, 0)),  # drivable stones, not a rock
    SourceClass(15, "log", "obstacle", (102, 0, 0)),
    SourceClass(16, "bicycle", "dynamic", (0, 255, 128)),
    SourceClass(17, "person", "dynamic", (204, 153, 255)),
    SourceClass(18, "fence", "obstacle", (102, 0, 204)),
    SourceClass(19, "bush", "obstacle", (255, 153, 204)),  # woody, tall: blocks (see RELLIS)
    SourceClass(20, "sign", "obstacle", (0, 102, 102)),
    SourceClass(21, "rock", "obstacle", (153, 204, 255)),  # single large rocks; rock-bed is rough
    # bridge: the deck may be drivable, but RUGD labels the whole structure (rails, supports)
    # as one class and a camera cannot tell deck from side: the safe choice is obstacle
    SourceClass(22, "bridge", "obstacle", (102, 255, 255)),
    SourceClass(23, "concrete", "smooth_ground", (101, 101, 11)),
    SourceClass(24, "picnic-table", "obstacle", (114, 85, 47)),
))

COLORMAP_FILE = "RUGD_annotation-colormap.txt"
