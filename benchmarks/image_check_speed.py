"""Speed of the full image check (``solo-co-data check``): images opened and decoded per second,
with 1 and more processes, on whole folders.

    python benchmarks/image_check_speed.py cifar10=/data/cifar10 jpg224=/data/jpg224 \
        --processes 1 2 --out benchmarks/results/image_check.md

Each folder is read once untimed first (so every timed pass reads from the file cache, as a
second check of a folder does; a first check of a folder on a slow disk is bounded by the disk
instead), then checked ``--repeats`` times per process count. Prints images/s and writes a
markdown table with the machine's cores and load averages (other jobs on the machine slow the
check down).
``--make-jpg224 SRC DST`` first writes a folder of 224 px JPEGs (quality 90) by resizing the
first images of each class of an ImageFolder of small images, e.g. Tiny-ImageNet's ``train/``.
"""

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import List, Tuple

from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS

from solo_coplugin.data.image_check import check_all_files, default_processes
from solo_coplugin.data_checks import list_image_folder


def make_jpg224(src: Path, dst: Path, classes: int, per_class: int) -> int:
    """Writes ``dst/<class>/<name>.jpg``: the first ``per_class`` images of the first
    ``classes`` class folders of ``src`` (at any depth, as ImageFolder), resized to 224x224
    (bicubic); returns how many."""

    written = 0
    for folder in sorted(p for p in src.iterdir() if p.is_dir())[:classes]:
        (dst / folder.name).mkdir(parents=True, exist_ok=True)
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
        for path in images[:per_class]:
            with Image.open(path) as image:
                image.convert("RGB").resize((224, 224), Image.BICUBIC).save(
                    dst / folder.name / f"{path.stem}.jpg", quality=90
                )
            written += 1
    return written


def image_side(folder: str) -> str:
    """The size of the folder's first image, for the table."""

    first = list_image_folder(folder, "FOLDER").files[0][0]
    with Image.open(first) as image:
        return "x".join(map(str, image.size))


def measure(folders: List[Tuple[str, str]], processes: List[int], repeats: int) -> List[dict]:
    rows = []
    for name, folder in folders:
        check_all_files(folder, processes=max(processes), progress=False)  # warms the file cache
        for count in processes:
            reports = [
                check_all_files(folder, processes=count, progress=False) for _ in range(repeats)
            ]
            rates = sorted(report.images_per_second for report in reports)
            row = {
                "name": name,
                "images": reports[0].files,
                "size": image_side(folder),
                "processes": count,
                "seconds": statistics.median(report.seconds for report in reports),
                "median": statistics.median(rates),
                "lowest": rates[0],
                "highest": rates[-1],
            }
            rows.append(row)
            print(
                f"{name}: {row['images']} images ({row['size']} px), {count} processes: "
                f"{row['median']:.0f} images/s (median of {repeats}; {row['lowest']:.0f} to "
                f"{row['highest']:.0f}), {row['seconds']:.1f} s",
                flush=True,
            )
    return rows


def markdown(rows: List[dict], repeats: int, load_before, load_after, note: str) -> str:
    lines = [
        "# Full image check speed (`solo-co-data check`)",
        "",
        "Written by `benchmarks/image_check_speed.py`. Every file opened and decoded as "
        'torchvision\'s `ImageFolder` loader does (PIL `open` + `convert("RGB")`), from the file '
        f"cache (one untimed pass first), each folder and process count timed {repeats} times.",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after.{' ' + note if note else ''}",
        "",
        "| folder | images | image size (px) | processes | seconds (median) | images/s, median "
        "(lowest to highest) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['images']:,} | {row['size']} | {row['processes']} | "
            f"{row['seconds']:.1f} | {row['median']:,.0f} ({row['lowest']:,.0f} to "
            f"{row['highest']:,.0f}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", metavar="NAME=FOLDER")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, default_processes()])
    parser.add_argument("--repeats", type=int, default=3, help="timed checks of each setting")
    parser.add_argument("--out", type=Path, default=None, help="markdown table to write")
    parser.add_argument("--note", default="", help="a sentence for the table's header")
    parser.add_argument("--make-jpg224", nargs=2, type=Path, metavar=("SRC", "DST"))
    parser.add_argument("--jpg224-classes", type=int, default=20)
    parser.add_argument("--jpg224-per-class", type=int, default=250)
    args = parser.parse_args()

    if args.make_jpg224:
        src, dst = args.make_jpg224
        count = make_jpg224(src, dst, args.jpg224_classes, args.jpg224_per_class)
        print(f"wrote {count} 224 px JPEGs to {dst}")
    folders = [tuple(item.split("=", 1)) for item in args.folders]
    load_before = os.getloadavg()
    start = time.perf_counter()
    rows = measure(folders, sorted(set(args.processes)), args.repeats)
    print(f"{time.perf_counter() - start:.0f} s in all")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(rows, args.repeats, load_before, os.getloadavg(), args.note))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
