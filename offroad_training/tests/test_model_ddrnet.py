import pytest

torch = pytest.importorskip("torch")

import ddrnet_reference_keys as ref  # noqa: E402  (after importorskip)

from offroad_training.model import DDRNet23Slim, build_model, replace_head  # noqa: E402

random_state, segmentation_shapes = ref.random_state, ref.segmentation_shapes


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def test_state_dict_names_and_shapes_match_reference_layout():
    model = DDRNet23Slim(num_classes=19, aux=True)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == segmentation_shapes(19, aux=True)
    no_aux = {k: tuple(v.shape) for k, v in DDRNet23Slim(19, aux=False).state_dict().items()}
    assert no_aux == segmentation_shapes(19, aux=False)


def test_reference_state_dict_loads_strictly_and_is_used():
    model = DDRNet23Slim(num_classes=19, aux=True)
    state = random_state(segmentation_shapes(19))
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.final_layer.conv2.bias, state["final_layer.conv2.bias"])


def test_inference_returns_eighth_resolution_logits_and_training_returns_aux():
    model = DDRNet23Slim(num_classes=7)
    x = torch.randn(2, 3, 64, 80)
    model.train()
    main, aux = model(x)
    assert main.shape == (2, 7, 8, 10) and aux.shape == (2, 7, 8, 10)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 7, 8, 10)
    assert torch.isfinite(out).all()


def test_graph_uses_only_htp_friendly_modules():
    allowed = (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.ReLU, torch.nn.AvgPool2d,
               torch.nn.AdaptiveAvgPool2d, torch.nn.Sequential)
    model = DDRNet23Slim()
    leaves = [m for m in model.modules() if not list(m.children())]
    assert leaves and all(isinstance(m, allowed) for m in leaves)
    # parameter count of DDRNet23-slim (5.7 M published)
    assert 5.6e6 < sum(p.numel() for p in model.parameters()) < 5.8e6


def test_replace_head_keeps_backbone_and_reinitialises_classifier():
    model = DDRNet23Slim(num_classes=19)
    before = model.layer3[0].conv1.weight.clone()
    replace_head(model, 7)
    assert model.final_layer.conv2.weight.shape == (7, 64, 1, 1)
    assert model.seghead_extra.conv2.weight.shape == (7, 64, 1, 1)
    assert torch.equal(model.layer3[0].conv1.weight, before)
    assert torch.count_nonzero(model.final_layer.conv2.bias) == 0
    model, report = build_model(7)
    assert model.final_layer.conv2.out_channels == 7 and report is None


def test_load_checkpoint_roundtrip_and_clear_errors(tmp_path):
    from offroad_training.model import CheckpointError, load_checkpoint

    model = DDRNet23Slim(num_classes=7, aux=False).eval()
    path = tmp_path / "best_model.pth"
    torch.save({"model": model.state_dict(), "config": {"crop": [64, 80]}}, path)
    loaded, config = load_checkpoint(path)
    assert config == {"crop": [64, 80]} and not loaded.training and not loaded.aux
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pth")
