"""`data convert` on fixture trees in each dataset's real layout: pixel-exact labels, unknown
values counted, corrupt and size-mismatched pairs skipped, splits, stats, resume."""

import json

import cv2
import numpy as np
import pytest

from offroad_training.data import fixtures
from offroad_training.data.convert import ConvertError, convert
from offroad_training.data.rellis3d import Rellis3D
from offroad_training.data.unified import UnifiedDataset

W, H = 60, 24
# raw value -> expected ontology id (hand-written from docs/data.md, not from the tables)
RELLIS = {0: 255, 1: 0, 3: 2, 4: 3, 6: 4, 7: 6, 8: 5, 10: 0, 31: 4, 33: 1, 34: 1, 29: 2,
          32: 4, 2: 255, 200: 255}
RELLIS_UNKNOWN = (2, 200)
RUGD = {0: 255, 1: 0, 2: 1, 3: 2, 4: 3, 6: 4, 7: 6, 8: 5, 11: 1, 22: 3, 99: 255}
RUGD_EXTRA = {99: (1, 2, 3)}  # a colour of no RUGD class
GOOSE = {0: 255, 23: 0, 24: 1, 50: 2, 53: 6, 54: 4, 12: 5, 17: 3, 8: 255, 56: 255, 62: 1,
         70: 255}


def _expected(raw_values, table, shift):
    values = list(np.roll(list(raw_values), shift))
    return fixtures.stripes([table[v] for v in values], W, H), values


def _rellis_frames(n_seq=2, per_seq=5):
    frames, expected = [], {}
    for s in range(n_seq):
        for k in range(per_seq):
            seq, name = f"0000{s}", f"frame{k:06d}-158162465{s}_{k:03d}"
            exp, values = _expected(RELLIS, RELLIS, s * per_seq + k)
            raw = fixtures.stripes(values, W, H)
            frames.append((seq, name, fixtures.textured_image(W, H, s * 10 + k), raw))
            expected[f"{seq}_{name}"] = exp
    return frames, expected


def _break(root, image=None, label_size=None):
    """Corrupt one image file; make one label a different size."""
    if image is not None:
        image.write_bytes(b"this is not a jpeg")
    if label_size is not None:
        cv2.imwrite(str(label_size), np.zeros((H // 2, W), np.uint8))


def _check_labels(out, split_ids, expected):
    for split, ids in split_ids.items():
        ds = UnifiedDataset(out, split)
        assert ds.ids == sorted(ids)
        for item in ds.ids:
            rgb, labels = ds.load(item)
            assert rgb.shape == (H, W, 3)
            np.testing.assert_array_equal(labels, expected[item], err_msg=item)


@pytest.mark.parametrize("layout", ["merged", "download"])
def test_rellis3d_official_split_exact_labels_unknown_corrupt_mismatch(tmp_path, layout):
    """``download``: the zips extracted side by side (before: "no RELLIS-3D sequences")."""
    frames, expected = _rellis_frames()
    names = [(seq, name) for seq, name, _, _ in frames]
    root = fixtures.write_rellis3d(tmp_path / "src", frames, splits={
        "train": names[:6], "val": names[6:8], "test": [*names[8:], ("00001", "gone")]},
        layout=layout)
    images, labels, _ = fixtures.RELLIS_DOWNLOAD_DIRS
    image_base = root / images / "Rellis-3D" if layout == "download" else root / "Rellis-3D"
    label_base = root / labels / "Rellis-3D" if layout == "download" else root / "Rellis-3D"
    corrupt, mismatch = names[1], names[7]
    _break(root, image=image_base / corrupt[0] / "pylon_camera_node" / f"{corrupt[1]}.jpg",
           label_size=label_base / mismatch[0] / "pylon_camera_node_label_id"
           / f"{mismatch[1]}.png")
    out = tmp_path / "out"
    stats = convert("rellis3d", root, out, base_size=None, workers=2, progress=False)
    ids = {s: [f"{a}_{b}" for a, b in m] for s, m in
           {"train": names[:6], "val": names[6:8], "test": names[8:]}.items()}
    ids["train"].remove("_".join(corrupt))
    ids["val"].remove("_".join(mismatch))
    _check_labels(out, ids, expected)
    assert stats["counts"] == {"test": 2, "train": 5, "val": 1}
    assert {r["id"] for r in stats["skipped"]} == {"_".join(corrupt), "_".join(mismatch)}
    reasons = " ".join(r["reason"] for r in stats["skipped"])
    assert "corrupt" in reasons and "size mismatch" in reasons
    assert [p["id"] for p in stats["problems"]] == ["00001_gone"]
    assert stats["notes"]["split_source"].startswith("official")
    # unknown raw values: one band of 4 columns each, per converted frame
    assert stats["unknown_labels"] == {str(v): 8 * W // len(RELLIS) * H for v in RELLIS_UNKNOWN}
    assert stats["unknown_label_frames"] == 8
    px = stats["class_pixels"]["train"]
    band = W // len(RELLIS) * H
    assert px["ignore"] == 5 * 3 * band and px["water"] == 5 * 3 * band
    assert sum(stats["class_frequency"]["train"].values()) == pytest.approx(1.0)
    on_disk = json.loads((out / "stats.json").read_text())
    assert on_disk["counts"] == stats["counts"]
    assert json.loads((out / "ontology.json").read_text())["classes"][6]["name"] == "sky"


def test_rellis3d_rule_split_when_no_official_lists(tmp_path):
    frames, _ = _rellis_frames(n_seq=2, per_seq=20)
    root = fixtures.write_rellis3d(tmp_path / "Rellis", frames)
    scan = Rellis3D(root / "Rellis-3D").scan()  # the Rellis-3D dir itself works as root too
    splits = [p.split for p in scan.pairs]
    assert splits == (["train"] * 14 + ["val"] * 3 + ["test"] * 3) * 2
    download = fixtures.write_rellis3d(tmp_path / "dl", frames, layout="download")
    assert [p.split for p in Rellis3D(download).scan().pairs] == splits
    stats = convert("rellis3d", root, tmp_path / "out", base_size=None, workers=1,
                    progress=False)
    assert stats["counts"] == {"test": 6, "train": 28, "val": 6}
    assert stats["notes"]["split_source"].startswith("rule")


def test_rugd_colour_labels_sequence_split(tmp_path):
    frames, expected = [], {}
    for k, seq in enumerate(["trail-5", "creek", "park-2", "trail-3", "unlisted-seq"]):
        exp, values = _expected(RUGD, RUGD, k)
        colour = fixtures.rugd_colour(fixtures.stripes(values, W, H), RUGD_EXTRA)
        name = f"{seq}_{k:05d}"
        frames.append((seq, name, fixtures.textured_image(W, H, k), colour))
        expected[name] = exp
    root = fixtures.write_rugd(tmp_path / "rugd", frames)
    (root / "RUGD_annotations" / "trail-3" / "trail-3_00003.png").write_bytes(b"\x89PNG junk")
    stats = convert("rugd", root, tmp_path / "out", base_size=None, workers=2, progress=False)
    _check_labels(tmp_path / "out", {"val": ["trail-5_00000"], "test": ["creek_00001"],
                                     "train": ["park-2_00002"]}, expected)
    assert [r["id"] for r in stats["skipped"]] == ["trail-3_00003"]
    assert stats["problems"][0]["reason"] == "sequence in no RUGD split list"
    assert stats["unknown_labels"] == {"#010203": 3 * W // len(RUGD) * H}
    assert stats["notes"]["colormap"].endswith("RUGD_annotation-colormap.txt")


def test_rugd_split_is_a_file_the_user_can_change(tmp_path):
    img = fixtures.textured_image(W, H, 0)
    colour = fixtures.rugd_colour(fixtures.stripes([1, 3], W, H))
    frames = [(seq, f"{seq}_00000", img, colour) for seq in ("creek", "trail-5", "village")]
    root = fixtures.write_rugd(tmp_path / "rugd", frames)
    split = tmp_path / "split.yaml"
    split.write_text("train: [village]\nval: [creek]\ntest: [trail-5]\n")
    stats = convert("rugd", root, tmp_path / "out", base_size=None, workers=1, progress=False,
                    split_file=split)
    assert stats["counts"] == {"test": 1, "train": 1, "val": 1}
    assert UnifiedDataset(tmp_path / "out", "val").ids == ["creek_00000"]
    assert stats["notes"]["split_source"].startswith(f"split file {split}")
    default = convert("rugd", root, tmp_path / "out2", base_size=None, workers=1,
                      progress=False)
    assert UnifiedDataset(tmp_path / "out2", "val").ids == ["trail-5_00000"]
    assert default["notes"]["split_source"].startswith("built-in RUGD sequence split")
    from offroad_training.data.adapters import AdapterError

    split.write_text("train: [village, creek]\nval: [creek]\n")
    with pytest.raises(AdapterError, match="'creek' is in both 'train' and 'val'"):
        convert("rugd", root, tmp_path / "o3", split_file=split, progress=False)
    split.write_text("val: park-8\n")
    with pytest.raises(AdapterError, match="expected a mapping of split name to a list"):
        convert("rugd", root, tmp_path / "o3", split_file=split, progress=False)
    with pytest.raises(AdapterError, match="for RUGD only"):
        convert("goose", root, tmp_path / "o3", split_file=split, progress=False)


def test_rugd_without_colormap_file_uses_published_table(tmp_path):
    values = list(RUGD)
    colour = fixtures.rugd_colour(fixtures.stripes(values, W, H), RUGD_EXTRA)
    root = fixtures.write_rugd(tmp_path / "rugd", [("creek", "creek_00001",
                                                    fixtures.textured_image(W, H, 0), colour)],
                               colormap=False)
    stats = convert("rugd", root, tmp_path / "out", base_size=None, workers=1, progress=False)
    _, labels = UnifiedDataset(tmp_path / "out", "test").load("creek_00001")
    np.testing.assert_array_equal(labels, fixtures.stripes([RUGD[v] for v in values], W, H))
    assert stats["notes"]["colormap"] == "built-in published table"


@pytest.mark.parametrize("suffix,bom", [("_windshield_vis", False), ("_camera_left", False),
                                        ("_front", True), ("_realsense", False)])
def test_goose_train_val_dirs_exact_labels(tmp_path, suffix, bom):
    """Before: ``_front``/``_realsense`` frames were "label without an image", and a
    byte-order mark in goose_label_mapping.csv stopped the adapter."""
    frames, expected = [], {}
    groups = ["train/2022-07-22_flight", "train/2022-08-30_siegertsbrunn", "val/2023-01-20_x",
              "test/2023-03-03_y"]
    for k, group in enumerate(groups):
        exp, values = _expected(GOOSE, GOOSE, k)
        scenario = group.split("/")[1]
        name = f"{scenario}__{k:04d}_16584942343{k}"
        frames.append((group, name, fixtures.textured_image(W, H, k),
                       fixtures.stripes(values, W, H)))
        expected[name] = exp
    root = fixtures.write_goose(tmp_path / "goose", frames, image_suffix=suffix, bom=bom)
    assert (root / "goose_label_mapping.csv").read_bytes().startswith(b"\xef\xbb\xbf") == bom
    stats = convert("goose", root, tmp_path / "out", base_size=None, workers=2, progress=False)
    assert stats["problems"] == [] and not stats["notes"]["unmapped_classes"]
    train = sorted(n for g, n, _, _ in frames[:2])
    _check_labels(tmp_path / "out", {"train": train, "val": [frames[2][1]]}, expected)
    assert stats["notes"]["unlabelled_images"] == 1
    assert stats["unknown_labels"] == {"70": 3 * W // len(GOOSE) * H}
    assert stats["notes"]["label_mapping"].endswith("goose_label_mapping.csv")


def test_resize_to_base_size_and_resume(tmp_path):
    frames, expected = _rellis_frames(n_seq=1, per_seq=6)
    root = fixtures.write_rellis3d(tmp_path / "src", frames)
    out = tmp_path / "out"
    first = convert("rellis3d", root, out, base_size=(30, 12), workers=2, progress=False)
    assert first["converted_this_run"] == 6 and first["resumed"] == 0
    item = f"00000_{frames[0][1]}"
    labels = cv2.imread(str(out / "labels" / f"{item}.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(
        labels, cv2.resize(expected[item], (30, 12), interpolation=cv2.INTER_NEAREST))
    # simulate a run killed mid-way: one pair lost its label file, one its progress line
    (out / "labels" / f"{item}.png").unlink()
    log = out / ".convert" / "progress.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:10])  # torn last line
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "images").iterdir()}
    second = convert("rellis3d", root, out, base_size=(30, 12), workers=2, progress=False)
    assert second["resumed"] == 4 and second["converted_this_run"] == 2
    changed = {n for n, t in mtimes.items() if (out / "images" / n).stat().st_mtime_ns != t}
    assert len(changed) == 2 and f"{item}.jpg" in changed
    for key in ("counts", "class_pixels", "unknown_labels"):
        assert second[key] == first[key]
    with pytest.raises(ConvertError, match=r"other options.*jpeg_quality: 95 -> 80"):
        convert("rellis3d", root, out, base_size=(30, 12), jpeg_quality=80, progress=False)
    third = convert("rellis3d", root, out, base_size=(30, 12), jpeg_quality=80, restart=True,
                    workers=1, progress=False)
    assert third["resumed"] == 0 and third["converted_this_run"] == 6
    assert not list(out.rglob("*.tmp*"))


def test_16bit_label_ids_and_colour_id_png(tmp_path):
    from offroad_training.data.adapters import AdapterError, get_adapter

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    adapter = get_adapter("goose", tmp_path)
    raw = np.array([[23, 300], [54, 0]], np.uint16)
    cv2.imwrite(str(tmp_path / "l16.png"), raw)
    labels, unknown = adapter.decode_labels(tmp_path / "l16.png")
    np.testing.assert_array_equal(labels, [[0, 255], [4, 255]])
    assert unknown == {"300": 1}
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (1, 2, 3)
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    with pytest.raises(AdapterError, match="single-channel label-id PNG"):
        adapter.decode_labels(tmp_path / "c.png")
