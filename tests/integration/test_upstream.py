"""solo-co-upstream writes the CO methods into a copy of the installed solo-learn checkout, in the
shape of a solo-learn method contribution, and that tree passes solo-learn's own method tests (its
CO tests included) both with this package hidden (not importable, no installed distribution: as
in solo-learn's CI) and with it installed (as on the machine that wrote the tree): there the
plugin leaves solo-learn's own CO methods, backbones and configs in charge.

The CO method tests of the written tree take about 3 s each (up to 10 s) plus a solo-learn
import, so by default the hidden run covers CO-SimCLR, CO-BYOL, CO-DINO and solo-learn's own BYOL
test, and the installed run (the command ``solo-co-upstream`` prints) CO-BYOL and BYOL;
``SOLO_CO_UPSTREAM_ALL=1`` runs every written CO test in both.
"""

import ast
import difflib
import filecmp
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import solo
import yaml

from solo_coplugin import upstream
from solo_coplugin.methods import METHODS

SOLO_ROOT = Path(solo.__file__).resolve().parents[1]
#: the folder that holds the solo_coplugin package (on sys.path for an editable install)
PACKAGE_ROOT = Path(upstream.__file__).resolve().parents[1]
COPIED = ("solo", "tests", "scripts", "docs", "setup.py", "README.md")
EDITED = {
    "README.md",
    "docs/source/index.rst",
    "solo/backbones/__init__.py",
    "solo/losses/__init__.py",
    "solo/methods/__init__.py",
    "solo/methods/base.py",
    "solo/utils/__init__.py",
}
#: every new file is one of these (solo-learn's layout for a method contribution)
NEW_FILE = re.compile(
    r"^(solo/methods/co_\w+\.py"
    r"|solo/losses/co(_\w+)?\.py"
    r"|solo/utils/co/\w+\.py"
    r"|solo/utils/receptive_field\.py"
    r"|solo/backbones/(rf_resnet|small_resnet)/\w+\.py"
    r"|scripts/pretrain/[\w-]+/co_\w+\.yaml"
    r"|scripts/pretrain/tiny-imagenet/(augmentations|wandb)/\w+\.yaml"
    r"|tests/methods/test_co_\w+\.py"
    r"|docs/source/solo/(methods|losses)/co(_\w+)?\.rst)$"
)
DEFAULT_HIDDEN_TESTS = ("co_simclr", "co_byol", "co_dino")
DEFAULT_INSTALLED_TESTS = ("co_byol",)
#: solo-learn's own test that Lightning's loading of our callbacks factory used to break there
BASE_TEST = "tests/methods/test_byol.py"
CALLBACKS_FACTORY = "solo_coplugin.bench.step_log:callbacks"
RUN_ALL = os.environ.get("SOLO_CO_UPSTREAM_ALL") == "1"

# Runs pytest in a process where solo_coplugin cannot be imported and has no distribution (so no
# entry point of it, e.g. Lightning's callbacks factory, is loaded), and where `solo` and the tests
# are the copy's. argv: copy root, folder of solo_coplugin, pytest arguments.
HIDDEN_PYTEST = """
import importlib.abc, importlib.machinery, importlib.metadata, re, sys
from pathlib import Path

root, hidden = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
sys.path[:] = [str(root)] + [p for p in sys.path if p and Path(p).resolve() != hidden]


def hidden_name(name):
    return name.split(".")[0] == "solo_coplugin" or name.startswith("hydra_plugins.solo_coplugin")


class HideModules(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if hidden_name(name):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
        return None


class HideDistribution(importlib.machinery.PathFinder):
    @classmethod
    def find_distributions(cls, *args, **kwargs):
        for dist in super().find_distributions(*args, **kwargs):
            if re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower() != "solo-coplugin":
                yield dist


sys.meta_path[sys.meta_path.index(importlib.machinery.PathFinder)] = HideDistribution
sys.meta_path.insert(0, HideModules())

try:
    import solo_coplugin  # noqa: F401
except ModuleNotFoundError:
    print("solo_coplugin: hidden")
else:
    sys.exit("solo_coplugin is still importable")
try:
    importlib.metadata.distribution("solo-coplugin")
except importlib.metadata.PackageNotFoundError:
    print("solo-coplugin distribution: hidden")
else:
    sys.exit("the solo-coplugin distribution is still visible")
import solo
import tests.methods.utils

for module in (solo, tests.methods.utils):
    if root not in Path(module.__file__).resolve().parents:
        sys.exit(f"{module.__name__} comes from {module.__file__}, not from {root}")
print(f"solo: {Path(solo.__file__).resolve()}")

import pytest

sys.exit(pytest.main(sys.argv[3:]))
"""


def copy_checkout(destination: Path) -> Path:
    if not (SOLO_ROOT / "setup.py").is_file() or not (SOLO_ROOT / "tests" / "methods").is_dir():
        pytest.skip(f"solo-learn is not installed from a checkout ({SOLO_ROOT}): nothing to copy")
    destination.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPIED:
        source = SOLO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)
    return destination


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A copy of the installed solo-learn checkout with the CO methods written into it."""

    root = copy_checkout(tmp_path_factory.mktemp("upstream") / "solo-learn")
    return root, upstream.upstream(root)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A copy of the installed solo-learn checkout that the tests using it leave unchanged."""

    return copy_checkout(tmp_path_factory.mktemp("upstream") / "solo-learn")


def relative_files(root: Path):
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_written_tree_has_solo_learns_layout(written):
    root, status = written
    new = {path for path, state in status.items() if state == "new"}
    changed = {path for path, state in status.items() if state == "changed"}
    assert changed == EDITED
    assert [path for path in new if not NEW_FILE.match(path)] == []
    for name in METHODS:  # one method file, test and docs page per CO method
        for path in (
            f"solo/methods/{name}.py",
            f"tests/methods/test_{name}.py",
            f"docs/source/solo/methods/{name}.rst",
        ):
            assert path in new
    configs = {
        p.relative_to(upstream.CONFIGS_DIR).as_posix()
        for p in upstream.CONFIGS_DIR.glob("*/co_*.yaml")
    }
    # a dataset solo-learn has no folder for (tiny-imagenet) brings the groups its configs name
    groups = {
        f"scripts/pretrain/{p.relative_to(upstream.CONFIGS_DIR).as_posix()}"
        for p in upstream.CONFIGS_DIR.glob("*/*/*.yaml")
        if not (SOLO_ROOT / "scripts" / "pretrain" / p.parent.parent.name).is_dir()
    }
    written_groups = {p for p in new if p.endswith(".yaml") and "/co_" not in p}
    assert {f"scripts/pretrain/{c}" for c in configs} | written_groups == {
        p for p in new if p.endswith(".yaml")
    }
    assert written_groups and written_groups <= groups
    tiny = yaml.safe_load((root / "scripts/pretrain/tiny-imagenet/co_simclr.yaml").read_text())
    assert "val_crop_size" not in tiny["data"] and "callbacks" not in tiny.get("hydra", {})
    # every other file of the checkout is untouched
    for path in relative_files(root) - set(status):
        assert filecmp.cmp(root / path, SOLO_ROOT / path, shallow=False), path


def test_edits_of_solo_learns_files_only_add_lines(written):
    root, status = written
    for path in EDITED:
        before = (SOLO_ROOT / path).read_text().split("\n")
        after = (root / path).read_text().split("\n")
        matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
        assert {op for op, *_ in matcher.get_opcodes()} <= {"equal", "insert"}, path
    methods = (root / "solo/methods/__init__.py").read_text()
    for name, cls in METHODS.items():
        assert f"from solo.methods.{name} import {cls.__name__}\n" in methods
        assert f'    "{name}": {cls.__name__},\n' in methods
    base = (root / "solo/methods/base.py").read_text()
    for name in ("resnet18_cifar", "rf_resnet50"):
        assert f'        "{name}": {name},\n' in base


def test_written_tree_never_names_this_package(written):
    root, _ = written
    hits = [
        f"{path}:{number}"
        for path in sorted(relative_files(root))
        for number, line in enumerate((root / path).read_text(errors="replace").split("\n"), 1)
        if re.search(r"solo_coplugin|solo-coplugin", line)
    ]
    assert hits == []


def test_losses_are_split_one_file_per_method_without_loss_or_duplicate(written):
    root, _ = written
    source = ast.parse((upstream.PACKAGE_DIR / "core" / "losses.py").read_text())
    functions = [n.name for n in source.body if isinstance(n, ast.FunctionDef)]
    written_functions = []
    for path in sorted((root / "solo/losses").glob("co*.py")):
        tree = ast.parse(path.read_text())
        defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        written_functions += defined
        if path.stem != "co":  # solo/losses/co_<m>.py holds co_<m>_local_loss
            assert f"{path.stem}_local_loss" in defined
        for node in ast.walk(tree):  # loss files import only public names from each other
            if isinstance(node, ast.ImportFrom):
                assert not any(alias.name.startswith("_") for alias in node.names), path
    # a shared private helper may have lost its underscore, nothing else changes
    assert sorted(n.lstrip("_") for n in written_functions) == sorted(
        n.lstrip("_") for n in functions
    )


def test_new_python_files_are_black_formatted(written):
    black = pytest.importorskip("black")
    root, status = written
    mode = black.Mode(line_length=100)
    for path, state in status.items():
        if state == "new" and path.endswith(".py"):
            text = (root / path).read_text()
            assert black.format_str(text, mode=mode) == text, path


def test_second_run_changes_nothing(written, capsys):
    root, _ = written
    before = {path: (root / path).read_bytes() for path in relative_files(root)}
    assert upstream.main([str(root)]) == 0
    assert "wrote 0 new and 0 changed files" in capsys.readouterr().out
    assert {path: (root / path).read_bytes() for path in relative_files(root)} == before


def test_dry_run_writes_nothing(pristine, capsys):
    root = pristine
    before = relative_files(root)
    assert upstream.main([str(root), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "new       solo/methods/co_byol.py" in out and "would write" in out
    assert relative_files(root) == before
    assert filecmp.cmp(root / "solo/methods/__init__.py", SOLO_ROOT / "solo/methods/__init__.py")


def test_a_reference_to_this_package_left_in_the_tree_stops_before_writing(pristine, monkeypatch):
    root = pristine
    before = relative_files(root)
    rules = [rule for rule in upstream.PROSE_REWRITES if "rng_states" not in rule[0]]
    monkeypatch.setattr(upstream, "PROSE_REWRITES", tuple(rules))
    with pytest.raises(upstream.UpstreamError, match=r"solo/utils/co/rng\.py:\d+: RNG_STATE_KEY"):
        upstream.upstream(root)
    assert relative_files(root) == before


@pytest.mark.parametrize("which", ["empty folder", "this package's repository"])
def test_refuses_a_folder_that_is_not_a_solo_learn_checkout(which, tmp_path, capsys):
    folder = tmp_path if which == "empty folder" else PACKAGE_ROOT
    assert upstream.main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert "not a solo-learn checkout" in err
    assert not (tmp_path / "solo").exists()


def test_solo_learns_method_tests_pass_on_the_written_tree_with_this_package_hidden(written):
    root, _ = written
    names = sorted(METHODS) if RUN_ALL else DEFAULT_HIDDEN_TESTS
    tests = [f"tests/methods/test_{name}.py" for name in names] + [BASE_TEST]
    result = subprocess.run(
        [sys.executable, "-I", "-c", HIDDEN_PYTEST, str(root), str(PACKAGE_ROOT)]
        + ["-q", "-p", "no:cacheprovider", "-W", "ignore", *tests],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "solo_coplugin: hidden" in output and "solo-coplugin distribution: hidden" in output
    assert f"solo: {(root / 'solo' / '__init__.py').resolve()}" in output
    assert f"{len(tests)} passed" in output, output[-2000:]


def test_the_command_it_prints_passes_on_the_written_tree_with_this_package_installed(
    written, capsys
):
    root, _ = written
    factories = importlib.metadata.entry_points(group="lightning.pytorch.callbacks_factory")
    assert CALLBACKS_FACTORY in [entry.value for entry in factories], "install this package first"
    assert upstream.main([str(root)]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Next: ")]
    cd, command = line[len("Next: ") :].split(" && ")
    assert shlex.split(cd) == ["cd", str(root)]
    python, *arguments = shlex.split(command)
    assert python == "python" and arguments[:2] == ["-m", "pytest"]
    (pattern,) = arguments[2:]
    # the files the shell expands the pattern to
    printed = sorted(path.relative_to(root).as_posix() for path in root.glob(pattern))
    assert printed == [f"tests/methods/test_{name}.py" for name in sorted(METHODS)]
    tests = printed if RUN_ALL else [f"tests/methods/test_{n}.py" for n in DEFAULT_INSTALLED_TESTS]
    # `python -m` puts the current folder first: the copy's solo, not the installed solo-learn
    find_solo = "import importlib.util; print(importlib.util.find_spec('solo').origin)"
    origin = subprocess.run([sys.executable, "-c", find_solo], cwd=root, capture_output=True)
    assert origin.stdout.decode().strip() == str(root / "solo" / "__init__.py")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, BASE_TEST],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"{len(tests) + 1} passed" in output, output[-2000:]


# In the written tree, with this package installed: what registration and the Hydra plugin do
# (argv: the tree's root). Prints one JSON report.
INSTALLED_REGISTRATION = """
import json, sys, warnings
from pathlib import Path

from hydra import compose, initialize, initialize_config_dir
import solo
from solo.methods import METHODS
from solo.methods.base import BaseMethod

import solo_coplugin

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    solo_coplugin.register()
    import solo_coplugin.methods  # registers again
    from solo_coplugin.backbones import BACKBONES

configs = {}
for label, init in (
    ("config-path", lambda: initialize_config_dir(
        version_base="1.2", config_dir=str(Path(sys.argv[1]) / "scripts/pretrain/cifar"))),
    ("bare", lambda: initialize(version_base="1.2", config_path=None)),
):
    with init():
        cfg = compose(config_name="co_byol.yaml", return_hydra_config=True)
    configs[label] = sorted(cfg.hydra.get("callbacks") or {})
print("REPORT " + json.dumps({
    "solo": solo.__file__,
    "warnings": [
        str(w.message) for w in caught if w.category.__name__ == "SoloLearnHasItWarning"
    ],
    "modules": {
        name: getattr(registry[name], "__module__", "")
        for registry, names in ((METHODS, solo_coplugin.methods.METHODS),
                                (BaseMethod._BACKBONES, BACKBONES))
        for name in names
    },
    "configs": configs,
}))
"""


def test_with_this_package_installed_the_written_tree_keeps_its_own_methods_and_configs(written):
    root, _ = written
    result = subprocess.run(
        [sys.executable, "-c", INSTALLED_REGISTRATION, str(root)],
        cwd=root,  # its solo first, as for `python -m pytest` there
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    report = json.loads(line[len("REPORT ") :])
    assert report["solo"] == str(root / "solo" / "__init__.py")
    # every name is solo-learn's own; the plugin said so once, and registered nothing over it
    assert len(report["modules"]) == len(METHODS) + 4
    assert [n for n, module in report["modules"].items() if not module.startswith("solo.")] == []
    (warning,) = report["warnings"]
    assert all(name in warning for name in report["modules"]) and "its 0 other names" in warning
    # solo-learn's way (--config-path scripts/pretrain/cifar) gets its own co_byol.yaml, which
    # has no preflight callback; a bare name, which only the plugin serves, gets the plugin's
    assert report["configs"] == {"config-path": [], "bare": ["solo_coplugin"]}
