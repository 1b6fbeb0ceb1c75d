"""The README's first two commands, run by CI as a newcomer runs them, in a fresh virtual env.

README.md opens (before its first ``##`` section) with two fenced bash blocks: the install-and-
train command and the test command. CI reads them from there, so it cannot drift from them.
The first command is a chain of ``&&`` steps, each of which is one of these kinds, in this order:

- ``build-tools``: ``pip install`` of setuptools/wheel only (the setuptools pin): run verbatim;
- ``clone``: ``git clone <solo-learn> <dir>``: not run, CI uses the checkout already installed on
  the machine (solo-learn >= 1.0.6 is not on PyPI);
- ``solo-learn``: ``pip install ... <dir>``: run verbatim (same pip, same flags) on a stand-in
  checkout holding only solo-learn's ``setup.py`` and ``requirements.txt``: that checks that the
  pinned setuptools builds solo-learn's ``setup.py`` (it imports ``pkg_resources``; the editable
  wheel needs ``bdist_wheel``) without building solo-learn. The stand-in is uninstalled again and
  the machine's solo-learn is exposed to the venv by a ``.pth`` file pointing at its checkout;
- ``this-package``: ``pip install`` of ``.`` (with extras): run verbatim;
- ``train``: ``(cd <dir> && python main_*.py ...)``, last, in a subshell so that the test command
  still runs from this repository's root: not run (it needs a GPU and the network).

Any other step fails CI with a message: teach this file what to do with it. The venv is meant to
see the machine's packages (``python -m venv --system-site-packages``), so torch and the other
heavy dependencies are not downloaded again; that is also why the test runner's presence in the
venv proves nothing, and :func:`check_test_runner_declared` checks that the README's install of
this package asks for the extra that provides it.

    python .ci/readme_commands.py install --venv <venv> [--solo-learn <checkout>]
    python .ci/readme_commands.py test-command       # prints the README's test command
"""

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
PROJECT_NAME = "solo-coplugin"
SOLO_LEARN_REPO = "github.com/vturrisi/solo-learn"
BUILD_TOOLS = {"setuptools", "wheel"}
#: the editable install of solo-learn: setup.py imports pkg_resources (setuptools < 82), and a
#: PEP 660 editable wheel needs bdist_wheel, built into setuptools since 70.1
SOLO_LEARN_BUILD_CHECK = "import pkg_resources; import setuptools.command.bdist_wheel"


class ReadmeError(Exception):
    """The README's top commands are not what CI knows how to run; the message says why."""


@dataclass
class Step:
    """One ``&&`` step of the README's first command."""

    kind: str
    text: str
    argv: List[str]


def top_bash_blocks(readme: str) -> List[str]:
    """The fenced bash blocks before the README's first ``##`` section."""

    top = re.split(r"^## ", readme, maxsplit=1, flags=re.MULTILINE)[0]
    return re.findall(r"^```(?:bash|sh|shell)\n(.*?)^```", top, flags=re.MULTILINE | re.DOTALL)


def split_steps(block: str) -> List[str]:
    """A shell block's commands: lines (joined at trailing backslashes) split at ``&&`` outside
    quotes and parentheses (a subshell stays one step); comment lines dropped."""

    lines = [line for line in block.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    steps: List[str] = []
    for line in joined.splitlines():
        current, quote, depth, i = "", None, 0, 0
        while i < len(line):
            char = line[i]
            if quote:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char in "()":
                depth += 1 if char == "(" else -1
            elif depth == 0 and line.startswith("&&", i):
                steps.append(current)
                current, i = "", i + 2
                continue
            current += char
            i += 1
        steps.append(current)
    return [" ".join(step.split()) for step in steps if step.strip()]


def pip_install_args(argv: Sequence[str]) -> Optional[List[str]]:
    """The arguments after ``pip install`` / ``python -m pip install``; None for other commands."""

    if list(argv[:2]) == ["pip", "install"]:
        return list(argv[2:])
    if (
        len(argv) >= 4
        and re.fullmatch(r"python[0-9.]*", argv[0])
        and argv[1:4] == ["-m", "pip", "install"]
    ):
        return list(argv[4:])
    return None


def install_targets(args: Sequence[str]) -> List[str]:
    """What a ``pip install`` installs (requirements, paths), without its options."""

    return [arg for arg in args if not arg.startswith("-")]


def requirement_name(target: str) -> str:
    return re.split(r"[<>=!~;\[ ]", target, maxsplit=1)[0].strip().lower()


def is_this_package(target: str) -> bool:
    return re.fullmatch(r"\.(\[[\w,\s-]+\])?", target) is not None


def is_training(text: str, clone_dir: Optional[str]) -> bool:
    """Whether a step is ``(cd <clone_dir> && python main_*.py ...)``: solo-learn's scripts, in a
    subshell so that the next command still runs from this repository's root."""

    if not (text.startswith("(") and text.endswith(")")):
        return False
    inner = [shlex.split(step) for step in split_steps(text[1:-1])]
    return (
        len(inner) >= 2
        and inner[0] == ["cd", clone_dir]
        and all(
            len(argv) >= 2
            and re.fullmatch(r"python[0-9.]*", argv[0])
            and argv[1].startswith("main_")
            for argv in inner[1:]
        )
    )


def classify(block: str) -> List[Step]:
    """The first command's steps, each with its kind (see the module docstring)."""

    steps: List[Step] = []
    clone_dir: Optional[str] = None
    for text in split_steps(block):
        if steps and steps[-1].kind == "train":
            raise ReadmeError(
                f"README's first command: `{text}` comes after the training; CI expects the "
                "training last (it is the part a machine without a GPU leaves out)."
            )
        if is_training(text, clone_dir):
            steps.append(Step("train", text, []))
            continue
        argv = shlex.split(text)
        pip_args = pip_install_args(argv)
        targets = install_targets(pip_args) if pip_args is not None else []
        if argv[:2] == ["git", "clone"]:
            if len(argv) != 4 or SOLO_LEARN_REPO not in argv[2]:
                raise ReadmeError(
                    f"README's first command: CI knows only `git clone https://{SOLO_LEARN_REPO} "
                    f"<dir>`, got `{text}`."
                )
            kind, clone_dir = "clone", argv[3]
        elif targets and all(requirement_name(t) in BUILD_TOOLS for t in targets):
            kind = "build-tools"
        elif clone_dir is not None and targets == [clone_dir]:
            kind = "solo-learn"
        elif len(targets) == 1 and is_this_package(targets[0]):
            kind = "this-package"
        elif argv[0] == "cd":
            raise ReadmeError(
                f"README's first command: `{text}` leaves the shell in another directory, so the "
                "test command would not run from this repository's root. Train in a subshell: "
                "`(cd <solo-learn> && python main_pretrain.py ...)`."
            )
        else:
            raise ReadmeError(
                f"README's first command has a step CI does not know: `{text}`. Teach "
                f".ci/readme_commands.py whether CI runs it (see its docstring)."
            )
        steps.append(Step(kind, text, argv))
    kinds = [step.kind for step in steps]
    for needed in ("build-tools", "clone", "solo-learn", "this-package"):
        if needed not in kinds:
            raise ReadmeError(f"README's first command has no {needed} step ({kinds}).")
    if kinds.index("solo-learn") < kinds.index("build-tools"):
        raise ReadmeError("README's first command installs solo-learn before the setuptools pin.")
    return steps


def readme_commands(readme_text: Optional[str] = None) -> Dict[str, object]:
    """``{"install": [Step, ...], "test": "<the test command>"}`` from the README."""

    text = README.read_text() if readme_text is None else readme_text
    blocks = top_bash_blocks(text)
    if len(blocks) != 2:
        raise ReadmeError(
            f"README.md must open with two bash blocks (install-and-train, test) before its first "
            f"`##` section; found {len(blocks)}."
        )
    tests = split_steps(blocks[1])
    if len(tests) != 1:
        raise ReadmeError(f"README's test command must be one command, got {tests}.")
    return {"install": classify(blocks[0]), "test": tests[0]}


def requested_extras(steps: Sequence[Step]) -> Set[str]:
    """The extras of this package that the README's install steps ask for."""

    extras: Set[str] = set()
    for step in steps:
        if step.kind == "this-package":
            (target,) = install_targets(pip_install_args(step.argv))
            if "[" in target:
                extras |= {e.strip() for e in target[target.index("[") + 1 : -1].split(",")}
    return extras


def test_runner(test_command: str) -> str:
    """The module that the README's test command runs (``python -m <module> ...``)."""

    argv = shlex.split(test_command)
    if len(argv) < 3 or argv[1] != "-m":
        raise ReadmeError(f"README's test command must be `python -m <runner> ...`: {test_command}")
    return argv[2]


#: pytest options -> the plugin distribution that provides them
PYTEST_PLUGIN_OPTIONS = {
    "-n": "pytest-xdist",
    "--numprocesses": "pytest-xdist",
    "--dist": "pytest-xdist",
}


def test_requirements(test_command: str) -> List[str]:
    """The distributions the README's test command needs: its runner, and for pytest the plugins
    its options come from (``-n 2`` without pytest-xdist: "unrecognized arguments")."""

    runner = test_runner(test_command)
    needed = [runner]
    if runner == "pytest":
        for argument in shlex.split(test_command)[3:]:
            plugin = PYTEST_PLUGIN_OPTIONS.get(argument.split("=", 1)[0])
            if plugin and plugin not in needed:
                needed.append(plugin)
    return needed


def declared_requirements(requires: Sequence[str], extras: Set[str]) -> Set[str]:
    """Names of the distribution's requirements (``importlib.metadata.requires``) that an
    install with ``extras`` brings in."""

    names = set()
    for requirement in requires:
        marker = requirement.split(";", 1)[1] if ";" in requirement else ""
        extra = re.search(r"""extra\s*==\s*["']([\w-]+)["']""", marker)
        if extra is None or extra.group(1) in extras:
            names.add(requirement_name(requirement))
    return names


def check_test_runner_declared(
    steps: Sequence[Step], test_command: str, python: Path, env: Dict[str, str]
) -> None:
    """Fails unless the README's install of this package brings in the test command's runner.

    The venv sees the machine's packages, where the runner may be installed anyway; so this
    reads what the README installs: the extras it names, from the installed metadata."""

    requires = subprocess.run(
        [
            str(python),
            "-c",
            f"import importlib.metadata as m; print(*m.requires({PROJECT_NAME!r}) or [], sep='\\n')",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    extras = requested_extras(steps)
    declared = declared_requirements(requires, extras)
    for needed in test_requirements(test_command):
        if needed.lower() not in declared:
            raise ReadmeError(
                f"README's test command needs {needed}, which the README's install of "
                f"{PROJECT_NAME} (extras {sorted(extras) or 'none'}) does not install: a fresh "
                f"environment has no {needed}. Declare it in the extra the README installs, e.g. "
                f'pip install -e ".[test]".'
            )


def find_solo_learn_checkout() -> Optional[Path]:
    """The checkout of the solo-learn importable by this Python (the machine's), if any."""

    spec = importlib.util.find_spec("solo")  # without importing it (and its warnings)
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).resolve().parents[1]
    return root if (root / "setup.py").exists() else None


def make_stand_in(checkout: Optional[Path], directory: Path) -> Path:
    """A directory with solo-learn's ``setup.py`` and ``requirements.txt`` and no package."""

    directory.mkdir(parents=True)
    if checkout is not None:
        for name in ("setup.py", "requirements.txt"):
            shutil.copy(checkout / name, directory / name)
    else:  # no checkout on this machine: what solo-learn's setup.py needs from setuptools
        (directory / "requirements.txt").write_text("")
        (directory / "setup.py").write_text(
            "from pkg_resources import parse_requirements\nfrom setuptools import setup\n\n"
            "setup(name='solo-learn', version='1.0.6', packages=[])\n"
        )
    return directory


def venv_env(venv: Path) -> Dict[str, str]:
    """The environment of a shell in which the venv is activated."""

    env = dict(
        os.environ,
        VIRTUAL_ENV=str(venv),
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        PIP_QUIET="1",  # pip's errors still show, not its hundred lines of satisfied requirements
    )
    env.pop("PYTHONHOME", None)
    return env


def run_step(text: str, env: Dict[str, str]) -> None:
    print(f"+ {text}", flush=True)
    result = subprocess.run(["bash", "-c", text], cwd=REPO_ROOT, env=env)
    if result.returncode != 0:
        raise ReadmeError(f"README step failed (exit {result.returncode}): `{text}`")


def install(venv: Path, solo_learn: Optional[Path], readme: Path = README) -> None:
    """Runs the README's install steps in ``venv`` (see the module docstring)."""

    commands = readme_commands(readme.read_text())
    steps: List[Step] = commands["install"]  # type: ignore[assignment]
    env = venv_env(venv)
    python = venv / "bin" / "python"
    checkout = solo_learn or find_solo_learn_checkout()
    clone_dir = next(step.argv[3] for step in steps if step.kind == "clone")
    for step in steps:
        if step.kind in ("build-tools", "this-package"):
            run_step(step.text, env)
        elif step.kind == "solo-learn":
            check = subprocess.run(
                [str(python), "-W", "ignore", "-c", SOLO_LEARN_BUILD_CHECK], env=env
            )
            if check.returncode != 0:
                raise ReadmeError(
                    "the setuptools that the README installs cannot build solo-learn's setup.py "
                    "(it needs pkg_resources, removed in setuptools 82, and a built-in "
                    "bdist_wheel, setuptools >= 70.1): fix the README's setuptools pin."
                )
            with tempfile.TemporaryDirectory() as tmp:
                stand_in = make_stand_in(checkout, Path(tmp) / "solo-learn")
                argv = [str(stand_in) if arg == clone_dir else arg for arg in step.argv]
                print(f"(solo-learn's step on a stand-in with its setup.py only, {stand_in})")
                run_step(shlex.join(argv), env)
                run_step("python -m pip uninstall --yes --quiet solo-learn", env)
        else:
            print(f"(not run here: `{step.text}`)")
    check_test_runner_declared(steps, commands["test"], python, env)  # type: ignore[arg-type]
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if checkout is not None:
        (Path(site_packages) / "solo_learn_checkout.pth").write_text(f"{checkout}\n")
        print(f"solo-learn: the machine's checkout {checkout}, exposed to the venv by a .pth file")
    else:
        print("solo-learn: no checkout on this machine; the integration tests will be skipped")
    imported = subprocess.run(
        [str(python), "-c", "import solo_coplugin; print(solo_coplugin.__file__)"],
        env=env,
        cwd=tempfile.gettempdir(),  # not the repository root, which is on sys.path from there
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if Path(imported).resolve().parents[1] != REPO_ROOT:
        raise ReadmeError(f"the venv imports solo_coplugin from {imported}, not from {REPO_ROOT}")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    install_parser = commands.add_parser("install", help="the README's install steps in a venv")
    install_parser.add_argument("--venv", type=Path, required=True, help="a fresh venv")
    install_parser.add_argument("--solo-learn", type=Path, help="the machine's solo-learn checkout")
    test_parser = commands.add_parser("test-command", help="print the README's test command")
    for command in (install_parser, test_parser):
        command.add_argument("--readme", type=Path, default=README, help="default: README.md")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            install(args.venv.resolve(), args.solo_learn, args.readme)
        else:
            print(readme_commands(args.readme.read_text())["test"])
    except ReadmeError as error:
        sys.exit(f"README check: {error}")


if __name__ == "__main__":
    main()
