"""Build the costmap node's ``diagnostic_msgs/DiagnosticStatus`` (message types only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue


@dataclass
class CostmapHealth:
    """What the node knows about its inputs and outputs at one diagnostics tick."""

    stale: bool
    since_accepted: float | None  # seconds since the last accepted frame, None if never
    stale_timeout: float
    have_info: bool
    have_camera_info: bool
    accepted: int
    new_accepted: int
    rejected: dict[str, int]
    new_rejected: int
    last_problem: str
    period: float
    stale_grids: int
    faults: dict[str, int] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)


def diagnostic_status(name: str, hardware_id: str, h: CostmapHealth) -> DiagnosticStatus:
    """ERROR when stale or uncalibrated, WARN on rejected inputs or faults, OK otherwise.

    Keys ``rejected_<reason>`` count refused inputs by reason since start (the reasons are
    listed in docs/robustness.md); ``fault_<callback>`` count callbacks that raised.
    """
    if h.stale:
        since = "never" if h.since_accepted is None else f"{h.since_accepted:.2f} s ago"
        level = DiagnosticStatus.ERROR
        message = (f"stale: no labels accepted for > {h.stale_timeout} s (last {since}); grid "
                   "is unknown" + (f"; {h.last_problem}" if h.last_problem else ""))
    elif not (h.have_info and h.have_camera_info):
        level, message = DiagnosticStatus.ERROR, h.last_problem or "not calibrated"
    elif h.new_rejected or h.faults:
        level = DiagnosticStatus.WARN
        message = f"{h.new_rejected} rejected: {h.last_problem}" if h.new_rejected else \
            f"callback faults: {dict(h.faults)}"
    else:
        level, message = DiagnosticStatus.OK, "ok"
    values = {
        "labels_accepted": str(h.accepted),
        "labels_rejected": str(sum(h.rejected.values())),
        "rate_hz": f"{h.new_accepted / h.period:.2f}",
        "have_segmentation_info": str(h.have_info),
        "have_camera_info": str(h.have_camera_info),
        "unknown_grids_published_while_stale": str(h.stale_grids),
        "last_problem": h.last_problem,
        **h.extra,
    }
    values.update({f"rejected_{r}": str(n) for r, n in sorted(h.rejected.items())})
    values.update({f"fault_{r}": str(n) for r, n in sorted(h.faults.items())})
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])
