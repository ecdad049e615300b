import importlib.util
import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from offroad_training.model import DDRNet23Slim, build_model  # noqa: E402
from offroad_training.model.pretrained import (  # noqa: E402
    PretrainedError,
    load_pretrained,
    qai_hub_state_dict,
)


def _reference_keys():
    path = Path(__file__).with_name("ddrnet_reference_keys.py")
    spec = importlib.util.spec_from_file_location("ddrnet_reference_keys", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF = _reference_keys()


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def _save(tmp_path, state, name="w.pth"):
    path = tmp_path / name
    torch.save(state, path)
    return path


def test_cityscapes_19_class_checkpoint_loads_strictly_and_head_is_replaced(tmp_path, caplog):
    state = REF.random_state(REF.segmentation_shapes(19, aux=False), seed=1)
    path = _save(tmp_path, {"state_dict": {f"model.{k}": v for k, v in state.items()}})
    model = DDRNet23Slim(num_classes=7, aux=True)
    with caplog.at_level(logging.INFO):
        report = load_pretrained(model, path)
    assert (report.kind, report.source_classes, report.head_replaced) == ("segmentation", 19, True)
    assert not (report.missing or report.unexpected or report.mismatched)
    assert "seghead_extra" in report.to_dict()["fresh"]
    assert torch.equal(model.layer3_[1].conv2.weight, state["layer3_.1.conv2.weight"])
    assert torch.equal(model.spp.scale4[3].weight, state["spp.scale4.3.weight"])
    assert torch.equal(model.final_layer.conv1.weight, state["final_layer.conv1.weight"])
    assert model.final_layer.conv2.weight.shape == (7, 64, 1, 1)
    assert torch.count_nonzero(model.final_layer.conv2.bias) == 0
    assert "classifier replaced: 19" in caplog.text


def test_same_class_count_loads_every_tensor(tmp_path):
    state = REF.random_state(REF.segmentation_shapes(19, aux=True), seed=2)
    model = DDRNet23Slim(num_classes=19)
    report = load_pretrained(model, _save(tmp_path, state))
    assert report.loaded == len(state) and not report.head_replaced and not report.fresh
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_imagenet_classifier_is_detected_and_reported_loudly(tmp_path, caplog):
    state = REF.random_state(REF.imagenet_shapes(1000), seed=3)
    model = build_model(7)
    spp_before = model.spp.shortcut[2].weight.clone()
    with caplog.at_level(logging.WARNING):
        report = load_pretrained(model, _save(tmp_path, state))
    assert (report.kind, report.source_classes) == ("imagenet_classifier", 1000)
    assert set(report.to_dict()["fresh"]) == {"spp", "final_layer", "seghead_extra"}
    assert not report.missing and not report.unexpected
    assert torch.equal(model.layer4[0].conv1.weight, state["layer4.0.conv1.weight"])
    assert torch.equal(model.spp.shortcut[2].weight, spp_before)
    assert any(r.levelno == logging.WARNING and "ImageNet classifier" in r.getMessage()
               for r in caplog.records)


def test_mismatched_state_dict_is_refused_unless_partial_allowed(tmp_path):
    state = REF.random_state(REF.segmentation_shapes(7), seed=4)
    del state["layer2.0.conv1.weight"]
    state["bogus.weight"] = torch.zeros(3)
    path = _save(tmp_path, state)
    model = DDRNet23Slim(num_classes=7)
    before = model.layer1[0].conv1.weight.clone()
    with pytest.raises(PretrainedError, match=r"(?s)refusing a partial load.*layer2\.0\.conv1"):
        load_pretrained(model, path)
    assert torch.equal(model.layer1[0].conv1.weight, before)  # nothing loaded on refusal
    report = load_pretrained(model, path, allow_partial=True)
    assert report.missing == ["layer2.0.conv1.weight"] and report.unexpected == ["bogus.weight"]
    assert torch.equal(model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_wrong_width_is_refused_as_shape_mismatch(tmp_path):
    shapes = REF.segmentation_shapes(7)
    shapes["layer1.0.conv1.weight"] = (64, 64, 3, 3)  # e.g. DDRNet23 (not slim)
    with pytest.raises(PretrainedError, match="mismatched"):
        load_pretrained(DDRNet23Slim(7), _save(tmp_path, REF.random_state(shapes)))


def test_unreadable_or_pickled_code_is_refused(tmp_path):
    with pytest.raises(PretrainedError, match="does not exist"):
        load_pretrained(DDRNet23Slim(7), tmp_path / "missing.pth")
    path = _save(tmp_path, {"model": {"x": Path("/etc")}}, "pickle.pth")
    with pytest.raises(PretrainedError, match="weights_only"):
        load_pretrained(DDRNet23Slim(7), path)


def test_qai_hub_models_absent_gives_actionable_message():
    if importlib.util.find_spec("qai_hub_models") is not None:
        pytest.skip("qai-hub-models is installed here")
    with pytest.raises(PretrainedError, match="own environment"):
        qai_hub_state_dict()
