"""CO-DINO: DINO plus the cross-entropy between the teacher and each local student output."""

from typing import Optional

import omegaconf
from solo.methods.dino import DINO, DINOHead
from solo.utils.misc import omegaconf_select

from solo_coplugin.core import CoConfigError, co_dino_local_loss
from solo_coplugin.methods.co_base import CoMixin


class CoDINO(CoMixin, DINO):
    """CO-DINO (DINO, https://arxiv.org/abs/2104.14294, with CO-SSL,
    https://arxiv.org/abs/2501.02860).

    Each position of the feature map goes through a local DINO head (DINO's head, applied
    as 1x1 convolutions, or the global head itself with ``local_head: shared``); the
    teacher's output of the other view, centered and sharpened as in DINO, is the target of
    a cross-entropy with each local student output. The teacher's center is updated from
    global teacher outputs only, by DINO's loss. ``freeze_last_layer`` and ``clip_grad``
    apply to the local head too.

    Extra cfg settings:
        method_kwargs: DINO's (proj_hidden_dim, proj_output_dim, num_prototypes,
            use_bn_in_head, norm_last_layer, clip_grad, freeze_last_layer, temperatures),
            and the CO keys of :class:`~solo_coplugin.methods.co_base.CoMixin`.
    """

    local_head_names = {"z": "head"}
    global_target = "momentum_z"
    local_settings = ("local_num_prototypes",)

    @classmethod
    def add_and_assert_specific_cfg(cls, cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds DINO's and the CO defaults/checks, and the local head's prototypes.

        Args:
            cfg (omegaconf.DictConfig): DictConfig object.

        Returns:
            omegaconf.DictConfig: same as the argument, used to avoid errors.
        """

        cfg = super().add_and_assert_specific_cfg(cfg)
        cfg.method_kwargs.local_num_prototypes = omegaconf_select(
            cfg, "method_kwargs.local_num_prototypes", cfg.method_kwargs.num_prototypes
        )
        return cfg

    def build_local_head(
        self, key: str, global_head: DINOHead, in_features: Optional[int] = None
    ) -> DINOHead:
        """A new DINO head with the global head's sizes and DINO's own initialisation, reading
        ``in_features`` (the local stage's channels) when given.

        (DINO's head uses weight normalization, which cannot be deep-copied.)
        """

        kwargs = self.cfg.method_kwargs
        head = DINOHead(
            in_dim=in_features or self.features_dim,
            hidden_dim=self.local_hidden_dim or kwargs.proj_hidden_dim,
            use_bn=kwargs.use_bn_in_head,
            bottleneck_dim=kwargs.proj_output_dim,
            num_prototypes=kwargs.local_num_prototypes,
            norm_last_layer=kwargs.norm_last_layer,
        )
        if head.last_layer.out_features != global_head.last_layer.out_features:
            raise CoConfigError(
                f"the local DINO head has {head.last_layer.out_features} outputs and the global "
                f"head {global_head.last_layer.out_features}: the local cross-entropy needs the "
                "same prototypes. Fix: method_kwargs.local_num_prototypes="
                f"{global_head.last_layer.out_features} (or leave it unset)."
            )
        return head

    def state_before_step(self):
        # DINO's loss updates its center inside DINO's step; the local loss uses the center (and
        # teacher temperature) that the global loss used
        loss = self.dino_loss_func
        return loss.center.clone(), float(loss.teacher_temp_schedule[loss.epoch])

    def local_loss(self, local, targets, batch, state):
        center, teacher_temperature = state
        return co_dino_local_loss(
            local, targets, center, teacher_temperature, self.dino_loss_func.student_temp
        )

    def on_after_backward(self):
        """DINO's gradient clipping and last-layer freezing, for the local head too."""

        super().on_after_backward()
        if self.local_head != "separate":
            return
        local_head = self.local_heads["z"]
        if self.clip_grad:
            for p in local_head.parameters():
                if p.grad is not None:
                    clip_coef = self.clip_grad / (p.grad.data.norm(2) + 1e-6)
                    if clip_coef < 1:
                        p.grad.data.mul_(clip_coef)
        if self.current_epoch < self.freeze_last_layer:
            for p in local_head.last_layer.parameters():
                p.grad = None
