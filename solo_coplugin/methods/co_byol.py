"""CO-BYOL: BYOL plus the alignment of local predictions with the other view's target."""

from solo.methods.byol import BYOL

from solo_coplugin.core import co_byol_local_loss
from solo_coplugin.methods.co_base import CoMixin


class CoBYOL(CoMixin, BYOL):
    """CO-BYOL (BYOL, https://arxiv.org/abs/2006.07733, with CO-SSL,
    https://arxiv.org/abs/2501.02860).

    Each position of the online feature map goes through a local projector and a local
    predictor (the layer sizes of BYOL's projector and predictor, as 1x1 convolutions); its
    prediction is pulled towards the momentum projection of the other view's global
    feature with BYOL's normalized MSE.

    Extra cfg settings:
        method_kwargs: BYOL's (proj_output_dim, proj_hidden_dim, pred_hidden_dim), and
            the CO keys of :class:`~solo_coplugin.methods.co_base.CoMixin`.
    """

    local_head_names = {"z": "projector", "p": "predictor"}
    global_target = "momentum_z"

    def local_loss(self, local, targets, batch, state):
        return co_byol_local_loss(local, targets)
