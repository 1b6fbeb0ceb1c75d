"""What every CO method adds to its solo-learn base method.

A CO method is ``class CoX(CoMixin, X)``: the mixin taps the backbone's feature map, builds
the local heads from X's global heads, adds ``local_<key>`` outputs to X's forward dicts and the
local heads to X's learnable parameters, and wraps X's own, unchanged ``training_step``. The CO
method's file only states which global heads get local copies and which local loss aligns
them with which global targets; the losses themselves live in ``solo_coplugin.core``.

How the losses combine without re-implementing X's loss: X's ``training_step`` returns
``T = L_global + C`` (C: the online classifiers' losses). The mixin records the per-crop outputs
that solo-learn's ``BaseMethod``/``BaseMomentumMethod`` compute C from, recomputes C with the same
operations, and returns ``T + w * (L_local - (T - C))``, i.e. ``(1 - w) L_global + w L_local + C``.
With ``w = 0`` this is ``T + 0``: X's loss and gradients exactly, with no special case.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import omegaconf
import torch
import torch.nn as nn
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from solo.utils.misc import omegaconf_select

from solo_coplugin.backbones import stage_receptive_field
from solo_coplugin.core import (
    SETTINGS,
    CoConfigError,
    FeatureMapTap,
    check_co_settings,
    check_grid_fits,
    check_local_keys,
    clone_head,
    clone_head_with_hidden_dim,
    co_loss,
    feature_map_to_rows,
    measure_feature_map_shape,
    run_head,
    setting_names,
)
from solo_coplugin.core.resume import restore_momentum_tau
from solo_coplugin.core.rng import RNG_STATE_KEY, RngStatesOnResume, capture_rng_states


class CoMixin:
    """CO-SSL machinery for a solo-learn method. Put it first in the bases: ``CoMixin, X``.

    CO cfg settings (``method_kwargs``), on top of the base method's:
        local_weight (float): ``w`` in ``(1 - w) * L_global + w * L_local``. Defaults to
            0.3; 0 reproduces the base method exactly.
        local_loss_form (str): ``convex``, the form above (default), or ``additive``,
            ``L_global + w * L_local``: the base method's loss unscaled.
        local_grid (Optional[int]): pool the feature map to an ``n x n`` grid of local
            representations. Defaults to None (the native feature-map grid).
        local_stage (Optional[str]): the backbone stage whose map holds the local
            representations (``layer2``, ``layer3``, ``layer4`` of a ResNet; ``blocks.<i>`` of a
            ViT; see :func:`~solo_coplugin.core.spatial_stages`). The first local head reads that
            stage's channels; the global representation stays the backbone's pooled output.
            Defaults to None (the map the backbone pools).
        local_head (str): ``separate`` local heads with the global heads' layer sizes
            (default) or ``shared`` (the global heads applied at every position).
        local_small_crops (bool): also align the local representations of small crops
            (multi-crop configs) with the large crops' global targets. Defaults to False.
        local_hidden_dim (Optional[int]): hidden width of slim separate local heads (input and
            output sizes unchanged), to trade accuracy for speed. Defaults to None (the global
            heads' width).
        local_target_grad (bool): for methods without a momentum network, let the local loss's
            gradient flow into the global targets. Defaults to False (stop-gradient targets).
        local_recompute (bool): keep no hidden activation of the local heads' ``Linear,
            BatchNorm1d, ReLU, Linear`` blocks for backward and recompute them instead (less
            memory, one more matmul per block). Defaults to False (keep BatchNorm's input only).

    Subclasses set:
        local_head_names (Dict[str, str]): ordered ``{output key: global head attribute}``, e.g.
            ``{"z": "projector", "p": "predictor"}``; the local heads are applied in that order
            and their outputs are exposed as ``local_<key>``, each ``B x N x D``.
        global_target (str): the step output (per large crop) that the local representations
            are aligned with, e.g. ``"momentum_z"``.
        local_settings (Tuple[str, ...]): the method's own ``local_*`` settings, read on top of
            ``core.config.CO_SETTINGS``; any other ``local_*`` key stops the run at start-up.
        stop_gradient_targets_because (Optional[str]): why the global targets must stay
            stop-gradient for the method, if they must: ``local_target_grad=True`` is refused
            with that reason. Methods whose ``global_target`` is a ``momentum_*`` output refuse
            it too (no gradient could reach those targets).
    and implement ``local_loss(local, targets, batch, state)``: ``local`` is the list (per view)
    of ``B x N x D`` outputs of the last local head, ``targets`` the list (per large view) of
    global targets, ``state`` what ``state_before_step`` saved before the base step ran.
    """

    local_head_names: Dict[str, str] = {}
    global_target: str = "z"
    local_settings: Tuple[str, ...] = ()
    stop_gradient_targets_because: Optional[str] = None

    def __init__(self, cfg: omegaconf.DictConfig):
        """Builds the base method, then the CO parts (feature-map tap, local heads).

        Args:
            cfg (omegaconf.DictConfig): the base method's cfg plus the CO keys.
        """

        super().__init__(cfg)
        self.init_co(cfg)

    @classmethod
    def add_and_assert_specific_cfg(cls, cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds the base method's and the CO defaults/checks to the config.

        Args:
            cfg (omegaconf.DictConfig): DictConfig object.

        Returns:
            omegaconf.DictConfig: same as the argument, used to avoid errors.
        """

        method_kwargs = omegaconf_select(cfg, "method_kwargs", None) or {}
        check_local_keys(method_kwargs, setting_names(cfg.method) + cls.local_settings, cfg.method)
        cfg = super(CoMixin, cls).add_and_assert_specific_cfg(cfg)
        cfg = CoMixin.add_and_assert_co_cfg(cfg)
        reason = cls.stop_gradient_targets_because
        if reason is None and cls.global_target.startswith("momentum_"):
            # accepting it would train exactly as False does while the config says otherwise
            reason = "its global targets come from the momentum network, which gets no gradient"
        if reason is not None and cfg.method_kwargs.local_target_grad:
            raise CoConfigError(
                f"method_kwargs.local_target_grad=True is not available for {cfg.method}: "
                f"{reason}. Fix: method_kwargs.local_target_grad=False (or leave it unset)."
            )
        return cfg

    @staticmethod
    def add_and_assert_co_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Adds the CO defaults to ``cfg`` and checks them (called by each CO method).

        Args:
            cfg (omegaconf.DictConfig): DictConfig object.

        Returns:
            omegaconf.DictConfig: same as the argument, used to avoid errors.
        """

        # every setting of core.config.SETTINGS that all CO methods read, with its default
        given = {
            row.name: omegaconf_select(cfg, "method_kwargs." + row.name, row.default)
            for row in SETTINGS
            if row.method is None
        }
        for key, value in check_co_settings(given).items():
            cfg.method_kwargs[key] = value

        num_large_crops = omegaconf_select(cfg, "data.num_large_crops", 2)
        if num_large_crops != 2:
            raise CoConfigError(
                f"{cfg.method} needs exactly 2 large crops (the two views whose local and global "
                f"representations are aligned across views), got data.num_large_crops="
                f"{num_large_crops}. Fix: give the large-crop augmentation pipelines 2 crops in "
                "total (num_crops: 2 in one pipeline, or two pipelines with num_crops: 1)."
            )
        return cfg

    def init_co(self, cfg: omegaconf.DictConfig) -> None:
        """Builds the CO parts, once the base method is built.

        Args:
            cfg (omegaconf.DictConfig): the method's cfg, after ``add_and_assert_specific_cfg``.
        """

        self.local_weight: float = cfg.method_kwargs.local_weight
        self.local_loss_form: str = cfg.method_kwargs.local_loss_form
        self.local_grid = cfg.method_kwargs.local_grid
        self.local_head: str = cfg.method_kwargs.local_head
        self.local_small_crops: bool = cfg.method_kwargs.local_small_crops
        self.local_target_grad: bool = cfg.method_kwargs.local_target_grad
        self.local_hidden_dim = cfg.method_kwargs.local_hidden_dim
        self.local_recompute: bool = cfg.method_kwargs.local_recompute
        self._step_outputs: List[Dict[str, Any]] = []
        self._small_crop_locals: List[torch.Tensor] = []
        self._rng_states_on_resume = RngStatesOnResume()

        # The CO parts draw their random numbers from a fork of the global RNG, so that X and
        # CO-X built with the same seed leave the global RNG in the same state: same data order
        # and same augmentations in a head-to-head comparison.
        with torch.random.fork_rng(devices=[]):
            self.feature_map_tap = FeatureMapTap(
                self.backbone, cfg.backbone.name, cfg.method_kwargs.local_stage
            )
            self.local_stage: str = self.feature_map_tap.stage
            #: channels of the local representations, the input size of the first local head
            self.local_channels: int = self.features_dim
            crop_size = _large_crop_size(cfg)
            feature_map_shape = None
            if crop_size is not None or not self.feature_map_tap.is_last_stage:
                feature_map_shape = measure_feature_map_shape(
                    self.backbone, self.feature_map_tap, crop_size or _probe_size(self.backbone)
                )
            if crop_size is not None:  # check at start-up when the crop size is known
                check_grid_fits(
                    feature_map_shape[1:], self.local_grid, cfg.backbone.name, crop_size
                )
            if self.local_small_crops:  # else a small crop's map is only checked in a step
                self.check_small_crops(cfg)
            if not self.feature_map_tap.is_last_stage:
                self.local_channels = feature_map_shape[0]
            if self.local_head == "shared" and self.local_channels != self.features_dim:
                raise CoConfigError(
                    f"method_kwargs.local_head=shared applies the global heads, which read the "
                    f"backbone's {self.features_dim} features, to the local representations of "
                    f"method_kwargs.local_stage={self.local_stage}, which have "
                    f"{self.local_channels} channels. Fix: method_kwargs.local_head=separate, or "
                    "method_kwargs.local_stage=null."
                )
            #: theoretical receptive fields (px) of a local representation and of a position of
            #: the map the backbone pools; None where not computed (not a ResNet-like backbone)
            self.local_receptive_field = stage_receptive_field(self.backbone, self.local_stage)
            self.backbone_receptive_field = stage_receptive_field(
                self.backbone, self.feature_map_tap.last_stage
            )
            rank_zero_info(self.describe_local_stage(crop_size, feature_map_shape))

            if self.local_head == "separate":
                # the first local head reads the local representations, the others its output
                first_key = next(iter(self.local_head_names), None)
                resized = None if self.feature_map_tap.is_last_stage else self.local_channels
                self.local_heads = nn.ModuleDict(
                    {
                        key: self.build_local_head(
                            key, getattr(self, name), resized if key == first_key else None
                        )
                        for key, name in self.local_head_names.items()
                    }
                )

    def check_small_crops(self, cfg: omegaconf.DictConfig) -> None:
        """Checks that each small crop's feature map has the local representations that
        ``method_kwargs.local_small_crops=True`` aligns (at start-up, not in the first step).

        Args:
            cfg (omegaconf.DictConfig): the method's cfg.
        """

        num_small_crops = omegaconf.OmegaConf.select(cfg, "data.num_small_crops", default=None)
        if num_small_crops == 0:
            raise CoConfigError(
                "method_kwargs.local_small_crops=True aligns the local representations of the "
                "small crops, but the augmentations have none (data.num_small_crops=0), so it "
                "would change nothing. Fix: method_kwargs.local_small_crops=False, or a multi-crop "
                "augmentation (e.g. augmentations=symmetric_multicrop.yaml)."
            )
        for index, size in _small_crop_sizes(cfg):
            _, h, w = measure_feature_map_shape(self.backbone, self.feature_map_tap, size)
            if h * w > 1 and (self.local_grid is None or self.local_grid <= min(h, w)):
                continue
            grid = (
                "" if h * w <= 1 else f", smaller than method_kwargs.local_grid={self.local_grid}"
            )
            raise CoConfigError(
                f"method_kwargs.local_small_crops=True aligns the local representations of the "
                f"small crops, but backbone.name={cfg.backbone.name} ends in a {h}x{w} feature "
                f"map at their {size} px (augmentations[{index}].crop_size={size}){grid}. Fix: "
                "method_kwargs.local_small_crops=False, or larger small crops (augmentations["
                f"{index}].crop_size)."
            )

    def describe_local_stage(self, crop_size=None, feature_map_shape=None) -> str:
        """One line saying where the local representations come from, with receptive fields.

        Args:
            crop_size (Optional[int]): the large crops' size, if known.
            feature_map_shape (Optional[Tuple[int, int, int]]): the stage's (C, H, W) there.

        Returns:
            str: e.g. ``co_byol: local representations from layer3 of resnet18_cifar (256
            channels, 9x9 at 32 px), receptive field 53 px (the pooled layer4: 109 px)``.
        """

        where = f"{self.local_channels} channels"
        if crop_size is not None and feature_map_shape is not None:
            where += f", {feature_map_shape[1]}x{feature_map_shape[2]} at {crop_size} px"
        line = (
            f"{self.cfg.method}: local representations from {self.local_stage} of "
            f"{self.backbone_name} ({where})"
        )
        if self.local_receptive_field is not None:
            line += f", receptive field {self.local_receptive_field} px"
            if not self.feature_map_tap.is_last_stage:
                line += (
                    f" (the pooled {self.feature_map_tap.last_stage}: "
                    f"{self.backbone_receptive_field} px)"
                )
        return line

    def build_local_head(
        self, key: str, global_head: nn.Module, in_features: Optional[int] = None
    ) -> nn.Module:
        """Builds the separate local head for ``global_head`` (same layers, new weights).

        Args:
            key (str): the output key (``z``, ``p``, ...).
            global_head (nn.Module): the global head it mirrors.
            in_features (Optional[int]): the local head's input size when it reads the local
                representations (the first local head); None: the global head's.

        Returns:
            nn.Module: the local head.
        """

        if self.local_hidden_dim is None:
            return clone_head(global_head, in_features)
        try:
            return clone_head_with_hidden_dim(global_head, self.local_hidden_dim, in_features)
        except ValueError as error:
            raise CoConfigError(
                f"method_kwargs.local_hidden_dim is not supported by {self.cfg.method}: {error}. "
                "Fix: method_kwargs.local_hidden_dim=null."
            ) from error

    def local_head_modules(self) -> List[Tuple[str, nn.Module]]:
        """Returns the local heads in application order, as (output key, module) pairs."""

        if self.local_head == "shared":
            return [(key, getattr(self, name)) for key, name in self.local_head_names.items()]
        return [(key, self.local_heads[key]) for key in self.local_head_names]

    @property
    def learnable_params(self) -> List[Dict[str, Any]]:
        """Adds the separate local heads to the parent's learnable parameters.

        A local head is optimized like the global head it mirrors: its group takes that head's
        group settings (e.g. SimSiam's ``static_lr`` predictor).

        Returns:
            List[Dict[str, Any]]: list of learnable parameters.
        """

        learnable_params = super().learnable_params
        extra_learnable_params = []
        if self.local_head == "separate":
            settings = {
                group["name"]: {k: v for k, v in group.items() if k not in ("name", "params")}
                for group in learnable_params
            }
            extra_learnable_params = [
                {
                    **settings.get(name, {}),
                    "name": f"local_{name}",
                    "params": self.local_heads[key].parameters(),
                }
                for key, name in self.local_head_names.items()
            ]
        return learnable_params + extra_learnable_params

    def local_forward(self, feature_map: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Applies the local heads at every position of a feature map, as one batch of rows.

        Their ``Linear, BatchNorm1d, ReLU, Linear`` blocks run memory-lean (see
        :func:`~solo_coplugin.core.lean_heads.run_head`): same values and gradients.

        Args:
            feature_map (torch.Tensor): ``B x C x H x W`` backbone map before pooling.

        Returns:
            Dict[str, torch.Tensor]: ``local_<key>`` outputs, each ``B x N x D``.
        """

        check_grid_fits(feature_map.shape[-2:], self.local_grid, self.backbone_name)
        x, num_positions = feature_map_to_rows(feature_map, self.local_grid)
        out = {}
        for key, head in self.local_head_modules():
            x = run_head(head, x, recompute=self.local_recompute)
            out[f"local_{key}"] = x.view(feature_map.size(0), num_positions, -1)
        return out

    def forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """Performs the base method's forward pass and adds the local head outputs.

        Args:
            X (torch.Tensor): batch of images in tensor format.

        Returns:
            Dict[str, Any]: the base method's outputs plus ``local_<key>`` (``B x N x D``).
        """

        out = super().forward(X)
        out.update(self.local_forward(self.feature_map_tap.pop()))
        return out

    def multicrop_forward(self, X: torch.Tensor) -> Dict[str, Any]:
        """Performs the base method's multicrop forward pass, plus local outputs if
        ``method_kwargs.local_small_crops`` is set.

        Args:
            X (torch.Tensor): batch of images in tensor format.

        Returns:
            Dict[str, Any]: the base method's outputs, plus ``local_<key>`` when enabled.
        """

        out = super().multicrop_forward(X)
        feature_map = self.feature_map_tap.pop()
        if self.local_small_crops:
            local_out = self.local_forward(feature_map)
            self._small_crop_locals.append(local_out[f"local_{list(self.local_head_names)[-1]}"])
            out.update(local_out)
        return out

    def base_training_step(self, X: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
        """Records each large crop's outputs (solo-learn's per-crop hook), then returns them."""

        out = super().base_training_step(X, targets)
        self._step_outputs.append(out)
        return out

    def _shared_step_momentum(self, X: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
        """Records each large crop's momentum outputs, then returns them."""

        out = super()._shared_step_momentum(X, targets)
        self._step_outputs.append({"momentum_" + k: v for k, v in out.items()})
        return out

    def state_before_step(self) -> Any:
        """What ``local_loss`` needs from before the base step changes it (a queue, a center)."""

        return None

    def local_loss(self, local, targets, batch, state) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        """The base method's own training step plus the local loss.

        Args:
            batch (Sequence[Any]): a batch of data in the format of [img_indexes, [X], Y], where
                [X] is a list of size num_crops containing batches of images.
            batch_idx (int): index of the batch.

        Returns:
            torch.Tensor: ``(1 - w) * L_global + w * L_local`` plus the classification losses.
        """

        state = self.state_before_step()
        self._step_outputs = []
        total = super().training_step(batch, batch_idx)
        outs = {}
        for out in self._step_outputs:
            for key, value in out.items():
                outs.setdefault(key, []).append(value)
        self._step_outputs = []

        # the online classifiers' losses, with BaseMethod's and BaseMomentumMethod's operations
        class_loss = sum(outs["loss"]) / self.num_large_crops
        if "momentum_loss" in outs:
            class_loss = class_loss + sum(outs["momentum_loss"]) / self.num_large_crops
        global_loss = total - class_loss

        last_key = list(self.local_head_names)[-1]
        local = outs[f"local_{last_key}"] + self._small_crop_locals
        self._small_crop_locals = []
        targets = outs[self.global_target][: self.num_large_crops]
        if (
            not self.local_target_grad
        ):  # global targets as stop-gradient (momentum ones already are)
            targets = [target.detach() for target in targets]
        local_loss = self.local_loss(local, targets, batch, state)

        with torch.no_grad():
            # std over images and positions of the normalized local projections; -> 0 on collapse
            local_z = outs[f"local_{list(self.local_head_names)[0]}"]
            local_z_std = torch.stack(
                [F.normalize(z.flatten(0, 1), dim=-1).std(dim=0).mean() for z in local_z]
            ).mean()
        metrics = {
            "train_global_loss": global_loss,
            "train_local_loss": local_loss,
            "train_co_loss": co_loss(
                global_loss, local_loss, self.local_weight, self.local_loss_form
            ),
            "train_local_z_std": local_z_std,
        }
        self.log_dict(metrics, on_epoch=True, sync_dist=True)
        # the base method's total (its loss and the online classifiers') plus the change that the
        # local term makes to it: the gradient of co_loss, with the classifiers untouched
        if self.local_loss_form == "additive":
            return total + self.local_weight * local_loss
        return total + self.local_weight * (local_loss - global_loss)

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Saves the random generators' states with the weights (see ``core.rng``).

        Args:
            checkpoint (Dict[str, Any]): the checkpoint being written.
        """

        super().on_save_checkpoint(checkpoint)
        checkpoint[RNG_STATE_KEY] = capture_rng_states()

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """On resume, keeps the saved random generators' states for the next epoch's start.

        Loading weights outside of training (``load_from_checkpoint``) leaves them alone.

        Args:
            checkpoint (Dict[str, Any]): the checkpoint being loaded.
        """

        super().on_load_checkpoint(checkpoint)
        if RNG_STATE_KEY in checkpoint and self._trainer is not None:
            self._rng_states_on_resume.load(checkpoint[RNG_STATE_KEY])

    def on_train_start(self) -> None:
        """After a resume, sets the momentum coefficient of the restored step (solo-learn keeps
        it only in memory; see ``core.resume``)."""

        super().on_train_start()
        restore_momentum_tau(self)

    def on_train_epoch_start(self) -> None:
        """Restores the generators' states after a resume, so the run continues the same run."""

        super().on_train_epoch_start()
        self._rng_states_on_resume.restore_pending()


def _probe_size(backbone: nn.Module) -> int:
    """An input side the backbone runs on, to measure a stage's channels when the cfg has no
    crop size: a ViT's or Swin's ``img_size``, else 64 px."""

    img_size = getattr(getattr(backbone, "patch_embed", None), "img_size", None)
    if img_size is None:
        return 64
    return int(img_size[0] if isinstance(img_size, (tuple, list)) else img_size)


def _large_crop_size(cfg: omegaconf.DictConfig):
    """The large crops' size from ``cfg.augmentations`` (None when the cfg has none)."""

    augmentations = omegaconf_select(cfg, "augmentations", None)
    if not augmentations:
        return None
    return omegaconf_select(augmentations[0], "crop_size", None)


def _small_crop_sizes(cfg: omegaconf.DictConfig) -> List[Tuple[int, int]]:
    """(index, crop size) of the small-crop pipelines of ``cfg.augmentations``: those whose
    crop size differs from the first pipeline's, as solo-learn's ``parse_cfg`` counts them."""

    augmentations = omegaconf_select(cfg, "augmentations", None) or []
    if not augmentations:
        return []
    large = omegaconf_select(augmentations[0], "crop_size", None)
    return [
        (index, int(pipeline.crop_size))
        for index, pipeline in enumerate(augmentations)
        if omegaconf_select(pipeline, "crop_size", large) != large
    ]
