"""CO-Barlow Twins: Barlow Twins plus its loss between each local projection and the global ones."""

from solo.losses.barlow import barlow_loss_func
from solo.methods.barlow_twins import BarlowTwins

from solo_coplugin.core import per_position_loss
from solo_coplugin.methods.co_base import CoMixin


class CoBarlowTwins(CoMixin, BarlowTwins):
    """CO-Barlow Twins (Barlow Twins, https://arxiv.org/abs/2103.03230, with CO-SSL,
    https://arxiv.org/abs/2501.02860).

    Each position of the feature map goes through a local projector (Barlow Twins' layer
    sizes, as 1x1 convolutions); Barlow Twins' loss (same lambda and scale) is applied
    between the local projections at each position and the global projections of the other
    view, and averaged over positions.

    Extra cfg settings:
        method_kwargs: Barlow Twins' (proj_output_dim, proj_hidden_dim, lamb, scale_loss), and
            the CO keys of :class:`~solo_coplugin.methods.co_base.CoMixin`.
    """

    local_head_names = {"z": "projector"}
    global_target = "z"

    def local_loss(self, local, targets, batch, state):
        return per_position_loss(
            lambda z_local, z_global: barlow_loss_func(
                z_local, z_global, lamb=self.lamb, scale_loss=self.scale_loss
            ),
            local,
            targets,
        )
