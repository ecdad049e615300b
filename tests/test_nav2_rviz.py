"""Issue 14, item 7: the shipped RViz config shows what the perception launch publishes.

Every topic the config names must be one our nodes publish, resolved as the launch resolves it
(both nodes started from their installed executables with robot.yaml, names offroad_segmentation
and offroad_costmap, namespace ""), with the message type the display expects and a QoS that
connects; or one Nav2 publishes when it runs with the shipped examples (the local costmap's
footprint and costmap, costmap_2d_ros.cpp 228-234; a visualised collision-monitor polygon,
polygon.cpp 399-405). Frames: those of robot.yaml.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import nav2_harness as h

RVIZ = h.ROOT / "launch" / "rviz" / "offroad.rviz"
INSTALLED = h.ROOT / "install" / "offroad_bringup" / "share" / "offroad_bringup" / "rviz"
MESSAGE = {  # display class -> the message type it subscribes to
    "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
    "rviz_default_plugins/Map": "nav_msgs/msg/OccupancyGrid",
    "rviz_default_plugins/PointCloud2": "sensor_msgs/msg/PointCloud2",
    "rviz_default_plugins/Polygon": "geometry_msgs/msg/PolygonStamped",
}
OURS = {  # launch node name -> (package, executable)
    "offroad_segmentation": ("offroad_seg_node", "segmentation_node"),
    "offroad_costmap": ("offroad_costmap", "costmap_node"),
}


def _displays(items: list[dict]) -> list[dict]:
    out = []
    for item in items:
        out.extend(_displays(item["Displays"]) if item["Class"] == "rviz_common/Group"
                   else [item])
    return out


CONFIG = yaml.safe_load(RVIZ.read_text())
DISPLAYS = _displays(CONFIG["Visualization Manager"]["Displays"])
TOPICS = [d for d in DISPLAYS if "Topic" in d]


def _nav2_topics() -> dict[str, str]:
    """What Nav2 publishes with the shipped examples that the view may show."""
    out = {}
    for node in h.nav2_nodes():
        if node.name in ("local_costmap", "global_costmap"):
            out[f"{node.namespace}/published_footprint"] = "geometry_msgs/msg/PolygonStamped"
            out[f"{node.namespace}/costmap"] = "nav_msgs/msg/OccupancyGrid"
        for name in node.params.get("polygons", []):
            polygon = node.params[name]
            if polygon.get("visualize"):
                out[polygon.get("polygon_pub_topic", name)] = "geometry_msgs/msg/PolygonStamped"
    return out


def test_view_is_in_the_launch_frames_and_shows_what_people_look_at():
    robot = h.robot_config()
    manager = CONFIG["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == robot.output_frame     # grid, clouds
    assert manager["Views"]["Current"]["Target Frame"] == robot.base_frame     # follows robot
    grid = next(d for d in DISPLAYS if d["Class"] == "rviz_default_plugins/Grid")
    assert grid["Reference Frame"] == robot.base_frame
    enabled = {d["Topic"]["Value"] for d in TOPICS if d["Enabled"]}
    assert enabled >= {"/segmentation/overlay", "/segmentation/labels", f"/{robot.grid_topic}",
                       f"/{robot.obstacles_topic}", "/local_costmap/published_footprint"}
    for display in TOPICS:
        assert display["Class"] in MESSAGE, display["Name"]
        assert display["Topic"]["Value"].startswith("/"), display["Name"]
    assert (INSTALLED / RVIZ.name).read_text() == RVIZ.read_text(), "run make setup"


def _qos(topic: dict):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=topic["Depth"],
        reliability=ReliabilityPolicy.RELIABLE if topic["Reliability Policy"] == "Reliable"
        else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL
        if topic["Durability Policy"] == "Transient Local" else DurabilityPolicy.VOLATILE)


@pytest.mark.ros
def test_every_topic_is_published_by_our_nodes_or_by_nav2(tmp_path):
    from rclpy.qos import QoSCompatibility, qos_check_compatible

    from offroad_core.testing import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny.onnx", confidence=True)
    procs = []
    for name, (package, executable) in OURS.items():
        cmd = [str(h.ROOT / "install" / package / "lib" / package / executable), "--ros-args",
               "--params-file", str(h.ROBOT_YAML), "-r", f"__node:={name}"]
        if name == "offroad_segmentation":   # the launch's model and provider arguments
            cmd += ["-p", f"model_path:={model}", "-p", "provider:=cpu"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    graph = None
    try:
        graph = h.Graph()
        probe = graph.feeder
        published: dict[str, set[str]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(published) < len(OURS):
            graph.spin(0.2)
            names = {n for n, ns in probe.get_node_names_and_namespaces() if ns == "/"}
            for name in set(OURS) & names:
                found = probe.get_publisher_names_and_types_by_node(name, "/")
                if any(t.endswith("/labels") or t.endswith("/grid") for t, _ in found):
                    published[name] = {f"{t} {ty}" for t, types in found for ty in types}
            for proc in procs:
                assert proc.poll() is None, proc.communicate()[0][-2000:]
        assert set(published) == set(OURS), f"nodes up: {set(published)}"
        ours = set().union(*published.values())
        nav2 = _nav2_topics()
        for display in TOPICS:
            topic, kind = display["Topic"]["Value"], MESSAGE[display["Class"]]
            if topic in nav2:
                assert nav2[topic] == kind, f"{display['Name']}: Nav2 publishes {nav2[topic]}"
                continue
            assert f"{topic} {kind}" in ours, f"{display['Name']}: no {kind} on {topic}"
            for info in probe.get_publishers_info_by_topic(topic):
                compatible, reason = qos_check_compatible(info.qos_profile,
                                                          _qos(display["Topic"]))
                assert compatible != QoSCompatibility.ERROR, f"{display['Name']}: {reason}"
    finally:
        if graph is not None:
            graph.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
