"""Validation of the CO-SSL settings (pure Python, no solo-learn import).

:data:`SETTINGS` is the one table of the CO settings (``method_kwargs.local_*``): their names,
types, defaults, allowed values and meaning. The checks below, the unknown-key check, the
defaults that ``CoMixin`` fills in and the tests of the README's settings table and of the
packaged configs all read it. Every check raises :class:`CoConfigError` with one message that
names the config key, the bad value and the fix, so that a wrong run fails at start-up instead of
training silently wrong.
"""

import dataclasses
import difflib
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class CoSetting:
    """One CO setting under ``method_kwargs``.

    Attributes:
        name (str): the key, ``local_<...>``.
        type (str): the values it takes, as written in a config (``float``, ``int or null``...).
        default: the value used when the key is absent.
        meaning (str): what it does, in one line.
        choices (Tuple): the allowed values, when they are a fixed set.
        minimum (Optional[float]): the smallest allowed number, if any.
        maximum (Optional[float]): the largest allowed number, if any.
        method (Optional[str]): the only CO method that reads it; None: every CO method.
        default_key (Optional[str]): when set, the default is the value of this other
            ``method_kwargs`` key (and ``default`` is unused).
        only_without_momentum (bool): it has an effect only for methods without a momentum
            network (their global targets can carry a gradient), so the configs of the
            others leave it out.
    """

    name: str
    type: str
    default: Any
    meaning: str
    choices: Tuple[Any, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    method: Optional[str] = None
    default_key: Optional[str] = None
    only_without_momentum: bool = False


#: every CO setting, in the order ``CoMixin`` checks them
SETTINGS: Tuple[CoSetting, ...] = (
    CoSetting(
        "local_weight",
        "float",
        0.3,
        "w, the local loss's weight (the paper's w_s; see local_loss_form); 0 reproduces the base "
        "method",
        minimum=0.0,
        maximum=1.0,
    ),
    CoSetting(
        "local_loss_form",
        "str",
        "convex",
        "convex: (1 - w) L_global + w L_local; additive: L_global + w L_local (the base loss as is)",
        choices=("convex", "additive"),
    ),
    CoSetting(
        "local_grid",
        "int or null",
        None,
        "average-pool the feature map to an n x n grid of local representations; null: native",
        minimum=1,
    ),
    CoSetting(
        "local_stage",
        "str or null",
        None,
        "the backbone stage whose map holds the local representations; null: the pooled map",
    ),
    CoSetting(
        "local_head",
        "str",
        "separate",
        "separate: own local heads with the global heads' sizes; shared: the global heads",
        choices=("separate", "shared"),
    ),
    CoSetting(
        "local_hidden_dim",
        "int or null",
        None,
        "hidden width of slim separate local heads; null: the global heads' width",
        minimum=1,
    ),
    CoSetting(
        "local_small_crops",
        "bool",
        False,
        "also align the small crops' local representations with the large crops' targets",
        choices=(True, False),
    ),
    CoSetting(
        "local_target_grad",
        "bool",
        False,
        "let the local loss's gradient flow into the global targets (no momentum network)",
        choices=(True, False),
        only_without_momentum=True,
    ),
    CoSetting(
        "local_recompute",
        "bool",
        False,
        "recompute the local heads' hidden activations in backward instead of keeping them",
        choices=(True, False),
    ),
    CoSetting(
        "local_num_prototypes",
        "int",
        None,
        "outputs of the local DINO head; must equal the global head's",
        minimum=1,
        method="co_dino",
        default_key="num_prototypes",
    ),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


def setting(name: str) -> CoSetting:
    """The row of :data:`SETTINGS` named ``name``."""

    return _BY_NAME[name]


def setting_names(method: Optional[str] = None) -> Tuple[str, ...]:
    """The names of the settings that ``method`` reads (every CO method's when None).

    Args:
        method (Optional[str]): a CO method's name (``co_dino``), or None.

    Returns:
        Tuple[str, ...]: the names, in table order.
    """

    return tuple(s.name for s in SETTINGS if s.method is None or s.method == method)


#: the ``method_kwargs`` settings that every CO method reads (``CoMixin.add_and_assert_co_cfg``);
#: a method may read more (its ``local_settings``). Any other ``local_*`` key is refused
CO_SETTINGS = setting_names()

LOCAL_HEAD_MODES = setting("local_head").choices

DEFAULT_LOCAL_WEIGHT = setting("local_weight").default
DEFAULT_LOCAL_HEAD = setting("local_head").default
LOSS_FORMS = setting("local_loss_form").choices


class CoConfigError(ValueError):
    """A CO-SSL setting is invalid; the message names the key and the fix."""


def check_local_keys(
    keys: Iterable[str], known: Optional[Iterable[str]] = None, method: str = "this method"
) -> None:
    """Refuses ``method_kwargs`` keys that look like CO settings (``local_*``) but are none.

    A misspelt setting (``local_wieght``) would otherwise be ignored and the run would train with
    the default, silently.

    Args:
        keys (Iterable[str]): the keys under ``method_kwargs``.
        known (Optional[Iterable[str]]): the ``local_*`` settings the method reads. Defaults to
            those of :data:`SETTINGS` that ``method`` reads.
        method (str): the method's name, for the message.
    """

    known = sorted(set(setting_names(method) if known is None else known))
    unknown = [key for key in keys if str(key).startswith("local_") and key not in known]
    if not unknown:
        return
    prefix = len("local_")  # compared without it: every candidate shares it
    fixes = []
    for key in unknown:
        close = difflib.get_close_matches(key[prefix:], [k[prefix:] for k in known], n=1)
        hint = f" (did you mean local_{close[0]}?)" if close else ""
        fixes.append(f"method_kwargs.{key}{hint}")
    raise CoConfigError(
        f"Unknown CO setting for {method}: {', '.join(fixes)}. The local_* settings of {method} "
        f"are {', '.join(known)}. Fix: correct the name, or remove the key (an unknown setting "
        "would be ignored and its default used)."
    )


def check_local_weight(local_weight: float) -> float:
    """Checks ``method_kwargs.local_weight`` (the ``w_s`` of ``(1 - w_s) L_global + w_s L_local``).

    Args:
        local_weight (float): weight of the local loss.

    Returns:
        float: the weight as a float.
    """

    row = setting("local_weight")
    interval = f"[{row.minimum:g}, {row.maximum:g}]"
    if isinstance(local_weight, bool) or not isinstance(local_weight, (int, float)):
        raise CoConfigError(
            f"method_kwargs.local_weight must be a number in {interval}, got {local_weight!r}. "
            f"Fix: set method_kwargs.local_weight={DEFAULT_LOCAL_WEIGHT} "
            "(the paper reports 0.2 to 0.5 as a good range)."
        )
    if not row.minimum <= local_weight <= row.maximum:
        raise CoConfigError(
            f"method_kwargs.local_weight must be in {interval}, got {local_weight}. "
            f"Fix: set method_kwargs.local_weight={DEFAULT_LOCAL_WEIGHT} "
            "(the paper reports 0.2 to 0.5 as a good range; 0 gives the base method)."
        )
    return float(local_weight)


def check_local_loss_form(local_loss_form: str) -> str:
    """Checks ``method_kwargs.local_loss_form`` (how the local loss joins the base loss).

    Args:
        local_loss_form (str): ``convex`` or ``additive``.

    Returns:
        str: the validated form.
    """

    if local_loss_form not in LOSS_FORMS:
        raise CoConfigError(
            f"method_kwargs.local_loss_form must be one of {list(LOSS_FORMS)}, got "
            f"{local_loss_form!r}. Fix: method_kwargs.local_loss_form=convex ((1 - w) L_global + "
            "w L_local, the default) or method_kwargs.local_loss_form=additive (L_global + w "
            "L_local)."
        )
    return local_loss_form


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
    minimum = setting("local_grid").minimum
    if isinstance(local_grid, bool) or not isinstance(local_grid, int) or local_grid < minimum:
        raise CoConfigError(
            f"method_kwargs.local_grid must be null (native feature-map grid) or an integer "
            f">= {minimum}, got {local_grid!r}. Fix: method_kwargs.local_grid=null."
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


def check_local_stage(local_stage: Optional[str]) -> Optional[str]:
    """Checks ``method_kwargs.local_stage`` on its own (``None``: the map the backbone pools).

    Whether the backbone has that stage is checked when the feature-map tap is built.

    Args:
        local_stage (Optional[str]): name of the stage whose map holds the local representations.

    Returns:
        Optional[str]: the validated name.
    """

    if local_stage is None:
        return None
    if not isinstance(local_stage, str) or not local_stage:
        raise CoConfigError(
            f"method_kwargs.local_stage must be null (the map the backbone pools) or a stage "
            f"name such as layer3 (ResNets) or blocks.5 (ViTs), got {local_stage!r}. "
            "Fix: method_kwargs.local_stage=null."
        )
    return local_stage


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
    minimum = setting("local_hidden_dim").minimum
    if local_hidden_dim < minimum:
        raise CoConfigError(
            f"method_kwargs.local_hidden_dim must be >= {minimum}, got {local_hidden_dim}. "
            "Fix: method_kwargs.local_hidden_dim=null or e.g. 512."
        )
    if local_head != "separate":
        raise CoConfigError(
            f"method_kwargs.local_hidden_dim={local_hidden_dim} needs separate local heads, but "
            f"method_kwargs.local_head={local_head}. Fix: method_kwargs.local_head=separate, or "
            "method_kwargs.local_hidden_dim=null."
        )
    return local_hidden_dim


def check_local_flag(key: str, value, default: Optional[bool] = None) -> bool:
    """Checks a true/false CO setting such as ``method_kwargs.local_recompute``.

    Args:
        key (str): the setting's name under ``method_kwargs``.
        value: its value from the config.
        default (Optional[bool]): its default, for the message. Defaults to the table's.

    Returns:
        bool: the validated flag.
    """

    if default is None:
        default = setting(key).default
    if not isinstance(value, bool):
        raise CoConfigError(
            f"method_kwargs.{key} must be True or False, got {value!r}. "
            f"Fix: method_kwargs.{key}={default}."
        )
    return value


def check_co_settings(given: Mapping[str, Any]) -> Dict[str, Any]:
    """Checks the settings that every CO method reads and fills in their defaults.

    Args:
        given (Mapping[str, Any]): the values from the config; a missing key takes the default
            of :data:`SETTINGS`.

    Returns:
        Dict[str, Any]: every setting of :data:`CO_SETTINGS`, validated, in table order.
    """

    checked: Dict[str, Any] = {}
    for row in SETTINGS:
        if row.method is not None:
            continue
        value = given.get(row.name, row.default)
        if row.type == "bool":
            checked[row.name] = check_local_flag(row.name, value)
        elif row.name == "local_hidden_dim":  # depends on the head mode, checked before it
            checked[row.name] = check_local_hidden_dim(value, checked["local_head"])
        else:
            checked[row.name] = _SINGLE_CHECKS[row.name](value)
    return checked


_SINGLE_CHECKS = {
    "local_weight": check_local_weight,
    "local_loss_form": check_local_loss_form,
    "local_grid": check_local_grid,
    "local_stage": check_local_stage,
    "local_head": check_local_head,
}
