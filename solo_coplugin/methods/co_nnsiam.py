"""CO-NNSiam: NNSiam plus the alignment of local predictions with the other view's neighbour."""

from solo.methods.nnsiam import NNSiam

from solo_coplugin.core import co_simsiam_local_loss, nearest_neighbour
from solo_coplugin.methods.co_base import CoMixin


class CoNNSiam(CoMixin, NNSiam):
    """CO-NNSiam (NNSiam, SimSiam with NNCLR's neighbours, https://arxiv.org/abs/2104.14548,
    with CO-SSL, https://arxiv.org/abs/2501.02860).

    Each position of the feature map goes through a local projector and a local predictor
    (NNSiam's layer sizes, as 1x1 convolutions); its prediction is pulled, with SimSiam's
    negative cosine similarity, towards the global target NNSiam itself uses for the other
    view: the nearest neighbour of that view's projection in the support queue, found in the
    queue as the global loss saw it (before this step's enqueue). Only global projections are
    enqueued. The local predictor keeps NNSiam's fixed learning rate.

    Extra cfg settings:
        method_kwargs: NNSiam's (proj_output_dim, proj_hidden_dim, pred_hidden_dim,
            queue_size), and the CO keys of :class:`~solo_coplugin.methods.co_base.CoMixin`
            (``local_target_grad`` must stay False: neighbours come from a queue).
    """

    local_head_names = {"z": "projector", "p": "predictor"}
    global_target = "z"
    stop_gradient_targets_because = (
        "its targets are nearest neighbours taken from a queue, which carry no gradient"
    )

    def state_before_step(self):
        # NNSiam enqueues this step's projections inside its step; the local loss takes the
        # neighbours from the queue the global loss searched
        return self.queue.clone()

    def local_loss(self, local, targets, batch, state):
        return co_simsiam_local_loss(local, [nearest_neighbour(z, state) for z in targets])
