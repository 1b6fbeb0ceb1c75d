"""``solo-co-data check``: every file of a folder opened as the data loader opens it, each problem
listed; the sample check of the start-up checks shares its per-file check; a bad file the data
loader meets names itself (pure torchvision and PIL: no solo-learn needed)."""

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from solo_coplugin.data import __main__ as cli
from solo_coplugin.data.image_check import check_all_files
from solo_coplugin.data.loader_errors import BadImageFileError, bad_file_error_in, name_bad_files
from solo_coplugin.data_checks import (
    EMPTY,
    NOT_AN_IMAGE,
    TRUNCATED,
    UNDECODABLE,
    UNREADABLE,
    DataCheckError,
    check_image_folder,
    image_file_problem,
)


def jpeg_folder(root, classes=10, per_class=100, size=32):
    """``classes * per_class`` small JPEGs of noise in ImageFolder layout (CIFAR's sizes)."""

    generator = torch.Generator().manual_seed(0)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.randint(0, 256, (size, size, 3), generator=generator, dtype=torch.uint8)
            Image.fromarray(pixels.numpy()).save(folder / f"{i:04d}.jpg", quality=90)
    return root


def truncate(path, keep=300):
    path.write_bytes(path.read_bytes()[:keep])


@pytest.fixture
def broken_folder(tmp_path):
    """21 images in 2 classes, 5 of them broken in 5 ways, and a class folder without images."""

    root = jpeg_folder(tmp_path / "data", classes=2, per_class=10)
    truncate(root / "class1" / "0009.jpg")
    (root / "class0" / "0003.jpg").write_text("<html>a web page saved as .jpg</html>")
    (root / "class0" / "0005.jpg").write_bytes(b"")
    (root / "class0" / "0007.jpg").unlink()
    (root / "class0" / "0007.jpg").symlink_to(tmp_path / "moved_away.jpg")  # a broken link
    with Image.open(root / "class1" / "0002.jpg") as image:
        image.save(root / "class1" / "0002.png")
    data = bytearray((root / "class1" / "0002.png").read_bytes())
    data[100:300] = bytes(200)  # zeroed compressed data (a JPEG decoder would not notice)
    (root / "class1" / "0002.png").write_bytes(bytes(data))
    (root / "class2").mkdir()
    (root / "class2" / "notes.txt").write_text("no image extension")
    return root


def test_every_problem_is_listed_file_by_file(broken_folder):
    report = check_all_files(broken_folder, processes=1, progress=False)
    assert not report.ok and report.files == 21 and report.layout == "3 class folders"
    kinds = {problem.path.split("data/")[1]: problem.kind for problem in report.problems}
    assert kinds == {
        "class0/0003.jpg": NOT_AN_IMAGE,
        "class0/0005.jpg": EMPTY,
        "class0/0007.jpg": UNREADABLE,
        "class1/0002.png": UNDECODABLE,
        "class1/0009.jpg": TRUNCATED,
    }
    assert report.empty_classes == ["class2"]

    summary = report.summary("data.train_path")
    assert summary.startswith(f"data.train_path={broken_folder}: opened all 21 files of 3 class ")
    assert ": 5 files the data loader would stop on, 1 class folder without images." in summary
    assert f"  broken image data (1):\n    {broken_folder / 'class1' / '0002.png'}  [OSError: " in (
        summary
    )
    assert f"    {broken_folder / 'class1' / '0009.jpg'}  [OSError: Truncated File Read]" in summary
    assert f"  empty file (1):\n    {broken_folder / 'class0' / '0005.jpg'}  [0 bytes]" in summary
    assert f"  class folders without images (1):\n    {broken_folder / 'class2'}" in summary
    assert "Fix: remove or replace each listed file" in summary


def test_the_start_up_check_names_a_broken_link_without_opening_it(broken_folder):
    # every file is listed with its size: a file that has none stops the check (no stack trace)
    with pytest.raises(DataCheckError) as error:
        check_image_folder(broken_folder / "class0", "data.train_path", sample=1, no_labels=True)
    assert str(error.value).startswith(
        f"data.train_path={broken_folder / 'class0'}: 1 image files cannot be read (broken links, "
        f"no permission): {broken_folder / 'class0' / '0007.jpg'}. Fix: "
    )


def test_processes_find_the_same_problems_as_one(broken_folder):
    one = check_all_files(broken_folder, processes=1, progress=False)
    two = check_all_files(broken_folder, processes=2, progress=False)
    assert two.problems == one.problems and two.empty_classes == one.empty_classes


def test_a_sound_folder(tmp_path):
    root = jpeg_folder(tmp_path / "data", classes=2, per_class=5)
    report = check_all_files(root, processes=2, progress=False)
    assert report.ok and report.files == 10
    assert report.summary().endswith(": all readable.")


def test_the_sample_check_misses_the_last_file_that_the_full_check_finds(tmp_path):
    # the case: 1,000 images, one truncated JPEG, the last file of the last class
    root = jpeg_folder(tmp_path / "data")
    last = root / "class9" / "0099.jpg"
    truncate(last)
    assert check_image_folder(root, "data.train_path") == 1000  # opens 64 of them
    report = check_all_files(root, "data.train_path", processes=2, progress=False)
    assert [(p.path, p.kind) for p in report.problems] == [(str(last), TRUNCATED)]
    with pytest.raises(DataCheckError, match="opened 1000 of them"):
        check_image_folder(root, "data.train_path", sample=1000)  # the same per-file check


def test_solo_co_data_check_exits_with_1_and_the_report(broken_folder, tmp_path, capsys):
    sound = jpeg_folder(tmp_path / "sound", classes=1, per_class=3)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["check", str(sound), str(broken_folder), "--processes", "2", "--no-progress"])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert f"{sound}: opened all 3 files of 1 class folders" in out and "all readable." in out
    assert f"{broken_folder / 'class1' / '0009.jpg'}  [OSError: Truncated File Read]" in out

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["check", str(sound), "--no-progress"])
    assert exit_info.value.code == 0


def test_solo_co_data_check_of_a_folder_that_is_no_image_folder(tmp_path, capsys):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "0.png")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["check", str(tmp_path / "nowhere"), str(tmp_path / "flat"), "--no-progress"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert f"solo-co-data check: FOLDER={tmp_path / 'nowhere'} does not exist. Fix: " in err
    assert f"solo-co-data check: FOLDER={tmp_path / 'flat'} has no class sub-folders. Fix" in err
    with pytest.raises(SystemExit) as exit_info:  # read as a flat folder, it is sound
        cli.main(["check", str(tmp_path / "flat"), "--no-labels", "--no-progress"])
    assert exit_info.value.code == 0


@pytest.mark.parametrize("processes", ["0", "two"])
def test_solo_co_data_check_refuses_bad_process_counts(processes, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["check", str(tmp_path), "--processes", processes])
    assert exit_info.value.code == 2
    assert f"must be a positive integer, got '{processes}'" in capsys.readouterr().err


def test_the_per_file_check_opens_as_the_loader_does(tmp_path):
    jpeg_folder(tmp_path / "data", classes=1, per_class=1)
    image = tmp_path / "data" / "class0" / "0000.jpg"
    assert image_file_problem(image) is None
    truncate(image, keep=100)
    assert image_file_problem(image).kind == TRUNCATED
    with pytest.raises(OSError, match="Truncated File Read"):
        ImageFolder(str(tmp_path / "data"))[0]


# --------------------------------------------------------- a bad file met by the data loader


@pytest.fixture
def naming(loader_wrappers_restored):
    """name_bad_files() for this test only (the original __getitem__ is put back after it)."""

    name_bad_files()
    name_bad_files()  # a second install wraps nothing more


def test_the_data_loader_names_a_file_it_cannot_read(tmp_path, naming):
    root = jpeg_folder(tmp_path / "data", classes=2, per_class=3)
    bad = root / "class1" / "0002.jpg"
    truncate(bad)
    dataset = ImageFolder(str(root))
    assert dataset[0][0].size == (32, 32)
    with pytest.raises(BadImageFileError) as error:
        dataset[5]
    assert str(error.value) == (
        f"the data loader cannot read {bad}: truncated (OSError: Truncated File Read). Fix: "
        f"remove or replace the file; `solo-co-data check {root}` lists every such file of the "
        "folder (++data.check_all_images=True checks them all before a run trains)."
    )
    assert isinstance(error.value.__cause__, OSError)
    assert bad_file_error_in(RuntimeError("another error")) is None
    try:
        try:
            dataset[5]
        except BadImageFileError as inner:
            raise RuntimeError("re-raised by a caller") from inner
    except RuntimeError as outer:
        assert bad_file_error_in(outer) == str(error.value)

    # from a data-loader worker, the main process gets the worker's stack trace as the message:
    # the one line is found in it
    loader = DataLoader(dataset, batch_size=None, num_workers=1)
    with pytest.raises(BadImageFileError) as from_worker:
        list(loader)
    assert "Original Traceback" in str(from_worker.value)
    assert bad_file_error_in(from_worker.value) == str(error.value)


def test_errors_that_are_not_about_the_file_pass_unchanged(tmp_path, naming):
    root = jpeg_folder(tmp_path / "data", classes=1, per_class=2)

    def failing_transform(image):
        raise ValueError("a transform's own error")

    with pytest.raises(ValueError, match="a transform's own error") as error:
        ImageFolder(str(root), transform=failing_transform)[0]
    assert not isinstance(error.value, BadImageFileError)
    with pytest.raises(IndexError):
        ImageFolder(str(root))[7]
