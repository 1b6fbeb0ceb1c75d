"""CO-NNBYOL: NNBYOL plus the alignment of local predictions with the other view's neighbour."""

from solo.methods.nnbyol import NNBYOL

from solo_coplugin.core import co_byol_local_loss, nearest_neighbour
from solo_coplugin.methods.co_base import CoMixin


class CoNNBYOL(CoMixin, NNBYOL):
    """CO-NNBYOL (NNBYOL, BYOL with NNCLR's neighbours, https://arxiv.org/abs/2104.14548, with
    CO-SSL, https://arxiv.org/abs/2501.02860).

    Each position of the online feature map goes through a local projector and a local
    predictor (NNBYOL's layer sizes, as 1x1 convolutions); its prediction is pulled, with
    BYOL's normalized MSE, towards the global target NNBYOL itself uses for the other view: the
    nearest neighbour of that view's momentum projection in the support queue, found in the
    queue as the global loss saw it (before this step's enqueue). Only global momentum
    projections are enqueued.

    Extra cfg settings:
        method_kwargs: NNBYOL's (proj_output_dim, proj_hidden_dim, pred_hidden_dim,
            queue_size), and the CO keys of :class:`~solo_coplugin.methods.co_base.CoMixin`.
    """

    local_head_names = {"z": "projector", "p": "predictor"}
    global_target = "momentum_z"

    def state_before_step(self):
        # NNBYOL enqueues this step's momentum projections inside its step; the local loss takes
        # the neighbours from the queue the global loss searched
        return self.queue.clone()

    def local_loss(self, local, targets, batch, state):
        return co_byol_local_loss(local, [nearest_neighbour(z, state) for z in targets])
