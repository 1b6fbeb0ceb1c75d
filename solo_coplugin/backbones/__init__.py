"""Backbones that solo-coplugin adds to solo-learn's backbone registry (pure torch)."""

from solo_coplugin.backbones.receptive_field import (
    RESNET_STAGES,
    ReceptiveField,
    effective_receptive_field,
    feature_map_side,
    stage_receptive_field,
    theoretical_receptive_field,
)
from solo_coplugin.backbones.rf_resnet import PRESETS as RF_PRESETS
from solo_coplugin.backbones.rf_resnet import STEM_PRESETS as RF_STEM_PRESETS
from solo_coplugin.backbones.rf_resnet import (
    RFResNet,
    RFResNetConfigError,
    rf_resnet18,
    rf_resnet50,
)
from solo_coplugin.backbones.small_resnet import resnet18_cifar, resnet50_cifar

#: name -> constructor, registered into ``BaseMethod._BACKBONES`` by ``solo_coplugin.registration``
BACKBONES = {
    "resnet18_cifar": resnet18_cifar,
    "resnet50_cifar": resnet50_cifar,
    "rf_resnet18": rf_resnet18,
    "rf_resnet50": rf_resnet50,
}

__all__ = [
    "BACKBONES",
    "RESNET_STAGES",
    "RF_PRESETS",
    "RF_STEM_PRESETS",
    "RFResNet",
    "RFResNetConfigError",
    "ReceptiveField",
    "effective_receptive_field",
    "feature_map_side",
    "resnet18_cifar",
    "resnet50_cifar",
    "rf_resnet18",
    "rf_resnet50",
    "stage_receptive_field",
    "theoretical_receptive_field",
]
