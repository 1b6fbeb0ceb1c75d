"""CO-SimCLR: SimCLR plus InfoNCE between local projections and the global projections."""

from solo.methods.simclr import SimCLR

from solo_coplugin.core import co_simclr_local_loss
from solo_coplugin.methods.co_base import CoMixin


class CoSimCLR(CoMixin, SimCLR):
    """CO-SimCLR (SimCLR, https://arxiv.org/abs/2002.05709, with CO-SSL,
    https://arxiv.org/abs/2501.02860).

    Each position of the feature map goes through a local projector (the layer sizes of
    SimCLR's projector, as 1x1 convolutions) and is an InfoNCE anchor: its positive is the
    global projection of the same image in the other view, its negatives the global
    projections of the other images in both views, gathered over devices.

    Extra cfg settings:
        method_kwargs: SimCLR's (proj_output_dim, proj_hidden_dim, temperature), and the CO
            keys of :class:`~solo_coplugin.methods.co_base.CoMixin` (``local_target_grad``
            lets the local loss's gradient reach the global projections).
    """

    local_head_names = {"z": "projector"}
    global_target = "z"

    def local_loss(self, local, targets, batch, state):
        return co_simclr_local_loss(
            local, targets, batch[0], self.temperature, target_grad=self.local_target_grad
        )
