"""The CO-SSL core: feature-map access, local heads and local losses, in pure torch.

Nothing here imports solo-learn, so the core can be tested, read and reused on its own.
"""

from solo_coplugin.core.config import (
    DEFAULT_LOCAL_HEAD,
    DEFAULT_LOCAL_WEIGHT,
    LOCAL_HEAD_MODES,
    CoConfigError,
    check_grid_fits,
    check_local_grid,
    check_local_hidden_dim,
    check_local_flag,
    check_local_head,
    check_local_weight,
)
from solo_coplugin.core.feature_maps import (
    FeatureMapTap,
    UnsupportedBackboneError,
    find_spatial_stage,
    measure_feature_map_size,
)
from solo_coplugin.core.heads import (
    clone_head,
    clone_head_with_hidden_dim,
    feature_map_to_rows,
    pool_to_grid,
)
from solo_coplugin.core.lean_heads import lean_blocks, run_head
from solo_coplugin.core.losses import (
    byol_local_loss,
    co_byol_local_loss,
    co_dino_local_loss,
    co_loss,
    co_mocov2plus_local_loss,
    co_mocov3_local_loss,
    co_simclr_local_loss,
    cross_view_pairs,
    per_position_loss,
)

__all__ = [
    "DEFAULT_LOCAL_HEAD",
    "DEFAULT_LOCAL_WEIGHT",
    "LOCAL_HEAD_MODES",
    "CoConfigError",
    "FeatureMapTap",
    "UnsupportedBackboneError",
    "byol_local_loss",
    "check_grid_fits",
    "check_local_grid",
    "check_local_flag",
    "check_local_hidden_dim",
    "check_local_head",
    "check_local_weight",
    "clone_head",
    "clone_head_with_hidden_dim",
    "co_byol_local_loss",
    "co_dino_local_loss",
    "co_loss",
    "co_mocov2plus_local_loss",
    "co_mocov3_local_loss",
    "co_simclr_local_loss",
    "cross_view_pairs",
    "feature_map_to_rows",
    "find_spatial_stage",
    "lean_blocks",
    "measure_feature_map_size",
    "per_position_loss",
    "pool_to_grid",
    "run_head",
]
