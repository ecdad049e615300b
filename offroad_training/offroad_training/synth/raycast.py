"""Ray casting against the synthetic world's geometry, shared by the camera and the LiDAR.

* Obstacles: exact ray / prism intersection (cylinder or oriented box, side or top cap),
  tested only for the rays of a box of the ray grid that may see the obstacle (the caller's
  culling).
* Flat ground: the plane z = 0, analytically.
* Relief: the bilinear height field (:class:`offroad_training.synth.relief.HeightField`),
  ray-marched through its maximum mip-map: a ray skips a tile of 2^k x 2^k cells while it stays
  above the tile's highest node, descends a level where it does not, and in a single cell solves
  the ray / bilinear patch intersection (a quadratic in t) exactly. All rays advance together
  (vectorised, the active set shrinks as rays finish); the first hit is exact, nothing is
  sampled. Outside the raster the ground is the plane z = 0 (the relief fades to 0 at its edge).

Ray lengths ``t`` are metres along unit directions; ``inf`` means no hit.
"""

from __future__ import annotations

import math

import numpy as np

from offroad_training.synth.obstacles import Obstacle
from offroad_training.synth.relief import HeightField

START_LEVEL = 3
"""Mip level a ray starts at (tiles of 8 x 8 cells); it climbs as it skips tiles."""
MAX_ITERATIONS = 20000
CHUNK = 32768
"""Rays marched together (their working arrays stay in cache)."""


def obstacle_hit(o: Obstacle, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray,
                 dz: np.ndarray) -> np.ndarray:
    """Ray length to the first hit with the prism (side or top cap, bottom <= z <= top); inf
    if none or if the ray starts inside it. Computed in the directions' precision (float32
    loses millimetres at tens of metres: the flat renderer's historical precision)."""
    ox, oy, oz = (float(v) for v in origin)
    px, py = ox - o.x, oy - o.y
    with np.errstate(divide="ignore", invalid="ignore"):
        if o.is_cylinder:
            a = dx * dx + dy * dy
            b = 2.0 * (px * dx + py * dy)
            cc = px * px + py * py - o.radius * o.radius
            disc = b * b - 4.0 * a * cc
            sq = np.sqrt(np.maximum(disc, 0.0))
            inv = 0.5 / np.maximum(a, 1e-12)
            t0 = np.where(disc >= 0, (-b - sq) * inv, np.inf)
            t1 = np.where(disc >= 0, (-b + sq) * inv, -np.inf)
        else:
            c, s = math.cos(o.yaw), math.sin(o.yaw)
            lx0, ly0 = c * px + s * py, -s * px + c * py
            ldx, ldy = c * dx + s * dy, -s * dx + c * dy
            t0 = np.full(dx.shape, -np.inf, np.float32)
            t1 = np.full(dx.shape, np.inf, np.float32)
            for p, d, half in ((lx0, ldx, o.half_x), (ly0, ldy, o.half_y)):
                safe = np.where(np.abs(d) > 1e-12, d, 1e-12)
                ta, tb = (-half - p) / safe, (half - p) / safe
                t0 = np.maximum(t0, np.minimum(ta, tb))
                t1 = np.minimum(t1, np.maximum(ta, tb))
        safe_z = np.where(np.abs(dz) > 1e-12, dz, 1e-12)
        za, zb = (o.bottom - oz) / safe_z, (o.base + o.height - oz) / safe_z
        t0 = np.maximum(t0, np.minimum(za, zb))
        t1 = np.minimum(t1, np.maximum(za, zb))
    ok = (t0 <= t1) & (t0 > 0)
    return np.where(ok, t0, np.inf).astype(np.result_type(dx.dtype, np.float32))


def side_frame(o: Obstacle, x: np.ndarray, y: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Side of the prism at points (x, y) on it: outward normal (nx, ny) and the coordinate
    ``u`` (m) along the side (arc length on a cylinder, the face's own axis on a box)."""
    if o.is_cylinder:
        nx, ny = (x - o.x) / o.radius, (y - o.y) / o.radius
        return nx, ny, np.arctan2(ny, nx) * o.radius
    c, s = math.cos(o.yaw), math.sin(o.yaw)
    lx, ly = c * (x - o.x) + s * (y - o.y), -s * (x - o.x) + c * (y - o.y)
    xface = np.abs(lx) / o.half_x > np.abs(ly) / o.half_y
    lnx = np.where(xface, np.sign(lx), 0.0)
    lny = np.where(xface, 0.0, np.sign(ly))
    return c * lnx - s * lny, s * lnx + c * lny, np.where(xface, ly, lx)


def obstacle_normals(o: Obstacle, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """(N, 3) outward unit normals of the prism at surface points (top cap: +z)."""
    nx, ny, _ = side_frame(o, x, y)
    top = z >= o.top - 1e-3
    n = np.stack([np.where(top, 0.0, nx), np.where(top, 0.0, ny), np.where(top, 1.0, 0.0)], 1)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def cast_grid(height_field: HeightField | None, origin: np.ndarray, dx: np.ndarray,
              dy: np.ndarray, dz: np.ndarray, obstacles: tuple[Obstacle, ...],
              boxes: list[tuple[int, tuple[int, int, int, int]]],
              max_range: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """First hits of a 2-D grid of rays from ``origin`` (world frame): (ray length, index into
    ``obstacles`` or -1 for ground / no hit). ``boxes``: (obstacle index, (r0, r1, c0, c1))
    ray-grid windows in which to test each obstacle. Hits beyond ``max_range`` are dropped.

    Flat ground (``height_field`` None): float32 lengths, the plane first and obstacles only
    where strictly nearer (the renderer's historical order, kept bit for bit). Relief: float64
    lengths; obstacles first, then the march stops at the nearest obstacle.
    """
    shape = dx.shape
    instances = np.full(shape, -1, dtype=np.int32)
    if height_field is None:
        t = np.full(shape, np.inf, dtype=np.float32)
        down = dz < -1e-6
        t[down] = np.float32(-origin[2]) / dz[down]
    else:
        t = np.full(shape, max_range, dtype=np.float64)
        dx, dy, dz = (np.asarray(a, np.float64) for a in (dx, dy, dz))
    for k, (r0, r1, c0, c1) in boxes:
        tk = obstacle_hit(obstacles[k], origin, dx[r0:r1, c0:c1], dy[r0:r1, c0:c1],
                          dz[r0:r1, c0:c1])
        view_t, view_i = t[r0:r1, c0:c1], instances[r0:r1, c0:c1]
        closer = tk < view_t
        view_t[closer] = tk[closer]
        view_i[closer] = k
    if height_field is not None:
        ground = march(height_field, origin, dx.ravel(), dy.ravel(), dz.ravel(), t.ravel())
        ground = ground.reshape(shape)
        closer = ground < t
        t[closer] = ground[closer]
        instances[closer] = -1
    if math.isfinite(max_range):
        far = t >= max_range
        t[far] = np.inf
        instances[far] = -1
    return t, instances


def march(field: HeightField, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray,
          dz: np.ndarray, t_limit: np.ndarray | None = None) -> np.ndarray:
    """Length (float64) of each ray to its first hit with the height field (or the plane
    z = 0 outside it), inf if none before ``t_limit``. Directions are unit vectors (N,)."""
    dx, dy, dz = (np.asarray(a, np.float64).ravel() for a in (dx, dy, dz))
    n = dx.size
    limit = np.full(n, np.inf) if t_limit is None else np.asarray(t_limit, np.float64).ravel()
    ox, oy, oz = (float(v) for v in origin)
    r = field.resolution
    ny, nx = field.nodes.shape
    hmin, hmax = field.bounds
    gox, goy = (ox - field.x0) / r, (oy - field.y0) / r
    gdx, gdy = dx / r, dy / r

    with np.errstate(divide="ignore", invalid="ignore"):
        lo_x, hi_x = _slab(gox, gdx, 0.0, nx - 1.0)
        lo_y, hi_y = _slab(goy, gdy, 0.0, ny - 1.0)
        lo_z, hi_z = _slab(oz, dz, hmin, hmax)
        box_lo, box_hi = np.maximum(lo_x, lo_y), np.minimum(hi_x, hi_y)
        # Outside the raster the ground is the plane z = 0.
        plane = np.where(dz < -1e-12, -oz / dz, np.inf)
        outside = (box_lo > box_hi) | (plane < box_lo) | (plane > box_hi)
    hit = np.where(outside & (plane > 0) & (plane < limit), plane, np.inf)
    t_start = np.maximum(np.maximum(box_lo, lo_z), 0.0)
    t_end = np.minimum(np.minimum(np.minimum(box_hi, hi_z), limit), hit)

    act = np.flatnonzero(t_start < t_end)
    nodes = field.nodes.ravel()
    for lo in range(0, act.size, CHUNK):
        idx = act[lo:lo + CHUNK]
        _march_chunk(field, nodes, (gox, goy, oz), gdx[idx], gdy[idx], dz[idx],
                     t_start[idx], t_end[idx], idx, hit)
    return hit


def _march_chunk(field: HeightField, nodes: np.ndarray, origin: tuple[float, float, float],
                 adx: np.ndarray, ady: np.ndarray, adz: np.ndarray, t: np.ndarray,
                 te: np.ndarray, act: np.ndarray, hit: np.ndarray) -> None:
    """March rays ``act`` (grid-unit directions ``adx``, ``ady``; ``adz`` m/m) from ``t`` to
    ``te``; writes first hits into ``hit``.

    The traversal runs in float32 (grid coordinates < 2^13 cells: 1e-3 cell resolution) with
    a 1 mm margin on the tile test, so it never skips a tile it should enter; the cell
    intersection is solved in float64 from the float32 entry point, which only needs to lie
    before the crossing. Per-ray state is arithmetic (level as a float, tile index computed
    from it), because numpy gathers cost ten times an arithmetic pass.
    """
    f32 = np.float32
    gox, goy, oz = f32(origin[0]), f32(origin[1]), f32(origin[2])
    atlas, row_len, rows, top = field.atlas
    nx = field.nodes.shape[1]
    level = np.full(act.size, min(START_LEVEL, top), f32)
    # Zero direction components get a tiny one: their exits are then finite and far.
    adx = np.where(adx == 0, 1e-30, adx)
    ady = np.where(ady == 0, 1e-30, ady)
    # Per-ray constants, one row each, compacted together.
    rays = np.stack([adx, ady, adz, 1.0 / adx, 1.0 / ady, adx > 0, ady > 0,
                     np.sign(adx) * 1e-3, np.sign(ady) * 1e-3, adz < 0]).astype(f32)
    t, te = t.astype(f32), te.astype(f32)
    live = np.ones(act.size, bool)
    margin, two_rows, top_f = f32(1e-3), 2.0 * rows, f32(top)
    for _ in range(MAX_ITERATIONS):
        if live.sum() < 0.7 * live.size:
            keep = np.flatnonzero(live)
            if keep.size == 0:
                return
            act, t, te, level, rays = act[keep], t[keep], te[keep], level[keep], rays[:, keep]
            live = np.ones(keep.size, bool)
        rdx, rdy, rdz, inv_x, inv_y, step_x, step_y, nudge_x, nudge_y, falling = rays
        px = gox + t * rdx
        py = goy + t * rdy
        inv_size = np.exp2(-level)
        size = np.exp2(level)
        tx = np.floor((px + nudge_x) * inv_size)
        ty = np.floor((py + nudge_y) * inv_size)
        ex = ((tx + step_x) * size - gox) * inv_x
        ey = ((ty + step_y) * size - goy) * inv_y
        t_exit = np.minimum(np.minimum(ex, ey), te)
        index = ((two_rows * (1.0 - inv_size.astype(np.float64)) + ty) * row_len + tx)
        tile_max = atlas[index.astype(np.int64)]
        above = oz + (t + falling * (t_exit - t)) * rdz > tile_max + margin
        at_cell = ~above & (level == 0)
        cell = live & at_cell
        if cell.any():
            i = np.flatnonzero(cell)
            t0 = t[i].astype(np.float64)
            cx = np.clip(tx[i].astype(np.int64), 0, nx - 2)
            cy = np.clip(ty[i].astype(np.int64), 0, field.nodes.shape[0] - 2)
            s = _patch_hit(nodes, nx, cx, cy, gox.item() + t0 * rays[0, i] - cx,
                           goy.item() + t0 * rays[1, i] - cy,
                           oz.item() + t0 * rays[2, i], rays[0, i].astype(np.float64),
                           rays[1, i].astype(np.float64), rays[2, i].astype(np.float64),
                           t_exit[i].astype(np.float64) - t0)
            ok = np.isfinite(s)
            hit[act[i[ok]]] = t0[ok] + s[ok]
            live[i[ok]] = False
        t = t + (above | at_cell) * (t_exit - t)
        level = level + above * (level < top_f) - ~(above | at_cell)
        live &= t < te
    raise RuntimeError(f"height-field march did not finish for {int(live.sum())} rays")


def _slab(o: float, d: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameter interval inside [lo, hi] along one axis (empty: lo > hi)."""
    ta, tb = (lo - o) / d, (hi - o) / d
    inside = lo <= o <= hi
    zero = d == 0
    t0 = np.where(zero, -np.inf if inside else np.inf, np.minimum(ta, tb))
    t1 = np.where(zero, np.inf if inside else -np.inf, np.maximum(ta, tb))
    return t0, t1


def _patch_hit(nodes: np.ndarray, nx: int, ix: np.ndarray, iy: np.ndarray, u0: np.ndarray,
               v0: np.ndarray, z0: np.ndarray, du: np.ndarray, dv: np.ndarray, dz: np.ndarray,
               span: np.ndarray) -> np.ndarray:
    """First s in [0, span] where the ray (u0 + s du, v0 + s dv, z0 + s dz) in cell (ix, iy)
    meets the bilinear patch of the cell's four nodes; inf if it does not."""
    i00 = iy * nx + ix
    h00 = nodes[i00].astype(np.float64)
    h10 = nodes[i00 + 1].astype(np.float64)
    h01 = nodes[i00 + nx].astype(np.float64)
    h11 = nodes[i00 + nx + 1].astype(np.float64)
    a, b, c = h10 - h00, h01 - h00, h00 - h10 - h01 + h11
    c0 = z0 - (h00 + a * u0 + b * v0 + c * u0 * v0)
    c1 = dz - (a * du + b * dv + c * (u0 * dv + v0 * du))
    c2 = -c * du * dv
    with np.errstate(divide="ignore", invalid="ignore"):
        linear = np.where(c1 < 0, -c0 / c1, np.inf)
        disc = c1 * c1 - 4.0 * c2 * c0
        q = -0.5 * (c1 + np.copysign(np.sqrt(np.maximum(disc, 0.0)), c1))
        r1, r2 = q / c2, c0 / q
        r_lo, r_hi = np.minimum(r1, r2), np.maximum(r1, r2)
        quad = np.where(r_lo >= 0, r_lo, np.where(r_hi >= 0, r_hi, np.inf))
        quad = np.where((disc >= 0) & (q != 0), quad, np.inf)
    s = np.where(np.abs(c2) < 1e-12, linear, quad)
    s = np.where(np.isnan(s), np.inf, s)
    s = np.where(c0 <= 0, 0.0, s)
    return np.where(s <= span * (1 + 1e-12) + 1e-12, s, np.inf)
