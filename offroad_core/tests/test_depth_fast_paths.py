"""The depth mode's fast paths against straightforward reference implementations, on random
inputs: the per-pixel depth intervals of the back-projection, the fusion (point lookup table,
presence scatter, packed level slots, slopes of both estimates at once), the painting (tile
z-buffer by erosion, zero rotation terms left out) and the rigid transform. Every comparison
is exact (bit for bit, the sign of a zero aside)."""

import math

import numpy as np
import pytest

from offroad_core.camera import Camera, CameraIntrinsics, CameraPose
from offroad_core.costmap.categories import CategoryValues, LabelTable, model_categories
from offroad_core.costmap.depth import DepthProjector, decode_depth
from offroad_core.costmap.extrinsics import Rigid
from offroad_core.costmap.grid import GridGeometry
from offroad_core.costmap.painting import MIN_DEPTH, Painter
from offroad_core.costmap.terrain import SLOPE_BASELINE, Batch, TerrainFuser, TerrainRules
from offroad_core.ontology import CLASS_NAMES

IDS = tuple(range(len(CLASS_NAMES)))
TABLE = LabelTable.build(IDS, CLASS_NAMES, model_categories(CLASS_NAMES, (), {}))
CAMERAS = [
    Camera(CameraIntrinsics.from_fov(160, 120, 90), CameraPose(0.3, 0.0, 1.0, 0.0, 0.21, 0.0)),
    Camera(CameraIntrinsics(120, 100, 90.0, 95.0, 61.0, 48.0, "plumb_bob",
                            (-0.2, 0.05, 0.001, -0.002, 0.0)),
           CameraPose(-0.4, 0.2, 0.6, 0.05, 0.4, 0.3)),
    Camera(CameraIntrinsics.from_fov(100, 80, 70), CameraPose(0.0, 0.0, 0.5)),   # level
]
GRIDS = [GridGeometry.from_size(10, 10, 0.05, -2, -5), GridGeometry.from_size(3, 2, 0.1, 1, -0.4),
         GridGeometry.from_size(30, 30, 0.2, -15, -15)]


def reference_depth_points(p: DepthProjector, depth: np.ndarray, max_range: float):
    """The plain back-projection: every kept pixel, then the in-range and in-grid tests."""
    g, intr = p.geometry, p.camera.intrinsics
    rays = intr.pixel_rays_optical(intr.pixel_grid()[p.kept])
    base = (rays / rays[:, 2:3]) @ p.camera.pose.rotation_optical.T
    with np.errstate(divide="ignore"):
        limit = (max_range / np.hypot(base[:, 0], base[:, 1])).astype(np.float32)
    d = depth[p.kept]
    col = np.multiply(d, (base[:, 0] / g.resolution).astype(np.float32)) + p.col_offset
    row = np.multiply(d, (base[:, 1] / g.resolution).astype(np.float32)) + p.row_offset
    z = np.multiply(d, base[:, 2].astype(np.float32)) + p.origin[2]
    with np.errstate(invalid="ignore"):
        ci, ri = col.astype(np.int32) - 1, row.astype(np.int32) - 1
        used = (d <= limit) & (ci >= 0) & (ci < g.nx) & (ri >= 0) & (ri < g.ny)
    return p.kept[used], ri[used] * g.nx + ci[used], z[used]


@pytest.mark.parametrize("camera", CAMERAS)
@pytest.mark.parametrize("geometry", GRIDS)
def test_depth_intervals_select_exactly_the_points_of_the_plain_back_projection(camera,
                                                                                 geometry):
    rng = np.random.default_rng(7)
    max_range = 8.0 if geometry.nx < 150 else 12.0
    for thinning in (True, False):
        p = DepthProjector(camera, geometry, max_range, thinning)
        n = len(p.lo)
        near = lambda v, to: np.nextafter(v, np.float32(to))           # noqa: E731
        lo, hi = p.lo.copy(), p.hi.copy()
        lo[~np.isfinite(lo)], hi[hi <= 0] = 1.0, 1.0
        cases = [lo, hi, near(lo, 0), near(lo, np.inf), near(hi, 0), near(hi, np.inf),
                 np.full(n, np.nan, np.float32), np.full(n, 1e-40, np.float32),
                 np.full(n, 3e38, np.float32)]
        cases += [np.exp(rng.normal(1.0, 1.5, n)).astype(np.float32) for _ in range(4)]
        for depth in cases:
            depth = np.where(depth > 0, depth, np.float32(np.nan)).astype(np.float32)
            with np.errstate(over="ignore"):
                want = reference_depth_points(p, depth, max_range)
                got = p.cells(depth)
            for a, b in zip(want, got, strict=True):
                np.testing.assert_array_equal(a, b)


def test_depth_decoding_is_the_plain_conversion():
    rng = np.random.default_rng(3)
    mm = rng.integers(0, 12000, (40, 50)).astype(np.uint16)
    mm[rng.random(mm.shape) < 0.3] = 0
    for big in (False, True):
        data = mm.astype(">u2" if big else "<u2").tobytes()
        image = decode_depth("16UC1", 40, 50, 100, data, big)
        want = mm.astype(np.float32) * np.float32(0.001)
        want[mm == 0] = np.nan
        assert image.invalid == int((mm == 0).sum())
        np.testing.assert_array_equal(image.depth.view(np.uint32), want.view(np.uint32))


def reference_fuse(fuser: TerrainFuser, batches: list[Batch], compliant: np.ndarray):
    """The fusion rules written plainly: per-point masks, a level histogram, Kronecker
    expansion of the steep terrain cells."""
    g, r, k = fuser.geometry, fuser.rules, fuser.rules.factor
    n = fuser.n_terrain
    vertical = TABLE.vertical
    totals = np.zeros((2, n))                      # rigid, compliant: count x 2^24 + sum(z)
    for b, labels in batches:
        t = fuser.terrain_of_cell[b.cell]
        soft = compliant[labels] & ~vertical[labels]
        for total, mask in zip(totals, (~vertical[labels] & ~soft, soft), strict=True):
            total += np.bincount(t[mask], np.add(b.z[mask], 2.0 ** 24, dtype=np.float64), n)
    count = np.floor(totals / 2.0 ** 24 + 0.5)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = ((totals - count * 2.0 ** 24) / count).astype(np.float32)
    mean[count == 0] = np.inf
    hard_mean, soft_mean = mean
    ground = np.where(np.isfinite(hard_mean), hard_mean, soft_mean).reshape(fuser.nty, -1)
    low = ground.copy()                            # minimum over the cell and 4 neighbours
    low[1:] = np.minimum(low[1:], ground[:-1])
    low[:-1] = np.minimum(low[:-1], ground[1:])
    low[:, 1:] = np.minimum(low[:, 1:], ground[:, :-1])
    low[:, :-1] = np.minimum(low[:, :-1], ground[:, 1:])
    low = low.ravel()
    counts = np.zeros((g.num_cells, 5), np.int64)
    stepped = np.zeros(n, bool)
    levels = []
    for b, labels in batches:
        t = fuser.terrain_of_cell[b.cell]
        h = b.z - low[t]
        level = TABLE.levels[labels].astype(np.uint8)
        level[level == 0] = r.geometry_only_level
        soft = compliant[labels] & ~vertical[labels]
        limit = np.where(soft, np.float32(r.compliant_max_height), np.float32(r.max_step))
        blocked = (h > limit) & ~vertical[labels]
        level[blocked] = np.maximum(level[blocked], 3)
        stepped[t[blocked]] = True
        level[h > np.float32(r.clearance_height)] = 0
        np.add.at(counts, (b.cell, level), 1)
        levels.append(level)
    cell_level = np.zeros(g.num_cells, np.uint8)
    for value in range(1, 5):
        cell_level[counts[:, value] >= r.min_support] = value
    steep = stepped.reshape(fuser.nty, fuser.ntx).copy()
    kk = max(1, round(SLOPE_BASELINE / 2 / fuser.terrain_resolution))
    for est in (hard_mean, soft_mean):
        est = est.reshape(fuser.nty, fuser.ntx).copy()
        est[stepped.reshape(est.shape)] = np.inf
        grades = []
        for axis in (0, 1):
            a = np.moveaxis(est, axis, 0)
            with np.errstate(invalid="ignore"):
                diff = np.abs(a[kk:] - a[:-kk]) / kk
            diff[~np.isfinite(diff)] = np.nan
            fwd = np.full(a.shape, np.nan, np.float32)
            bwd = np.full(a.shape, np.nan, np.float32)
            fwd[:-kk], bwd[kk:] = diff, diff
            one = np.isnan(fwd) | np.isnan(bwd)
            grades.append(np.moveaxis(np.where(one, np.fmax(fwd, bwd), (fwd + bwd) / 2), 0,
                                      axis))
        slope = math.tan(math.radians(r.max_slope_deg)) * fuser.terrain_resolution
        steep |= np.hypot(np.nan_to_num(grades[0]), np.nan_to_num(grades[1])) > slope
    cells = np.kron(steep, np.ones((k, k), bool))[: g.ny, : g.nx].ravel() & (cell_level > 0)
    cell_level[cells] = np.maximum(cell_level[cells], 3)
    return cell_level.reshape(g.ny, g.nx), levels


@pytest.mark.parametrize("rules", [
    TerrainRules(factor=1), TerrainRules(factor=2),
    TerrainRules(factor=3, min_support=2, geometry_only_level=0, max_step=0.1),
    TerrainRules(factor=2, min_support=3, geometry_only_level=1, compliant_max_height=0.1,
                 clearance_height=0.5, max_slope_deg=10)])
def test_fusion_equals_the_plain_rules_on_random_points(rules):
    rng = np.random.default_rng(11)
    geometry = GridGeometry.from_size(6, 5, 0.1, -1, -2.5)
    compliant = np.isin(np.arange(256), [CLASS_NAMES.index("vegetation")])
    fuser = TerrainFuser(geometry, rules, TABLE, compliant, CategoryValues())
    for trial in range(4):
        batches = []
        for size in (20000, 3000, 0):
            cell = rng.integers(0, geometry.num_cells, size).astype(np.int32)
            rows, cols = np.divmod(cell, geometry.nx)
            # a rolling surface with steps, spikes and branches; 255 = unlabelled
            z = (0.3 * np.sin(cols / 7.0) + 0.2 * (rows > 20) + rng.normal(0, 0.02, size)
                 + (rng.random(size) < 0.05) * rng.uniform(0, 2.5, size)).astype(np.float32)
            labels = rng.choice(np.array([*IDS, 255] * (1 + trial)), size).astype(np.uint8)
            batches.append((fuser.batch_cells(cell, z, labels, np.arange(size)), labels))
        fused = fuser.fuse([b for b, _ in batches])
        want, levels = reference_fuse(fuser, batches, compliant)
        np.testing.assert_array_equal(fused.levels, want)
        for (b, _), level in zip(batches, levels, strict=True):
            np.testing.assert_array_equal(b.level, level)
        assert (want == 3).any() and (want > 0).mean() > 0.5


def reference_paint(painter: Painter, x, y, z, labels, depth, ignore):
    """Painting written plainly: the full rotation, shifted minimums for the z-buffer."""
    r, o = painter.camera.pose.rotation_optical.astype(np.float32), painter._origin
    d = np.stack([x - o[0], y - o[1], z - o[2]], 1)
    out, pixel = np.full(len(x), ignore, np.uint8), np.full(len(x), -1, np.intp)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        opt = [d[:, 0] * r[0, i] + d[:, 1] * r[1, i] + d[:, 2] * r[2, i] for i in range(3)]
        front = np.flatnonzero(opt[2] > MIN_DEPTH)
        xo, yo, zo = (c[front] for c in opt)
        intr = painter.camera.intrinsics
        if intr.distortion_model == "none":
            u = xo / zo * np.float32(intr.fx) + np.float32(intr.cx + 1.5)
            v = yo / zo * np.float32(intr.fy) + np.float32(intr.cy + 1.5)
        else:
            uv, _ = intr.project_optical(np.stack([xo, yo, zo], axis=1))
            u, v = uv[:, 0] + 1.5, uv[:, 1] + 1.5
        ui, vi = u.astype(np.int32) - 1, v.astype(np.int32) - 1
    inside = (ui >= 0) & (ui < painter.width) & (vi >= 0) & (vi < painter.height)
    sel, ui, vi, zo = front[inside], ui[inside], vi[inside], zo[inside]
    pix = vi.astype(np.intp) * painter.width + ui
    b, bw, bh = painter.block, painter.bw, painter.bh
    tile = (vi // b) * bw + ui // b
    near = np.full(bw * bh, np.inf, np.float32)
    np.minimum.at(near, tile, zo)
    near = near.reshape(bh, bw)
    grown = near.copy()
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            src = near[max(dr, 0): bh + min(dr, 0), max(dc, 0): bw + min(dc, 0)]
            dst = grown[max(-dr, 0): bh + min(-dr, 0), max(-dc, 0): bw + min(-dc, 0)]
            np.minimum(dst, src, out=dst)
    f = grown.ravel()[tile]
    visible = zo <= f + np.maximum(np.float32(painter.tolerance),
                                   np.float32(painter.zbuffer_ratio) * f)
    if depth is not None:
        dd = depth[pix]
        seen = np.isfinite(dd)
        ds = dd[seen]
        visible[seen] = zo[seen] <= ds + np.maximum(np.float32(painter.tolerance),
                                                    np.float32(painter.ratio) * ds)
    out[sel[visible]] = labels[pix[visible]]
    pixel[sel[visible]] = pix[visible]
    return out, pixel, int(len(sel) - visible.sum())


@pytest.mark.parametrize("camera", CAMERAS)
@pytest.mark.parametrize("block", [1, 3, 4])
def test_painting_equals_the_plain_projection_and_z_buffer(camera, block):
    rng = np.random.default_rng(5)
    painter = Painter(camera, block=block)
    intr = camera.intrinsics
    labels = rng.integers(0, 9, intr.width * intr.height).astype(np.uint8)
    depth = rng.uniform(0.5, 9.0, intr.width * intr.height).astype(np.float32)
    depth[rng.random(len(depth)) < 0.4] = np.nan
    pts = rng.uniform([-3, -8, -1], [12, 8, 3], (30000, 3)).astype(np.float32)
    pts[15000:, 2] = 0.0                                    # half of them on flat ground
    pts[:50] = [np.inf, 1, 1]                               # broken points are never painted
    pts[50:100] = [2, np.nan, 1]
    for d in (depth, None):
        got = painter.paint(pts[:, 0], pts[:, 1], pts[:, 2], labels, d, 255)
        want = reference_paint(painter, pts[:, 0], pts[:, 1], pts[:, 2], labels, d, 255)
        np.testing.assert_array_equal(got.labels, want[0])
        np.testing.assert_array_equal(got.pixel, want[1])
        assert got.hidden == want[2] > 100 and (got.labels != 255).sum() > 100


def test_rigid_transform_equals_the_full_product_on_finite_points():
    rng = np.random.default_rng(2)
    pts = rng.normal(0, 10, (5000, 3)).astype(np.float32)
    for pose in (CameraPose(0, 0, 1.2), CameraPose(0.1, -0.2, 0.9, 0, 0, 0.7),
                 CameraPose(0.3, 0.1, 1.0, 0.1, -0.3, 2.0)):
        t = Rigid.from_pose(pose)
        r, o = t.rotation.astype(np.float32), t.translation.astype(np.float32)
        got = t.apply(pts[:, 0], pts[:, 1], pts[:, 2])
        for i in range(3):
            want = pts[:, 0] * r[i, 0] + pts[:, 1] * r[i, 1] + pts[:, 2] * r[i, 2] + o[i]
            np.testing.assert_array_equal(got[i], want)


def test_slope_test_equals_float32_hypot_at_the_limit():
    from offroad_core.costmap.terrain import _longer

    rng = np.random.default_rng(4)
    limit = np.float32(math.tan(math.radians(25)) * 0.1)
    angle = rng.uniform(0, math.pi / 2, 200000)
    radius = limit * (1 + rng.choice([-1, 0, 1], len(angle)) * rng.uniform(0, 3e-7, len(angle)))
    a = (radius * np.cos(angle)).astype(np.float32)
    b = (radius * np.sin(angle)).astype(np.float32)
    a[:10], b[:10] = np.inf, 0.0
    a[10:20], b[10:20] = np.nextafter(limit, np.float32(1)), 0.0
    a[20:30], b[20:30] = limit, 0.0
    want = np.hypot(a, b) > limit
    assert 0.2 < want.mean() < 0.8
    np.testing.assert_array_equal(_longer(a, b, limit), want)


def test_clouds_on_the_second_thread_give_the_serial_frame(monkeypatch):
    from offroad_core.costmap import depthmap
    from offroad_core.costmap.depthmap import DepthCostmap, DepthSettings
    from offroad_core.costmap.extrinsics import FrameTable, optical_rigid
    from offroad_core.costmap.pointcloud import pack_cloud
    from offroad_core.costmap.sensors import CloudMessage, DepthMessage, Paired

    rng = np.random.default_rng(8)
    camera = CAMERAS[0]
    intr = camera.intrinsics
    depth = rng.uniform(0.5, 9.0, (intr.height, intr.width)).astype(np.float32)
    labels = rng.integers(0, 9, depth.shape).astype(np.uint8)
    image = DepthMessage(0.0, "camera_optical_frame", "32FC1", intr.height, intr.width,
                         4 * intr.width, depth.tobytes())
    pts = rng.uniform([-3, -6, -0.5], [9, 6, 2], (20000, 3)).astype(np.float32)
    fields, step, data = pack_cloud([("x", pts[:, 0]), ("y", pts[:, 1]), ("z", pts[:, 2])])
    good = CloudMessage(0.0, "lidar_link", tuple(fields), len(pts), 1, step, step * len(pts),
                        data, False, "lidar/points")
    broken = CloudMessage(0.0, "velodyne", tuple(fields), len(pts), 1, step, step * len(pts),
                          data, False, "other/points")
    frames = FrameTable("base_link", {"camera_optical_frame": optical_rigid(camera.pose),
                                      "lidar_link": Rigid.from_pose(CameraPose(0, 0, 1.2))})
    runs = []
    # the machine's own load decides too (_spare_core): fixed at 1.0 here, else an idle
    # machine (load < 0.5) gave the 1-core case a second thread
    monkeypatch.setattr(depthmap.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    for cpus in (4096, 1):
        monkeypatch.setattr(depthmap.os, "cpu_count", lambda cpus=cpus: cpus)
        costmap = DepthCostmap(DepthSettings(TerrainRules()), GRIDS[0], TABLE,
                               CategoryValues(), IDS, CLASS_NAMES, frames)
        reports = []
        result = costmap.process(labels, camera, None,
                                 Paired(depth=image, clouds=[broken, good]), 0.0,
                                 lambda reason, text, out=reports: out.append(reason))
        assert ("waiting for clouds" in costmap.timings) == (cpus > 1)
        runs.append((result, reports))
    (a, ra), (b, rb) = runs
    assert ra == rb == ["unknown_frame"] and a.sources == b.sources == ("depth", "lidar/points")
    np.testing.assert_array_equal(a.values, b.values)
    assert a.hidden == b.hidden
    pa, pb = a.points(1), b.points(1)
    for name in ("xyz", "labels", "level", "confidence"):
        np.testing.assert_array_equal(getattr(pa, name), getattr(pb, name))
    assert (pa.labels != 255).any() and (pa.labels == 255).any()
