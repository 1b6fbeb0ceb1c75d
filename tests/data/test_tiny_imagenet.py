"""``solo-co-data tiny-imagenet``: the download's layout in, an ImageFolder out, every bad case
refused with the class or file named."""

import argparse
import json
import os
import random
from pathlib import Path

import pytest
from PIL import Image

from solo_coplugin.data.tiny_imagenet import (
    STANDARD_200,
    TinyImageNetError,
    add_arguments,
    convert,
    run,
)

EXTRA = ("n02480855", "n10148035")  # the two classes appended in the copy this project can get


def make_download(root: Path, wnids, train=3, val=2, extra_folders=()) -> Path:
    """A tiny-imagenet-200 layout with ``train`` and ``val`` 8 px images per class."""

    src = root / "tiny-imagenet-200"
    (src / "val" / "images").mkdir(parents=True)
    (src / "wnids.txt").write_text("\n".join(wnids))  # no final newline, as in that copy
    (src / "words.txt").write_text("\n".join(f"{w}\tthing {w}, other" for w in wnids) + "\n")
    lines = []
    for c, wnid in enumerate(wnids):
        folder = src / "train" / wnid / "images"
        folder.mkdir(parents=True)
        (src / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(train):
            Image.new("RGB", (8, 8), (c, i, 0)).save(folder / f"{wnid}_{i}.JPEG")
        for i in range(val):
            name = f"val_{c * val + i}.JPEG"
            Image.new("RGB", (8, 8), (c, 0, i)).save(src / "val" / "images" / name)
            lines.append(f"{name}\t{wnid}\t0\t0\t8\t8")
    (src / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (src / "train" / ".DS_Store").write_text("")  # as in the copy: not a class
    for name in extra_folders:
        (src / "train" / name / "images").mkdir(parents=True)
    return src


def test_writes_an_image_folder_of_links_with_the_classes_and_counts(tmp_path):
    wnids = list(STANDARD_200[:4])
    src = make_download(tmp_path, wnids)
    info = convert(src, tmp_path / "out", any_count=True, say=lambda _: None)
    for split, count in (("train", 3), ("val", 2)):
        assert sorted(os.listdir(tmp_path / "out" / split)) == sorted(wnids)
        for wnid in wnids:
            files = sorted((tmp_path / "out" / split / wnid).iterdir())
            assert len(files) == count
            assert all(f.stat().st_nlink == 2 for f in files)  # hard links to the download
    # every validation image lands in its annotated class, and is that very image
    annotations = dict(
        line.split("\t")[:2]
        for line in (src / "val" / "val_annotations.txt").read_text().split("\n")
        if line
    )
    for name, wnid in annotations.items():
        assert (tmp_path / "out" / "val" / wnid / name).samefile(src / "val" / "images" / name)
    assert (info["train_images"], info["val_images"], info["files"]) == (12, 8, "hard links")
    assert json.loads((tmp_path / "out" / "info.json").read_text())["classes"] == wnids
    # torchvision reads it as an ImageFolder with the classes in order
    from torchvision.datasets import ImageFolder

    data = ImageFolder(str(tmp_path / "out" / "val"))
    assert data.classes == sorted(wnids) and len(data) == 8


def test_the_appended_classes_need_a_choice_and_standard_200_drops_them(tmp_path):
    src = make_download(tmp_path, list(STANDARD_200[:3]) + list(EXTRA))
    with pytest.raises(TinyImageNetError, match=r"n02480855 \(thing n02480855\).*--standard-200"):
        convert(src, tmp_path / "a", any_count=True)
    assert not (tmp_path / "a").exists()  # nothing written before the checks pass
    notes = []
    with pytest.raises(TinyImageNetError, match=r"lacks 197 standard classes"):
        convert(src, tmp_path / "b", standard_200=True, any_count=True, say=notes.append)
    info = convert(src, tmp_path / "c", all_listed=True, any_count=True, say=notes.append)
    assert info["classes"] == list(STANDARD_200[:3]) + list(EXTRA)
    assert any("keeping 2 classes that are not standard" in n for n in notes)


def test_standard_200_on_a_full_listing(tmp_path):
    src = make_download(tmp_path, list(STANDARD_200) + list(EXTRA), train=1, val=1)
    notes = []
    info = convert(src, tmp_path / "out", standard_200=True, any_count=True, say=notes.append)
    assert info["classes"] == list(STANDARD_200) and len(os.listdir(tmp_path / "out/train")) == 200
    assert notes == [
        "dropping 2 classes that are not standard Tiny-ImageNet-200: n02480855 (thing "
        "n02480855), n10148035 (thing n10148035)"
    ]


def test_a_seeded_subset_is_the_same_for_the_same_seed(tmp_path):
    wnids = list(STANDARD_200[:10])
    src = make_download(tmp_path, wnids, train=1, val=1)
    first = convert(src, tmp_path / "a", classes=4, seed=3, any_count=True)["classes"]
    again = convert(src, tmp_path / "b", classes=4, seed=3, any_count=True)["classes"]
    other = convert(src, tmp_path / "c", classes=4, seed=4, any_count=True)["classes"]
    assert first == again != other and len(first) == 4
    assert first == [w for w in wnids if w in set(random.Random(3).sample(sorted(wnids), 4))]
    with pytest.raises(TinyImageNetError, match=r"--classes 11: choose between 1 and the 10"):
        convert(src, tmp_path / "d", classes=11, any_count=True)


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("unlisted", r"class folders that wnids.txt does not list: n99999999"),
        ("empty", r"class n02124075 is listed in wnids.txt but .* has no images"),
        ("counts", r"500 training and 50 validation images per class; 2 classes differ: "),
        ("label", r"val_annotations.txt:1 labels val_0.JPEG with n00000001, which wnids.txt"),
    ],
)
def test_a_broken_download_is_refused_naming_what_is_wrong(tmp_path, breakage, message):
    wnids = list(STANDARD_200[:2])
    src = make_download(
        tmp_path, wnids, extra_folders=["n99999999"] if breakage == "unlisted" else ()
    )
    if breakage == "empty":
        for image in (src / "train" / wnids[0] / "images").iterdir():
            image.unlink()
    if breakage == "label":
        annotations = src / "val" / "val_annotations.txt"
        annotations.write_text(annotations.read_text().replace(wnids[0], "n00000001", 1))
    with pytest.raises(TinyImageNetError, match=message):
        convert(src, tmp_path / "out")


def test_same_choices_again_is_a_no_op_and_other_choices_are_refused(tmp_path):
    src = make_download(tmp_path, list(STANDARD_200[:3]), train=1, val=1)
    convert(src, tmp_path / "out", any_count=True)
    notes = []
    convert(src, tmp_path / "out", any_count=True, say=notes.append)
    assert "nothing to do" in notes[-1]
    with pytest.raises(TinyImageNetError, match=r"written with other choices"):
        convert(src, tmp_path / "out", classes=2, any_count=True)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("")
    with pytest.raises(TinyImageNetError, match=r"exists and is not empty"):
        convert(src, tmp_path / "busy", any_count=True)


def test_the_subcommand_copies_on_request(tmp_path, capsys):
    src = make_download(tmp_path, list(STANDARD_200[:2]), train=1, val=1)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([str(src), str(tmp_path / "out"), "--copy", "--any-count"])
    assert run(args) == 0
    assert "2 classes, 2 training and 2 validation images (copies)" in capsys.readouterr().out
    copied = next((tmp_path / "out" / "train").rglob("*.JPEG"))
    assert copied.stat().st_nlink == 1
    with pytest.raises(SystemExit):  # one choice at most
        parser.parse_args([str(src), "x", "--standard-200", "--all-listed"])


def test_the_command_says_what_is_wrong_in_one_line(tmp_path, capsys):
    from solo_coplugin.data.__main__ import main

    src = make_download(tmp_path, list(STANDARD_200[:2]) + [EXTRA[0]], train=1, val=1)
    with pytest.raises(SystemExit) as exit:
        main(["tiny-imagenet", str(src), str(tmp_path / "out"), "--any-count"])
    assert exit.value.code == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("solo-co-data tiny-imagenet: wnids.txt lists 3 classes")
        and "Traceback" not in err
    )
    with pytest.raises(SystemExit) as exit:
        main(["tiny-imagenet", str(src), str(tmp_path / "out"), "--any-count", "--all-listed"])
    assert exit.value.code == 0 and len(list((tmp_path / "out" / "train").iterdir())) == 3
