"""solo-coplugin: CO-SSL (Aubret, Teulière, Triesch, arXiv 2501.02860) for solo-learn.

The CO methods (``co_byol``, ``co_simclr``, ``co_mocov3``, ``co_dino``, ...) and the backbones
(``resnet18_cifar``, ``resnet50_cifar``, ``rf_resnet18``, ``rf_resnet50``) are registered into
solo-learn by :func:`register`, which solo-learn's scripts get from the Hydra search-path plugin,
this package's commands call, and ``import solo_coplugin.methods`` runs. ``import solo_coplugin``
itself imports neither solo-learn nor torch: Lightning imports this package (its callbacks
factory) in every program that builds a Trainer. The pure-torch core (``solo_coplugin.core``)
and backbones (``solo_coplugin.backbones``) work without solo-learn.
"""

from solo_coplugin.registration import register

__version__ = "0.1.0"

__all__ = ["register", "__version__"]
