"""Traversability labels to a Nav2 OccupancyGrid: a thin rclpy shell over a pure projection core."""


def main(args: list[str] | None = None) -> int:
    """Console script ``costmap_node``: SIGINT/SIGTERM are deferred before the node's slow
    imports, so a stop during start-up is a clean exit too (:mod:`offroad_core.node_signals`)."""
    from offroad_core.node_signals import defer_stop_signals

    defer_stop_signals()
    from offroad_costmap.costmap_node import main as node_main

    return node_main(args)
