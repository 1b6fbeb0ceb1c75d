"""solo-co-bench's robustness analyses probe the stage a run's local representations came from
with a probe fitted on the training split's pooled maps of that stage."""

import torch

from solo_coplugin.backbones import resnet18_cifar
from solo_coplugin.bench.robustness import pooled_stage_maps
from solo_coplugin.eval.data import Normalize
from solo_coplugin.eval.features import FrozenBackbone


def test_pooled_stage_maps_are_the_tapped_stage_averaged_batch_by_batch():
    torch.manual_seed(0)
    backbone = resnet18_cifar(width=8)
    backbone.fc = torch.nn.Identity()
    model = FrozenBackbone(backbone, "resnet18_cifar", Normalize((0.5,) * 3, (0.25,) * 3), "layer3")
    images = torch.rand(5, 3, 32, 32)
    pooled = pooled_stage_maps(model, images, batch_size=2)
    _, maps = model.forward_map(images)
    assert maps.shape[1] == 32 and not model.tap.is_last_stage  # layer3 of width 8: 4 x 8
    torch.testing.assert_close(pooled, maps.mean(dim=(2, 3)))
