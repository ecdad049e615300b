"""Issue 14, item 2: stale perception stops Nav2 through Nav2's own mechanisms.

Real processes over DDS: our costmap node with the shipped robot.yaml, fed from this process,
received by stand-ins with the names, topics and QoS of the shipped Nav2 examples
(tests/nav2_harness.py). The labels stream, stop, then resume, while odometry goes on.

Checked against what docs/nav2.md promises:
* the clouds carry image stamps only and none is published while stale;
* the grid is all unknown within stale_timeout + watchdog_period of the last labels (timed by
  the grid's own stamp, plus an allowance for the node's timer on a loaded machine);
* the collision monitor's validity rule (nav2_collision_monitor source.cpp ``sourceValid``: a
  source is invalid when now - newest stamp > source_timeout, and the monitor then publishes
  zero velocity, collision_monitor_node.cpp 436-447) applied to the stamps actually received
  keeps the robot going while labels flow and stops it source_timeout after the last image;
* the obstacle layer's rule (observation_buffer.cpp ``isCurrent``: now - last arrival <=
  expected_update_rate) holds while labels flow and trips once they stop.
"""

import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import nav2_harness as h

pytestmark = pytest.mark.ros
TICK = 0.05                     # the monitor runs per cmd_vel message: 20 Hz controller
LABEL_RATE_HZ = 10.0            # the labels stream of Graph.drive
# How late the node's 10 Hz watchdog timer may run on a loaded machine (measured: none, the
# grid 0.6 s after the last labels at load 8-12). The sum with stale_timeout + watchdog_period,
# 0.9 s, still fails a watchdog that waits twice stale_timeout (>= 1 s).
WATCHDOG_LATENESS_S = 0.3


def _valid(clouds: list[tuple[float, float]], t: float, timeout: float) -> bool:
    """The monitor's rule at time t over (arrival, stamp) pairs received by then."""
    stamps = [stamp for arrival, stamp in clouds if arrival <= t]
    return bool(stamps) and t - max(stamps) <= timeout


def test_clouds_stop_when_labels_stop_and_the_collision_monitor_would_stop_the_robot():
    nodes = {n.name: n for n in h.nav2_nodes()}
    monitor, local = nodes["collision_monitor"], nodes["local_costmap"]
    subs = [s for s in h.subscriptions(monitor) + h.subscriptions(local)]
    timeout = monitor.params["offroad_obstacles"]["source_timeout"]
    layer = local.params["offroad_obstacles"]
    update_rate = max(layer[name]["expected_update_rate"]
                      for name in layer["observation_sources"].split())
    config = h.robot_config()
    # per subscription: (received, published, message); both times are DDS's own (this
    # process's receipt, the node's write), in system time like the image stamps, so this
    # process's executor delays on a loaded machine do not count as the node's
    arrivals: list[list[tuple[float, float, object]]] = [[] for _ in subs]
    proc = h.start_costmap_node()
    graph = None
    try:
        graph = h.Graph()
        for s, log in zip(subs, arrivals, strict=True):
            graph.subscribe(s, lambda m, info, log=log: log.append(
                (info["received_timestamp"] * 1e-9, info["source_timestamp"] * 1e-9, m)))
        graph.wait_for(proc)
        graph.calibrate()
        graph.drive(0.5, None)
        labels = h.ground_labels(config)
        sent = graph.drive(2.5, labels, rate=LABEL_RATE_HZ)
        stopped_at = time.time()                          # just after the last labels
        graph.drive(2.0, None)                            # perception stale, odometry goes on
        resumed_at = time.time()
        sent += graph.drive(1.0, labels, rate=LABEL_RATE_HZ)
        graph.spin(0.3)
    finally:
        if graph is not None:
            graph.close()
        out = h.stop(proc)
    assert proc.returncode == 0, out

    stamps = {h.seconds(t) for t in sent}
    last_image = max(h.seconds(t) for t in sent if h.seconds(t) < stopped_at)
    grid = next(log for s, log in zip(subs, arrivals, strict=True) if s.kind == "grid")
    unknown = next((m for _, published, m in grid if published > stopped_at
                    and (np.frombuffer(bytes(m.data), np.int8) == -1).all()), None)
    assert unknown is not None, "no all-unknown grid while the labels had stopped"
    stale_from = h.seconds(unknown.header.stamp)  # the node's clock when it published it
    # Wall-clock windows seen by this process also hold the feeder's own stalls (this process
    # sends the labels), which grow with the machine's load; so each Nav2 rule is checked on
    # the node's part: the gaps it adds, the age of what it publishes.
    period = 1.0 / LABEL_RATE_HZ
    for s, log in zip(subs, arrivals, strict=True):
        if s.kind != "cloud":
            continue
        # image stamps only: no cloud stamped by the clock, none published while stale
        assert log and {h.seconds(m.header.stamp) for *_, m in log} <= stamps, s.what
        assert not [p for _, p, _ in log if stale_from <= p < resumed_at], s.what
        clouds = [(t, h.seconds(m.header.stamp)) for t, _, m in log]
        streaming = [(t, stamp) for t, stamp in clouds if stamp < stopped_at]
        arrival = np.array([t for t, _ in streaming])
        age = arrival - np.array([stamp for _, stamp in streaming])
        gaps, sent_gaps = np.diff(arrival), np.diff([stamp for _, stamp in streaming])
        added = (gaps - sent_gaps).max()
        print(f"\n{s.node.name} {s.what}: {len(log)} clouds, oldest on arrival "
              f"{age.max() * 1e3:.0f} ms, largest gap while streaming {gaps.max() * 1e3:.0f} ms "
              f"(labels sent {sent_gaps.max() * 1e3:.0f} ms apart at most; at most "
              f"{added * 1e3:.0f} ms added to a gap)")
        # obstacle layer: current while streaming, i.e. every arrival gap < expected_update_rate
        # (0.5 s). Labels come every 0.1 s, so that holds while the node and DDS add less than
        # 0.4 s to a gap between labels (measured at most 154 ms, at load 8-12).
        assert added < update_rate - period, f"{s.what} would flap"
        # collision monitor: valid at every tick while streaming, i.e. the newest cloud is
        # younger than source_timeout (0.5 s). That holds while a cloud arrives younger than
        # source_timeout minus one label period (measured 104-228 ms old at load 8-12: this
        # process's own stalls are not counted, DDS's receipt time is).
        assert age.max() < timeout - period, f"{s.what}: would stop while healthy"
        # ... invalid from source_timeout after the last image until labels resume (the rule
        # on the stamps received; no cloud comes in between, as checked above) ...
        stop_ticks = np.arange(stopped_at, resumed_at, TICK)
        first_invalid = next(t for t in stop_ticks if not _valid(clouds, t, timeout))
        assert first_invalid - last_image <= timeout + TICK + 1e-3
        assert not any(_valid(clouds, t, timeout) for t in stop_ticks if t >= first_invalid)
        print(f"  monitor stops {first_invalid - last_image:.2f} s after the last image "
              f"(source_timeout {timeout} s)")
        # ... and valid again once perception is back
        assert _valid(clouds, max(t for t, _ in clouds), timeout)

    # The node accepted the last labels after they were sent (stamp + LATENCY) and before it
    # published its first output for them; it must publish the all-unknown grid after
    # stale_timeout and within stale_timeout + watchdog_period of that, on its own clock.
    answered = min(p for log in arrivals for _, p, m in log
                   if h.seconds(m.header.stamp) == last_image)
    after_sent = stale_from - (last_image + h.LATENCY)
    after_answer = stale_from - answered
    print(f"grid all unknown {after_sent * 1e3:.0f} ms after the last labels were sent, "
          f"{after_answer * 1e3:.0f} ms after the node's first output for them (stale_timeout "
          f"{config.stale_timeout * 1e3:.0f} ms + watchdog {config.watchdog_period * 1e3:.0f} ms)")
    assert after_sent > config.stale_timeout  # never earlier: exact, no slack
    # plus WATCHDOG_LATENESS_S for its timer run late by a loaded machine
    assert after_answer <= config.stale_timeout + config.watchdog_period + WATCHDOG_LATENESS_S
    assert all((np.frombuffer(bytes(m.data), np.int8) == -1).all()
               for _, p, m in grid if stale_from <= p < resumed_at)
