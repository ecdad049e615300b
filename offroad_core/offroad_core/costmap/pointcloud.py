"""The one PointCloud2 <-> numpy conversion, on a message's raw fields (no ROS import).

The costmap node (``offroad_costmap.conversions`` wraps these for ``sensor_msgs/PointCloud2``),
the offline bag evaluator (``rosbags`` messages) and the tests all go through here, so a cloud
is read the same way everywhere.

Reading (:func:`read_fields`) is a zero-copy structured view of the message buffer when rows are
not padded (one copy otherwise); any field layout, either byte order, any of the eight
``PointField`` datatypes, organised (height > 1) or not. Every refusal raises
:class:`CloudError` with a stable ``reason``: ``cloud_too_large`` (more points than the caller
allows: checked before touching the data), ``cloud_missing_fields`` (no x, y or z, or a field
that is not a single number), ``bad_cloud`` (step, row step or data length inconsistent).
Writing (:func:`pack_cloud`) packs named 1-D columns into a little-endian buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# sensor_msgs/PointField datatype constants -> numpy dtype (little-endian form).
DATATYPES: dict[int, np.dtype] = {1: np.dtype("i1"), 2: np.dtype("u1"), 3: np.dtype("<i2"),
                                  4: np.dtype("<u2"), 5: np.dtype("<i4"), 6: np.dtype("<u4"),
                                  7: np.dtype("<f4"), 8: np.dtype("<f8")}
DATATYPE_OF: dict[np.dtype, int] = {dt: code for code, dt in DATATYPES.items()}
FLOAT32, UINT8, UINT16 = 7, 2, 4
XYZ = ("x", "y", "z")


class CloudError(ValueError):
    """A PointCloud2 that cannot be used; ``reason`` is a short stable key for counters."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the reason key next to the message."""
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Field:
    """One ``sensor_msgs/PointField``: name, byte offset in a point, datatype code, count."""

    name: str
    offset: int
    datatype: int
    count: int = 1


def read_fields(fields: Sequence[Field], width: int, height: int, point_step: int,
                row_step: int, data: bytes | memoryview | np.ndarray, is_bigendian: bool,
                names: Sequence[str] = XYZ, max_points: int = 2_000_000) -> dict[str, np.ndarray]:
    """The named fields of a cloud as 1-D arrays (N = width x height, row-major).

    Arrays are views of ``data`` where possible (do not write into them).
    """
    width, height, point_step, row_step = int(width), int(height), int(point_step), int(row_step)
    n = width * height
    if width < 0 or height < 0:
        raise CloudError("bad_cloud", f"cloud size {width}x{height} is negative")
    if n > max_points:
        raise CloudError("cloud_too_large", f"cloud has {n} points (width {width} x height "
                         f"{height}), more than max_cloud_points {max_points}")
    by_name = {f.name: f for f in fields}
    missing = [name for name in names if name not in by_name]
    if missing:
        have = ", ".join(by_name) or "none"
        raise CloudError("cloud_missing_fields", f"cloud has no field(s) {', '.join(missing)} "
                         f"(fields: {have})")
    order = ">" if is_bigendian else "<"
    formats, offsets = [], []
    for name in names:
        f = by_name[name]
        if f.datatype not in DATATYPES or f.count != 1:
            raise CloudError("cloud_missing_fields", f"cloud field {name!r} has datatype "
                             f"{f.datatype} x {f.count}: expected one number")
        dt = DATATYPES[f.datatype].newbyteorder(order)
        if f.offset < 0 or f.offset + dt.itemsize > point_step:
            raise CloudError("bad_cloud", f"cloud field {name!r} at offset {f.offset} does not "
                             f"fit in point_step {point_step}")
        formats.append(dt)
        offsets.append(int(f.offset))
    if n == 0:
        return {name: np.zeros(0, DATATYPES[by_name[name].datatype]) for name in names}
    if row_step < width * point_step:
        raise CloudError("bad_cloud", f"row_step {row_step} < width {width} x point_step "
                         f"{point_step}")
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else \
        data.view(np.uint8).ravel()
    if buf.size < row_step * (height - 1) + width * point_step:
        raise CloudError("bad_cloud", f"cloud data has {buf.size} bytes, {width}x{height} points "
                         f"of {point_step} bytes (row_step {row_step}) need "
                         f"{row_step * height}")
    dtype = np.dtype({"names": list(names), "formats": formats, "offsets": offsets,
                      "itemsize": point_step})
    if row_step == width * point_step or height == 1:
        points = buf[: n * point_step].view(dtype)
    else:  # padded rows: drop the padding (one copy)
        rows = np.lib.stride_tricks.as_strided(buf, (height, width * point_step), (row_step, 1))
        points = np.ascontiguousarray(rows).reshape(-1).view(dtype)
    return {name: points[name] for name in names}


def cloud_xyz(fields: Sequence[Field], width: int, height: int, point_step: int, row_step: int,
              data: bytes | memoryview | np.ndarray, is_bigendian: bool,
              max_points: int = 2_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, z of a cloud as float32 arrays (views when the cloud stores float32;
    non-finite points kept: the caller filters)."""
    cols = read_fields(fields, width, height, point_step, row_step, data, is_bigendian, XYZ,
                       max_points)
    x, y, z = (np.asarray(cols[name], np.float32) for name in XYZ)
    return x, y, z


def pack_cloud(columns: Sequence[tuple[str, np.ndarray]]) -> tuple[list[Field], int, bytes]:
    """Pack named 1-D columns of one length into a little-endian cloud buffer.

    Returns the fields, the point step and the data. Columns keep their dtype (one of the
    eight PointField types); offsets follow the column order without padding.
    """
    if not columns:
        raise ValueError("a cloud needs at least one column")
    n = len(columns[0][1])
    names, formats, fields, offset = [], [], [], 0
    for name, values in columns:
        dt = np.dtype(values.dtype).newbyteorder("<")
        if dt not in DATATYPE_OF or len(values) != n:
            raise ValueError(f"column {name!r}: dtype {values.dtype} or length {len(values)} "
                             f"(expected {n}) is not a PointField column")
        names.append(name)
        formats.append(dt)
        fields.append(Field(name, offset, DATATYPE_OF[dt]))
        offset += dt.itemsize
    packed = np.empty(n, np.dtype({"names": names, "formats": formats,
                                   "offsets": [f.offset for f in fields], "itemsize": offset}))
    for name, values in columns:
        packed[name] = values
    return fields, offset, packed.tobytes()
