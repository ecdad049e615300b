"""Run a real node with deliberately broken dependencies (test-only fault injection).

    python faulty_node.py costmap|segmentation --ros-args ...

Nothing in the nodes knows about this; the script patches functions the nodes' callbacks and
timers call, then runs the node's ``main``:

costmap
    ``model_info`` (SegmentationInfo callback) raises for ``model_id == "raise"``; model_id
    ``"break_watchdog"`` makes the stale watchdog's ``unknown_frame`` raise from then on,
    ``"heal_watchdog"`` stops that.
segmentation
    the frame slot's ``put`` (image callback) raises for ``header.frame_id == "raise"``; the
    diagnostics timer's ``diagnostic_status`` raises on its first two calls.
"""

from __future__ import annotations

import sys

BROKEN = {"watchdog": False}


def break_costmap() -> None:
    """Patch the costmap node's dependencies."""
    import offroad_costmap.costmap_node as node
    from offroad_core.costmap.pipeline import CostmapPipeline

    real_info, real_unknown = node.model_info, CostmapPipeline.unknown_frame

    def model_info(msg):
        if msg.model_id == "raise":
            raise RuntimeError("injected fault in model_info")
        BROKEN["watchdog"] = {"break_watchdog": True, "heal_watchdog": False}.get(
            msg.model_id, BROKEN["watchdog"])
        return real_info(msg)

    def unknown_frame(self):
        if BROKEN["watchdog"]:
            raise RuntimeError("injected fault in unknown_frame")
        return real_unknown(self)

    node.model_info = model_info
    CostmapPipeline.unknown_frame = unknown_frame


def break_segmentation() -> None:
    """Patch the segmentation node's dependencies."""
    import offroad_seg_node.segmentation_node as node
    from offroad_seg_node.frame_slot import LatestFrameSlot

    real_put, real_status = LatestFrameSlot.put, node.diagnostic_status
    calls = {"diagnostics": 0}

    def put(self, item):
        if getattr(getattr(item, "header", None), "frame_id", "") == "raise":
            raise RuntimeError("injected fault in LatestFrameSlot.put")
        return real_put(self, item)

    def diagnostic_status(*args, **kwargs):
        calls["diagnostics"] += 1
        if calls["diagnostics"] <= 2:
            raise RuntimeError("injected fault in diagnostic_status")
        return real_status(*args, **kwargs)

    LatestFrameSlot.put = put
    node.diagnostic_status = diagnostic_status


if __name__ == "__main__":
    kind, args = sys.argv[1], [sys.argv[0], *sys.argv[2:]]
    if kind == "costmap":
        break_costmap()
        from offroad_costmap.costmap_node import main
    else:
        break_segmentation()
        from offroad_seg_node.segmentation_node import main
    sys.exit(main(args))
