import colorsys

import pytest
import torch

from solo_coplugin.eval.corruptions import CORRUPTIONS, corrupt, severity_constant


def images(n=4, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_zero_is_the_identity_and_others_stay_in_range(name):
    x = images()
    assert corrupt(x, name, 0) is x
    for severity in range(1, 6):
        y = corrupt(x, name, severity, torch.Generator().manual_seed(severity))
        assert y.shape == x.shape and y.dtype == torch.float32
        assert y.min() >= 0 and y.max() <= 1
        assert not torch.equal(y, x), (name, severity)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_damage_grows_with_severity(name):
    # averaged over a batch, a higher severity moves the images further (as in the references)
    x = images(16)
    damage = [
        (corrupt(x, name, s, torch.Generator().manual_seed(0)) - x).abs().mean().item()
        for s in range(1, 6)
    ]
    assert damage[-1] > damage[0], damage
    assert all(b >= a - 0.01 for a, b in zip(damage, damage[1:])), damage


def test_brightness_adds_to_the_hsv_value_like_imagenet_c():
    x = images(1, 8)
    y = corrupt(x, "brightness", 3)
    c = severity_constant("brightness", 3, 8)
    for i, j in [(0, 0), (3, 5), (7, 2)]:
        h, s, v = colorsys.rgb_to_hsv(*x[0, :, i, j].tolist())
        expected = colorsys.hsv_to_rgb(h, s, min(1.0, v + c))
        assert torch.allclose(y[0, :, i, j], torch.tensor(expected), atol=1e-5)


def test_contrast_keeps_each_channel_mean():
    x = images()
    y = corrupt(x, "contrast", 5)
    assert torch.allclose(y.mean((2, 3)), x.mean((2, 3)), atol=1e-5)
    assert y.std() < x.std()


def test_constants_follow_the_image_size():
    # CIFAR-10-C constants up to 64 px, ImageNet-C above
    assert severity_constant("gaussian_noise", 1, 32) == 0.04
    assert severity_constant("gaussian_noise", 1, 224) == 0.08


def test_bad_names_and_severities_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown corruption 'fog'"):
        corrupt(images(), "fog", 1)
    with pytest.raises(ValueError, match="severity must be 0 to 5"):
        corrupt(images(), "contrast", 6)
