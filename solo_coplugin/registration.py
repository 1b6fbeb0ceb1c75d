"""The single place where solo-coplugin touches solo-learn's registries.

``register()`` adds the CO methods to ``solo.methods.METHODS`` (read by ``main_pretrain.py``,
``main_knn.py``, ``main_umap.py``) and the extra backbones to ``BaseMethod._BACKBONES`` (read by
every method and by ``main_linear.py``). Both registries are plain dicts that the entry points
hold by reference, so registering in place before their ``main()`` runs is enough. It is
called by ``import solo_coplugin`` and by the Hydra search-path plugin; calling it again is a
no-op.
"""

from solo_coplugin.solo_compat import require_solo_learn


def register() -> None:
    """Registers the CO methods and the extra backbones into solo-learn (idempotent)."""

    require_solo_learn()

    from solo.methods import METHODS as SOLO_METHODS
    from solo.methods.base import BaseMethod

    from solo_coplugin.backbones import BACKBONES
    from solo_coplugin.methods import METHODS

    for name, constructor in BACKBONES.items():
        _register_once(BaseMethod._BACKBONES, name, constructor, "backbone")
    for name, cls in METHODS.items():
        _register_once(SOLO_METHODS, name, cls, "method")


def _register_once(registry: dict, name: str, value, kind: str) -> None:
    current = registry.get(name)
    if current is not None and not getattr(current, "__module__", "").startswith("solo_coplugin"):
        raise RuntimeError(
            f"solo-learn already has a {kind} named {name!r} ({current!r}); solo-coplugin "
            "will not replace it. Uninstall the other package that registers it."
        )
    registry[name] = value
