"""CO-VIbCReg: VIbCReg plus its loss between each local projection and the global ones."""

from solo.losses.vibcreg import vibcreg_loss_func
from solo.methods.vibcreg import VIbCReg

from solo_coplugin.core import per_position_loss
from solo_coplugin.methods.co_base import CoMixin


class CoVIbCReg(CoMixin, VIbCReg):
    """CO-VIbCReg (VIbCReg, https://arxiv.org/abs/2109.00783, with CO-SSL,
    https://arxiv.org/abs/2501.02860).

    Each position of the feature map goes through a local projector (VIbCReg's layers, as 1x1
    convolutions, ending in its own IterNorm when ``iternorm`` is set); VIbCReg's loss
    (invariance, variance, normalized covariance, same weights) is applied between the local
    projections at each position and the global projections of the other view, and averaged
    over positions, as in CO-VICReg. The local branch is well defined with IterNorm: like
    BatchNorm, IterNorm transforms each row with statistics of the batch of rows, so on the
    ``B * H * W`` rows of the local head it whitens the local projections over images and
    positions (a 1x1 convolution followed by whitening over batch and space); a separate local
    head has its own IterNorm and running whitening matrix.

    Extra cfg settings:
        method_kwargs: VIbCReg's (proj_output_dim, proj_hidden_dim, sim/var/cov_loss_weight,
            iternorm), and the CO keys of :class:`~solo_coplugin.methods.co_base.CoMixin`.
    """

    local_head_names = {"z": "projector"}
    global_target = "z"

    def local_loss(self, local, targets, batch, state):
        return per_position_loss(
            lambda z_local, z_global: vibcreg_loss_func(
                z_local,
                z_global,
                sim_loss_weight=self.sim_loss_weight,
                var_loss_weight=self.var_loss_weight,
                cov_loss_weight=self.cov_loss_weight,
            ),
            local,
            targets,
        )
