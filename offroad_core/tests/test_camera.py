import math

import numpy as np
import pytest

from offroad_core.camera import Camera, CameraIntrinsics, CameraPose

PLUMB_BOB = (-0.28, 0.07, 0.0008, -0.0005, -0.008)
RATIONAL = (0.4, -0.1, 0.0005, 0.0003, 0.01, 0.75, -0.05, 0.02)


def _intrinsics(model="none", d=()):
    return CameraIntrinsics(640, 480, 500.0, 505.0, 318.0, 243.0, model, d)


@pytest.mark.parametrize("model,d", [("none", ()), ("plumb_bob", PLUMB_BOB),
                                      ("rational_polynomial", RATIONAL)])
def test_rays_and_projection_are_inverse(model, d):
    intr = _intrinsics(model, d)
    uv = np.array([[0.0, 0.0], [639.0, 479.0], [320.0, 240.0], [100.5, 400.25]])
    rays = intr.pixel_rays_optical(uv)
    back, in_front = intr.project_optical(rays * 3.0)
    assert in_front.all()
    np.testing.assert_allclose(back, uv, atol=1e-3)


def test_zero_pitch_camera_looks_forward_along_x():
    cam = Camera(_intrinsics(), CameraPose(z=1.0))
    ray = cam.pixel_rays_base(np.array([[318.0, 243.0]]))[0]
    np.testing.assert_allclose(ray, [1.0, 0.0, 0.0], atol=1e-12)
    # A pixel right of centre looks to the robot's right (negative y, REP-103).
    assert cam.pixel_rays_base(np.array([[600.0, 243.0]]))[0][1] < 0


def test_positive_pitch_looks_down_and_hits_ground_at_expected_distance():
    pitch = math.radians(20)
    cam = Camera(_intrinsics(), CameraPose(x=0.3, z=1.2, pitch=pitch))
    xy, hit = cam.pixels_to_ground(np.array([[318.0, 243.0]]))
    assert hit[0]
    np.testing.assert_allclose(xy[0], [0.3 + 1.2 / math.tan(pitch), 0.0], atol=1e-9)


def test_ground_projection_round_trips_through_base_to_pixels():
    intr = _intrinsics("plumb_bob", PLUMB_BOB)
    cam = Camera(intr, CameraPose(x=0.2, y=-0.1, z=1.1, roll=0.03, pitch=0.35, yaw=0.1))
    uv = intr.pixel_grid()[::997]
    xy, hit = cam.pixels_to_ground(uv)
    assert hit.sum() > len(uv) // 2
    pts = np.column_stack([xy[hit], np.zeros(hit.sum())])
    back, inside = cam.base_to_pixels(pts)
    assert inside.all()
    np.testing.assert_allclose(back, uv[hit], atol=1e-3)


def test_sky_pixels_and_max_range_do_not_hit():
    cam = Camera(_intrinsics(), CameraPose(z=1.0, pitch=0.05))
    xy, hit = cam.pixels_to_ground(np.array([[318.0, 0.0], [318.0, 479.0]]), max_range=5.0)
    assert not hit[0] and np.isnan(xy[0]).all()
    assert hit[1]


def test_scaled_keeps_rays_of_corresponding_pixels():
    intr = _intrinsics()
    half = intr.scaled(320, 240)
    # Pixel centre (u, v) at full size corresponds to ((u + 0.5) / 2 - 0.5) at half size.
    full_uv = np.array([[101.0, 57.0]])
    half_uv = (full_uv + 0.5) / 2 - 0.5
    np.testing.assert_allclose(intr.pixel_rays_optical(full_uv),
                               half.pixel_rays_optical(half_uv), atol=1e-12)


def test_camera_info_fields_and_validation():
    k = [500.0, 0, 320, 0, 500.0, 240, 0, 0, 1]
    intr = CameraIntrinsics.from_camera_info(640, 480, k, [0.0] * 5, "plumb_bob")
    assert intr.distortion_model == "none" and intr.cx == 320
    intr = CameraIntrinsics.from_camera_info(640, 480, k, RATIONAL, "rational_polynomial")
    assert intr.d == RATIONAL
    with pytest.raises(ValueError, match="equidistant"):
        CameraIntrinsics(640, 480, 1, 1, 0, 0, "equidistant", (0, 0, 0, 0))
    with pytest.raises(ValueError, match="5 coefficients"):
        CameraIntrinsics(640, 480, 1, 1, 0, 0, "plumb_bob", (0.1, 0.2))
    with pytest.raises(ValueError, match=r"not within 1\.\.16384"):
        CameraIntrinsics(0, 480, 1, 1, 0, 0)
    with pytest.raises(ValueError, match="non-finite"):
        CameraIntrinsics.from_camera_info(640, 480, [float("nan"), *k[1:]], [], "")
    with pytest.raises(ValueError, match="non-finite"):
        CameraIntrinsics.from_camera_info(640, 480, [float("inf"), *k[1:]], [], "")
    with pytest.raises(ValueError, match="must be positive"):
        CameraIntrinsics.from_camera_info(640, 480, [0.0, *k[1:]], [], "")
    with pytest.raises(ValueError, match="expected 9"):
        CameraIntrinsics.from_camera_info(640, 480, k[:4], [], "")
