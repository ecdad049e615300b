import math

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("albumentations")

from offroad_training.train.augment import AugmentParams, TrainAugment, sample_seed  # noqa: E402
from offroad_training.train.checkpoint import (  # noqa: E402
    ResumeError,
    load_checkpoint_dict,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from offroad_training.train.config import (  # noqa: E402
    ConfigError,
    TrainConfig,
    config_path,
    load_config,
)
from offroad_training.train.data import EpochBatchSampler  # noqa: E402
from offroad_training.train.ema import ModelEma  # noqa: E402
from offroad_training.train.losses import FocalLoss  # noqa: E402
from offroad_training.train.optim import lr_factor  # noqa: E402


def test_defaults_are_the_seed_recipe():
    c = TrainConfig()
    a = c.augment
    assert (c.crop_height, c.crop_width, a.scale_min, a.scale_max) == (544, 640, 0.5, 2.0)
    assert (a.brightness, a.contrast, a.saturation, a.hue, a.erasing_p) == (0.4, 0.4, 0.4,
                                                                            0.15, 0.3)
    assert (a.blur_p, a.shadow_p, a.grayscale_p) == (0.0, 0.0, 0.0)  # the seed has none
    assert c.focal_gamma == 2.0 and c.class_weights == [1, 1, 1, 1, 5.0, 5.0, 1]
    assert (c.lr, c.weight_decay, c.epochs, c.warmup_epochs) == (1e-3, 0.01, 200, 20)
    assert (c.ema_decay, c.grad_clip, c.batch_size, c.eval_every) == (0.9999, 5.0, 8, 5)
    assert c.ignore_index == 255 and c.amp == "auto"
    assert load_config(config_path("seed_full.yaml")).lr == c.lr


def test_yaml_and_overrides_and_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 10\nwarmup_epochs: 2\n")
    c = load_config(cfg, ["lr=5e-4", "class_weights=[1,1,1,1,2,2,1]", "pretrained=null"])
    assert (c.epochs, c.lr, c.class_weights[4], c.pretrained) == (10, 5e-4, 2, None)
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(cfg, ["learning_rate=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(cfg, ["lr"])
    with pytest.raises(ConfigError, match="crop_width"):
        load_config(cfg, ["crop_width=100"])
    with pytest.raises(ConfigError, match="lr='fast'"):
        load_config(cfg, ["lr=fast"])
    (tmp_path / "bad.yaml").write_text("epoch: 3\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(tmp_path / "bad.yaml")


def test_focal_loss_matches_hand_computation_and_ignores():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # N=1, C=2, H=1, W=2
    target = torch.tensor([[[0, 255]]])
    loss = FocalLoss(gamma=2.0, weight=[3.0, 1.0])(logits, target)
    p = math.exp(2) / (math.exp(2) + 1)
    assert loss.item() == pytest.approx(-3.0 * (1 - p) ** 2 * math.log(p), rel=1e-5)
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([[[0, 1]]]))
    assert FocalLoss(gamma=0.0)(logits, torch.tensor([[[0, 1]]])).item() == pytest.approx(
        ce.item(), rel=1e-5)
    all_ignored = FocalLoss()(logits.requires_grad_(), torch.full((1, 1, 2), 255))
    assert all_ignored.item() == 0.0
    all_ignored.backward()


def test_focal_loss_upsamples_low_resolution_logits():
    loss = FocalLoss()(torch.zeros(2, 7, 4, 5), torch.zeros(2, 32, 40, dtype=torch.long))
    assert loss.item() == pytest.approx((6 / 7) ** 2 * math.log(7), rel=1e-5)


def test_lr_schedule_warmup_then_cosine():
    assert lr_factor(0, 10, 100, 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.0) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100, 0.0) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100, 0.0) == pytest.approx(0.5)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)


def test_ema_follows_model_with_ramped_decay():
    model = torch.nn.Linear(2, 1)
    ema = ModelEma(model, decay=0.9, ramp_steps=0)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    w0 = model.weight - 1.0
    assert torch.allclose(ema.module.weight, 0.9 * w0 + 0.1 * model.weight)
    ramped = ModelEma(model, decay=0.9999, ramp_steps=100)
    assert ramped.current_decay() < 0.01  # exact: 0.9999 (1 - e^-0.01) = 0.00995 at step 0
    state = ramped.state_dict()
    ramped.update(model)
    ramped.load_state_dict(state)
    assert ramped.updates == 0


def test_sampler_is_deterministic_per_epoch_and_resumable():
    s = EpochBatchSampler(10, 3, seed=7)
    s.set_epoch(1)
    full = list(s)
    assert len(full) == 3 and all(len(b) == 3 for b in full)
    assert list(s) == full
    s.set_epoch(1, start_batch=2)
    assert list(s) == full[2:]
    s.set_epoch(2)
    assert list(s) != full
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatchSampler(2, 3, seed=0)


def test_sampler_shares_of_the_global_batch_do_not_depend_on_the_world_size():
    one = EpochBatchSampler(20, 8, seed=3)
    one.set_epoch(2, start_batch=1)
    for world in (2, 4):
        ranks = [EpochBatchSampler(20, 8, seed=3, rank=r, world_size=world)
                 for r in range(world)]
        for r in ranks:
            r.set_epoch(2, start_batch=1)
        shares = [list(r) for r in ranks]
        assert all(len(b) == 8 // world for rank in shares for b in rank)
        merged = [[item for rank in shares for item in rank[i]] for i in range(len(shares[0]))]
        assert merged == list(one)
    with pytest.raises(ValueError, match="not divisible"):
        EpochBatchSampler(20, 8, seed=0, rank=0, world_size=3)


def _files(tmp_path, h=90, w=120):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    labels = np.zeros((h, w), np.uint8)
    labels[: h // 2] = 6
    labels[h // 2:, : w // 2] = 3
    cv2.imwrite(str(tmp_path / "a.jpg"), rgb)
    cv2.imwrite(str(tmp_path / "a.png"), labels)
    return tmp_path / "a.jpg", tmp_path / "a.png"


def test_augment_is_a_pure_function_of_the_seed_and_keeps_labels_valid(tmp_path):
    img, lab = _files(tmp_path)
    aug = TrainAugment(AugmentParams(), 48, 64)
    a = aug(img, lab, sample_seed(0, 1, 2))
    b = aug(img, lab, sample_seed(0, 1, 2))
    c = aug(img, lab, sample_seed(0, 1, 3))
    assert a[0].shape == (48, 64, 3) and a[1].shape == (48, 64) and a[1].dtype == np.uint8
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    values = set()
    for s in range(30):
        values |= set(np.unique(aug(img, lab, s)[1]).tolist())
    assert values <= {0, 3, 6, 255} and {3, 6} <= values and 255 in values  # padding at s < 1


def test_augment_without_randomness_is_the_eval_resize(tmp_path):
    img, lab = _files(tmp_path)
    p = AugmentParams(scale_min=1.0, scale_max=1.0, hflip_p=0.0, color_jitter_p=0.0,
                      erasing_p=0.0)
    _, labels = TrainAugment(p, 45, 60)(img, lab, 0)
    expected = cv2.resize(cv2.imread(str(lab), 0), (60, 45), interpolation=cv2.INTER_NEAREST)
    assert (labels == expected).mean() > 0.97  # measured 1.0; slack for resize border rows


def test_augment_missing_file_is_a_clear_error(tmp_path):
    from offroad_training.train.augment import AugmentError

    img, _ = _files(tmp_path)
    with pytest.raises(AugmentError, match="labels"):
        TrainAugment(AugmentParams(), 48, 64)(img, tmp_path / "nope.png", 0)


def test_checkpoint_atomic_roundtrip_and_rng_state(tmp_path):
    import random

    path = tmp_path / "last.pth"
    state = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    save_checkpoint(path, {"rng": state, "step": 3})
    set_rng_state(load_checkpoint_dict(path)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]  # no temporary left over
    with pytest.raises(ResumeError, match="nothing to resume"):
        load_checkpoint_dict(tmp_path / "none.pth")


def test_domain_gap_augmentations_change_the_image_only(tmp_path):
    img, lab = _files(tmp_path)
    still = dict(scale_min=1.0, scale_max=1.0, hflip_p=0.0, color_jitter_p=0.0, erasing_p=0.0)
    base_rgb, base_labels = TrainAugment(AugmentParams(**still), 48, 64)(img, lab, 3)
    gray_rgb, gray_labels = TrainAugment(AugmentParams(**still, grayscale_p=1.0), 48, 64)(
        img, lab, 3)
    assert np.array_equal(gray_rgb[..., 0], gray_rgb[..., 1])
    assert np.array_equal(gray_rgb[..., 0], gray_rgb[..., 2])
    blur_rgb, _ = TrainAugment(AugmentParams(**still, blur_p=1.0, blur_sigma=[2.0, 2.0]),
                               48, 64)(img, lab, 3)
    def roughness(x):
        return float(np.abs(np.diff(x.astype(np.float32), axis=1)).mean())

    # noise image: blur smooths it (measured ratio 0.045)
    assert roughness(blur_rgb) < 0.6 * roughness(base_rgb)
    shadow_rgb, shadow_labels = TrainAugment(
        AugmentParams(**still, shadow_p=1.0, shadow_intensity=[0.5, 0.5]), 48, 64)(img, lab, 3)
    darker = shadow_rgb.astype(np.int32).sum(2) < base_rgb.astype(np.int32).sum(2)
    assert 0.02 < darker.mean() < 0.9  # a region, not the whole frame (measured 0.40)
    ratio = shadow_rgb[darker].astype(np.float32).sum() / base_rgb[darker].astype(
        np.float32).sum()
    # intensity 0.5 about halves the brightness (measured 0.465: the darkening is not an exact
    # RGB factor)
    assert 0.35 < ratio < 0.65
    assert np.array_equal(gray_labels, base_labels) and np.array_equal(shadow_labels,
                                                                       base_labels)
    c = load_config(config_path("seed_full.yaml"))
    assert (c.augment.blur_p, c.augment.shadow_p, c.augment.grayscale_p) == (0.3, 0.2, 0.05)
    with pytest.raises(ConfigError, match=r"augment\.shadow_p=1\.5"):
        load_config(None, ["augment.shadow_p=1.5"])
    with pytest.raises(ConfigError, match=r"hue now belong\(s\) under augment"):
        load_config(None, ["hue=0.1"])
    assert load_config(None, ["augment.hue=0.1", "amp=off"]).augment.hue == 0.1
