"""Issue 2 acceptance: two OS processes exchange every custom message and a 1280x1080 image."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PEERS = Path(__file__).parent / "dds_peers"
sys.path.insert(0, str(PEERS))

pytestmark = pytest.mark.ros


def test_two_processes_exchange_custom_messages_and_a_full_size_image():
    from samples import fields_of, sample_image, sample_info, sample_stats

    publisher = subprocess.Popen([sys.executable, str(PEERS / "publisher.py")],
                                 stdout=subprocess.PIPE, text=True)
    try:
        assert publisher.stdout.readline().strip() == "publisher ready"
        result = subprocess.run([sys.executable, str(PEERS / "subscriber.py")],
                                capture_output=True, text=True, timeout=120, check=True)
    finally:
        publisher.terminate()
        publisher.wait(timeout=20)
    received = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(received) == {"info", "stats", "image"}, result.stderr
    assert received["info"] == fields_of(sample_info())
    assert received["stats"] == fields_of(sample_stats())
    assert received["image"] == fields_of(sample_image())
    assert received["image"]["width"] == 1280 and received["image"]["height"] == 1080
