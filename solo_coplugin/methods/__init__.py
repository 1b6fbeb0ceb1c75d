"""solo-learn adapters: one CO method per file, each subclassing its solo-learn base method.

Importing this package registers the CO methods and this package's backbones into solo-learn
(:func:`solo_coplugin.registration.register`), so that a CO method, once imported, is usable by
name in solo-learn's ``METHODS`` and with the backbones its configs name.
"""

from solo_coplugin.solo_compat import require_solo_learn

require_solo_learn()

from solo_coplugin.core import CoConfigError  # noqa: E402
from solo_coplugin.methods.co_barlow_twins import CoBarlowTwins  # noqa: E402
from solo_coplugin.methods.co_byol import CoBYOL  # noqa: E402
from solo_coplugin.methods.co_dino import CoDINO  # noqa: E402
from solo_coplugin.methods.co_mocov2plus import CoMoCoV2Plus  # noqa: E402
from solo_coplugin.methods.co_mocov3 import CoMoCoV3  # noqa: E402
from solo_coplugin.methods.co_nnbyol import CoNNBYOL  # noqa: E402
from solo_coplugin.methods.co_nnclr import CoNNCLR  # noqa: E402
from solo_coplugin.methods.co_nnsiam import CoNNSiam  # noqa: E402
from solo_coplugin.methods.co_ressl import CoReSSL  # noqa: E402
from solo_coplugin.methods.co_simclr import CoSimCLR  # noqa: E402
from solo_coplugin.methods.co_simsiam import CoSimSiam  # noqa: E402
from solo_coplugin.methods.co_vibcreg import CoVIbCReg  # noqa: E402
from solo_coplugin.methods.co_vicreg import CoVICReg  # noqa: E402

#: name -> class, registered into ``solo.methods.METHODS`` by ``solo_coplugin.registration``
METHODS = {
    "co_barlow_twins": CoBarlowTwins,
    "co_byol": CoBYOL,
    "co_dino": CoDINO,
    "co_mocov2plus": CoMoCoV2Plus,
    "co_mocov3": CoMoCoV3,
    "co_nnbyol": CoNNBYOL,
    "co_nnclr": CoNNCLR,
    "co_nnsiam": CoNNSiam,
    "co_ressl": CoReSSL,
    "co_simclr": CoSimCLR,
    "co_simsiam": CoSimSiam,
    "co_vibcreg": CoVIbCReg,
    "co_vicreg": CoVICReg,
}

#: solo-learn methods without a CO variant, and why
UNSUPPORTED = {
    "swav": "a clustering method: its targets are online cluster assignments of whole views "
    "(Sinkhorn-Knopp over the batch), not a per-image global representation that a part can "
    "predict",
    "deepclusterv2": "a clustering method whose targets are k-means assignments recomputed each "
    "epoch over the dataset, not a per-image global representation of the other view",
    "mae": "a masked autoencoder: it reconstructs pixels of masked patches and has no two-view "
    "global target to align local representations with",
    "wmse": "its whitening is computed over groups of whole-view embeddings; per-position "
    "whitened targets are not defined by the method",
    "supcon": "supervised: use co_simclr, whose loss takes labels as indexes",
    "all4one": "its centroid objective has no per-image target that a part can predict on its "
    "own: it runs a transformer over the online prediction together with four neighbours of the "
    "same view's global momentum projection, so a local prediction put in that sequence would be "
    "read next to global information about its own view and need not predict the whole from the "
    "part; dropping that objective would no longer be All4One (its nearest-neighbour contrastive "
    "part alone is what co_nnclr aligns local representations with)",
}


def co_method(base_method: str):
    """The CO variant of a solo-learn method, or a clear error saying why there is none.

    Args:
        base_method (str): a solo-learn method name (``byol``, ``dino``, ...).

    Returns:
        type: the CO method class.
    """

    name = f"co_{base_method}"
    if name in METHODS:
        return METHODS[name]
    reason = UNSUPPORTED.get(base_method, "it is not a solo-learn method that solo-coplugin knows")
    raise CoConfigError(
        f"solo-learn method {base_method!r} has no CO variant ({reason}). Supported: "
        f"method={' | '.join(sorted(METHODS))}."
    )


__all__ = [
    "METHODS",
    "UNSUPPORTED",
    "CoBYOL",
    "CoBarlowTwins",
    "CoDINO",
    "CoMoCoV2Plus",
    "CoMoCoV3",
    "CoNNBYOL",
    "CoNNCLR",
    "CoNNSiam",
    "CoReSSL",
    "CoSimCLR",
    "CoSimSiam",
    "CoVIbCReg",
    "CoVICReg",
    "co_method",
]

# last: registration reads METHODS from this (by now complete) module
from solo_coplugin.registration import register  # noqa: E402

register()
