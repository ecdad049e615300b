import importlib.util
import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import ddrnet_reference_keys as ref  # noqa: E402  (after importorskip)

from offroad_training.model import DDRNet23Slim, build_model  # noqa: E402
from offroad_training.model.pretrained import (  # noqa: E402
    PretrainedError,
    load_pretrained,
    qai_hub_state_dict,
)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def _save(tmp_path, state, name="w.pth"):
    path = tmp_path / name
    torch.save(state, path)
    return path


def _strict_reference_model(state, num_classes=19, aux=True):
    """The network exactly as the reference keys describe it (strict load, no loader)."""
    model = DDRNet23Slim(num_classes=num_classes, aux=aux)
    model.load_state_dict(state, strict=True)
    return model


def _logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


REFERENCE_LAYOUTS = {
    # the reference training code's checkpoint.pth.tar: state_dict = FullModel(model, loss)
    "checkpoint.pth.tar": lambda s: ref.training_checkpoint(s),
    # its best.pth / final_state.pth: the FullModel state dict itself
    "best.pth": lambda s: ref.training_wrapper_state(s),
    # the same saved from the DataParallel / DDP wrapper
    "dataparallel": lambda s: ref.training_wrapper_state(s, prefix="module."),
    # a plain state dict, and our own best_model.pth container
    "plain": lambda s: dict(s),
    "ours_best_model": lambda s: {"model": dict(s), "config": {"crop_height": 64}},
}


@pytest.mark.parametrize("layout", sorted(REFERENCE_LAYOUTS))
def test_reference_layouts_load_strictly_with_identical_logits(tmp_path, layout):
    state = ref.random_state(ref.segmentation_shapes(19, aux=True), seed=11)
    expected = _logits(_strict_reference_model(state), torch.randn(1, 3, 64, 80,
                                                                   generator=_gen()))
    path = _save(tmp_path, REFERENCE_LAYOUTS[layout](state))
    model = DDRNet23Slim(num_classes=19, aux=True)
    report = load_pretrained(model, path)  # allow_partial=False: any stray key would raise
    assert report.loaded == len(state) and report.backbone_loaded == report.backbone_total
    assert not (report.missing or report.unexpected or report.mismatched or report.fresh)
    got = _logits(model, torch.randn(1, 3, 64, 80, generator=_gen()))
    assert torch.equal(got, expected)  # identical, not close
    if layout in ("checkpoint.pth.tar", "best.pth", "dataparallel"):
        assert report.dropped and report.dropped[0].endswith("loss.criterion.weight")
        assert report.stripped["model."] == len(state)
    if layout == "checkpoint.pth.tar":
        assert report.container == "state_dict"
    if layout == "dataparallel":
        assert report.stripped["module."] == len(state) + 1


def _gen():
    return torch.Generator().manual_seed(5)


def test_our_last_pth_prefers_the_ema_weights(tmp_path):
    raw = ref.random_state(ref.segmentation_shapes(7), seed=1)
    ema = ref.random_state(ref.segmentation_shapes(7), seed=2)
    path = _save(tmp_path, {"model": raw, "ema": {"module": ema, "updates": 40},
                            "optimizer": {"state": {}, "param_groups": []}, "step": 40})
    model = DDRNet23Slim(num_classes=7)
    report = load_pretrained(model, path)
    assert report.container == "ema.module"
    assert torch.equal(model.layer2[0].conv1.weight, ema["layer2.0.conv1.weight"])


def test_official_imagenet_classifier_layout(tmp_path):
    """The official ImageNet file: {"state_dict": {"module.<key>": ...}} of the classifier."""
    state = ref.random_state(ref.imagenet_shapes(1000), seed=3)
    path = _save(tmp_path, {"state_dict": {f"module.{k}": v for k, v in state.items()},
                            "epoch": 90})
    torch.manual_seed(0)
    fresh = DDRNet23Slim(7)
    torch.manual_seed(0)
    model, report = build_model(7, pretrained=path)
    assert torch.equal(model.spp.shortcut[2].weight, fresh.spp.shortcut[2].weight)
    assert (report.kind, report.source_classes) == ("imagenet_classifier", 1000)
    assert report.backbone_loaded == report.backbone_total > 200
    assert set(report.to_dict()["fresh"]) == {"spp", "final_layer", "seghead_extra"}
    assert torch.equal(model.layer4[0].conv1.weight, state["layer4.0.conv1.weight"])


def test_qai_hub_models_layout_without_aux_head(tmp_path, caplog):
    """qai-hub-models wraps the reference net (augment=False) as ``model``: keys model.<key>."""
    state = ref.random_state(ref.segmentation_shapes(19, aux=False), seed=4)
    path = _save(tmp_path, {f"model.{k}": v for k, v in state.items()})
    model = DDRNet23Slim(num_classes=7, aux=True)
    with caplog.at_level(logging.INFO):
        report = load_pretrained(model, path)
    assert (report.kind, report.source_classes, report.head_replaced) == ("segmentation", 19, True)
    assert not (report.missing or report.unexpected or report.mismatched)
    assert report.to_dict()["fresh"] == ["seghead_extra"]
    assert torch.equal(model.layer3_[1].conv2.weight, state["layer3_.1.conv2.weight"])
    assert torch.equal(model.spp.scale4[3].weight, state["spp.scale4.3.weight"])
    assert model.final_layer.conv2.weight.shape == (7, 64, 1, 1)
    assert torch.count_nonzero(model.final_layer.conv2.bias) == 0
    assert "classifier replaced: 19" in caplog.text and "prefix 'model.'" in caplog.text


def test_mismatched_state_dict_is_refused_unless_partial_allowed(tmp_path):
    state = ref.random_state(ref.segmentation_shapes(7), seed=4)
    del state["layer2.0.conv1.weight"]
    state["bogus.weight"] = torch.zeros(3)
    path = _save(tmp_path, state)
    model = DDRNet23Slim(num_classes=7)
    before = model.layer1[0].conv1.weight.clone()
    with pytest.raises(PretrainedError, match=r"refusing a partial load.*layer2\.0\.conv1"):
        load_pretrained(model, path)
    assert torch.equal(model.layer1[0].conv1.weight, before)  # nothing loaded on refusal
    report = load_pretrained(model, path, allow_partial=True)
    assert report.missing == ["layer2.0.conv1.weight"] and report.unexpected == ["bogus.weight"]
    assert torch.equal(model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


@pytest.mark.parametrize("case", ["foreign_keys", "wrong_width"])
def test_a_load_that_initialises_no_backbone_tensor_is_an_error_even_if_partial(tmp_path, case):
    """Before: with allow_partial a foreign file loaded 0 tensors behind a warning."""
    if case == "foreign_keys":  # e.g. another network's state dict
        state = {f"encoder.block{i}.weight": torch.zeros(8, 8) for i in range(5)}
    else:  # DDRNet23 (not slim): every backbone tensor has twice the channels
        shapes = {k: tuple(2 * d for d in s) if s else s
                  for k, s in ref.segmentation_shapes(7).items()}
        state = ref.random_state(shapes)
    model = DDRNet23Slim(num_classes=7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PretrainedError, match="none of its tensors initialises the "
                                              "DDRNet23-slim backbone"):
        load_pretrained(model, _save(tmp_path, state), allow_partial=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_wrong_width_is_refused_as_shape_mismatch(tmp_path):
    shapes = ref.segmentation_shapes(7)
    shapes["layer1.0.conv1.weight"] = (64, 64, 3, 3)  # one mis-shaped tensor
    with pytest.raises(PretrainedError, match="1 mis-shaped"):
        load_pretrained(DDRNet23Slim(7), _save(tmp_path, ref.random_state(shapes)))


def test_unreadable_or_pickled_code_is_refused_without_weights_only_advice(tmp_path):
    with pytest.raises(PretrainedError, match="does not exist"):
        load_pretrained(DDRNet23Slim(7), tmp_path / "missing.pth")
    path = _save(tmp_path, {"model": {"x": Path("/etc")}}, "pickle.pth")
    with pytest.raises(PretrainedError, match="not a plain file of tensors") as info:
        load_pretrained(DDRNet23Slim(7), path)
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedError) as info:
        load_pretrained(DDRNet23Slim(7), tmp_path / "junk.pth")
    assert "weights_only" not in str(info.value)


def test_qai_hub_models_absent_gives_actionable_message():
    if importlib.util.find_spec("qai_hub_models") is not None:
        pytest.skip("qai-hub-models is installed here")
    with pytest.raises(PretrainedError, match="own environment"):
        qai_hub_state_dict()
