"""Checks of a CO pretraining run before solo-learn's ``main_pretrain.py`` starts it.

Some bad inputs fail in solo-learn before a CO method is built, or long after it, with a bare
or deep error: a number of large crops other than 2 (a bare ``AssertionError`` in
``main_pretrain.py``), a missing ``data.train_path`` for custom data (``parse_cfg`` lists it), a
class folder without images (``ImageFolder``, when the loaders are built), a file that is not an
image (a data-loader worker, mid-epoch, after checkpoints were written), a ViT or Swin built for
another resolution than the one solo-learn validates at (Lightning's sanity check, once data and
model are ready, or the first validation). :func:`check_pretrain_cfg` finds them from the
composed config, with the CO settings' own checks that need no model. The data check opens a
sample of 64 files; ``++data.check_all_images=True`` opens every file of ``data.train_path`` (and
``data.val_path``) instead (:mod:`solo_coplugin.data.image_check`, in parallel) and lists every
file the loader would stop on.

:class:`PreflightCallback` runs it in ``main_pretrain.py`` before ``main()``: every packaged CO
config declares it under ``hydra.callbacks`` (a config of your own can do the same, or add
``+hydra.callbacks.solo_coplugin._target_=solo_coplugin.preflight.PreflightCallback`` on the
command line). A failing check stops the run with one message, before anything is written. The
callback also makes a file that the data loader cannot read during training stop the run with
one line naming the file and the fix (:mod:`solo_coplugin.data.loader_errors`), instead of PIL's
error from a data-loader worker, which names no file.
"""

import os
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from solo_coplugin.core import CoConfigError, check_co_settings, check_local_keys, setting_names
from solo_coplugin.data.image_check import check_all_files
from solo_coplugin.data.loader_errors import bad_file_error_in, name_bad_files
from solo_coplugin.data_checks import DataCheckError, check_image_folder, check_path_exists

#: the side that solo-learn's classification loaders (``solo/data/classification_dataloader.py``)
#: give validation images: CIFAR as is, STL-10 resized, the others Resize(256) + CenterCrop(224)
VALIDATION_SIZE = {
    "cifar10": 32,
    "cifar100": 32,
    "stl10": 96,
    "imagenet": 224,
    "imagenet100": 224,
    "custom": 224,
}
#: datasets that solo-learn reads from folders (torchvision downloads the others)
FOLDER_DATASETS = ("custom", "imagenet", "imagenet100")
#: backbones whose patch embedding only accepts its ``img_size`` (timm ViTs and Swins)
FIXED_SIZE_BACKBONES = ("vit_", "swin_")
#: the setting that makes the data check open every file instead of a sample
CHECK_ALL_IMAGES = "data.check_all_images"


class PreflightError(ValueError):
    """A pretraining run cannot work as configured; the message names the keys and the fix."""


def _select(cfg: DictConfig, key: str, default: Any = None) -> Any:
    value = OmegaConf.select(cfg, key, default=default)
    return None if value == "None" else value  # as solo-learn's omegaconf_select


def check_co_method_settings(cfg: DictConfig) -> None:
    """The checks of the CO settings that need no model: unknown ``local_*`` keys, types,
    ranges and combinations (the same as when the method is built)."""

    from solo_coplugin.methods import METHODS

    method = _select(cfg, "method")
    if method not in METHODS:
        return
    method_kwargs = _select(cfg, "method_kwargs") or {}
    check_local_keys(method_kwargs, setting_names(method) + METHODS[method].local_settings, method)
    check_co_settings(
        {
            key: _select(cfg, f"method_kwargs.{key}")
            for key in setting_names()
            if key in method_kwargs
        }
    )


def check_crops(cfg: DictConfig) -> None:
    """Checks that the augmentations give 2 large crops, counted as solo-learn's ``parse_cfg``
    counts them: every CO method needs them, and ``main_pretrain.py`` asserts it for every
    method but wmse and mae."""

    augmentations = _select(cfg, "augmentations")
    if not augmentations or _select(cfg, "method") in ("wmse", "mae"):
        return  # (no augmentations: solo-learn's parse_cfg says so)
    large_size = _select(augmentations[0], "crop_size")
    pipelines = [
        (index, _select(pipeline, "num_crops"), _select(pipeline, "crop_size"))
        for index, pipeline in enumerate(augmentations)
    ]
    num_large = sum(n or 0 for _, n, size in pipelines if size == large_size)
    if num_large == 2:
        return
    listed = "; ".join(
        f"augmentations[{i}]: num_crops={n}, crop_size={size}" for i, n, size in pipelines
    )
    raise PreflightError(
        f"{_select(cfg, 'method')} needs exactly 2 large crops, but the augmentations give "
        f"{num_large} ({listed}): solo-learn counts as large the crops of every pipeline whose "
        f"crop_size equals the first pipeline's ({large_size} px), and main_pretrain.py would stop "
        "with a bare AssertionError. Fix: make the first pipelines give 2 crops in total "
        "(num_crops: 2 in one pipeline, or two pipelines with num_crops: 1) and give the small "
        "crops, after them, another crop_size."
    )


def validates_online(cfg: DictConfig) -> bool:
    """Whether ``main_pretrain.py`` builds a validation loader and Lightning runs it."""

    dataset = _select(cfg, "data.dataset")
    val_path = _select(cfg, "data.val_path")
    if dataset == "custom" and (val_path is None or _select(cfg, "data.no_labels", False)):
        return False
    if dataset in ("imagenet", "imagenet100") and val_path is None:
        return False
    return _select(cfg, "limit_val_batches", 1.0) != 0


def check_validation_resolution(cfg: DictConfig) -> None:
    """Checks that a ViT or Swin accepts the images that solo-learn validates on.

    solo-learn's online validation of ``custom``, ``imagenet`` and ``imagenet100`` data resizes
    to 256 and center-crops 224 px, whatever the training crop size; a timm ViT or Swin refuses
    any side other than its ``img_size`` (``Input height (224) doesn't match model (32)``).
    """

    name = str(_select(cfg, "backbone.name", ""))
    if not name.startswith(FIXED_SIZE_BACKBONES) or not validates_online(cfg):
        return
    kwargs = _select(cfg, "backbone.kwargs") or {}
    if kwargs.get("dynamic_img_size", False):
        return
    img_size = kwargs.get("img_size", 224)
    sides = (
        tuple(img_size)
        if OmegaConf.is_list(img_size) or isinstance(img_size, (list, tuple))
        else (img_size,)
    )
    dataset = _select(cfg, "data.dataset")
    size = VALIDATION_SIZE.get(dataset)
    if size is None or all(side == size for side in sides):
        return
    how = f"at {size} px"
    if size == 224:
        how += " (Resize(256) + CenterCrop(224)), whatever the training crop size"
    raise PreflightError(
        f"backbone.name={name} with backbone.kwargs.img_size={img_size} only accepts images of "
        f"that size, but solo-learn validates data.dataset={dataset} {how} "
        f"(data.val_path={_select(cfg, 'data.val_path')}): the run would stop in Lightning's "
        f'sanity check with "Input height ({size}) doesn\'t match model ({sides[0]})" (with '
        "num_sanity_val_steps=0: at the first validation, after an epoch of training). Fix: "
        "data.val_path=null (no online validation; "
        "evaluate the checkpoint at its training crop size with solo-co-eval knn or "
        "solo-co-bench), or ++limit_val_batches=0."
    )


def check_all_images_enabled(cfg: DictConfig) -> bool:
    """The value of ``data.check_all_images`` (False when unset), checked."""

    value = _select(cfg, CHECK_ALL_IMAGES, False)
    if not isinstance(value, bool):
        raise PreflightError(
            f"{CHECK_ALL_IMAGES} must be True or False, got {value!r}. Fix: "
            f"++{CHECK_ALL_IMAGES}=True opens every image before training, False (the default) "
            "a sample of 64."
        )
    return value


def check_every_image(path: Any, key: str, no_labels: bool) -> None:
    """Opens every file of a data folder (``data.check_all_images``); prints how long it took.

    Raises:
        DataCheckError: with the report, file by file, when anything is wrong.
    """

    report = check_all_files(path, key=key, no_labels=no_labels)
    if not report.ok:
        raise DataCheckError(report.summary(key))
    print(f"solo-coplugin: {report.summary(key)}", flush=True)


def check_data(cfg: DictConfig) -> None:
    """Checks the data folders that ``main_pretrain.py`` will read (see
    :func:`solo_coplugin.data_checks.check_image_folder`; with ``data.check_all_images=True``,
    :func:`solo_coplugin.data.image_check.check_all_files`). Datasets that torchvision downloads
    (CIFAR, STL-10) are left to it."""

    check_all = check_all_images_enabled(cfg)
    dataset = _select(cfg, "data.dataset")
    if dataset not in FOLDER_DATASETS:
        return
    data_format = _select(cfg, "data.format", "image_folder")
    no_labels = dataset == "custom" and bool(_select(cfg, "data.no_labels", False))
    validates = validates_online(cfg)
    if data_format == "h5":
        check_path_exists(_select(cfg, "data.train_path"), "data.train_path")
        if validates:
            check_path_exists(_select(cfg, "data.val_path"), "data.val_path")
        return
    # image folders, and DALI's file reader, which reads the same layout
    check = check_every_image if check_all else check_image_folder
    check(_select(cfg, "data.train_path"), "data.train_path", no_labels=no_labels)
    if validates:
        check(_select(cfg, "data.val_path"), "data.val_path", no_labels=False)


def check_pretrain_cfg(cfg: DictConfig) -> None:
    """Every check of a CO pretraining run that needs neither a model nor a trainer.

    Args:
        cfg (DictConfig): the composed config, as ``main_pretrain.py`` receives it.
    """

    check_co_method_settings(cfg)
    check_crops(cfg)
    check_validation_resolution(cfg)
    check_data(cfg)


class PreflightCallback(Callback):
    """Hydra callback: :func:`check_pretrain_cfg` before ``main_pretrain.py``'s ``main()``, and
    files the data loader cannot read named during training.

    Hydra turns an exception raised by a callback into a warning and runs the job anyway, so a
    failed check exits the process here, with its message and without a stack trace. A file that
    stops the data loader during training ends ``main()`` with a
    :class:`~solo_coplugin.data.loader_errors.BadImageFileError`, which :meth:`on_job_end`
    turns into one line the same way.
    """

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        name_bad_files()  # every process: each one (and its loader workers) reads files
        if int(os.environ.get("LOCAL_RANK", 0)) > 0:
            return  # a DDP worker that Lightning started once rank 0 had passed the checks
        try:
            check_pretrain_cfg(config)
        except (PreflightError, DataCheckError, CoConfigError) as error:
            raise SystemExit(f"solo-coplugin: {error}") from None

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.FAILED:
            return
        message = bad_file_error_in(job_return._return_value)
        if message is not None:
            raise SystemExit(f"solo-coplugin: {message}")
