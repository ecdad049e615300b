"""The costmap node's outputs and when each is published (docs/nav2.md, fail-safe).

A perceived frame publishes the grid, the marking cloud (lethal cells), the clearing cloud
(observed ground) and the debug picture, all stamped with the labels' image stamp. While
perception is stale only the all-unknown grid (and its picture) is published: the clouds stop,
so Nav2's collision monitor (``source_timeout``) and obstacle layer (``expected_update_rate``)
see their source go silent and stop the robot, instead of receiving fresh empty clouds.
"""

from __future__ import annotations

from typing import Any

from nav_msgs.msg import OccupancyGrid
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from offroad_core.costmap.params import CostmapConfig
from offroad_core.costmap.pipeline import GridFrame
from offroad_costmap.conversions import clearing_cloud, debug_image, obstacle_cloud, occupancy_grid

GRID_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""The grid: reliable + transient-local (Nav2 ``map_subscribe_transient_local: true``)."""
CLOUD_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                       reliability=ReliabilityPolicy.RELIABLE)
"""Clouds and picture: reliable, volatile (best-effort subscribers such as Nav2's match)."""


def lethal_value(config: CostmapConfig) -> int:
    """Smallest grid value that is lethal: the lower of the BLOCKED and HAZARD values."""
    return max(min(config.blocked_value, config.hazard_value), 1)


class Outputs:
    """Publishers of the grid, the two clouds and the debug picture."""

    def __init__(self, node: Any, config: CostmapConfig) -> None:
        """Create the publishers that ``config`` enables."""
        c, pub = config, node.create_publisher
        self._grid = pub(OccupancyGrid, c.grid_topic, GRID_QOS)
        self._obstacles = pub(PointCloud2, c.obstacles_topic, CLOUD_QOS) \
            if c.publish_obstacles else None
        self._clearing = pub(PointCloud2, c.clearing_topic, CLOUD_QOS) \
            if c.publish_clearing else None
        self._debug = pub(Image, c.debug_image_topic, CLOUD_QOS) \
            if c.publish_debug_image else None

    def perceived(self, frame: GridFrame, stamp: Any, config: CostmapConfig) -> None:
        """A frame from fresh labels: everything, stamped with the image ``stamp``."""
        frame_id = self._grid_only(frame, stamp, config)
        lethal, z = lethal_value(config), config.obstacle_point_height
        if self._obstacles is not None:
            self._obstacles.publish(obstacle_cloud(frame.values, frame.geometry, lethal, z,
                                                   frame_id, stamp))
        if self._clearing is not None:
            self._clearing.publish(clearing_cloud(frame.values, frame.geometry, lethal,
                                                  frame.origin, z, frame_id, stamp))

    def stale(self, frame: GridFrame, stamp: Any, config: CostmapConfig) -> None:
        """The fail-safe grid while perception is stale: no clouds."""
        self._grid_only(frame, stamp, config)

    def _grid_only(self, frame: GridFrame, stamp: Any, config: CostmapConfig) -> str:
        frame_id = config.odom_frame if frame.in_odom else config.base_frame
        self._grid.publish(occupancy_grid(frame.values, frame.geometry, frame_id, stamp))
        if self._debug is not None and self._debug.get_subscription_count() > 0:
            self._debug.publish(debug_image(frame.values, frame_id, stamp))
        return frame_id
