"""Sensor mounting: rigid transforms into ``base_link`` from parameters or from TF.

No ROS import. :class:`Rigid` is a rotation + translation (``p_base = R p + t``).
:class:`FrameTable` answers "which transform takes points of frame F into base_link at stamp
t": the robot frame itself (identity), the camera's optical frame (the ``camera_*`` pose), the
LiDAR frame (the ``lidar_*`` pose) from parameters, or any frame through a TF lookup function
(``extrinsics: tf``; the node passes one built on ``tf2_ros`` where it is importable, the bag
evaluator one built on the bag's ``/tf_static`` through :class:`StaticTree`). A frame it cannot
resolve raises :class:`FrameError` (reason ``unknown_frame``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from offroad_core.camera import R_BODY_FROM_OPTICAL, CameraPose


class FrameError(ValueError):
    """A frame without a known transform to base_link; ``reason`` for the counters."""

    reason = "unknown_frame"


@dataclass(frozen=True)
class Rigid:
    """``p_parent = rotation @ p_child + translation``."""

    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def identity(cls) -> Rigid:
        """The identity transform."""
        return cls(np.eye(3), np.zeros(3))

    @classmethod
    def from_pose(cls, pose: CameraPose) -> Rigid:
        """The body frame of a pose (x, y, z, roll, pitch, yaw; REP-103)."""
        return cls(pose.rotation_body, pose.translation)

    @classmethod
    def from_quaternion(cls, translation: tuple[float, float, float],
                        quaternion: tuple[float, float, float, float]) -> Rigid:
        """From a ``geometry_msgs/Transform`` (x, y, z) and (x, y, z, w) unit quaternion."""
        x, y, z, w = (float(v) for v in quaternion)
        norm = math.sqrt(x * x + y * y + z * z + w * w)
        if not (math.isfinite(norm) and norm > 1e-9) or not all(
                math.isfinite(float(v)) for v in translation):
            raise FrameError(f"transform with quaternion {quaternion} / translation "
                             f"{translation} is not a rigid transform")
        x, y, z, w = x / norm, y / norm, z / norm, w / norm
        rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        return cls(rot, np.asarray(translation, dtype=float))

    def then(self, child: Rigid) -> Rigid:
        """``self`` o ``child``: maps the child's child frame into self's parent frame."""
        return Rigid(self.rotation @ child.rotation,
                     self.rotation @ child.translation + self.translation)

    def inverse(self) -> Rigid:
        """The inverse transform."""
        rt = self.rotation.T
        return Rigid(rt, -rt @ self.translation)

    def apply(self, x: np.ndarray, y: np.ndarray,
              z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points (x, y, z float32 arrays) mapped into the parent frame. Elementwise, not a
        BLAS product: a (N, 3) x (3, 3) product is memory bound, and BLAS threads fight over
        a shared machine's cores (:func:`combine`: a level mount costs 3 additions)."""
        r = self.rotation.astype(np.float32)
        t = self.translation.astype(np.float32)
        out = tuple(combine((x, y, z), r[i], t[i]) for i in range(3))
        return out[0], out[1], out[2]

    def camera_pose(self) -> CameraPose:
        """The :class:`CameraPose` of a camera whose *optical* frame this transform is."""
        body = self.rotation @ R_BODY_FROM_OPTICAL.T
        pitch = -math.asin(max(-1.0, min(1.0, body[2, 0])))
        roll = math.atan2(body[2, 1], body[2, 2])
        yaw = math.atan2(body[1, 0], body[0, 0])
        x, y, z = (float(v) for v in self.translation)
        return CameraPose(x, y, z, roll, pitch, yaw)


def combine(columns: tuple[np.ndarray, ...], coefficients: np.ndarray,
            offset: np.floating | None = None) -> np.ndarray:
    """``c0 * columns[0] + c1 * columns[1] + ... (+ offset)``, summed left to right in the
    columns' dtype, with the terms whose coefficient is exactly 0 left out (and products by
    +-1 and an offset of 0 skipped): on finite values the result is the same, the sign of a
    zero aside; a non-finite value no longer spreads to the other axes through ``inf * 0``."""
    terms = [(column, c) for column, c in zip(columns, coefficients, strict=True) if c != 0]
    if len(terms) == 1 and terms[0][1] == 1 and offset is not None and offset != 0:
        return np.add(terms[0][0], offset)                    # a level mount: one addition
    out = None
    for column, c in terms:
        if out is None:
            out = column.copy() if c == 1 else np.negative(column) if c == -1 else \
                np.multiply(column, c)
        elif c == 1:
            out += column
        elif c == -1:
            out -= column
        else:
            out += np.multiply(column, c)
    if out is None:
        out = np.zeros_like(columns[0])
    if offset is not None and offset != 0:
        out += offset
    return out


def optical_rigid(pose: CameraPose) -> Rigid:
    """base_link <- optical frame of a camera mounted at ``pose``."""
    return Rigid(pose.rotation_optical, pose.translation)


class StaticTree:
    """Static transforms (``/tf_static``: parent -> child) and look-ups between frames."""

    def __init__(self) -> None:
        """An empty tree."""
        self._parent: dict[str, tuple[str, Rigid]] = {}

    def add(self, parent: str, child: str, transform: Rigid) -> None:
        """``transform`` maps child points into the parent frame (a TransformStamped)."""
        self._parent[child.lstrip("/")] = (parent.lstrip("/"), transform)

    def _to_root(self, frame: str) -> tuple[str, Rigid]:
        chain, seen = Rigid.identity(), set()
        while frame in self._parent and frame not in seen:
            seen.add(frame)
            parent, t = self._parent[frame]
            chain = t.then(chain)
            frame = parent
        return frame, chain

    def lookup(self, target: str, source: str) -> Rigid | None:
        """target <- source, or None when they are not connected."""
        root_s, s = self._to_root(source.lstrip("/"))
        root_t, t = self._to_root(target.lstrip("/"))
        if root_s != root_t:
            return None
        return t.inverse().then(s)


Lookup = Callable[[str, float], "Rigid | None"]


class FrameTable:
    """Frame id -> base_link transform (module docstring)."""

    def __init__(self, base_frame: str, known: dict[str, Rigid],
                 lookup: Lookup | None = None) -> None:
        """``known`` frames from parameters; ``lookup(frame, stamp)`` for TF (or None)."""
        self.base_frame = base_frame.lstrip("/")
        self.known = {name.lstrip("/"): t for name, t in known.items() if name}
        self.known[self.base_frame] = Rigid.identity()
        self.lookup = lookup

    def to_base(self, frame_id: str, stamp: float) -> Rigid:
        """The transform of ``frame_id`` at ``stamp``; :class:`FrameError` when unknown."""
        frame = frame_id.lstrip("/")
        if self.lookup is not None and frame != self.base_frame:
            found = self.lookup(frame, stamp)
            if found is not None:
                return found
            raise FrameError(f"no transform {self.base_frame} <- {frame_id!r} (TF) at "
                             f"{stamp:.3f}")
        if frame in self.known:
            return self.known[frame]
        raise FrameError(f"cloud frame {frame_id!r} is not one of {', '.join(self.known)} "
                         "(set lidar_frame/camera_frame, or extrinsics: tf)")
