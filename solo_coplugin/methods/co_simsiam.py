"""CO-SimSiam: SimSiam plus the alignment of local predictions with the other view's projection."""

from solo.methods.simsiam import SimSiam

from solo_coplugin.core import co_simsiam_local_loss
from solo_coplugin.methods.co_base import CoMixin


class CoSimSiam(CoMixin, SimSiam):
    """CO-SimSiam (SimSiam, https://arxiv.org/abs/2011.10566, with CO-SSL,
    https://arxiv.org/abs/2501.02860).

    CO-BYOL without a momentum network: each position of the feature map goes through a local
    projector and a local predictor (SimSiam's layer sizes, as 1x1 convolutions); its prediction
    is pulled towards the other view's global projection, a stop-gradient target, with SimSiam's
    negative cosine similarity. The local predictor keeps SimSiam's fixed learning rate.

    Extra cfg settings:
        method_kwargs: SimSiam's (proj_output_dim, proj_hidden_dim, pred_hidden_dim), and the CO
            keys of :class:`~solo_coplugin.methods.co_base.CoMixin` (``local_target_grad`` must
            stay False: the stop-gradient is SimSiam's).
    """

    local_head_names = {"z": "projector", "p": "predictor"}
    global_target = "z"
    stop_gradient_targets_because = (
        "SimSiam's stop-gradient on the target is what keeps it from collapsing"
    )

    def local_loss(self, local, targets, batch, state):
        return co_simsiam_local_loss(local, targets)
