"""CO-SimCLR: SimCLR plus InfoNCE between local projections and the global projections."""

from typing import Any, Sequence

import omegaconf
import torch
from solo.losses.simclr import simclr_loss_func
from solo.methods.simclr import SimCLR
from solo.utils.misc import omegaconf_select

from solo_coplugin.core import co_simclr_local_loss
from solo_coplugin.methods.co_base import CoMixin


class CoSimCLR(CoMixin, SimCLR):
    local_head_names = {"z": "projector"}

    def __init__(self, cfg: omegaconf.DictConfig):
        """Implements CO-SimCLR (SimCLR, https://arxiv.org/abs/2002.05709, with CO-SSL,
        https://arxiv.org/abs/2501.02860).

        Each position of the feature map goes through a local projector (the layer sizes of
        SimCLR's projector, as 1x1 convolutions) and is an InfoNCE anchor: its positive is the
        global projection of the same image in the other view, its negatives the global
        projections of the other images in both views, gathered over devices.

        Extra cfg settings:
            method_kwargs: SimCLR's (proj_output_dim, proj_hidden_dim, temperature), and
                local_target_grad (bool): let the local loss's gradient flow into the global
                projections. Defaults to False (global side as a stop-gradient target).
            method_kwargs (CO): local_weight, local_grid, local_head, local_small_crops,
                see :class:`~solo_coplugin.methods.co_base.CoMixin`.
        """

        super().__init__(cfg)
        self.local_target_grad: bool = cfg.method_kwargs.local_target_grad
        self.init_co(cfg)

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds SimCLR's and the CO defaults/checks to the config.

        Args:
            cfg (omegaconf.DictConfig): DictConfig object.

        Returns:
            omegaconf.DictConfig: same as the argument, used to avoid errors.
        """

        cfg = super(CoSimCLR, CoSimCLR).add_and_assert_specific_cfg(cfg)
        cfg.method_kwargs.local_target_grad = bool(
            omegaconf_select(cfg, "method_kwargs.local_target_grad", False)
        )
        return CoMixin.add_and_assert_co_cfg(cfg)

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """Training step: SimCLR's loss and the local loss, plus the online classifier loss.

        Args:
            batch (Sequence[Any]): a batch of data in the format of [img_indexes, [X], Y], where
                [X] is a list of size num_crops containing batches of images.
            batch_idx (int): index of the batch.

        Returns:
            torch.Tensor: ``(1 - w) * SimCLR + w * local`` loss plus the classification loss.
        """

        indexes = batch[0]

        # BaseMethod's step (skipping SimCLR's, which only returns the summed loss)
        out = super(SimCLR, self).training_step(batch, batch_idx)
        class_loss = out["loss"]
        z = torch.cat(out["z"])

        # ------- SimCLR's loss, as solo-learn's SimCLR computes it -------
        n_augs = self.num_large_crops + self.num_small_crops
        nce_loss = simclr_loss_func(z, indexes=indexes.repeat(n_augs), temperature=self.temperature)
        self.log("train_nce_loss", nce_loss, on_epoch=True, sync_dist=True)

        # ------- local loss -------
        local_loss = co_simclr_local_loss(
            out["local_z"],
            out["z"][: self.num_large_crops],
            indexes,
            temperature=self.temperature,
            target_grad=self.local_target_grad,
        )
        loss = self.combine_and_log(nce_loss, local_loss, out["local_z"])
        return loss + class_loss
