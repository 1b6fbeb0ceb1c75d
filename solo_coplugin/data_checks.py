"""Cheap checks of an image folder before anything trains on it or evaluates it.

solo-learn reads ``data.dataset=custom`` (and ``imagenet``/``imagenet100`` in the image-folder
format) with torchvision's ``ImageFolder``: one sub-folder per class, the files with an image
extension in it (at any depth). A missing folder, a class folder without images or a file that
is not an image otherwise fails late: in ``parse_cfg``, when the loaders are built, or in a
data-loader worker in the middle of an epoch, after checkpoints were written. These checks look
at every file's name and size (a directory listing, cheap even for ImageNet) and fully open a
bounded sample of them, as ``ImageFolder``'s loader does. ``solo-co-data check``
(:mod:`solo_coplugin.data.image_check`) opens every file, with the same per-file check
(:func:`image_file_problem`) and listing (:func:`list_image_folder`).
"""

import os
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from PIL import UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, pil_loader

#: how many files are fully opened (decoded), spread evenly over the folder
DEFAULT_SAMPLE = 64
#: how many offending files or folders a message names
LISTED = 5


class DataCheckError(ValueError):
    """The data cannot be read as configured; the message names the key, the path and the fix."""


def _listed(items: Sequence[str]) -> str:
    more = f" and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return ", ".join(str(item) for item in items[:LISTED]) + more


class FileProblem(NamedTuple):
    """Why the data loader would stop on a file."""

    path: str
    #: one of :data:`PROBLEM_KINDS`
    kind: str
    #: the error, as the loader would raise it
    detail: str

    def __str__(self) -> str:
        return f"{self.path} ({self.kind}: {self.detail})"


UNREADABLE = "unreadable"
EMPTY = "empty file"
NOT_AN_IMAGE = "not an image"
TRUNCATED = "truncated"
UNDECODABLE = "broken image data"
#: the kinds of :class:`FileProblem`, in the order reports list them
PROBLEM_KINDS = (UNREADABLE, EMPTY, NOT_AN_IMAGE, TRUNCATED, UNDECODABLE)


def _kind(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return NOT_AN_IMAGE
    if isinstance(error, (PermissionError, FileNotFoundError, IsADirectoryError)):
        return UNREADABLE
    if "truncated" in str(error).lower():  # PIL: "Truncated File Read", "image file is truncated"
        return TRUNCATED
    return UNDECODABLE


def image_file_problem(path: Union[str, Path]) -> Optional[FileProblem]:
    """Opens and decodes one file as ``ImageFolder``'s loader (and solo-learn's unlabeled dataset)
    does: ``PIL.Image.open`` and ``convert("RGB")``.

    Args:
        path (Union[str, Path]): the file.

    Returns:
        Optional[FileProblem]: why the loader would stop on it, or None if it reads.
    """

    path = str(path)
    try:
        if os.stat(path).st_size == 0:
            return FileProblem(path, EMPTY, "0 bytes")
        pil_loader(path)
    except Exception as error:  # whatever the data loader would stop on
        return FileProblem(path, _kind(error), f"{type(error).__name__}: {error}")
    return None


#: the size listed for a file that cannot even be looked at (a broken link, no permission)
NO_SIZE = -1


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # the loader lists it all the same, then stops on it
        return NO_SIZE


def _image_files(folder: str) -> List[Tuple[str, int]]:
    """(path, size) of the files ``ImageFolder`` takes from a class folder, in its order."""

    files = []
    for root, _, names in sorted(os.walk(folder, followlinks=True)):
        for name in sorted(names):
            if name.lower().endswith(IMG_EXTENSIONS):
                path = os.path.join(root, name)
                files.append((path, _size(path)))
    return files


def _spread(items: Sequence, count: int) -> list:
    """``count`` items spread evenly over ``items`` (all of them when there are fewer)."""

    if len(items) <= count:
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


class ImageFolderListing(NamedTuple):
    """The files the data loader will read from a folder, as listed (nothing opened)."""

    #: (path, size in bytes or :data:`NO_SIZE`) of each file, in the loader's order
    files: List[Tuple[str, int]]
    #: the folder's layout, for messages ("10 class folders")
    layout: str
    #: the class folders without any image file (``ImageFolder`` refuses them)
    empty_classes: List[str]


def list_image_folder(
    path: Union[str, Path, None], key: str, no_labels: Optional[bool] = None
) -> ImageFolderListing:
    """Lists a folder as torchvision's ``ImageFolder`` (or, with ``no_labels``, solo-learn's
    ``CustomDatasetWithoutLabels``) will read it, without opening any file.

    Args:
        path (Union[str, Path, None]): the folder.
        key (str): the setting or argument it comes from (``data.train_path``), for messages.
        no_labels (Optional[bool]): as in :func:`check_image_folder`.

    Raises:
        DataCheckError: the folder is not set, missing, or not laid out as the loader reads it.

    Returns:
        ImageFolderListing: its files, layout and empty class folders.
    """

    if path is None or str(path).strip() in ("", "None"):
        raise DataCheckError(f"{key} is not set. Fix: {key}=<folder of images>.")
    path = Path(path)
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        layout = (
            "a folder of images"
            if no_labels
            else "a folder with one sub-folder of images per class (<folder>/<class>/<image>, "
            "torchvision's ImageFolder layout)"
        )
        raise DataCheckError(f"{key}={path} {what}. Fix: point {key} to {layout}.")

    if no_labels:
        entries = sorted(path.iterdir())
        folders = [str(entry) for entry in entries if entry.is_dir()]
        if folders:
            raise DataCheckError(
                f"{key}={path} holds folders ({_listed(folders)}), but data.no_labels=True reads "
                "every entry of it as an image. Fix: data.no_labels=False for one sub-folder per "
                "class, or move the images up into the folder."
            )
        files = [(str(entry), _size(str(entry))) for entry in entries]
        return ImageFolderListing(files, "a flat folder of images (data.no_labels=True)", [])

    try:
        classes, _ = find_classes(str(path))
    except FileNotFoundError:
        unlabeled = ", or data.no_labels=True for a flat folder of unlabeled images"
        raise DataCheckError(
            f"{key}={path} has no class sub-folders. Fix: put the images in one sub-folder "
            "per class (<folder>/<class>/<image>, torchvision's ImageFolder layout)"
            f"{unlabeled if no_labels is False else ''}."
        ) from None
    files, empty = [], []
    for name in classes:
        found = _image_files(str(path / name))
        files += found
        if not found:
            empty.append(name)
    return ImageFolderListing(files, f"{len(classes)} class folders", empty)


def check_image_folder(
    path: Union[str, Path, None],
    key: str,
    sample: int = DEFAULT_SAMPLE,
    no_labels: Optional[bool] = None,
) -> int:
    """Checks a folder as torchvision's ``ImageFolder`` (or, with ``no_labels``, solo-learn's
    ``CustomDatasetWithoutLabels``) will read it.

    Every file's extension and size is checked; ``sample`` files spread over the folder are
    opened and decoded as the data loader will (opening every image would take minutes on
    ImageNet).

    Args:
        path (Union[str, Path, None]): the folder.
        key (str): the setting or argument it comes from (``data.train_path``), for messages.
        sample (int): how many files to open and decode. Defaults to 64.
        no_labels (Optional[bool]): True: a flat folder of images (``data.no_labels=True``),
            of which solo-learn opens every entry, whatever its name; False: a pretraining
            folder with classes (the message then mentions ``data.no_labels``); None: an
            evaluation folder with classes.

    Returns:
        int: the number of images found.
    """

    files, layout, empty = list_image_folder(path, key, no_labels)
    if empty:
        raise DataCheckError(
            f"{key}={path}: the class folders {_listed(empty)} hold no image file (extensions "
            f"{', '.join(IMG_EXTENSIONS)}), which torchvision's ImageFolder refuses. Fix: add "
            "images to them or remove them (each class folder is a class)."
        )
    if not files:
        raise DataCheckError(f"{key}={path} holds no file. Fix: point {key} to the images.")
    unreadable = [name for name, size in files if size == NO_SIZE]
    if unreadable:
        raise DataCheckError(
            f"{key}={path}: {len(unreadable)} image files cannot be read (broken links, no "
            f"permission): {_listed(unreadable)}. Fix: delete or replace them, or make them "
            "readable (the data loader would stop on them in the middle of an epoch)."
        )
    empty_files = [name for name, size in files if size == 0]
    if empty_files:
        raise DataCheckError(
            f"{key}={path}: {len(empty_files)} image files are empty (0 bytes): "
            f"{_listed(empty_files)}. Fix: delete or replace them (the data loader would stop on "
            "them in the middle of an epoch)."
        )
    opened = _spread([name for name, _ in files], sample)
    broken = [problem for problem in map(image_file_problem, opened) if problem is not None]
    if broken:
        raise DataCheckError(
            f"{key}={path}: files the data loader would read are not images it can open: "
            f"{_listed(broken)}. Checked: the names and sizes of all {len(files)} files of "
            f"{layout}, and opened {len(opened)} of them (a sample; others may be broken too). "
            "Fix: delete or replace them (the data loader would stop on them in the middle of an "
            f"epoch); `solo-co-data check {path}` opens every file and lists all that fail."
        )
    return len(files)


def check_path_exists(path: Optional[Union[str, Path]], key: str) -> None:
    """Checks that a data file or folder (an HDF5 file, a dataset root) exists."""

    if path is None or not Path(path).exists():
        raise DataCheckError(f"{key}={path} does not exist. Fix: set {key} to the data's path.")
