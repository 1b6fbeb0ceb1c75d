"""solo-coplugin: CO-SSL (Aubret, Teulière, Triesch, arXiv 2501.02860) for solo-learn.

``import solo_coplugin`` registers the CO methods (``co_byol``, ``co_simclr``, ``co_mocov3``,
``co_dino``, ``co_vicreg``, ``co_barlow_twins``, ``co_mocov2plus``) and the backbones
(``resnet18_cifar``, ``resnet50_cifar``, ``rf_resnet18``, ``rf_resnet50``) into solo-learn when
solo-learn is installed; the pure-torch core (``solo_coplugin.core``) and backbones
(``solo_coplugin.backbones``) work without it.
"""

from solo_coplugin.solo_compat import solo_learn_available

__version__ = "0.1.0"

if solo_learn_available():
    from solo_coplugin.registration import register
    from solo_coplugin.third_party_warnings import ignoring_known_import_warnings

    with ignoring_known_import_warnings():  # solo-learn's dependencies, imported here
        register()
