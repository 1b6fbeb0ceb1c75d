"""solo-learn adapters: one CO method per file, each subclassing its solo-learn base method."""

from solo_coplugin.solo_compat import require_solo_learn

require_solo_learn()

from solo_coplugin.methods.co_byol import CoBYOL  # noqa: E402
from solo_coplugin.methods.co_simclr import CoSimCLR  # noqa: E402

#: name -> class, registered into ``solo.methods.METHODS`` by ``solo_coplugin.registration``
METHODS = {
    "co_byol": CoBYOL,
    "co_simclr": CoSimCLR,
}

__all__ = ["METHODS", "CoBYOL", "CoSimCLR"]
