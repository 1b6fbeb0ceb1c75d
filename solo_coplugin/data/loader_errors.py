"""A file the data loader cannot read stops the run with its name and the fix.

torchvision's ``ImageFolder`` (which solo-learn reads custom and ImageNet folders with, for
training and validation) and solo-learn's ``CustomDatasetWithoutLabels`` raise PIL's error for a
broken file, e.g. ``OSError: Truncated File Read``, which names no file; in a data-loader worker
it comes back as a stack trace from inside torch. :func:`name_bad_files` wraps their
``__getitem__``: when reading an item fails, the item's file is checked on its own
(:func:`solo_coplugin.data_checks.image_file_problem`); if the file is the cause, a
:class:`BadImageFileError` names it and the fix, with the original error as its cause; any other
error (a transform's) passes unchanged. Reading a sound file costs nothing more.

The CO configs' Hydra callback (:class:`solo_coplugin.preflight.PreflightCallback`) installs it in
every process of a CO run before ``main_pretrain.py``'s ``main()`` (data-loader workers are
forked from it and inherit it), and turns the error into one line without a stack trace.
"""

import functools
import os
from typing import Any, Callable, Optional

from solo_coplugin.data_checks import DataCheckError, FileProblem, image_file_problem

#: marks a ``__getitem__`` that this module wrapped (so that installing twice wraps once)
_WRAPPED = "_solo_coplugin_names_bad_files"


class BadImageFileError(DataCheckError):
    """The data loader met a file it cannot read; the message (one line) names it and the fix."""


def bad_file_message(problem: FileProblem, folder: Optional[str]) -> str:
    """The message for a file that stopped the data loader."""

    check = f"solo-co-data check {folder}" if folder else "solo-co-data check <data folder>"
    return (
        f"the data loader cannot read {problem.path}: {problem.kind} ({problem.detail}). Fix: "
        f"remove or replace the file; `{check}` lists every such file of the folder "
        "(++data.check_all_images=True checks them all before a run trains)."
    )


def _problem_of(dataset: Any, index: int, path_of: Callable[[Any, int], str]):
    try:
        path = path_of(dataset, index)
    except Exception:  # no file to blame (an index out of range, ...)
        return None
    return image_file_problem(path)


def _naming_bad_files(getitem: Callable, path_of: Callable[[Any, int], str]) -> Callable:
    @functools.wraps(getitem)
    def __getitem__(self, index):
        try:
            return getitem(self, index)
        except BadImageFileError:
            raise  # from a wrapped __getitem__ further down (a subclass's super() call)
        except Exception as error:
            problem = _problem_of(self, index, path_of)
            if problem is None:
                raise  # the file reads: the error is not about it
            root = getattr(self, "root", None)
            raise BadImageFileError(
                bad_file_message(problem, None if root is None else os.fspath(root))
            ) from error

    setattr(__getitem__, _WRAPPED, True)
    return __getitem__


def _wrap(cls: type, path_of: Callable[[Any, int], str]) -> None:
    if not getattr(cls.__getitem__, _WRAPPED, False):
        cls.__getitem__ = _naming_bad_files(cls.__getitem__, path_of)


def name_bad_files() -> None:
    """Makes ``ImageFolder`` (any torchvision ``DatasetFolder``) and solo-learn's
    ``CustomDatasetWithoutLabels`` name a file they cannot read (see the module's docstring).
    Installing it again changes nothing."""

    from torchvision.datasets import DatasetFolder

    _wrap(DatasetFolder, lambda dataset, index: dataset.samples[index][0])
    try:
        from solo.data.pretrain_dataloader import CustomDatasetWithoutLabels
    except ImportError:  # without solo-learn only torchvision's datasets are read
        return
    _wrap(
        CustomDatasetWithoutLabels,
        lambda dataset, index: os.path.join(dataset.root, dataset.images[index]),
    )


def bad_file_error_in(error: BaseException) -> Optional[str]:
    """The message of a :class:`BadImageFileError` that ``error`` is, was caused by, or carries
    from a data-loader worker, else None.

    A worker's exception comes back to the main process as the same class with the worker's
    whole stack trace as its message (torch's ``ExceptionWrapper``); the message proper is its
    last line.
    """

    while error is not None:
        if isinstance(error, BadImageFileError):
            text = str(error)
            marker = f"{BadImageFileError.__name__}: "
            if "Original Traceback" in text and marker in text:
                text = text.rsplit(marker, 1)[1]
            return text.strip()
        error = error.__cause__ or error.__context__
    return None
