"""Issue 14, item 1: Nav2 receives our grid and clouds, with names resolved as Nav2 resolves them.

Real processes over DDS: our costmap node runs with the shipped ``launch/config/robot.yaml`` in
the perception launch's default namespace; this process feeds it labels, SegmentationInfo,
CameraInfo and odometry, and stands in for Nav2 with nodes named ``local_costmap`` in
``/local_costmap``, ``global_costmap`` in ``/global_costmap`` and ``collision_monitor`` in
``/``, each subscribing with the exact topic string and QoS that the shipped Nav2 YAML makes
Nav2 Jazzy use (tests/nav2_harness.py). The test passes only if every one of them receives.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import nav2_harness as h

pytestmark = pytest.mark.ros


def test_every_nav2_subscription_of_the_shipped_examples_receives_our_outputs():
    subs = [s for node in h.nav2_nodes() for s in h.subscriptions(node)]
    wanted = {("local_costmap", "grid"), ("local_costmap", "cloud"), ("global_costmap", "grid"),
              ("global_costmap", "cloud"), ("collision_monitor", "cloud")}
    assert {(s.node.name, s.kind) for s in subs} == wanted
    assert len(subs) == 7          # grid + marking + clearing per costmap, one monitor source
    received: list[list] = [[] for _ in subs]
    proc = h.start_costmap_node()
    graph = None
    try:
        graph = h.Graph()
        for s, messages in zip(subs, received, strict=True):
            graph.subscribe(s, messages.append)
        graph.wait_for(proc)
        graph.calibrate()
        graph.drive(0.5, None)                           # odometry before the first image
        sent = graph.drive(3.0, h.ground_labels(h.robot_config()))
        graph.spin(2.0, lambda: all(received))
        for s, messages in zip(subs, received, strict=True):
            node = graph.node(s.node.name, s.node.namespace)
            resolved = node.resolve_topic_name(s.topic)
            publishers = [p.node_name for p in node.get_publishers_info_by_topic(resolved)]
            where = f"{s.node.file}: {s.node.namespace}/{s.node.name} {s.what} ({s.topic!r})"
            assert publishers == ["offroad_costmap"], f"{where} resolves to {resolved}"
            assert messages, f"{where}: nothing received on {resolved}"
        # The relative name of the old example resolved inside the costmap's namespace.
        local = graph.node("local_costmap", "/local_costmap")
        assert local.resolve_topic_name("costmap/grid") == "/local_costmap/costmap/grid"
        assert local.get_publishers_info_by_topic("/local_costmap/costmap/grid") == []
    finally:
        if graph is not None:
            graph.close()
        out = h.stop(proc)
    assert proc.returncode == 0, out

    # What arrived is our perception of the frames sent: image stamps, every category.
    stamps = {(t.sec, t.nanosec) for t in sent}
    for s, messages in zip(subs, received, strict=True):
        perceived = [m for m in messages if (m.header.stamp.sec, m.header.stamp.nanosec) in stamps]
        assert perceived, f"{s.what}: no message carries an image stamp"
        assert {m.header.frame_id for m in perceived} == {"odom"}
        last = perceived[-1]
        if s.kind == "grid":
            values = np.frombuffer(bytes(last.data), np.int8)
            assert {-1, 0, 50, 100} <= set(values.tolist())
            assert last.info.width == last.info.height
            assert last.info.resolution == pytest.approx(0.05)
        else:
            assert last.width > 10, f"{s.what}: {last.width} points"
