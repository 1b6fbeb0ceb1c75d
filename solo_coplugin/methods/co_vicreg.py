"""CO-VICReg: VICReg plus VICReg's loss between each local projection and the global ones."""

from solo.losses.vicreg import vicreg_loss_func
from solo.methods.vicreg import VICReg

from solo_coplugin.core import per_position_loss
from solo_coplugin.methods.co_base import CoMixin


class CoVICReg(CoMixin, VICReg):
    """CO-VICReg (VICReg, https://arxiv.org/abs/2105.04906, with CO-SSL,
    https://arxiv.org/abs/2501.02860).

    Each position of the feature map goes through a local projector (VICReg's layer sizes,
    as 1x1 convolutions); VICReg's loss (invariance, variance, covariance, same weights) is
    applied between the local projections at each position and the global projections of
    the other view, and averaged over positions.

    Extra cfg settings:
        method_kwargs: VICReg's (proj_output_dim, proj_hidden_dim, sim/var/cov_loss_weight), and
            the CO keys of :class:`~solo_coplugin.methods.co_base.CoMixin`.
    """

    local_head_names = {"z": "projector"}
    global_target = "z"

    def local_loss(self, local, targets, batch, state):
        return per_position_loss(
            lambda z_local, z_global: vicreg_loss_func(
                z_local,
                z_global,
                sim_loss_weight=self.sim_loss_weight,
                var_loss_weight=self.var_loss_weight,
                cov_loss_weight=self.cov_loss_weight,
            ),
            local,
            targets,
        )
