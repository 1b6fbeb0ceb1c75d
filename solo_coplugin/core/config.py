"""Validation of the CO-SSL settings (pure Python, no solo-learn import).

Every check raises :class:`CoConfigError` with one message that names the config key, the bad
value and the fix, so that a wrong run fails at start-up instead of training silently wrong.
"""

from typing import Optional

LOCAL_HEAD_MODES = ("separate", "shared")

DEFAULT_LOCAL_WEIGHT = 0.3
DEFAULT_LOCAL_HEAD = "separate"


class CoConfigError(ValueError):
    """A CO-SSL setting is invalid; the message names the key and the fix."""


def check_local_weight(local_weight: float) -> float:
    """Checks ``method_kwargs.local_weight`` (the ``w_s`` of ``(1 - w_s) L_global + w_s L_local``).

    Args:
        local_weight (float): weight of the local loss.

    Returns:
        float: the weight as a float.
    """

    if isinstance(local_weight, bool) or not isinstance(local_weight, (int, float)):
        raise CoConfigError(
            f"method_kwargs.local_weight must be a number in [0, 1], got {local_weight!r}. "
            f"Fix: set method_kwargs.local_weight={DEFAULT_LOCAL_WEIGHT} "
            "(the paper reports 0.2 to 0.5 as a good range)."
        )
    if not 0.0 <= local_weight <= 1.0:
        raise CoConfigError(
            f"method_kwargs.local_weight must be in [0, 1], got {local_weight}. "
            f"Fix: set method_kwargs.local_weight={DEFAULT_LOCAL_WEIGHT} "
            "(the paper reports 0.2 to 0.5 as a good range; 0 gives the base method)."
        )
    return float(local_weight)


def check_local_head(local_head: str) -> str:
    """Checks ``method_kwargs.local_head`` (``separate`` or ``shared`` local heads).

    Args:
        local_head (str): how the local heads relate to the global heads.

    Returns:
        str: the validated mode.
    """

    if local_head not in LOCAL_HEAD_MODES:
        raise CoConfigError(
            f"method_kwargs.local_head must be one of {list(LOCAL_HEAD_MODES)}, "
            f"got {local_head!r}. Fix: method_kwargs.local_head=separate (own local heads, the "
            "default) or method_kwargs.local_head=shared (reuse the global heads)."
        )
    return local_head


def check_local_grid(local_grid: Optional[int]) -> Optional[int]:
    """Checks ``method_kwargs.local_grid`` on its own (``None`` keeps the native grid).

    The comparison with the feature-map size is done by :func:`check_grid_fits`.

    Args:
        local_grid (Optional[int]): side of the ``n x n`` grid of local representations.

    Returns:
        Optional[int]: the validated grid side.
    """

    if local_grid is None:
        return None
    if isinstance(local_grid, bool) or not isinstance(local_grid, int) or local_grid < 1:
        raise CoConfigError(
            f"method_kwargs.local_grid must be null (native feature-map grid) or an integer "
            f">= 1, got {local_grid!r}. Fix: method_kwargs.local_grid=null."
        )
    return local_grid


def check_grid_fits(
    feature_map_hw: tuple, local_grid: Optional[int], backbone_name: str = "?", crop_size=None
) -> None:
    """Checks that the backbone's feature map has local representations to align.

    Args:
        feature_map_hw (tuple): (H, W) of the feature map before pooling.
        local_grid (Optional[int]): requested grid side, or None for the native grid.
        backbone_name (str): ``backbone.name``, for the message.
        crop_size (Optional[int]): crop size the map was measured at, for the message.
    """

    h, w = int(feature_map_hw[0]), int(feature_map_hw[1])
    at = f" at {crop_size} px crops" if crop_size is not None else ""
    if h * w <= 1:
        raise CoConfigError(
            f"backbone.name={backbone_name} ends in a {h}x{w} feature map{at}, so CO has no local "
            "representations to align with the global one. Fix: use a small-image backbone "
            "(backbone.name=resnet18_cifar or resnet50_cifar, CIFAR stem) for small images, "
            "or larger crops (augmentations crop_size)."
        )
    if local_grid is not None and local_grid > min(h, w):
        raise CoConfigError(
            f"method_kwargs.local_grid={local_grid} is larger than the {h}x{w} feature map of "
            f"backbone.name={backbone_name}{at}. Fix: method_kwargs.local_grid<={min(h, w)}, "
            "or null for the native grid."
        )


def check_local_hidden_dim(local_hidden_dim: Optional[int], local_head: str) -> Optional[int]:
    """Checks ``method_kwargs.local_hidden_dim`` (hidden width of slim local heads).

    Args:
        local_hidden_dim (Optional[int]): hidden width, or None for the global heads' width.
        local_head (str): ``separate`` or ``shared`` (a shared head cannot be slimmer).

    Returns:
        Optional[int]: the validated width.
    """

    if local_hidden_dim is None:
        return None
    if isinstance(local_hidden_dim, bool) or not isinstance(local_hidden_dim, int):
        raise CoConfigError(
            f"method_kwargs.local_hidden_dim must be null or a positive integer, got "
            f"{local_hidden_dim!r}. Fix: method_kwargs.local_hidden_dim=null (the global heads' "
            "width) or e.g. 512."
        )
    if local_hidden_dim < 1:
        raise CoConfigError(
            f"method_kwargs.local_hidden_dim must be >= 1, got {local_hidden_dim}. "
            "Fix: method_kwargs.local_hidden_dim=null or e.g. 512."
        )
    if local_head != "separate":
        raise CoConfigError(
            f"method_kwargs.local_hidden_dim={local_hidden_dim} needs separate local heads, but "
            f"method_kwargs.local_head={local_head}. Fix: method_kwargs.local_head=separate, or "
            "method_kwargs.local_hidden_dim=null."
        )
    return local_hidden_dim


def check_local_flag(key: str, value, default: bool) -> bool:
    """Checks a true/false CO setting such as ``method_kwargs.local_recompute``.

    Args:
        key (str): the setting's name under ``method_kwargs``.
        value: its value from the config.
        default (bool): its default, for the message.

    Returns:
        bool: the validated flag.
    """

    if not isinstance(value, bool):
        raise CoConfigError(
            f"method_kwargs.{key} must be True or False, got {value!r}. "
            f"Fix: method_kwargs.{key}={default}."
        )
    return value
