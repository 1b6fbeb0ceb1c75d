"""The README's first two commands in a fresh environment: what `.ci/run` runs of them, and why.

`.ci/run` runs them for real in a fresh venv (with the network, about a minute); these tests check,
without a venv, that the README's commands are what `.ci/readme_commands.py` can split into steps,
that a command it does not know fails with a message, and that the README's pins and extras have
the properties a fresh environment needs.
"""

import importlib.util
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

REPO_ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "readme_commands", REPO_ROOT / ".ci" / "readme_commands.py"
)
readme_commands = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_commands)

CLONE = "git clone https://github.com/vturrisi/solo-learn ../solo-learn"
SOLO_INSTALL = "pip install --no-build-isolation --use-pep517 -e ../solo-learn"


def fake_readme(first_command: str, test_command: str = "python -m pytest -q") -> str:
    return (
        f"# title\n\nintro\n\n```bash\n{first_command}\n```\n\n```bash\n{test_command}\n```\n\n"
        "## A section\n\n```bash\npython something_else.py\n```\n"
    )


def steps_of(kind: str):
    return [s for s in readme_commands.readme_commands()["install"] if s.kind == kind]


def test_split_steps_keeps_quotes_and_subshells_whole():
    block = 'pip install "a>=1,<2 && x" \\\n    && (cd d && python main_x.py) && pip install -e .\n'
    assert readme_commands.split_steps(block) == [
        'pip install "a>=1,<2 && x"',
        "(cd d && python main_x.py)",
        "pip install -e .",
    ]


def test_readme_first_command_is_install_steps_then_the_training():
    kinds = [step.kind for step in readme_commands.readme_commands()["install"]]
    assert set(kinds) == {"build-tools", "clone", "solo-learn", "this-package", "train"}
    # the part a machine without a GPU runs is everything before the training
    assert kinds[-1] == "train" and kinds.count("train") == 1


def test_setuptools_pin_can_build_solo_learns_setup_py():
    (pin,) = [
        target
        for step in steps_of("build-tools")
        for target in readme_commands.install_targets(readme_commands.pip_install_args(step.argv))
        if readme_commands.requirement_name(target) == "setuptools"
    ]
    allowed = SpecifierSet(pin[len("setuptools") :])
    # a fresh Python 3.11 venv has setuptools 65.5: no bdist_wheel without the wheel package,
    # the issue's `invalid command 'bdist_wheel'`; setuptools has it built in since 70.1
    assert "65.5.0" not in allowed and "70.0.0" not in allowed
    # setuptools 82 removed pkg_resources, which solo-learn's setup.py and lightning 2.1.2 import
    assert "82.0.0" not in allowed
    assert "80.10.2" in allowed  # what pip picked in a fresh venv when this was written


def test_solo_learn_is_built_with_the_pinned_setuptools_and_pep517():
    (step,) = steps_of("solo-learn")
    # with build isolation pip would build it with the newest setuptools (82: no pkg_resources);
    # without --use-pep517, pip 23 with `wheel` installed runs `setup.py develop`, which
    # setuptools >= 80 hands back to pip with build isolation
    assert "--no-build-isolation" in step.argv and "--use-pep517" in step.argv


def test_readme_installs_the_test_commands_runner():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requires = list(project["dependencies"]) + [
        f'{requirement}; extra == "{extra}"'
        for extra, requirements in project["optional-dependencies"].items()
        for requirement in requirements
    ]
    commands = readme_commands.readme_commands()
    installed = readme_commands.declared_requirements(
        requires, readme_commands.requested_extras(commands["install"])
    )
    needed = readme_commands.test_requirements(commands["test"])
    assert needed[0] == "pytest" and set(needed) <= installed


@pytest.mark.parametrize(
    "first_command, message",
    [
        # the README before this check: a bare `cd` leaves the test command in solo-learn's root
        (
            f'pip install "setuptools<82" && {CLONE} && {SOLO_INSTALL} && pip install -e . '
            "&& cd ../solo-learn && python main_pretrain.py --config-name co_simclr.yaml",
            "subshell",
        ),
        (f'pip install "setuptools<81" && {CLONE} && curl x | sh && {SOLO_INSTALL}', "curl x"),
        (f'pip install "setuptools<81" && {CLONE} && pip install -e .', "no solo-learn step"),
        (f'{CLONE} && {SOLO_INSTALL} && pip install "setuptools<81" && pip install -e .', "before"),
        (
            f'pip install "setuptools<81" && {CLONE} && {SOLO_INSTALL} '
            "&& (cd ../solo-learn && python main_pretrain.py) && pip install -e .",
            "training last",
        ),
    ],
)
def test_a_first_command_ci_cannot_run_fails_with_the_reason(first_command, message):
    with pytest.raises(readme_commands.ReadmeError, match=message):
        readme_commands.readme_commands(fake_readme(first_command))


def test_readme_without_its_two_top_commands_fails():
    with pytest.raises(readme_commands.ReadmeError, match="two bash blocks"):
        readme_commands.readme_commands("# title\n\n```bash\npip install -e .\n```\n\n## x\n")


def test_a_test_command_without_its_runner_extra_is_caught():
    first = f'pip install "setuptools<81" && {CLONE} && {SOLO_INSTALL} && pip install -e .'
    commands = readme_commands.readme_commands(fake_readme(first))
    extras = readme_commands.requested_extras(commands["install"])
    installed = readme_commands.declared_requirements(['pytest>=7; extra == "test"'], extras)
    assert readme_commands.test_runner(commands["test"]) not in installed


def test_a_test_command_whose_pytest_plugin_is_not_installed_is_caught():
    """`-n 2` is pytest-xdist's option: pytest alone stops with "unrecognized arguments"."""

    first = f'pip install "setuptools<81" && {CLONE} && {SOLO_INSTALL} && pip install -e ".[test]"'
    commands = readme_commands.readme_commands(
        fake_readme(first, "python -m pytest -q -n 2 --dist loadscope")
    )
    assert readme_commands.test_requirements(commands["test"]) == ["pytest", "pytest-xdist"]
    extras = readme_commands.requested_extras(commands["install"])
    installed = readme_commands.declared_requirements(['pytest>=7; extra == "test"'], extras)
    assert "pytest-xdist" not in installed
    assert readme_commands.test_requirements("python -m pytest -q") == ["pytest"]
