"""The unified format: reader errors, writer round trip, splits, stats."""

import json

import cv2
import numpy as np
import pytest

from offroad_training.data.unified import (
    DatasetError,
    UnifiedDataset,
    UnifiedWriter,
    label_histogram,
    parse_size,
    split_stats,
)


def _pair(h=40, w=50, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 4, yy * 5, (xx + yy + seed * 20) * 2], -1).clip(0, 255).astype(np.uint8)
    labels = rng.choice(np.array([0, 1, 2, 3, 4, 5, 6, 255], np.uint8), (h, w))
    return rgb, labels


def test_writer_round_trip_exact_labels_and_sorted_splits(tmp_path):
    writer = UnifiedWriter(tmp_path, jpeg_quality=100)
    pairs = {f"x_{i}": _pair(seed=i) for i in range(3)}
    for item, (rgb, labels) in pairs.items():
        assert not writer.has(item)
        writer.write_pair(item, rgb, labels)
        assert writer.has(item)
    writer.write_split("train", ["x_2", "x_0", "x_1", "x_0"])
    writer.write_ontology()
    assert (tmp_path / "splits" / "train.txt").read_text() == "x_0\nx_1\nx_2\n"
    assert json.loads((tmp_path / "ontology.json").read_text())["ignore_index"] == 255
    ds = UnifiedDataset(tmp_path, "train")
    assert ds.ids == ["x_0", "x_1", "x_2"] and len(ds) == 3
    for item in ds.ids:
        rgb, labels = ds.load(item)
        np.testing.assert_array_equal(labels, pairs[item][1])
        assert np.abs(rgb.astype(int) - pairs[item][0]).mean() < 3  # JPEG, q=100, smooth image
    assert not list(tmp_path.rglob("*.tmp*"))


def test_writer_resizes_labels_nearest(tmp_path):
    writer = UnifiedWriter(tmp_path, base_size=(25, 20))
    rgb, labels = _pair()
    written = writer.write_pair("a", rgb, labels)
    assert written.shape == (20, 25)
    assert set(np.unique(written)) <= set(np.unique(labels))
    assert cv2.imread(str(writer.image_path("a"))).shape == (20, 25, 3)


def test_reader_errors_name_path_and_cause(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        UnifiedDataset(tmp_path / "nope", "val")
    writer = UnifiedWriter(tmp_path)
    writer.write_split("train", ["a", "b", "c", "d"])
    with pytest.raises(DatasetError, match=r"split 'val' not found \(splits present: train\)"):
        UnifiedDataset(tmp_path, "val")
    ds = UnifiedDataset(tmp_path, "train")
    with pytest.raises(DatasetError, match=r"a\.jpg: image file missing"):
        ds.load("a")
    rgb, labels = _pair()
    writer.write_pair("b", rgb, labels)
    writer.label_path("b").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"b\.png: label file is corrupt"):
        ds.load("b")
    writer.write_pair("c", rgb, labels)
    cv2.imwrite(str(writer.label_path("c")), labels[:10])
    with pytest.raises(DatasetError, match="differs from image size"):
        ds.load("c")
    bad = labels.copy()
    bad[0, 0] = 9
    writer.write_pair("d", rgb, bad)
    with pytest.raises(DatasetError, match=r"label values \[9\]"):
        ds.load("d")
    (tmp_path / "splits" / "dup.txt").write_text("a\na\n")
    with pytest.raises(DatasetError, match="more than once"):
        UnifiedDataset(tmp_path, "dup")
    with pytest.raises(DatasetError, match="invalid dataset id"):
        writer.write_split("x", ["a/b"])


def test_histogram_and_split_stats():
    labels = np.array([[0, 0, 6], [255, 9, 4]], np.uint8)
    hist = label_histogram(labels)
    assert hist.tolist() == [2, 0, 0, 0, 1, 0, 1, 2]
    stats = split_stats({"a": hist, "b": hist}, {"train": ["a", "b", "gone"], "val": []})
    assert stats["counts"] == {"train": 2, "val": 0}
    assert stats["class_pixels"]["train"]["smooth_ground"] == 4
    assert stats["class_pixels"]["train"]["ignore"] == 4
    assert stats["class_frequency"]["train"]["smooth_ground"] == pytest.approx(0.5)


def test_parse_size():
    assert parse_size("1280x1088") == (1280, 1088)
    assert parse_size("native") is None
    with pytest.raises(ValueError):
        parse_size("0x5")
