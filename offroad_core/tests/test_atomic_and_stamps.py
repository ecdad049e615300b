import os
import stat

import pytest

from offroad_core.atomic import atomic_write_text
from offroad_core.costmap.params import validate
from offroad_core.costmap.pipeline import CostmapPipeline, InputError


def test_atomic_write_gives_the_artifact_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "report.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp alone gives 0600


@pytest.mark.parametrize(("stamp", "now", "reason"), [
    (100.0, 0.0, "no_clock"),        # sim time before the first /clock
    (100.0, 99.0, "future_stamp"),
    (100.0, 101.0, "stale"),
])
def test_stamp_rules_name_the_reason(stamp, now, reason):
    pipeline = CostmapPipeline(validate({"stale_timeout": 0.5, "future_tolerance": 0.5}))
    with pytest.raises(InputError) as info:
        pipeline.check_stamp(stamp, now)
    assert info.value.reason == reason


def test_fresh_stamps_pass():
    CostmapPipeline(validate({})).check_stamp(100.0, 100.2)
