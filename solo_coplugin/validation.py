"""Online validation at the training resolution for custom data (``data.val_crop_size``).

solo-learn's online validation (and ``main_linear.py``) for ``data.dataset=custom`` resizes every
image to 256 px and center-crops 224 px, with ImageNet's mean and std, whatever the training
crop size and normalization: a network pretrained on 64 px Tiny-ImageNet crops would be validated
on 224 px upsampled images, normalized differently from training. A config that sets
``data.val_crop_size`` and declares :class:`ValidationSizeCallback` under ``hydra.callbacks``
(the packaged Tiny-ImageNet configs do) is validated as ``solo-co-bench`` and ``solo-co-eval``
evaluate: images resized and center-cropped to ``val_crop_size`` (up to 64 px; larger sizes
resize by ImageNet's 256/224 first), normalized with the first augmentation pipeline's ``mean``
and ``std``, the normalization the network was trained with.

The callback replaces ``prepare_transforms`` of ``solo.data.classification_dataloader`` for
``custom`` data in ``main_pretrain.py``'s process only, before ``main()`` runs; solo-learn's code
is not changed, and other datasets are untouched.
"""

from typing import Any, Callable, Tuple

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

VAL_CROP_SIZE_KEY = "data.val_crop_size"


class ValidationSizeError(ValueError):
    """``data.val_crop_size`` cannot be applied; the message names the key and the fix."""


def validation_transform(cfg: DictConfig) -> Callable:
    """The validation transform that ``data.val_crop_size`` asks for, with the training
    normalization.

    Args:
        cfg (DictConfig): the composed pretraining config.

    Returns:
        Callable: a torchvision transform from a PIL image to a normalized tensor.
    """

    from torchvision import transforms

    from solo_coplugin.eval.data import eval_transform, mean_std_for

    size = OmegaConf.select(cfg, VAL_CROP_SIZE_KEY)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValidationSizeError(
            f"{VAL_CROP_SIZE_KEY}={size!r}: give the validation crop side in pixels (e.g. 64, the "
            "training crop size), or null for solo-learn's Resize(256) + CenterCrop(224)."
        )
    dataset = OmegaConf.select(cfg, "data.dataset")
    if dataset != "custom":
        raise ValidationSizeError(
            f"{VAL_CROP_SIZE_KEY}={size} only applies to data.dataset=custom (solo-learn fixes "
            f"{dataset}'s validation transform). Fix: remove {VAL_CROP_SIZE_KEY}."
        )
    mean, std = mean_std_for(dataset, cfg)
    return transforms.Compose([eval_transform(size), transforms.Normalize(mean, std)])


def use_validation_size(cfg: DictConfig) -> bool:
    """Makes solo-learn's classification loaders validate custom data at ``data.val_crop_size``.

    Args:
        cfg (DictConfig): the composed pretraining config.

    Returns:
        bool: True if solo-learn's transforms were replaced (the key is set).
    """

    if OmegaConf.select(cfg, VAL_CROP_SIZE_KEY) is None:
        return False
    T_val = validation_transform(cfg)

    import solo.data.classification_dataloader as loaders

    solo_prepare_transforms = getattr(
        loaders.prepare_transforms, "solo_prepare_transforms", loaders.prepare_transforms
    )

    def prepare_transforms(dataset: str) -> Tuple[Any, Any]:
        T_train, solo_T_val = solo_prepare_transforms(dataset)
        return T_train, T_val if dataset == "custom" else solo_T_val

    prepare_transforms.solo_prepare_transforms = solo_prepare_transforms
    loaders.prepare_transforms = prepare_transforms
    return True


class ValidationSizeCallback(Callback):
    """Hydra callback: applies ``data.val_crop_size`` in ``main_pretrain.py`` before ``main()``.

    Declared by the packaged Tiny-ImageNet configs; a config of your own can add
    ``+hydra.callbacks.solo_coplugin_validation._target_=
    solo_coplugin.validation.ValidationSizeCallback``.
    """

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        use_validation_size(config)
