"""The single place where solo-coplugin touches solo-learn's registries.

``register()`` adds the CO methods to ``solo.methods.METHODS`` (read by ``main_pretrain.py``,
``main_knn.py``, ``main_umap.py``) and the extra backbones to ``BaseMethod._BACKBONES`` (read by
every method and by ``main_linear.py``). Both registries are plain dicts that the entry points
hold by reference, so registering in place before their ``main()`` runs is enough. It is called
by the Hydra search-path plugin (in solo-learn's scripts), by ``import solo_coplugin.methods``
(so that a CO method, once imported, is usable by name and with this package's backbones), and
by this package's commands; calling it again is a no-op. ``import solo_coplugin`` alone does not
register: Lightning imports this package's callbacks factory in every program that builds a
Trainer, and that must not import solo-learn.

A solo-learn that already has one of these names from its own tree (the methods and backbones
``solo-co-upstream`` writes into it) keeps its own: registration steps aside for those names, with
one warning. Any other object under one of these names is an error.
"""

import warnings
from typing import Dict, List

from solo_coplugin.solo_compat import require_solo_learn
from solo_coplugin.third_party_warnings import ignoring_known_import_warnings

#: the names already reported as solo-learn's own, so that repeated calls warn once
_reported_as_solo_learns: set = set()


class SoloLearnHasItWarning(UserWarning):
    """solo-learn's own tree already provides some of solo-coplugin's names; its own are used."""


def register() -> None:
    """Registers the CO methods and the extra backbones into solo-learn (idempotent).

    Names that solo-learn's own tree already provides (module ``solo.*``) are left to solo-learn,
    with one :class:`SoloLearnHasItWarning` per process listing them.

    Raises:
        SoloLearnMissingError: solo-learn is not installed, or too old.
        RuntimeError: another package registered a different object under one of the names.
    """

    require_solo_learn()

    with ignoring_known_import_warnings():  # solo-learn's dependencies, imported here
        from solo.methods import METHODS as SOLO_METHODS
        from solo.methods.base import BaseMethod

        from solo_coplugin.backbones import BACKBONES
        from solo_coplugin.methods import METHODS

    solo_learns = _register_all(BaseMethod._BACKBONES, BACKBONES, "backbone")
    solo_learns += _register_all(SOLO_METHODS, METHODS, "method")
    new = [name for name in solo_learns if name not in _reported_as_solo_learns]
    if new:
        _reported_as_solo_learns.update(new)
        others = len(BACKBONES) + len(METHODS) - len(solo_learns)
        warnings.warn(
            f"solo-learn's own tree already has {', '.join(new)} (as solo-co-upstream writes "
            f"them): solo-coplugin leaves these to solo-learn and registers its {others} other "
            "names",
            SoloLearnHasItWarning,
            stacklevel=2,
        )


def _register_all(registry: Dict[str, object], entries: Dict[str, object], kind: str) -> List[str]:
    """Registers ``entries`` into ``registry``; returns the names left to solo-learn's own."""

    solo_learns = []
    for name, value in entries.items():
        current = registry.get(name)
        module = getattr(current, "__module__", None) or ""
        if current is None or module.startswith("solo_coplugin"):
            registry[name] = value
        elif module == "solo" or module.startswith("solo."):
            solo_learns.append(name)
        else:
            raise RuntimeError(
                f"solo-learn already has a {kind} named {name!r} ({current!r}, from {module!r}); "
                "solo-coplugin will not replace it. Fix: uninstall the package that registers "
                "it, or do not use both in one program."
            )
    return solo_learns
