"""Open every image of a folder as the data loader will and list each file it would stop on.

The start-up check of a CO run (:mod:`solo_coplugin.preflight`) opens a sample of 64 files: a
folder that passes it can still hold a truncated or broken file further in, which stops the run
when a data-loader worker reaches it, maybe hours in. This check opens and decodes every file
(the same per-file check as the sample, :func:`solo_coplugin.data_checks.image_file_problem`), in
parallel processes, and reports every problem at once, file by file: unreadable, empty, not an
image, truncated, broken image data, and class folders without images:

    solo-co-data check datasets/imagenet/train datasets/imagenet/val
    solo-co-data check datasets/unlabeled --no-labels --processes 8

It exits with 1 when anything is wrong. ``++data.check_all_images=True`` runs it on
``data.train_path`` (and ``data.val_path``) before a CO run trains.
"""

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

from solo_coplugin.data_checks import (
    PROBLEM_KINDS,
    DataCheckError,
    FileProblem,
    image_file_problem,
    list_image_folder,
)

#: files a worker process takes at a time (fewer when the folder is small)
MAX_CHUNK = 64
#: what to do about the files a report lists
FIX_FILES = (
    "Fix: remove or replace each listed file (re-download or re-extract it), then run the check "
    "again."
)
FIX_CLASSES = (
    "Fix: add images to each listed class folder or remove it (torchvision's ImageFolder refuses "
    "a class folder without images)."
)


def default_processes() -> int:
    """The cores this process may run on."""

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class FolderReport:
    """What a full check of one folder found."""

    folder: str
    #: the folder's layout as the loader reads it ("10 class folders")
    layout: str
    #: how many files were opened
    files: int
    seconds: float
    problems: List[FileProblem] = field(default_factory=list)
    empty_classes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.empty_classes and self.files > 0

    @property
    def images_per_second(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else float("inf")

    def summary(self, key: Optional[str] = None) -> str:
        """The report as text: one line when all is well, else every problem, file by file,
        grouped by kind, and the fix.

        Args:
            key (Optional[str]): the setting the folder comes from (``data.train_path``), named
                in the text.
        """

        name = f"{key}={self.folder}" if key else self.folder
        head = (
            f"{name}: opened all {self.files} files of {self.layout} in {self.seconds:.1f} s"
            f" ({self.images_per_second:.0f} images/s)"
        )
        if self.ok:
            return f"{head}: all readable."
        lines = [f"{head}: {self.count_text()}."]
        if self.files == 0:
            lines.append(f"  no image file in {self.folder}")
        if self.empty_classes:
            lines.append(f"  class folders without images ({len(self.empty_classes)}):")
            lines += [f"    {os.path.join(self.folder, name)}" for name in self.empty_classes]
        for kind in PROBLEM_KINDS:
            found = [problem for problem in self.problems if problem.kind == kind]
            if found:
                lines.append(f"  {kind} ({len(found)}):")
                lines += [f"    {problem.path}  [{problem.detail}]" for problem in found]
        if self.empty_classes:
            lines.append(FIX_CLASSES)
        if self.problems:
            lines.append(FIX_FILES)
        return "\n".join(lines)

    def count_text(self) -> str:
        """What is wrong, counted: "3 files the data loader would stop on, 1 class folder
        without images"."""

        parts = []
        if self.problems:
            s = "" if len(self.problems) == 1 else "s"
            parts.append(f"{len(self.problems)} file{s} the data loader would stop on")
        if self.empty_classes:
            s = "" if len(self.empty_classes) == 1 else "s"
            parts.append(f"{len(self.empty_classes)} class folder{s} without images")
        return ", ".join(parts) or "no image file"


def _problems(paths: Sequence[str], processes: int) -> Iterator[Optional[FileProblem]]:
    """:func:`image_file_problem` of every path, in any order, from ``processes`` processes."""

    if processes <= 1 or len(paths) < 2:
        yield from map(image_file_problem, paths)
        return
    chunk = max(1, min(MAX_CHUNK, len(paths) // (processes * 8)))
    with Pool(processes) as pool:
        yield from pool.imap_unordered(image_file_problem, paths, chunksize=chunk)


def check_all_files(
    folder: Union[str, Path],
    key: str = "FOLDER",
    no_labels: Optional[bool] = None,
    processes: Optional[int] = None,
    progress: bool = True,
) -> FolderReport:
    """Opens and decodes every file the data loader will read from ``folder``.

    Args:
        folder (Union[str, Path]): an ImageFolder (``<folder>/<class>/<image>``), or with
            ``no_labels`` a flat folder of images.
        key (str): the setting or argument the folder comes from, for messages about its layout.
        no_labels (Optional[bool]): as in :func:`solo_coplugin.data_checks.check_image_folder`.
        processes (Optional[int]): how many processes open files. Defaults to the cores this
            process may use.
        progress (bool): show a progress bar on stderr.

    Raises:
        DataCheckError: the folder is missing or not laid out as the loader reads it (no file
            is opened then).

    Returns:
        FolderReport: every problem found.
    """

    start = time.perf_counter()
    files, layout, empty_classes = list_image_folder(folder, key, no_labels)
    paths = [path for path, _ in files]
    problems = []
    with _progress_bar(len(paths), str(folder), progress) as bar:
        for problem in _problems(paths, processes or default_processes()):
            bar.update()
            if problem is not None:
                problems.append(problem)
    return FolderReport(
        folder=str(folder),
        layout=layout,
        files=len(paths),
        seconds=time.perf_counter() - start,
        problems=sorted(problems),
        empty_classes=list(empty_classes),
    )


def _progress_bar(total: int, folder: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=f"checking {folder}",
        unit="img",
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``solo-co-data check``."""

    parser.add_argument(
        "folders",
        nargs="+",
        metavar="FOLDER",
        help="an ImageFolder (<folder>/<class>/<image>, as data.train_path and data.val_path), "
        "or with --no-labels a flat folder of images",
    )
    parser.add_argument(
        "--no-labels",
        action="store_true",
        help="the folders are flat folders of images (data.no_labels=True): every entry is read "
        "as an image",
    )
    parser.add_argument(
        "--processes",
        type=_positive_int,
        default=None,
        help=f"processes that open files (default: the cores available, {default_processes()})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    """Checks every folder; prints each one's report on stdout.

    Args:
        args (argparse.Namespace): the arguments of :func:`add_arguments`.

    Returns:
        int: 0 when every file of every folder reads, 1 otherwise.
    """

    failed = False
    for folder in args.folders:
        try:
            report = check_all_files(
                folder,
                key="FOLDER",
                # None, not False: messages about the layout then suggest no config key
                no_labels=args.no_labels or None,
                processes=args.processes,
                progress=not args.no_progress,
            )
        except DataCheckError as error:
            print(f"solo-co-data check: {error}", file=sys.stderr)
            failed = True
            continue
        print(report.summary(), flush=True)
        failed |= not report.ok
    return 1 if failed else 0
