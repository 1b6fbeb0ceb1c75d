"""CO-MoCoV3: MoCo v3 plus InfoNCE between local queries and the other view's momentum key."""

from solo.methods.mocov3 import MoCoV3

from solo_coplugin.core import co_mocov3_local_loss
from solo_coplugin.methods.co_base import CoMixin


class CoMoCoV3(CoMixin, MoCoV3):
    """CO-MoCoV3 (MoCo v3, https://arxiv.org/abs/2104.02057, with CO-SSL,
    https://arxiv.org/abs/2501.02860).

    Each position of the feature map goes through a local projector and a local predictor
    (MoCo v3's layer sizes, as 1x1 convolutions); the local query is contrasted with the
    momentum keys of the other view: its own image's key is the positive, the other images'
    keys, gathered over devices, the negatives, with MoCo v3's temperature and 2T scaling.

    Extra cfg settings:
        method_kwargs: MoCo v3's (proj_output_dim, proj_hidden_dim, pred_hidden_dim,
            temperature), and the CO keys of :class:`~solo_coplugin.methods.co_base.CoMixin`.
    """

    local_head_names = {"z": "projector", "q": "predictor"}
    global_target = "momentum_k"

    def local_loss(self, local, targets, batch, state):
        return co_mocov3_local_loss(local, targets, self.temperature)
