"""CO-NNCLR: NNCLR plus InfoNCE between local predictions and the other view's neighbours."""

from solo.methods.nnclr import NNCLR

from solo_coplugin.core import co_nnclr_local_loss, nearest_neighbour
from solo_coplugin.methods.co_base import CoMixin


class CoNNCLR(CoMixin, NNCLR):
    """CO-NNCLR (NNCLR, https://arxiv.org/abs/2104.14548, with CO-SSL,
    https://arxiv.org/abs/2501.02860).

    Each position of the feature map goes through a local projector and a local predictor
    (NNCLR's layer sizes, as 1x1 convolutions); the local prediction is an InfoNCE anchor whose
    positive is the global target NNCLR itself uses for the other view, the nearest neighbour
    of that view's projection in the support queue (the queue as the global loss saw it, before
    this step's enqueue), and whose negatives are the other images' neighbours, gathered over
    devices, with NNCLR's temperature. Only global projections are enqueued.

    Extra cfg settings:
        method_kwargs: NNCLR's (proj_output_dim, proj_hidden_dim, pred_hidden_dim, temperature,
            queue_size), and the CO keys of :class:`~solo_coplugin.methods.co_base.CoMixin`
            (``local_target_grad`` must stay False: neighbours come from a queue).
    """

    local_head_names = {"z": "projector", "p": "predictor"}
    global_target = "z"
    stop_gradient_targets_because = (
        "its targets are nearest neighbours taken from a queue, which carry no gradient"
    )

    def state_before_step(self):
        # NNCLR enqueues this step's projections inside its step; the local loss takes the
        # neighbours from the queue the global loss searched
        return self.queue.clone()

    def local_loss(self, local, targets, batch, state):
        neighbours = [nearest_neighbour(z, state) for z in targets]
        return co_nnclr_local_loss(local, neighbours, self.temperature)
