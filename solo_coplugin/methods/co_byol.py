"""CO-BYOL: BYOL plus the alignment of local predictions with the other view's target."""

from typing import Any, Sequence

import numpy as np
import omegaconf
import torch
import torch.nn.functional as F
from solo.losses.byol import byol_loss_func
from solo.methods.byol import BYOL

from solo_coplugin.core import co_byol_local_loss
from solo_coplugin.methods.co_base import CoMixin


class CoBYOL(CoMixin, BYOL):
    local_head_names = {"z": "projector", "p": "predictor"}

    def __init__(self, cfg: omegaconf.DictConfig):
        """Implements CO-BYOL (BYOL, https://arxiv.org/abs/2006.07733, with CO-SSL,
        https://arxiv.org/abs/2501.02860).

        Each position of the online feature map goes through a local projector and a local
        predictor (the layer sizes of BYOL's projector and predictor, as 1x1 convolutions); its
        prediction is pulled towards the momentum projection of the other view's global
        feature with BYOL's normalized MSE.

        Extra cfg settings:
            method_kwargs: BYOL's (proj_output_dim, proj_hidden_dim, pred_hidden_dim).
            method_kwargs (CO): local_weight, local_grid, local_head, local_small_crops,
                see :class:`~solo_coplugin.methods.co_base.CoMixin`.
        """

        super().__init__(cfg)
        self.init_co(cfg)

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds BYOL's and the CO defaults/checks to the config.

        Args:
            cfg (omegaconf.DictConfig): DictConfig object.

        Returns:
            omegaconf.DictConfig: same as the argument, used to avoid errors.
        """

        cfg = super(CoBYOL, CoBYOL).add_and_assert_specific_cfg(cfg)
        return CoMixin.add_and_assert_co_cfg(cfg)

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """Training step: BYOL's loss and the local loss, plus the online classifier loss.

        Args:
            batch (Sequence[Any]): a batch of data in the format of [img_indexes, [X], Y], where
                [X] is a list of size num_crops containing batches of images.
            batch_idx (int): index of the batch.

        Returns:
            torch.Tensor: ``(1 - w) * BYOL + w * local`` loss plus the classification loss.
        """

        # BaseMomentumMethod's step (skipping BYOL's, which only returns the summed loss)
        out = super(BYOL, self).training_step(batch, batch_idx)
        class_loss = out["loss"]
        Z = out["z"]
        P = out["p"]
        Z_momentum = out["momentum_z"]

        # ------- BYOL's loss, as solo-learn's BYOL computes it -------
        neg_cos_sim = 0
        for v1 in range(self.num_large_crops):
            for v2 in np.delete(range(self.num_crops), v1):
                neg_cos_sim += byol_loss_func(P[v2], Z_momentum[v1])

        with torch.no_grad():
            z_std = F.normalize(torch.stack(Z[: self.num_large_crops]), dim=-1).std(dim=1).mean()
        self.log_dict(
            {"train_neg_cos_sim": neg_cos_sim, "train_z_std": z_std}, on_epoch=True, sync_dist=True
        )

        # ------- local loss -------
        local_loss = co_byol_local_loss(out["local_p"], Z_momentum)
        loss = self.combine_and_log(neg_cos_sim, local_loss, out["local_z"])
        return loss + class_loss
