"""GOOSE label ids (``labels/<split>/<scenario>/*_labelids.png``) -> ontology.

Published list: the 64 classes of GOOSE's ``goose_label_mapping.csv``
(``class_name,label_key,has_instance,hex``). When that CSV is in the dataset root the adapter
reads it and maps each ``label_key`` by class name through this table (a class name missing here
maps to 255 and is reported). Never use the colour PNGs: snow and hedge share a colour.
"""

from offroad_training.data.mappings import DatasetMapping, SourceClass

MAPPING = DatasetMapping("goose", (
    # undefined: unlabelled
    SourceClass(0, "undefined", None),
    SourceClass(1, "traffic_cone", "obstacle"),
    # snow: snow cover hides the surface; passable with care
    SourceClass(2, "snow", "rough_ground"),
    SourceClass(3, "cobble", "smooth_ground"),
    SourceClass(4, "obstacle", "obstacle"),
    # leaves: leaf litter on the ground: loose cover like mulch
    SourceClass(5, "leaves", "rough_ground"),
    SourceClass(6, "street_light", "obstacle"),
    SourceClass(7, "bikeway", "smooth_ground"),
    # ego_vehicle: the recording car's own hood: not scene content
    SourceClass(8, "ego_vehicle", None),
    SourceClass(9, "pedestrian_crossing", "smooth_ground"),
    SourceClass(10, "road_block", "obstacle"),
    SourceClass(11, "road_marking", "smooth_ground"),
    SourceClass(12, "car", "dynamic"),
    SourceClass(13, "bicycle", "dynamic"),
    SourceClass(14, "person", "dynamic"),
    SourceClass(15, "bus", "dynamic"),
    # forest: the tree wall of a forest edge
    SourceClass(16, "forest", "obstacle"),
    SourceClass(17, "bush", "obstacle"),
    # moss: low ground cover: drive-over vegetation
    SourceClass(18, "moss", "vegetation"),
    SourceClass(19, "traffic_light", "obstacle"),
    SourceClass(20, "motorcycle", "dynamic"),
    SourceClass(21, "sidewalk", "smooth_ground"),
    # curb: a step a tracked robot climbs slowly: rough, not an obstacle
    SourceClass(22, "curb", "rough_ground"),
    SourceClass(23, "asphalt", "smooth_ground"),
    SourceClass(24, "gravel", "rough_ground"),
    SourceClass(25, "boom_barrier", "obstacle"),
    # rail_track: rails and sleepers: crossable with care
    SourceClass(26, "rail_track", "rough_ground"),
    SourceClass(27, "tree_crown", "obstacle"),
    SourceClass(28, "tree_trunk", "obstacle"),
    SourceClass(29, "debris", "rough_ground"),
    SourceClass(30, "crops", "vegetation"),
    # soil: bare packed earth, GOOSE's field/forest track surface
    SourceClass(31, "soil", "smooth_ground"),
    SourceClass(32, "rider", "dynamic"),
    SourceClass(33, "animal", "dynamic"),
    SourceClass(34, "truck", "dynamic"),
    SourceClass(35, "on_rails", "dynamic"),
    SourceClass(36, "caravan", "dynamic"),
    SourceClass(37, "trailer", "dynamic"),
    SourceClass(38, "building", "obstacle"),
    SourceClass(39, "wall", "obstacle"),
    SourceClass(40, "rock", "obstacle"),
    SourceClass(41, "fence", "obstacle"),
    SourceClass(42, "guard_rail", "obstacle"),
    # bridge: labelled as the whole structure; see RUGD
    SourceClass(43, "bridge", "obstacle"),
    SourceClass(44, "tunnel", "obstacle"),
    SourceClass(45, "pole", "obstacle"),
    SourceClass(46, "traffic_sign", "obstacle"),
    SourceClass(47, "misc_sign", "obstacle"),
    SourceClass(48, "barrier_tape", "obstacle"),
    SourceClass(49, "kick_scooter", "dynamic"),
    SourceClass(50, "low_grass", "vegetation"),
    # high_grass: still drive-over for a tracked robot; hides the ground, hence CAUTION
    SourceClass(51, "high_grass", "vegetation"),
    # scenery_vegetation: distant vegetation: never drivable from here
    SourceClass(52, "scenery_vegetation", "obstacle"),
    SourceClass(53, "sky", "sky"),
    SourceClass(54, "water", "water"),
    SourceClass(55, "wire", "obstacle"),
    # outlier: annotation outliers: unusable
    SourceClass(56, "outlier", None),
    SourceClass(57, "heavy_machinery", "dynamic"),
    SourceClass(58, "container", "obstacle"),
    SourceClass(59, "hedge", "obstacle"),
    SourceClass(60, "barrel", "obstacle"),
    SourceClass(61, "pipe", "obstacle"),
    # tree_root: roots on a trail: bumpy but crossable
    SourceClass(62, "tree_root", "rough_ground"),
    SourceClass(63, "military_vehicle", "dynamic"),
))

LABEL_MAPPING_FILE = "goose_label_mapping.csv"
