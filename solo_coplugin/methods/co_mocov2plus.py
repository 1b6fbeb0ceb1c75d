"""CO-MoCoV2+: MoCo v2+ plus InfoNCE between local queries, global keys and the queue."""

from solo.methods.mocov2plus import MoCoV2Plus

from solo_coplugin.core import co_mocov2plus_local_loss
from solo_coplugin.methods.co_base import CoMixin


class CoMoCoV2Plus(CoMixin, MoCoV2Plus):
    """CO-MoCoV2+ (MoCo v2+, https://arxiv.org/abs/2003.04297, with CO-SSL,
    https://arxiv.org/abs/2501.02860).

    Each position of the feature map goes through a local projector (MoCo v2+'s layer
    sizes, as 1x1 convolutions); the normalized local query has the other view's momentum
    key of its image as positive and that view's queue (before this step's enqueue) as
    negatives, with MoCo's temperature.

    Extra cfg settings:
        method_kwargs: MoCo v2+'s (proj_output_dim, proj_hidden_dim, temperature, queue_size),
            and the CO keys of :class:`~solo_coplugin.methods.co_base.CoMixin`.
    """

    local_head_names = {"z": "projector"}
    global_target = "momentum_z"

    def state_before_step(self):
        # MoCo v2+ enqueues this step's keys inside its step; the local loss uses the queue the
        # global loss used
        return self.queue.clone().detach()

    def local_loss(self, local, targets, batch, state):
        return co_mocov2plus_local_loss(local, targets, state, self.temperature)
