"""Build the node's ``diagnostic_msgs/DiagnosticStatus`` from counter snapshots."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from offroad_seg_node.counters import Snapshot


def diagnostic_status(name: str, hardware_id: str, now: Snapshot, before: Snapshot,
                      period_s: float, extra: dict[str, str]) -> DiagnosticStatus:
    """One status: level from what happened since ``before``, values with every counter.

    ERROR: engine failures and nothing processed in the window. WARN: rejected inputs or
    engine failures in the window, or frames received but none processed. OK otherwise
    (also when no input arrives: an idle camera is not the node's fault; ``fps`` shows it).
    Keys ``rejected_<reason>`` count bad inputs since activation by reason.
    """
    new_rejects = now.rejected - before.rejected
    new_errors = now.engine_errors - before.engine_errors
    new_received = now.received - before.received
    window = now.processed - before.processed
    if new_errors and not window:
        level, message = DiagnosticStatus.ERROR, f"inference failing: {now.last_error}"
    elif new_rejects or new_errors:
        level = DiagnosticStatus.WARN
        message = f"{new_rejects} input(s) rejected, {new_errors} engine error(s): " \
                  f"{now.last_error}"
    elif new_received and not window:
        level, message = DiagnosticStatus.WARN, "frames received but none processed"
    else:
        level, message = DiagnosticStatus.OK, "ok"
    values = {
        **extra,
        "fps": f"{window / period_s:.2f}",
        "frames_received": str(now.received),
        "frames_processed": str(now.processed),
        "frames_dropped": str(now.dropped),
        "frames_rejected": str(now.rejected),
        "engine_errors": str(now.engine_errors),
        "last_error": now.last_error,
    }
    for reason, count in sorted(now.rejected_by_reason.items()):
        values[f"rejected_{reason}"] = str(count)
    for stage, ms in now.mean_ms.items():
        values[f"{stage}_mean_ms"] = f"{ms:.2f}"
        values[f"{stage}_max_ms"] = f"{now.max_ms[stage]:.2f}"
    status = DiagnosticStatus()
    status.level = level
    status.name = name
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
    return status
