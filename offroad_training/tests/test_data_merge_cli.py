"""`offroad data merge` and the `offroad data` / `offroad eval` command lines."""

import json
import os

import numpy as np
import pytest

from offroad_training.cli import main
from offroad_training.data import fixtures
from offroad_training.data.merge import MergeError, merge
from offroad_training.data.unified import UnifiedDataset

W, H = 40, 16


def _convert_cli(tmp_path, dataset, frames, writer, *extra):
    root = writer(tmp_path / f"{dataset}_src", frames)
    out = tmp_path / dataset
    rc = main(["data", "convert", "--dataset", dataset, "--root", str(root), "--out", str(out),
               "--base-size", "native", "--workers", "2", "--no-progress", *extra])
    assert rc == 0
    return out


@pytest.fixture
def converted(tmp_path):
    img = fixtures.textured_image(W, H, 0)
    rellis = [(f"0000{s}", f"frame{k:06d}", img, fixtures.stripes([1, 3, 7, 2], W, H))
              for s in range(2) for k in range(10)]
    rugd = [(seq, f"{seq}_{k:05d}", img, fixtures.rugd_colour(fixtures.stripes([1, 6], W, H)))
            for seq in ("creek", "trail-5", "village") for k in range(2)]
    goose = [(g, f"s_{k}", img, fixtures.stripes([23, 54], W, H))
             for g in ("train/a", "val/b") for k in range(2)]
    return {"rellis3d": _convert_cli(tmp_path, "rellis3d", rellis, fixtures.write_rellis3d),
            "rugd": _convert_cli(tmp_path, "rugd", rugd, fixtures.write_rugd),
            "goose": _convert_cli(tmp_path, "goose", goose, fixtures.write_goose)}


def test_merge_builds_train_and_seed_val_with_prefixed_hard_links(converted, tmp_path, capsys):
    out = tmp_path / "merged"
    args = ["data", "merge", *map(str, converted.values()), "--out", str(out)]
    assert main(args) == 0
    assert "merged rellis3d, rugd, goose" in capsys.readouterr().out
    stats = json.loads((out / "stats.json").read_text())
    assert stats["counts"]["rellis3d_test"] == len(UnifiedDataset(converted["rellis3d"],
                                                                  "test").ids)
    val = UnifiedDataset(out, "val")
    assert val.ids == sorted(f"rellis3d_{i}" for i in
                             UnifiedDataset(converted["rellis3d"], "test").ids)
    train = UnifiedDataset(out, "train")
    expected_train = (stats["counts"]["rellis3d_train"] + stats["counts"]["rellis3d_val"]
                      + 4 + 4)  # rugd train+val (village, trail-5), goose train+val
    assert len(train.ids) == expected_train
    assert not set(train.ids) & set(val.ids)
    assert {i.split("_")[0] for i in train.ids} == {"rellis3d", "rugd", "goose"}
    assert "rugd_creek_00000" not in train.ids  # RUGD test stays held out
    item = "goose_a_s_0"
    src = converted["goose"] / "labels" / "a_s_0.png"
    assert os.path.samefile(train.label_path(item), src)
    _, labels = train.load(item)
    np.testing.assert_array_equal(labels, fixtures.stripes([0, 4], W, H))
    px = stats["class_pixels"]["val"]
    assert px["sky"] == px["smooth_ground"] == px["vegetation"] > 0
    assert stats["files"]["link"] > 0
    # idempotent re-run; copy mode makes independent files
    assert merge([(None, p) for p in converted.values()], out)["files"]["link"] == 0
    copied = merge([(None, p) for p in converted.values()], tmp_path / "copied", copy=True)
    assert copied["files"]["copy"] > 0
    assert not os.path.samefile(tmp_path / "copied" / "labels" / "goose_a_s_0.png", src)


def test_merge_errors(converted, tmp_path, capsys):
    with pytest.raises(MergeError, match=r"--val rellis3d:test: no such source split"):
        merge([(None, converted["rugd"])], tmp_path / "m")
    with pytest.raises(MergeError, match="two sources are named"):
        merge([(None, converted["rugd"]), (None, converted["rugd"])], tmp_path / "m")
    (converted["goose"] / "ontology.json").write_text("{}")
    assert main(["data", "merge", str(converted["goose"]), "--out", str(tmp_path / "m"),
                 "--val", "goose:val"]) == 2
    assert "another ontology" in capsys.readouterr().err


def test_convert_cli_errors_exit_2(tmp_path, capsys):
    assert main(["data", "convert", "--dataset", "rugd", "--root", str(tmp_path / "none"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "dataset root does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["data", "convert", "--dataset", "goose", "--root", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "GOOSE layout" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "convert", "--dataset", "rugd", "--root", ".", "--out", "o",
              "--base-size", "12"])


def test_eval_reports_dataset_error_exit_2(tmp_path, capsys):
    rc = main(["eval", "--checkpoint", str(tmp_path / "x.pth"), "--data",
               str(tmp_path / "nowhere"), "--split", "val"])
    assert rc == 2
    assert "dataset root does not exist" in capsys.readouterr().err


def test_data_synth_is_registered_by_the_cli_not_by_the_data_layer():
    import argparse
    import subprocess
    import sys

    from offroad_training.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    data = sub.choices["data"]
    data_sub = next(a for a in data._actions if isinstance(a, argparse._SubParsersAction))
    assert {"convert", "merge", "synth"} <= set(data_sub.choices)
    code = ("import argparse, sys; from offroad_training.data import commands; "
            "p = argparse.ArgumentParser(); s = p.add_subparsers(); "
            "d = commands.register(s); assert 'synth' not in d.choices, d.choices; "
            "assert not any(m.startswith('offroad_training.synth') for m in sys.modules); "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
