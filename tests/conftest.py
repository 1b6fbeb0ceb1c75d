"""Shared fixtures. Tests under tests/integration/ need solo-learn and are skipped, with the reason,
when it is not importable; everything else runs anywhere (pure torch)."""

import os
import tarfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: the real CIFAR-10 as JPEGs in ImageFolder layout (never committed; see docs/testing.md)
CIFAR10_TAR = Path(
    os.environ.get(
        "SOLO_CO_CIFAR10_TAR", REPO_ROOT.parent / "shared" / "datasets" / "cifar10-jpg.tar.gz"
    )
)

_integration = {"passed": 0, "failed": 0, "skipped": 0}

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2`: two workers side by side, each test's torch and its main_pretrain.py
    # subprocesses on one thread (the runner's rule: torch against torch with all cores' threads
    # thrashes). An explicit OMP_NUM_THREADS wins.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def solo_learn_importable() -> bool:
    try:
        import solo  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(
        reason="solo-learn is not importable: install it from a solo-learn checkout "
        "(`pip install -e <solo-learn>`) to run the integration tests"
    )
    available = solo_learn_importable()
    for item in items:
        if "tests/integration/" in item.nodeid.replace(os.sep, "/"):
            item.add_marker(pytest.mark.solo)
            if not available:
                item.add_marker(skip)


def pytest_runtest_logreport(report):
    if "tests/integration/" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = "skipped" if report.skipped else ("passed" if report.passed else "failed")
        _integration[outcome] += 1


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(
        "solo-learn integration tests: {passed} passed, {failed} failed, "
        "{skipped} skipped".format(**_integration)
    )


@pytest.fixture(scope="session")
def cifar10_subset(tmp_path_factory):
    """A small real CIFAR-10 extract: train/<class>/ (40 per class) and val/<class>/ (10)."""

    if not CIFAR10_TAR.exists():
        pytest.skip(f"real CIFAR-10 archive not found at {CIFAR10_TAR} (set SOLO_CO_CIFAR10_TAR)")
    root = tmp_path_factory.mktemp("cifar10")
    per_class = {"train": 40, "val": 10}
    taken = {}
    with tarfile.open(CIFAR10_TAR) as tar:
        for member in tar:
            parts = Path(member.name).parts  # cifar10/test/<class>/NNNN.jpg
            if not member.isfile() or len(parts) != 4 or parts[1] != "test":
                continue
            cls = parts[2]
            for split, count in per_class.items():
                key = (split, cls)
                if taken.get(key, 0) < count:
                    taken[key] = taken.get(key, 0) + 1
                    target = root / split / cls / parts[3]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(member).read())
                    break
    return root


@pytest.fixture
def loader_wrappers_restored(monkeypatch):
    """The data sets' ``__getitem__`` put back after the test. The CO configs' start-up checks
    (``PreflightCallback.on_job_start``) install :func:`solo_coplugin.data.loader_errors.
    name_bad_files` for the whole process; a test that runs them in-process must not hand the
    wrapped loaders to the tests after it (under ``-n 2`` a worker runs modules in any order)."""

    from torchvision.datasets import DatasetFolder

    monkeypatch.setattr(DatasetFolder, "__getitem__", DatasetFolder.__getitem__)
    try:
        from solo.data.pretrain_dataloader import CustomDatasetWithoutLabels
    except ImportError:
        return
    monkeypatch.setattr(
        CustomDatasetWithoutLabels, "__getitem__", CustomDatasetWithoutLabels.__getitem__
    )
