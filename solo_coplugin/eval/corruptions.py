"""ImageNet-C / CIFAR-10-C style corruptions as batched tensor ops (CPU or GPU).

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019 (https://arxiv.org/abs/1903.12261). Their reference code works on one
numpy image at a time and the maintained ``imagecorruptions`` package (1.1.2) fails with current
scikit-image, so the corruptions used here are re-implemented on ``B x 3 x H x W`` tensors in
[0, 1] with the reference formulas and severity constants: CIFAR-10-C's for images of at most
64 px, ImageNet-C's above. Severity 0 is the identity; severities 1 to 5 as in the references.

Choices where an exact copy is not possible on tensors: gaussian blur pads by reflection
(scikit-image: nearest); pixelate downsamples by area averaging and upsamples by nearest
(PIL: box, box); JPEG goes through torchvision's libjpeg (PIL in the reference) on the CPU.
"""

from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.io import decode_jpeg, encode_jpeg

SMALL_IMAGE_MAX = 64

# corruption -> (CIFAR-10-C constants, ImageNet-C constants), severity 1..5
SEVERITIES = {
    "gaussian_noise": ((0.04, 0.06, 0.08, 0.09, 0.10), (0.08, 0.12, 0.18, 0.26, 0.38)),
    "shot_noise": ((500, 250, 100, 75, 50), (60, 25, 12, 5, 3)),
    "impulse_noise": ((0.01, 0.02, 0.03, 0.05, 0.07), (0.03, 0.06, 0.09, 0.17, 0.27)),
    "gaussian_blur": ((0.4, 0.6, 0.7, 0.8, 1.0), (1, 2, 3, 4, 6)),
    "contrast": ((0.75, 0.5, 0.4, 0.3, 0.15), (0.4, 0.3, 0.2, 0.1, 0.05)),
    "brightness": ((0.05, 0.1, 0.15, 0.2, 0.3), (0.1, 0.2, 0.3, 0.4, 0.5)),
    "pixelate": ((0.95, 0.9, 0.85, 0.75, 0.65), (0.6, 0.5, 0.4, 0.3, 0.25)),
    "jpeg_compression": ((80, 65, 58, 50, 40), (25, 18, 15, 10, 7)),
}
CORRUPTIONS = tuple(SEVERITIES)


def severity_constant(name: str, severity: int, image_size: int) -> float:
    """The reference constant of ``name`` at ``severity`` (1-5) for images of ``image_size``."""

    small, large = SEVERITIES[name]
    return (small if image_size <= SMALL_IMAGE_MAX else large)[severity - 1]


def _gaussian_noise(x, c, generator):
    return x + c * torch.randn(x.shape, generator=generator, device="cpu").to(x.device)


def _shot_noise(x, c, generator):
    return torch.poisson((x * c).cpu(), generator=generator).to(x.device) / c


def _impulse_noise(x, c, generator):
    # scikit-image's s&p: each value is replaced with probability c, half by 0, half by 1
    u = torch.rand(x.shape, generator=generator, device="cpu").to(x.device)
    salt = torch.rand(x.shape, generator=generator, device="cpu").to(x.device) < 0.5
    replaced = torch.where(salt, torch.ones_like(x), torch.zeros_like(x))
    return torch.where(u < c, replaced, x)


def _gaussian_blur(x, c, generator):
    radius = max(1, int(4.0 * c + 0.5))  # scikit-image truncates at 4 sigma
    return TF.gaussian_blur(x, kernel_size=2 * radius + 1, sigma=float(c))


def _contrast(x, c, generator):
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * c + mean


def _brightness(x, c, generator):
    # ImageNet-C adds c to V in HSV: with H and S fixed, RGB scales with V = max(R, G, B)
    value = x.amax(dim=1, keepdim=True)
    new_value = (value + c).clamp(max=1.0)
    scaled = x * new_value / value.clamp_min(1e-12)
    return torch.where(value > 0, scaled, new_value.expand_as(x))


def _pixelate(x, c, generator):
    size = x.shape[-2:]
    small = [max(1, int(s * c)) for s in size]
    return F.interpolate(F.interpolate(x, size=small, mode="area"), size=size, mode="nearest")


def _jpeg_compression(x, c, generator):
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    decoded = [decode_jpeg(encode_jpeg(image, quality=int(c))) for image in pixels]
    return torch.stack(decoded).to(x.device, torch.float32) / 255


_FUNCTIONS: Dict[str, Callable] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "gaussian_blur": _gaussian_blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
}


def corrupt(
    images: torch.Tensor, name: str, severity: int, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Applies a corruption to a batch of images.

    Args:
        images (torch.Tensor): ``B x 3 x H x W`` pixels in [0, 1].
        name (str): one of ``CORRUPTIONS``.
        severity (int): 0 (identity) to 5.
        generator (Optional[torch.Generator]): a CPU generator for the random corruptions.

    Returns:
        torch.Tensor: the corrupted images, in [0, 1].
    """

    if name not in _FUNCTIONS:
        raise ValueError(f"Unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}.")
    if not 0 <= severity <= 5:
        raise ValueError(f"Corruption severity must be 0 to 5, got {severity}.")
    if severity == 0:
        return images
    c = severity_constant(name, severity, max(images.shape[-2:]))
    return _FUNCTIONS[name](images, c, generator).clamp(0, 1)
