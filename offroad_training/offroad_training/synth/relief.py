"""Relief of a synthetic world: a height field (rolling hills, long grades, roughness, ditches,
steps, banks) under the ground classes, and its exact queries.

The surface is the bilinear interpolation of a node raster (:data:`HEIGHT_RESOLUTION` m): node
(i, j) is at (x0 + j res, y0 + i res). :meth:`HeightField.height` evaluates exactly the surface
the renderer ray-marches (:mod:`offroad_training.synth.raycast`), so a rendered ground point lies
on it to float precision. The relief fades to z = 0 over :data:`EDGE_TAPER` m inside the world's
extent; outside the extent the ground is the plane z = 0. Heights are shifted so that the
ground at the world origin (the robot's start) is z = 0.

The track is graded: within its half width + 0.5 m the ground follows the rolling terrain along
its centreline, smoothed and rate-limited to a grade of at most ``max(slope, 2 %)``
(:func:`track_grade`), with a quarter of the roughness; it blends into the natural terrain over
3 m (cuttings and embankments where the terrain is steeper). Ditches, steps and banks lie
beside it, so a robot driving the track can always drive on. See docs/synthetic_world.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

HEIGHT_RESOLUTION = 0.1
"""Node spacing (m) of the height raster; steps are one cell (0.1 m) wide."""
EDGE_TAPER = 20.0
"""Width (m) inside the world's extent over which the relief fades to z = 0."""
MAX_LEVEL = 9
"""Top level of the ray-marching mip-map (tiles of 512 x 512 cells, 51.2 m)."""


@dataclass(frozen=True)
class ReliefSpec:
    """Amounts of relief (all zero = a flat height field). Lengths and heights in metres.

    ``hills``: std of the rolling terrain (features 14-30 m). ``slope``: largest grade
    (rise/run) of the long undulation (wavelengths 60-150 m) and of the graded track.
    ``roughness``: std of small bumps (0.6-1.5 m features). ``ditches``, ``steps``,
    ``banks``: how many per 100 m of world length; ``ditch_depth``, ``step_height``,
    ``bank_height``: their sizes (each feature draws 0.7-1.3 x the size). Steps are raised or
    sunk rectangular plateaus with vertical edges.
    """

    hills: float = 0.0
    slope: float = 0.0
    roughness: float = 0.0
    ditches: float = 0.0
    ditch_depth: float = 0.5
    steps: float = 0.0
    step_height: float = 0.3
    banks: float = 0.0
    bank_height: float = 1.5

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"relief {name} must be a finite number >= 0, got {value}")

    def to_dict(self) -> dict:
        """JSON-ready amounts."""
        return asdict(self)


RELIEF_PRESETS = {
    "gentle": ReliefSpec(hills=0.6, slope=0.05, roughness=0.02, ditches=1.5, ditch_depth=0.4,
                         steps=1.5, step_height=0.2, banks=1.0, bank_height=1.2),
    "rugged": ReliefSpec(hills=1.5, slope=0.1, roughness=0.05, ditches=4.0, ditch_depth=0.7,
                         steps=4.0, step_height=0.4, banks=3.0, bank_height=2.5),
}
"""Named reliefs (``offroad data synth --relief NAME``); ``flat`` means no relief."""


def track_grade(spec: ReliefSpec) -> float:
    """Largest grade (rise/run) of the graded track: the spec's ``slope``, at least 2 %."""
    return max(spec.slope, 0.02)


def relief_spec(relief: ReliefSpec | str | None) -> ReliefSpec | None:
    """Resolve a preset name, ``"flat"``/``None`` (no relief) or a spec."""
    if relief is None or isinstance(relief, ReliefSpec):
        return relief
    if relief == "flat":
        return None
    if relief not in RELIEF_PRESETS:
        raise ValueError(f"unknown relief {relief!r}: use flat, "
                         + ", ".join(RELIEF_PRESETS) + " or a ReliefSpec")
    return RELIEF_PRESETS[relief]


@dataclass(frozen=True)
class HeightField:
    """Ground height z(x, y) in the world frame: bilinear over ``nodes`` (ny, nx) float32."""

    nodes: np.ndarray
    x0: float
    y0: float
    resolution: float = HEIGHT_RESOLUTION
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max) of the raster."""
        ny, nx = self.nodes.shape
        r = self.resolution
        return self.x0, self.x0 + (nx - 1) * r, self.y0, self.y0 + (ny - 1) * r

    def _cells(self, x: np.ndarray, y: np.ndarray):
        ny, nx = self.nodes.shape
        gx = np.clip((np.asarray(x, np.float64) - self.x0) / self.resolution, 0.0, nx - 1.0)
        gy = np.clip((np.asarray(y, np.float64) - self.y0) / self.resolution, 0.0, ny - 1.0)
        ix = np.minimum(gx.astype(np.int64), nx - 2)
        iy = np.minimum(gy.astype(np.int64), ny - 2)
        n = self.nodes
        h00, h10 = n[iy, ix].astype(np.float64), n[iy, ix + 1].astype(np.float64)
        h01, h11 = n[iy + 1, ix].astype(np.float64), n[iy + 1, ix + 1].astype(np.float64)
        return gx - ix, gy - iy, h00, h10, h01, h11

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Ground height (float64) at world points; outside the raster the edge value (0)."""
        u, v, h00, h10, h01, h11 = self._cells(x, y)
        return h00 + (h10 - h00) * u + (h01 - h00) * v + (h00 - h10 - h01 + h11) * u * v

    def gradient(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dz/dx, dz/dy) of the bilinear surface at world points."""
        u, v, h00, h10, h01, h11 = self._cells(x, y)
        c = h00 - h10 - h01 + h11
        return (h10 - h00 + c * v) / self.resolution, (h01 - h00 + c * u) / self.resolution

    def normals(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(N, 3) upward unit normals of the surface at world points."""
        gx, gy = self.gradient(np.ravel(x), np.ravel(y))
        n = np.stack([-gx, -gy, np.ones_like(gx)], axis=1)
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    @property
    def bounds(self) -> tuple[float, float]:
        """(lowest, highest) node height."""
        if "bounds" not in self._cache:
            self._cache["bounds"] = (float(self.nodes.min()), float(self.nodes.max()))
        return self._cache["bounds"]

    @property
    def atlas(self) -> tuple[np.ndarray, int, int, int]:
        """Maximum mip-map of the cells for ray marching, as (values, row length C, level-0
        rows R, top level K). Level 0 holds each cell's highest corner, level k the maximum
        over 2^k x 2^k cells; level k's tile (row i, column j) is at flat index
        ``(2 R (1 - 2^-k) + i) * C + j``, so a tile's index is arithmetic, not a table lookup.
        R and C are the cell counts rounded up to a multiple of 2^K; padding holds -inf."""
        if "atlas" not in self._cache:
            n = self.nodes
            cells = np.maximum(np.maximum(n[:-1, :-1], n[:-1, 1:]),
                               np.maximum(n[1:, :-1], n[1:, 1:]))
            top = min(MAX_LEVEL, max(1, math.ceil(math.log2(max(cells.shape)))))
            unit = 2 ** top
            rows = math.ceil(cells.shape[0] / unit) * unit
            cols = math.ceil(cells.shape[1] / unit) * unit
            atlas = np.full((2 * rows + 1, cols), -np.inf, np.float32)
            level = atlas[:rows]
            level[:cells.shape[0], :cells.shape[1]] = cells
            start = 0
            for k in range(1, top + 1):
                h, w = rows >> (k - 1), cols >> (k - 1)
                coarse = level[:h, :w].reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))
                start += h
                level = atlas[start:start + h // 2]
                level[:, :w // 2] = coarse
            self._cache["atlas"] = (atlas.ravel(), cols, rows, top)
        return self._cache["atlas"]


# ---------------------------------------------------------------------- generation
def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def smooth_noise(rng: np.random.Generator, ny: int, nx: int, sizes: tuple[float, ...],
                 resolution: float = HEIGHT_RESOLUTION) -> np.ndarray:
    """Smooth noise (ny, nx) on a grid of ``resolution`` m, unit std, feature sizes ``sizes``
    (m): octaves of bicubically upsampled white noise, each half the weight of the last."""
    out = np.zeros((ny, nx), np.float32)
    weight = 1.0
    for size in sizes:
        gy = max(2, int(ny * resolution / size) + 2)
        gx = max(2, int(nx * resolution / size) + 2)
        coarse = rng.standard_normal((gy, gx)).astype(np.float32)
        out += weight * cv2.resize(coarse, (nx, ny), interpolation=cv2.INTER_CUBIC)
        weight *= 0.5
    return out / max(float(out.std()), 1e-6)


def generate_height_field(seed: int, spec: ReliefSpec, extent: tuple[float, float, float, float],
                          track_x: np.ndarray, track_y: np.ndarray, half: float) -> HeightField:
    """The height field of a world, deterministic in ``seed`` (independent of the random
    streams of the world's classes, obstacles and appearance)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4E11EF]))
    x_min, x_max, y_min, y_max = extent
    r = HEIGHT_RESOLUTION
    nx = math.ceil((x_max - x_min) / r) + 1
    ny = math.ceil((y_max - y_min) / r) + 1
    xs = (x_min + np.arange(nx) * r).astype(np.float32)
    ys = (y_min + np.arange(ny) * r).astype(np.float32)
    lateral = ys[:, None] - np.interp(xs, track_x, track_y).astype(np.float32)[None, :]

    terrain = np.zeros((ny, nx), np.float32)
    if spec.hills > 0:
        terrain += spec.hills * smooth_noise(rng, ny, nx, (30.0, 14.0))
    if spec.slope > 0:
        for _ in range(2):
            wavelength, angle = rng.uniform(60.0, 150.0), rng.uniform(0, 2 * math.pi)
            amp = 0.5 * spec.slope * wavelength / (2 * math.pi)
            k = 2 * math.pi / wavelength
            phase = (k * math.cos(angle) * xs[None, :] + k * math.sin(angle) * ys[:, None]
                     + rng.uniform(0, 2 * math.pi))
            terrain += (amp * np.sin(phase)).astype(np.float32)
    features = np.zeros((ny, nx), np.float32)
    length = x_max - x_min
    grid = (xs, ys, lateral, features)
    for _ in range(rng.poisson(spec.ditches * length / 100.0)):
        _ditch(rng, grid, spec.ditch_depth * rng.uniform(0.7, 1.3), half, track_x, track_y)
    for _ in range(rng.poisson(spec.steps * length / 100.0)):
        _step(rng, grid, spec.step_height * rng.uniform(0.7, 1.3), half, track_x, track_y)
    for _ in range(rng.poisson(spec.banks * length / 100.0)):
        _bank(rng, grid, spec.bank_height * rng.uniform(0.7, 1.3), half)

    # Track grading: within the track band the ground follows the terrain along the centreline,
    # smoothed and rate-limited to the track's largest grade.
    rows = np.clip(np.round((np.interp(xs, track_x, track_y) - y_min) / r), 0, ny - 1)
    target = terrain[rows.astype(np.int64), np.arange(nx)]
    target = cv2.GaussianBlur(target.reshape(1, -1), (0, 0), sigmaX=6.0 / r,
                              borderType=cv2.BORDER_REPLICATE).ravel().astype(np.float64)
    profile = np.empty(nx, np.float32)
    level, rise = float(target[0]), track_grade(spec) * r
    for j, goal in enumerate(target.tolist()):
        level += min(max(goal - level, -rise), rise)
        profile[j] = level
    band = 1.0 - _smoothstep((np.abs(lateral) - half - 0.5) / 3.0)
    heights = terrain + band * (profile[None, :] - terrain) + (1.0 - band) * features
    if spec.roughness > 0:
        heights += (spec.roughness * (1.0 - 0.75 * band)) * smooth_noise(rng, ny, nx, (1.5, 0.6))
    field0 = HeightField(heights.astype(np.float32), float(x_min), float(y_min))
    heights -= np.float32(field0.height(np.array([0.0]), np.array([0.0]))[0])
    edge = np.minimum(np.minimum(xs - x_min, x_max - xs)[None, :],
                      np.minimum(ys - y_min, y_max - ys)[:, None])
    heights *= _smoothstep(edge / EDGE_TAPER)
    return HeightField(heights.astype(np.float32), float(x_min), float(y_min))


def _window(grid, x0: float, x1: float, y0: float, y1: float):
    """Index slices of the raster covering [x0, x1] x [y0, y1] (possibly empty)."""
    xs, ys = grid[0], grid[1]
    i0, i1 = np.searchsorted(ys, [y0, y1])
    j0, j1 = np.searchsorted(xs, [x0, x1])
    return slice(int(i0), int(i1) + 1), slice(int(j0), int(j1) + 1)


def _ditch(rng: np.random.Generator, grid, depth: float, half: float, track_x: np.ndarray,
           track_y: np.ndarray) -> None:
    """A trench with a parabolic profile, 0.8-2 m wide, parallel to the track beside it for
    10-40 m (ends rounded over 1 m), or crossing it at an angle (the graded track fills it)."""
    xs, ys, lateral, out = grid
    width = rng.uniform(0.8, 2.0)
    xa = rng.uniform(xs[0], xs[-1])
    if rng.random() < 0.7:
        xb = xa + rng.uniform(10.0, 40.0)
        offset = (1 if rng.random() < 0.5 else -1) * (half + rng.uniform(0.8, 4.0) + width / 2)
        rows, cols = _window(grid, xa - 1, xb + 1, ys[0], ys[-1])
        lat = lateral[rows, cols]
        x = xs[cols][None, :]
        across = np.abs(lat - offset) / (width / 2)
        along = _smoothstep(np.minimum(x - xa + 1.0, xb + 1.0 - x))
    else:
        angle = rng.uniform(0.4, math.pi - 0.4)
        span = rng.uniform(8.0, 30.0)
        c, s = math.cos(angle), math.sin(angle)
        yc = float(np.interp(xa, track_x, track_y))
        rows, cols = _window(grid, xa - span, xa + span, yc - span, yc + span)
        dx = xs[cols][None, :] - xa
        dy = ys[rows][:, None] - yc
        across = np.abs(-s * dx + c * dy) / (width / 2)
        along = _smoothstep(span / 2 + 1.0 - np.abs(c * dx + s * dy))
    out[rows, cols] -= (depth * np.clip(1.0 - across * across, 0.0, 1.0) * along
                        ).astype(np.float32)


def _step(rng: np.random.Generator, grid, height: float, half: float, track_x: np.ndarray,
          track_y: np.ndarray) -> None:
    """A raised (60 %) or sunk rectangular plateau 2-12 m across beside the track, its edges
    vertical steps one raster cell wide."""
    xs, ys, _, out = grid
    a, b = rng.uniform(1.5, 6.0), rng.uniform(1.0, 4.0)
    xc = rng.uniform(xs[0], xs[-1])
    side = 1 if rng.random() < 0.5 else -1
    yc = float(np.interp(xc, track_x, track_y)) + side * (half + 1.0 + max(a, b)
                                                          + rng.uniform(0.0, 6.0))
    yaw = rng.uniform(0, math.pi)
    c, s = math.cos(yaw), math.sin(yaw)
    reach = math.hypot(a, b) + 0.2
    rows, cols = _window(grid, xc - reach, xc + reach, yc - reach, yc + reach)
    dx = xs[cols][None, :] - xc
    dy = ys[rows][:, None] - yc
    inside = np.minimum(a - np.abs(c * dx + s * dy), b - np.abs(-s * dx + c * dy))
    sign = 1.0 if rng.random() < 0.6 else -1.0
    out[rows, cols] += (sign * height * np.clip(inside / HEIGHT_RESOLUTION, 0.0, 1.0)
                        ).astype(np.float32)


def _bank(rng: np.random.Generator, grid, height: float, half: float) -> None:
    """Ground rising by ``height`` on one side of the track at a mean 25-50 deg (a smoothstep
    profile, 1.5 x steeper at its middle), starting 3.5-6.5 m from the centreline (beyond the
    track's blend), for 20-60 m (ends fading over 5 m): the track along a hillside. Banks
    combine with other features by their maximum, so overlapping banks are no steeper."""
    xs, ys, lateral, out = grid
    xa = rng.uniform(xs[0], xs[-1])
    xb = xa + rng.uniform(20.0, 60.0)
    side = 1 if rng.random() < 0.5 else -1
    offset = half + 3.5 + rng.uniform(0.0, 3.0)
    run = height / math.tan(math.radians(rng.uniform(25.0, 50.0)))
    rows, cols = _window(grid, xa - 5, xb + 5, ys[0], ys[-1])
    x = xs[cols][None, :]
    rise = _smoothstep((side * lateral[rows, cols] - offset) / run)
    along = _smoothstep(np.minimum(x - xa + 5.0, xb + 5.0 - x) / 5.0)
    np.maximum(out[rows, cols], (height * rise * along).astype(np.float32),
               out=out[rows, cols])
