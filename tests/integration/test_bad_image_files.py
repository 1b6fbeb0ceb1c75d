"""A bad image file beyond the start-up check's sample (issue 23): the case of a folder of real
CIFAR-10 JPEGs whose last file is truncated. The sample of 64 misses it; solo-learn's
``main_pretrain.py`` then stops in the middle of epoch 0, in a data-loader worker, with one line
that names the file and the fix (not PIL's ``OSError: Truncated File Read`` and a stack trace);
with ``++data.check_all_images=True`` it stops before training, with every bad file listed."""

import pytest
from omegaconf import OmegaConf

from solo_coplugin import preflight
from solo_coplugin.data.image_check import check_all_files
from solo_coplugin.data_checks import TRUNCATED, check_image_folder

from .test_bad_inputs_more import custom_config, run_cfg, stopped  # noqa: F401 (fixtures)
from .test_ddp import small_overrides
from .test_scripts import SOLO_ROOT, main_pretrain_overrides, run

# the start-up checks run in-process here and wrap the data sets' __getitem__ for the process
pytestmark = pytest.mark.usefixtures("loader_wrappers_restored")

#: 2 classes of 40 images: more than the 64 the start-up check opens, 10 steps of 8
CLASSES, PER_CLASS = 2, 40

needs_main_pretrain = pytest.mark.skipif(
    not (SOLO_ROOT / "main_pretrain.py").exists(),
    reason=f"solo-learn's main_pretrain.py is not next to its package ({SOLO_ROOT})",
)


@pytest.fixture
def last_file_truncated(cifar10_subset, tmp_path):
    """80 real CIFAR-10 JPEGs in ImageFolder layout; the last file of the last class is cut at
    300 of its bytes. Returns the folder and that file."""

    root = tmp_path / "train"
    classes = sorted(p for p in (cifar10_subset / "train").iterdir() if p.is_dir())[:CLASSES]
    for folder in classes:
        (root / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir())[:PER_CLASS]:
            (root / folder.name / image.name).write_bytes(image.read_bytes())
    last = sorted((root / classes[-1].name).iterdir())[-1]
    last.write_bytes(last.read_bytes()[:300])
    return root, last


def test_the_sample_check_passes_and_the_full_check_finds_the_file(last_file_truncated):
    root, last = last_file_truncated
    assert check_image_folder(root, "data.train_path") == CLASSES * PER_CLASS
    report = check_all_files(root, "data.train_path", progress=False)
    assert [(p.path, p.kind) for p in report.problems] == [(str(last), TRUNCATED)]


def test_check_all_images_lists_every_bad_file_before_training(run_cfg, tmp_path):  # noqa: F811
    cat, dog = tmp_path / "train" / "cat", tmp_path / "train" / "dog"
    (cat / "page.jpg").write_text("<html>a web page saved as .jpg</html>")
    (dog / "1.png").write_bytes((dog / "1.png").read_bytes()[:50])  # cut in its pixel data
    run_cfg.data.check_all_images = True
    message = stopped(run_cfg)
    assert message.startswith(
        f"solo-coplugin: data.train_path={tmp_path / 'train'}: opened all 5 files of 2 class "
        "folders in "
    )
    assert ": 2 files the data loader would stop on." in message
    assert f"  not an image (1):\n    {cat / 'page.jpg'}  [UnidentifiedImageError: " in message
    assert f"  truncated (1):\n    {dog / '1.png'}  [OSError: image file is truncated]" in message
    assert "Fix: remove or replace each listed file" in message


def test_check_all_images_checks_the_validation_folder_too(run_cfg, tmp_path, capsys):  # noqa
    run_cfg.data.check_all_images = True
    preflight.PreflightCallback().on_job_start(config=run_cfg)
    out = capsys.readouterr().out
    for key, folder in (("data.train_path", "train"), ("data.val_path", "val")):
        assert f"solo-coplugin: {key}={tmp_path / folder}: opened all 4 files of 2 class " in out
    (tmp_path / "val" / "cat" / "0.png").write_bytes(b"")
    assert f"  empty file (1):\n    {tmp_path / 'val' / 'cat' / '0.png'}  [0 bytes]" in (
        stopped(run_cfg)
    )


@pytest.mark.parametrize("value", ["yes", 1])
def test_check_all_images_must_be_true_or_false(run_cfg, value):  # noqa: F811
    OmegaConf.update(run_cfg, "data.check_all_images", value, force_add=True)
    message = stopped(run_cfg)
    assert f"data.check_all_images must be True or False, got {value!r}. Fix: " in message


@needs_main_pretrain
def test_main_pretrain_names_the_bad_file_mid_epoch_or_lists_it_before(
    last_file_truncated, tmp_path
):
    root, last = last_file_truncated
    _, _, small = small_overrides("co_byol")

    def pretrain(out_dir, *extra):
        args = [
            "--config-name",
            "co_byol.yaml",
            *small,
            # the case: the error comes from a worker
            *main_pretrain_overrides(root, out_dir, workers=1),
            *extra,
        ]
        result = run("main_pretrain.py", args)
        assert result.returncode == 1, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        lines = [l for l in result.stderr.splitlines() if l.startswith("solo-coplugin: ")]
        assert len(lines) == 1, result.stderr[-3000:]
        return result.stderr[result.stderr.index(lines[0]) :]

    message = pretrain(tmp_path / "mid_epoch")
    assert message.strip() == (
        f"solo-coplugin: the data loader cannot read {last}: truncated (OSError: Truncated File "
        f"Read). Fix: remove or replace the file; `solo-co-data check {root}` lists every such "
        "file of the folder (++data.check_all_images=True checks them all before a run trains)."
    )
    assert not list((tmp_path / "mid_epoch").rglob("*.ckpt"))  # it stopped in epoch 0

    message = pretrain(tmp_path / "before", "++data.check_all_images=True")
    assert message.startswith(f"solo-coplugin: data.train_path={root}: opened all 80 files ")
    assert f"  truncated (1):\n    {last}  [OSError: Truncated File Read]" in message
    assert not (tmp_path / "before").exists()  # nothing written
