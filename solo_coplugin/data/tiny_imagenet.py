"""Turn a ``tiny-imagenet-200`` download into an ImageFolder with ``train/`` and ``val/``.

Tiny-ImageNet (Stanford CS231n) ships its training images as ``train/<wnid>/images/*.JPEG`` and
its validation images in one folder, ``val/images/``, labelled by ``val/val_annotations.txt``;
``wnids.txt`` lists the classes. solo-learn's custom dataset, ``main_linear.py`` and
``solo-co-bench`` read an ImageFolder (``<split>/<class>/<image>``), so this command writes one:

    solo-co-data tiny-imagenet tiny-imagenet-200 datasets/tiny-imagenet --standard-200
    solo-co-data tiny-imagenet tiny-imagenet-200 datasets/tin-100 --standard-200 --classes 100

Files are hard links to the download where the file system allows (no extra space), copies
otherwise (``--copy`` always copies). Before writing anything it checks the download: every
class folder of ``train/`` is listed in ``wnids.txt`` and has images, every listed class has a
folder, every validation image is annotated with a listed class, and each class has 500 training
and 50 validation images (the dataset's counts; ``--any-count`` accepts others). Some copies in
circulation list more than the standard 200 classes (one has ``n02480855`` and ``n10148035``
appended, 202 classes): the command names such classes and asks for a choice, ``--standard-200``
(the benchmark's classes, what published Tiny-ImageNet numbers use) or ``--all-listed``, instead
of silently training on a different dataset. ``--classes N --seed S`` keeps a seeded subset of N
of the kept classes (the same N and S give the same classes on every machine). ``DST/info.json``
records the source, the choices, the classes and the counts; running the same command again is a
no-op, and a ``DST`` written with other choices is refused.
"""

import argparse
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

#: the 200 classes of the standard Tiny-ImageNet-200, in its ``wnids.txt`` order
STANDARD_200 = tuple("""
    n02124075 n04067472 n04540053 n04099969 n07749582 n01641577 n02802426 n09246464 n07920052
    n03970156 n03891332 n02106662 n03201208 n02279972 n02132136 n04146614 n07873807 n02364673
    n04507155 n03854065 n03838899 n03733131 n01443537 n07875152 n03544143 n09428293 n03085013
    n02437312 n07614500 n03804744 n04265275 n02963159 n02486410 n01944390 n09256479 n02058221
    n04275548 n02321529 n02769748 n02099712 n07695742 n02056570 n02281406 n01774750 n02509815
    n03983396 n07753592 n04254777 n02233338 n04008634 n02823428 n02236044 n03393912 n07583066
    n04074963 n01629819 n09332890 n02481823 n03902125 n03404251 n09193705 n03637318 n04456115
    n02666196 n03796401 n02795169 n02123045 n01855672 n01882714 n02917067 n02988304 n04398044
    n02843684 n02423022 n02669723 n04465501 n02165456 n03770439 n02099601 n04486054 n02950826
    n03814639 n04259630 n03424325 n02948072 n03179701 n03400231 n02206856 n03160309 n01984695
    n03977966 n03584254 n04023962 n02814860 n01910747 n04596742 n03992509 n04133789 n03937543
    n02927161 n01945685 n02395406 n02125311 n03126707 n04532106 n02268443 n02977058 n07734744
    n03599486 n04562935 n03014705 n04251144 n04356056 n02190166 n03670208 n02002724 n02074367
    n04285008 n04560804 n04366367 n02403003 n07615774 n04501370 n03026506 n02906734 n01770393
    n04597913 n03930313 n04118538 n04179913 n04311004 n02123394 n04070727 n02793495 n02730930
    n02094433 n04371430 n04328186 n03649909 n04417672 n03388043 n01774384 n02837789 n07579787
    n04399382 n02791270 n03089624 n02814533 n04149813 n07747607 n03355925 n01983481 n04487081
    n03250847 n03255030 n02892201 n02883205 n03100240 n02415577 n02480495 n01698640 n01784675
    n04376876 n03444034 n01917289 n01950731 n03042490 n07711569 n04532670 n03763968 n07768694
    n02999410 n03617480 n06596364 n01768244 n02410509 n03976657 n01742172 n03980874 n02808440
    n02226429 n02231487 n02085620 n01644900 n02129165 n02699494 n03837869 n02815834 n07720875
    n02788148 n02909870 n03706229 n07871810 n03447447 n02113799 n12267677 n03662601 n02841315
    n07715103 n02504458
    """.split())
TRAIN_PER_CLASS = 500
VAL_PER_CLASS = 50
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
INFO = "info.json"


class TinyImageNetError(ValueError):
    """The download or the destination cannot give the dataset asked for; the message says why
    and what to do."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``tiny-imagenet`` subcommand's arguments."""

    parser.add_argument("src", type=Path, help="the tiny-imagenet-200 folder (with wnids.txt)")
    parser.add_argument("dst", type=Path, help="the ImageFolder to write (train/ and val/)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--standard-200",
        action="store_true",
        help="keep the standard Tiny-ImageNet-200 classes only (drop classes appended to wnids.txt)",
    )
    which.add_argument(
        "--all-listed", action="store_true", help="keep every class that wnids.txt lists"
    )
    parser.add_argument("--classes", type=int, help="keep a seeded subset of N classes")
    parser.add_argument("--seed", type=int, default=0, help="the subset's seed (default 0)")
    parser.add_argument("--copy", action="store_true", help="copy the files instead of linking")
    parser.add_argument(
        "--any-count",
        action="store_true",
        help=f"accept classes without {TRAIN_PER_CLASS} training and {VAL_PER_CLASS} validation "
        "images",
    )


def run(args: argparse.Namespace) -> int:
    """Checks the download and writes the ImageFolder; prints what it did."""

    try:
        info = _convert_args(args)
    except TinyImageNetError as error:
        print(f"solo-co-data tiny-imagenet: {error}", file=sys.stderr)
        return 1
    print(
        f"{args.dst}: {len(info['classes'])} classes, {info['train_images']} training and "
        f"{info['val_images']} validation images ({info['files']})"
    )
    return 0


def _convert_args(args: argparse.Namespace) -> Dict:
    return convert(
        args.src,
        args.dst,
        standard_200=args.standard_200,
        all_listed=args.all_listed,
        classes=args.classes,
        seed=args.seed,
        copy=args.copy,
        any_count=args.any_count,
        say=print,
    )


def _images(folder: Path) -> List[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_download(src: Path) -> Dict:
    """The download's classes, training images and validation labels, checked for consistency.

    Returns:
        Dict: ``listed`` (wnids.txt order), ``train`` (wnid -> image paths), ``val`` (wnid ->
        image paths), ``words`` (wnid -> description, where words.txt has it).
    """

    wnids_file = src / "wnids.txt"
    if not wnids_file.is_file():
        raise TinyImageNetError(
            f"{wnids_file} does not exist: {src} is not a tiny-imagenet-200 folder. Fix: pass the "
            "folder that holds wnids.txt, train/ and val/."
        )
    listed = [w for w in wnids_file.read_text().split() if w]
    if len(set(listed)) != len(listed):
        raise TinyImageNetError(f"{wnids_file} lists a class twice; fix the file.")
    train_root = src / "train"
    if not train_root.is_dir():
        raise TinyImageNetError(f"{train_root} does not exist. Fix: unpack train/ into {src}.")
    folders = sorted(p.name for p in train_root.iterdir() if p.is_dir() and p.name[0] != ".")
    unlisted = [f for f in folders if f not in listed]
    if unlisted:
        raise TinyImageNetError(
            f"{train_root} has class folders that {wnids_file.name} does not list: "
            f"{', '.join(unlisted)}. Fix: remove them, or add them to wnids.txt if they belong."
        )
    train = {}
    for wnid in listed:
        images = _images(train_root / wnid / "images") or _images(train_root / wnid)
        if not images:
            raise TinyImageNetError(
                f"class {wnid} is listed in {wnids_file.name} but {train_root / wnid} has no "
                "images (train/<wnid>/images/*.JPEG). Fix: restore the class from the download, "
                "or remove it from wnids.txt."
            )
        train[wnid] = images
    annotations = src / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise TinyImageNetError(f"{annotations} does not exist. Fix: unpack val/ into {src}.")
    val: Dict[str, List[Path]] = {wnid: [] for wnid in listed}
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        if not line.strip():
            continue
        name, wnid = line.split("\t")[:2]
        if wnid not in val:
            raise TinyImageNetError(
                f"{annotations}:{number} labels {name} with {wnid}, which {wnids_file.name} does "
                "not list. Fix: the annotations and wnids.txt come from different downloads."
            )
        path = src / "val" / "images" / name
        if not path.is_file():
            raise TinyImageNetError(f"{annotations}:{number} names {path}, which does not exist.")
        val[wnid].append(path)
    words = {}
    if (src / "words.txt").is_file():
        for line in (src / "words.txt").read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid] = text
    return {"listed": listed, "train": train, "val": val, "words": words}


def choose_classes(
    listed: Sequence[str],
    standard_200: bool,
    all_listed: bool,
    classes: Optional[int],
    seed: int,
    words: Dict[str, str],
    say=print,
) -> List[str]:
    """The classes to keep, in ``wnids.txt`` order; refuses to guess between standard and listed."""

    extra = [w for w in listed if w not in STANDARD_200]
    missing = [w for w in STANDARD_200 if w not in listed]
    if extra:
        named = ", ".join(f"{w} ({words.get(w, '?').split(',')[0]})" for w in extra)
        if not (standard_200 or all_listed):
            raise TinyImageNetError(
                f"wnids.txt lists {len(listed)} classes, {len(extra)} of them not among the "
                f"standard Tiny-ImageNet-200 classes: {named}. Fix: --standard-200 to keep the "
                "standard 200 (what published Tiny-ImageNet results use), or --all-listed to keep "
                f"all {len(listed)}."
            )
        if standard_200:
            say(f"dropping {len(extra)} classes that are not standard Tiny-ImageNet-200: {named}")
        else:
            say(f"keeping {len(extra)} classes that are not standard Tiny-ImageNet-200: {named}")
    if standard_200 and missing:
        raise TinyImageNetError(
            f"--standard-200: the download lacks {len(missing)} standard classes "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}). Fix: a complete "
            "download, or --all-listed to use the classes it has."
        )
    kept = [w for w in listed if w in STANDARD_200] if standard_200 else list(listed)
    if classes is not None:
        if not 1 <= classes <= len(kept):
            raise TinyImageNetError(
                f"--classes {classes}: choose between 1 and the {len(kept)} classes kept."
            )
        chosen = set(random.Random(seed).sample(sorted(kept), classes))
        kept = [w for w in kept if w in chosen]
    return kept


def check_counts(download: Dict, kept: Sequence[str]) -> None:
    """Refuses a class without the dataset's 500 training and 50 validation images."""

    wrong = [
        f"{w} ({len(download['train'][w])} train, {len(download['val'][w])} val)"
        for w in kept
        if len(download["train"][w]) != TRAIN_PER_CLASS or len(download["val"][w]) != VAL_PER_CLASS
    ]
    if wrong:
        raise TinyImageNetError(
            f"Tiny-ImageNet has {TRAIN_PER_CLASS} training and {VAL_PER_CLASS} validation images "
            f"per class; {len(wrong)} classes differ: {', '.join(wrong[:5])}"
            f"{', ...' if len(wrong) > 5 else ''}. Fix: a complete download, or --any-count."
        )


def _place(source: Path, target: Path, copy: bool) -> str:
    if not copy:
        try:
            os.link(source, target)
            return "hard links"
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    shutil.copy2(source, target)
    return "copies"


def convert(
    src: Path,
    dst: Path,
    standard_200: bool = False,
    all_listed: bool = False,
    classes: Optional[int] = None,
    seed: int = 0,
    copy: bool = False,
    any_count: bool = False,
    say=print,
) -> Dict:
    """Checks the download in ``src`` and writes ``dst/train/<wnid>/`` and ``dst/val/<wnid>/``.

    Args:
        src (Path): the ``tiny-imagenet-200`` folder.
        dst (Path): the ImageFolder to write (absent or empty; or written before with the same
            choices, then nothing is done).
        standard_200 (bool): keep the standard 200 classes only.
        all_listed (bool): keep every class of ``wnids.txt``.
        classes (Optional[int]): keep a seeded subset of this many classes.
        seed (int): the subset's seed.
        copy (bool): copy instead of hard-linking.
        any_count (bool): accept classes without 500 training and 50 validation images.
        say (Callable): where notes go.

    Returns:
        Dict: what ``dst/info.json`` records.
    """

    src, dst = Path(src).resolve(), Path(dst)
    download = read_download(src)
    kept = choose_classes(
        download["listed"], standard_200, all_listed, classes, seed, download["words"], say
    )
    if not any_count:
        check_counts(download, kept)
    choices = {
        "source": str(src),
        "standard_200": standard_200,
        "all_listed": all_listed,
        "subset": None if classes is None else {"classes": classes, "seed": seed},
        "classes": kept,
    }
    if (dst / INFO).is_file():
        earlier = json.loads((dst / INFO).read_text())
        if {k: earlier.get(k) for k in choices} == choices:
            say(f"{dst} already holds this dataset ({dst / INFO}): nothing to do")
            return earlier
        raise TinyImageNetError(
            f"{dst} was written with other choices ({dst / INFO}). Fix: another destination, or "
            "remove it first."
        )
    if dst.exists() and any(dst.iterdir()):
        raise TinyImageNetError(f"{dst} exists and is not empty. Fix: an empty or new folder.")
    placed = set()
    for split in ("train", "val"):
        for wnid in kept:
            folder = dst / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for image in download[split][wnid]:
                placed.add(_place(image, folder / image.name, copy))
    info = {
        **choices,
        "words": {w: download["words"].get(w, "") for w in kept},
        "train_images": sum(len(download["train"][w]) for w in kept),
        "val_images": sum(len(download["val"][w]) for w in kept),
        "files": " and ".join(sorted(placed)) or "none",
    }
    (dst / INFO).write_text(json.dumps(info, indent=2) + "\n")
    return info
