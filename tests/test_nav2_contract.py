"""Issue 14, item 6: every shipped Nav2 YAML against the parameters Nav2 Jazzy declares.

rclcpp silently ignores a parameter nobody declares and refuses a value whose type differs from
the declared one (the node then fails to configure): both are checked against the key lists
below, written from navigation2's source on branch jazzy (commit f4108e5b, nav2_costmap_2d
1.3.13), each with the file and line of its declaration. A key declared but not read at
start-up (a layer's own ``transform_tolerance``) is refused too. Then the numbers that decide
whether the examples work with robot.yaml: inflation radius >= circumscribed radius, window vs
the camera's reach, absolute topics equal to our node's, durability and QoS matching our
publishers, sensor frames, heights and timeouts.
"""

import ast
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import nav2_harness as h

# ----------------------------------------------------------------------------- Nav2's keys
# nav2_costmap_2d/src/costmap_2d_ros.cpp (the costmap node: local_costmap / global_costmap)
COSTMAP = {
    "map_topic": str,                    # 73, 102-105
    "always_send_full_costmap": bool,    # 112
    "map_vis_z": float,                  # 113
    "footprint_padding": float,          # 114
    "footprint": str,                    # 115
    "global_frame": str,                 # 116
    "height": int,                       # 117
    "width": int,                        # 118
    "lethal_cost_threshold": int,        # 119
    "observation_sources": str,          # 120
    "origin_x": float,                   # 121
    "origin_y": float,                   # 122
    "plugins": list,                     # 123 (string array)
    "filters": list,                     # 124
    "publish_frequency": float,          # 125
    "resolution": float,                 # 126
    "robot_base_frame": str,             # 127
    "robot_radius": float,               # 128
    "rolling_window": bool,              # 129
    "track_unknown_space": bool,         # 130
    "transform_tolerance": float,        # 131
    "initial_transform_timeout": float,  # 132
    "trinary_costmap": bool,             # 133
    "unknown_cost_value": int,           # 134 (unsigned char: an integer parameter)
    "update_frequency": float,           # 135
    "use_maximum": bool,                 # 136
}
# <layer>.plugin: nav2_util/include/nav2_util/node_utils.hpp 255 (get_plugin_type_param)
PLUGIN = {"plugin": str}
LAYERS = {
    "nav2_costmap_2d::StaticLayer": {    # nav2_costmap_2d/plugins/static_layer.cpp
        "enabled": bool,                 # 137
        "subscribe_to_updates": bool,    # 138
        "map_subscribe_transient_local": bool,  # 139
        "transform_tolerance": float,    # 140
        "map_topic": str,                # 141
        "footprint_clearing_enabled": bool,     # 142
    },
    "nav2_costmap_2d::ObstacleLayer": {  # nav2_costmap_2d/plugins/obstacle_layer.cpp
        "enabled": bool,                 # 83
        "footprint_clearing_enabled": bool,     # 84
        "min_obstacle_height": float,    # 85
        "max_obstacle_height": float,    # 86
        "combination_method": int,       # 87
        "observation_sources": str,      # 88
    },
    "nav2_costmap_2d::InflationLayer": {  # nav2_costmap_2d/plugins/inflation_layer.cpp
        "enabled": bool,                 # 92
        "inflation_radius": float,       # 93
        "cost_scaling_factor": float,    # 94
        "inflate_unknown": bool,         # 95
        "inflate_around_unknown": bool,  # 96
    },
}
# Declared, but start-up reads the costmap's key instead (static_layer.cpp 168; the layer's
# own is only read by the runtime-change callback, 523-524).
NOT_READ_AT_START = {"nav2_costmap_2d::StaticLayer": {"transform_tolerance"}}
OBSERVATION_SOURCE = {                   # <layer>.<source>.*: obstacle_layer.cpp
    "topic": str,                        # 144
    "sensor_frame": str,                 # 145
    "observation_persistence": float,    # 146
    "expected_update_rate": float,       # 147
    "data_type": str,                    # 148
    "min_obstacle_height": float,        # 149
    "max_obstacle_height": float,        # 150
    "inf_is_valid": bool,                # 151
    "marking": bool,                     # 152
    "clearing": bool,                    # 153
    "obstacle_max_range": float,         # 154
    "obstacle_min_range": float,         # 155
    "raytrace_max_range": float,         # 156
    "raytrace_min_range": float,         # 157
}
# nav2_collision_monitor/src/collision_monitor_node.cpp
COLLISION_MONITOR = {
    "use_realtime_priority": bool,       # 93
    "cmd_vel_in_topic": str,             # 249
    "cmd_vel_out_topic": str,            # 252
    "state_topic": str,                  # 255
    "base_frame_id": str,                # 259
    "odom_frame_id": str,                # 262
    "transform_tolerance": float,        # 265
    "source_timeout": float,             # 269
    "base_shift_correction": bool,       # 273
    "stop_pub_timeout": float,           # 278
    "polygons": list,                    # 305
    "observation_sources": list,         # 358
}
CM_SOURCE = {
    "type": str,                         # collision_monitor_node.cpp 362
    "topic": str,                        # src/source.cpp 66
    "enabled": bool,                     # source.cpp 71
    "source_timeout": float,             # source.cpp 75
}
CM_POINTCLOUD = {                        # src/pointcloud.cpp
    "min_height": float,                 # 151
    "max_height": float,                 # 154
    "min_range": float,                  # 157
    "use_global_height": bool,           # 160
}
CM_POLYGON = {                           # src/polygon.cpp (type: collision_monitor_node.cpp 310)
    "type": str, "action_type": str,     # 333
    "enabled": bool,                     # 352
    "min_points": int,                   # 356
    "max_points": int,                   # 361 (deprecated)
    "visualize": bool,                   # 399
    "polygon_subscribe_transient_local": bool,  # 409
    "sources_names": list,               # 436
    "points": str,                       # 481
}
CM_POLYGON_IF = {                        # declared only in some cases (polygon.cpp)
    "slowdown_ratio": (float, lambda p: p["action_type"] == "slowdown"),          # 374
    "linear_limit": (float, lambda p: p["action_type"] == "limit"),               # 380
    "angular_limit": (float, lambda p: p["action_type"] == "limit"),              # 383
    "time_before_collision": (float, lambda p: p["action_type"] == "approach"),   # 389
    "simulation_time_step": (float, lambda p: p["action_type"] == "approach"),    # 393
    "polygon_pub_topic": (str, lambda p: p.get("visualize", False)),              # 404
    "polygon_sub_topic": (str, lambda p: "points" not in p and p["action_type"] != "approach"),
    "footprint_topic": (str, lambda p: "points" not in p and p["action_type"] == "approach"),
}                                        # 417, 423

NODES = h.nav2_nodes()
COSTMAPS = [n for n in NODES if n.name in ("local_costmap", "global_costmap")]
MONITOR = next(n for n in NODES if n.name == "collision_monitor")
ROBOT = h.robot_config()
REACH = math.hypot(ROBOT.camera_x, ROBOT.camera_y) + ROBOT.max_range   # 8.3 m
STATIC, OBSTACLE = "nav2_costmap_2d::StaticLayer", "nav2_costmap_2d::ObstacleLayer"


def _check(section: dict, declared: dict, where: str, nested: set[str] = frozenset()) -> None:
    for key, value in section.items():
        if key in nested:
            continue
        assert key in declared, f"{where}: Nav2 Jazzy does not declare {key!r} (ignored)"
        assert type(value) is declared[key], \
            f"{where}.{key}: {value!r} is not a {declared[key].__name__} (Nav2 refuses it)"


def _footprint(text: str) -> list[tuple[float, float]]:
    return [tuple(p) for p in ast.literal_eval(text)]


def _layers(node: h.Nav2Node) -> dict[str, dict]:
    return {name: node.params[name] for name in node.params["plugins"]}


def test_the_shipped_examples_are_the_three_nodes():
    assert {(n.file, n.namespace, n.name) for n in NODES} == {
        ("nav2_local_costmap.yaml", "/local_costmap", "local_costmap"),
        ("nav2_global_costmap.yaml", "/global_costmap", "global_costmap"),
        ("nav2_collision_monitor.yaml", "/", "collision_monitor")}


@pytest.mark.parametrize("node", COSTMAPS, ids=lambda n: n.name)
def test_costmap_keys_are_declared_by_nav2_with_their_types(node):
    layers = _layers(node)
    sections = {k for k, v in node.params.items() if isinstance(v, dict)}
    assert sections == set(layers), f"{node.file}: layer sections not in plugins (dead config)"
    _check(node.params, COSTMAP, node.name, nested=sections)
    for name, layer in layers.items():
        kind = layer["plugin"]
        assert kind in LAYERS, f"{node.file}: {name} is a {kind}, no key list for it here"
        sources = layer.get("observation_sources", "").split()
        _check(layer, {**PLUGIN, **LAYERS[kind]}, f"{node.name}.{name}", nested=set(sources))
        unread = NOT_READ_AT_START.get(kind, set()) & set(layer)
        assert not unread, f"{node.name}.{name}: {unread} is not read at start-up"
        assert {k for k, v in layer.items() if isinstance(v, dict)} == set(sources)
        for source in sources:
            _check(layer[source], OBSERVATION_SOURCE, f"{node.name}.{name}.{source}")


def test_collision_monitor_keys_are_declared_by_nav2_with_their_types():
    p = MONITOR.params
    sections = set(p["polygons"]) | set(p["observation_sources"])
    assert {k for k, v in p.items() if isinstance(v, dict)} == sections
    _check(p, COLLISION_MONITOR, "collision_monitor", nested=sections)
    for name in p["observation_sources"]:
        source = p[name]
        assert source["type"] == "pointcloud"
        _check(source, {**CM_SOURCE, **CM_POINTCLOUD}, name)
    for name in p["polygons"]:
        polygon = p[name]
        declared = dict(CM_POLYGON)
        declared.update({k: t for k, (t, applies) in CM_POLYGON_IF.items() if applies(polygon)})
        _check(polygon, declared, name)


@pytest.mark.parametrize("node", COSTMAPS, ids=lambda n: n.name)
def test_inflation_radius_covers_the_padded_footprint(node):
    """MPPI logs an error when inflation_radius < circumscribed radius (cost_critic.cpp
    99-107); Nav2 pads the footprint by footprint_padding (footprint.cpp 145-153)."""
    pad = node.params.get("footprint_padding", 0.01)
    padded = [(x + math.copysign(pad, x) * (x != 0), y + math.copysign(pad, y) * (y != 0))
              for x, y in _footprint(node.params["footprint"])]
    circumscribed = max(math.hypot(x, y) for x, y in padded)
    inflation = next(v for v in _layers(node).values()
                     if v["plugin"] == "nav2_costmap_2d::InflationLayer")
    assert inflation["inflation_radius"] >= circumscribed, f"{circumscribed:.3f} m"


@pytest.mark.parametrize("node", COSTMAPS, ids=lambda n: n.name)
def test_window_holds_the_camera_view_at_any_heading(node):
    """A rolling window is centred on the robot (layered_costmap.cpp 145-150)."""
    p = node.params
    assert p["rolling_window"] is True     # a StaticLayer in a non-rolling map resizes it
    assert min(p["width"], p["height"]) / 2 >= REACH, f"reach {REACH} m"
    assert p["global_frame"] == ROBOT.odom_frame and p["robot_base_frame"] == ROBOT.base_frame
    for layer in _layers(node).values():
        for source in layer.get("observation_sources", "").split():
            s = layer[source]
            assert s.get("obstacle_max_range", 2.5) >= REACH or not s.get("marking", True)
            assert s.get("raytrace_max_range", 3.0) >= REACH or not s.get("clearing", False)


def _topic_keys(section: dict, path: str = ""):
    for key, value in section.items():
        if isinstance(value, dict):
            yield from _topic_keys(value, f"{path}{key}.")
        elif key.endswith("topic"):
            yield f"{path}{key}", value


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.name)
def test_every_topic_is_absolute(node):
    topics = list(_topic_keys(node.params))
    assert topics
    for key, value in topics:
        assert value.startswith("/"), f"{node.file}: {key}: {value!r} resolves in " \
                                      f"{node.namespace}"


def test_topics_durability_and_qos_match_our_publishers():
    from rclpy.qos import QoSCompatibility, qos_check_compatible

    from offroad_costmap.outputs import CLOUD_QOS, GRID_QOS

    ours = {f"/{ROBOT.grid_topic}": ("grid", GRID_QOS),       # launch namespace ""
            f"/{ROBOT.obstacles_topic}": ("marking", CLOUD_QOS),
            f"/{ROBOT.clearing_topic}": ("clearing", CLOUD_QOS)}
    seen = set()
    for node in NODES:
        for sub in h.subscriptions(node):
            assert sub.topic in ours, f"{node.file}: {sub.what} reads {sub.topic}, not ours"
            kind, publisher = ours[sub.topic]
            seen.add(kind)
            if sub.kind == "grid":
                assert sub.transient_local, f"{node.name}: durability must be transient-local"
            elif "." in sub.what:                           # an obstacle layer source
                layer, source = sub.what.split(".")
                s = node.params[layer][source]
                assert s["marking"] == (kind == "marking") and s["clearing"] == (
                    kind == "clearing"), f"{node.name}: {sub.what} on {sub.topic}"
            compatible, reason = qos_check_compatible(publisher, h.qos_of(sub))
            assert compatible != QoSCompatibility.ERROR, f"{node.name} {sub.what}: {reason}"
    assert seen == {"grid", "marking", "clearing"}
    assert ROBOT.publish_obstacles and ROBOT.publish_clearing


@pytest.mark.parametrize("node", COSTMAPS, ids=lambda n: n.name)
def test_obstacle_sources_see_our_clouds(node):
    """Sensor origin, heights and staleness of the observation sources
    (observation_buffer.cpp 92-103, 143-144, 212-227; obstacle_layer.cpp 463-466, 477-485)."""
    z = ROBOT.obstacle_point_height
    layers = [v for v in _layers(node).values() if v["plugin"] == OBSTACLE]
    assert layers, f"{node.file}: no obstacle layer: stale perception would not stop Nav2"
    for layer in layers:
        assert layer["min_obstacle_height"] <= z <= layer["max_obstacle_height"]
        for source in layer["observation_sources"].split():
            s = layer[source]
            assert s["sensor_frame"] == ROBOT.base_frame   # our clouds are in odom
            assert s["min_obstacle_height"] <= z <= s["max_obstacle_height"]
            assert s["observation_persistence"] == 0.0     # the newest cloud only
            # trips when our clouds stop, not between two frames of a 10 Hz camera
            assert 2 * ROBOT.watchdog_period <= s["expected_update_rate"] <= 2 * \
                ROBOT.stale_timeout
    static = [v for v in _layers(node).values() if v["plugin"] == STATIC]
    assert next(iter(_layers(node).values())) is static[0]   # it overwrites: first
    if node.name == "local_costmap":                      # never unknown -> free
        assert all(layer["combination_method"] == 2 for layer in layers)


def test_collision_monitor_stops_on_stale_perception():
    p = MONITOR.params
    source = p[p["observation_sources"][0]]
    assert source["topic"] == f"/{ROBOT.obstacles_topic}" and source["enabled"]
    # 0 disables the check (collision_monitor_node.cpp 438-439, source.cpp 88)
    assert 0 < source["source_timeout"] <= 2 * ROBOT.stale_timeout
    assert source["min_height"] <= ROBOT.obstacle_point_height <= source["max_height"]
    assert source["min_range"] == 0.0               # measured from the cloud frame's origin
    assert p["base_frame_id"] == ROBOT.base_frame and p["odom_frame_id"] == ROBOT.odom_frame
    local = next(n for n in COSTMAPS if n.name == "local_costmap")
    approach = [p[n] for n in p["polygons"] if p[n]["action_type"] == "approach"]
    # the local costmap publishes its footprint as published_footprint in its namespace
    # (costmap_2d_ros.cpp 228-229)
    assert all(a["footprint_topic"] == f"{local.namespace}/published_footprint"
               for a in approach)
    stop = [p[n] for n in p["polygons"] if p[n]["action_type"] == "stop"]
    footprint = _footprint(local.params["footprint"])
    for polygon in stop:     # the stop zone holds the footprint
        zone = _footprint(polygon["points"])
        xs, ys = [x for x, _ in zone], [y for _, y in zone]
        assert all(min(xs) < x < max(xs) and min(ys) < y < max(ys) for x, y in footprint)
