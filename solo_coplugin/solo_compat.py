"""The one place that checks that a compatible solo-learn is installed (without importing it)."""

import importlib.metadata
import importlib.util

from solo_coplugin.third_party_warnings import ignoring_known_import_warnings

MIN_SOLO_LEARN = (1, 0, 6)
INSTALL_HINT = (
    "solo-learn >= 1.0.6 is not on PyPI: clone https://github.com/vturrisi/solo-learn (main) "
    "and run `pip install -e .` in it (see solo-coplugin's README)."
)


class SoloLearnMissingError(ImportError):
    """solo-learn is not installed, or is older than the version solo-coplugin needs."""


def solo_learn_available() -> bool:
    """Whether a ``solo`` package can be imported (cheap: does not import it)."""

    return importlib.util.find_spec("solo") is not None


def _parse_version(version: str) -> tuple:
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def require_solo_learn() -> None:
    """Raises :class:`SoloLearnMissingError` with the fix unless solo-learn >= 1.0.6 imports."""

    if not solo_learn_available():
        raise SoloLearnMissingError(f"solo-coplugin's methods need solo-learn. {INSTALL_HINT}")
    try:
        version = importlib.metadata.version("solo-learn")
    except importlib.metadata.PackageNotFoundError:  # e.g. a checkout on PYTHONPATH
        version = None
    if version is not None and _parse_version(version) < MIN_SOLO_LEARN:
        raise SoloLearnMissingError(
            f"solo-coplugin needs solo-learn >= 1.0.6, found {version} (the 2021 PyPI release "
            f"has another method API). {INSTALL_HINT}"
        )
    try:
        # the first import of solo-learn in most programs: its dependencies' warnings are noise
        with ignoring_known_import_warnings():
            from solo.utils.misc import omegaconf_select  # noqa: F401  (absent before 1.0.6)
    except ImportError as error:
        raise SoloLearnMissingError(
            f"the installed solo-learn lacks solo.utils.misc.omegaconf_select ({error}). "
            f"{INSTALL_HINT}"
        ) from error
