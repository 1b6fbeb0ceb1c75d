"""solo-coplugin: CO-SSL (Aubret, Teulière, Triesch, arXiv 2501.02860) for solo-learn.

``import solo_coplugin`` registers the CO methods (``co_byol``, ``co_simclr``) and the
small-image backbones (``resnet18_cifar``, ``resnet50_cifar``) into solo-learn when solo-learn
is installed; the pure-torch core (``solo_coplugin.core``) works without it.
"""

from solo_coplugin.solo_compat import solo_learn_available

__version__ = "0.1.0"

if solo_learn_available():
    from solo_coplugin.registration import register

    register()
