"""What a head-to-head benchmark runs: one pretraining command per (method, setting, seed).

X and CO-X are trained from the same config file (the CO config, which is X's solo-learn config
plus the CO keys): the X run sets ``method=X``, the CO-X run ``method=co_X``, and every other
argument is shared. X never reads the CO keys (``method_kwargs.local_*``), so the two runs differ
only by the CO loss. (Hydra cannot delete the null-valued CO keys, so they stay in X's cfg.)
With the same seed they also see the same data order and augmentations, because the CO parts of
a model draw their random numbers from a fork of the global RNG.
"""

import dataclasses
import importlib.util
import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from omegaconf import OmegaConf

CO_KEY_PREFIX = "local_"


class BenchConfigError(ValueError):
    """A benchmark setting that cannot work, with the option to fix."""


@dataclasses.dataclass(frozen=True)
class Run:
    """One pretraining run of the benchmark.

    Attributes:
        name (str): unique name, also the run's folder.
        method (str): the solo-learn method (``simclr``, ``co_simclr``, ...).
        base (str): the base method of its pair (the same for X and CO-X).
        seed (int): the seed.
        crop_min_scale (Optional[float]): the large crops' minimum scale, None = the config's.
        args (Tuple[str, ...]): ``main_pretrain.py`` arguments (config and overrides).
    """

    name: str
    method: str
    base: str
    seed: int
    crop_min_scale: Optional[float]
    args: Tuple[str, ...]

    @property
    def setting(self) -> str:
        """The non-method part of the run's identity, shared by X and CO-X."""

        scale = "" if self.crop_min_scale is None else f"cms{self.crop_min_scale:g}-"
        return f"{scale}s{self.seed}"


def parse_pairs(pairs: Sequence[str]) -> List[Tuple[str, str]]:
    """Parses ``["simclr,co_simclr", "byol,co_byol"]`` into (base, CO) pairs.

    Args:
        pairs (Sequence[str]): pairs as ``X,CO-X``.

    Returns:
        List[Tuple[str, str]]: the pairs.
    """

    parsed = []
    for pair in pairs:
        parts = [p.strip() for p in pair.split(",")]
        if len(parts) != 2 or not all(parts) or parts[1] != f"co_{parts[0]}":
            raise BenchConfigError(
                f"--pairs: {pair!r} is not a pair 'X,co_X' (e.g. 'simclr,co_simclr')."
            )
        parsed.append((parts[0], parts[1]))
    return parsed


def resolve_config_dir(config_path: str) -> Path:
    """Finds the folder behind a Hydra config path (a folder or ``pkg://package.module``)."""

    if config_path.startswith("pkg://"):
        module = config_path[len("pkg://") :].replace("/", ".")
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise BenchConfigError(f"--config-path: no package {module!r} is installed.")
        return Path(list(spec.submodule_search_locations)[0])
    path = Path(config_path)
    if not path.is_dir():
        raise BenchConfigError(f"--config-path: {config_path} is not a folder.")
    return path.resolve()


def co_keys_of(config_file: Path) -> List[str]:
    """The CO keys (``method_kwargs.local_*``) that a config file sets."""

    cfg = OmegaConf.load(config_file)
    kwargs = cfg.get("method_kwargs") or {}
    return [f"method_kwargs.{k}" for k in kwargs if str(k).startswith(CO_KEY_PREFIX)]


def num_large_crop_pipelines(config_dir: Path, config_file: Path) -> int:
    """How many augmentation pipelines the config's ``augmentations`` default has."""

    defaults = OmegaConf.load(config_file).get("defaults") or []
    for entry in defaults:
        if isinstance(entry, dict) or OmegaConf.is_dict(entry):
            entry = dict(entry)
            if "augmentations" in entry:
                aug = OmegaConf.load(config_dir / "augmentations" / entry["augmentations"])
                return len(aug)
    raise BenchConfigError(
        f"{config_file} has no 'augmentations' default: the runner cannot set the crops."
    )


def build_plan(
    pairs: Sequence[Tuple[str, str]],
    seeds: Sequence[int],
    config_path: str,
    common_overrides: Sequence[str],
    crop_min_scales: Sequence[Optional[float]] = (None,),
    co_overrides: Sequence[str] = (),
    config_name_template: str = "co_{base}.yaml",
    base_overrides: Sequence[str] = (),
) -> List[Run]:
    """All runs of a benchmark, X before CO-X for each setting.

    Args:
        pairs (Sequence[Tuple[str, str]]): (X, CO-X) method pairs.
        seeds (Sequence[int]): seeds.
        config_path (str): the config folder (a path or ``pkg://...``).
        common_overrides (Sequence[str]): Hydra overrides shared by every run.
        crop_min_scales (Sequence[Optional[float]]): the large crops' minimum scales to sweep
            (None: the config's).
        co_overrides (Sequence[str]): overrides for the CO runs only (e.g. a local weight).
        base_overrides (Sequence[str]): overrides for the X runs only (e.g. multi-crop, the
            control that matches CO-X's step cost).
        config_name_template (str): the config of a pair, from its base method's name.

    Returns:
        List[Run]: the runs.
    """

    config_dir = resolve_config_dir(config_path)
    runs = []
    for base, co in pairs:
        config_name = config_name_template.format(base=base)
        config_file = config_dir / config_name
        if not config_file.exists():
            raise BenchConfigError(
                f"No config {config_name} in {config_dir} for the pair {base},{co}. Fix: pass "
                "--config-path with a folder that has it (the plugin ships CIFAR configs for all "
                "CO methods: pkg://solo_coplugin.configs.cifar)."
            )
        if not co_keys_of(config_file):
            raise BenchConfigError(
                f"{config_file} sets no CO keys (method_kwargs.local_*): the runner trains X and "
                "CO-X from the CO config. Fix: --config-name-template pointing at co_X configs."
            )
        pipelines = num_large_crop_pipelines(config_dir, config_file)
        for scale in crop_min_scales:
            for seed in seeds:
                shared = [
                    "--config-path",
                    config_path,
                    "--config-name",
                    config_name,
                    *common_overrides,
                    f"++seed={seed}",
                ]
                if scale is not None:
                    shared += [
                        f"augmentations.{i}.rrc.crop_min_scale={scale}" for i in range(pipelines)
                    ]
                for method in (base, co):
                    extra = [f"method={method}"]
                    extra += list(co_overrides if method == co else base_overrides)
                    scale_tag = "" if scale is None else f"-cms{scale:g}"
                    name = f"{method}{scale_tag}-s{seed}"
                    runs.append(
                        Run(
                            name,
                            method,
                            base,
                            seed,
                            scale,
                            tuple(shared + [f"name={name}"] + extra),
                        )
                    )
    return runs


def load_plan(out_dir: Path) -> Tuple[List[Run], Dict[str, Path]]:
    """The runs and data splits of an existing benchmark folder (its ``plan.json``)."""

    plan_file = Path(out_dir) / "plan.json"
    if not plan_file.exists():
        raise BenchConfigError(f"{out_dir} is not a solo-co-bench folder (no plan.json).")
    plan = json.loads(plan_file.read_text())
    runs = [Run(**{**r, "args": tuple(r["args"])}) for r in plan["runs"]]
    return runs, {split: Path(path) for split, path in plan["data"].items()}


def cpu_or_gpu_overrides(accelerator: str, devices: str, precision: str) -> List[str]:
    """The Lightning settings of every run (solo-learn's defaults are multi-GPU DDP)."""

    overrides = [f"accelerator={accelerator}", f'devices="{devices}"', f"precision={precision}"]
    if accelerator == "cpu" or devices in ("1", "[0]"):
        overrides += ["strategy=auto", "sync_batchnorm=False"]
    return overrides


TRAIN_RECORD = "train.json"  # in a run's folder once it is trained: how it was trained
EVAL_RECORD = "eval.json"  # ... once it is evaluated: the runner's k-NN and linear probe
# in place of both when the folder was rebuilt from a published results.json (--restore-from):
# the run's published record; its checkpoints and step log are gone with the folder it came from
RESTORED_RECORD = "restored.json"


def run_dir(out_dir: Path, run: Run) -> Path:
    """The folder of one run inside a benchmark's output folder."""

    return out_dir / "runs" / run.name


def is_restored(directory: Path) -> bool:
    """Whether a run's folder holds a published record instead of a training (no checkpoint)."""

    return (directory / RESTORED_RECORD).exists()


def is_trained(directory: Path) -> bool:
    return (directory / TRAIN_RECORD).exists() or is_restored(directory)


def is_evaluated(directory: Path) -> bool:
    return (directory / EVAL_RECORD).exists() or is_restored(directory)


def ready_to_evaluate(runs: Sequence[Run], out_dir: Path) -> List[Run]:
    """The runs without an evaluation whose X/CO-X pair (same setting) is fully trained."""

    untrained_pairs = {(r.base, r.setting) for r in runs if not is_trained(run_dir(out_dir, r))}
    return [
        r
        for r in runs
        if (r.base, r.setting) not in untrained_pairs and not is_evaluated(run_dir(out_dir, r))
    ]


def latest_checkpoint(directory: Path) -> Optional[Path]:
    """The newest ``.ckpt`` under ``directory`` (solo-learn's Checkpointer layout), or None."""

    checkpoints = sorted(directory.rglob("*.ckpt"), key=os.path.getmtime)
    return checkpoints[-1] if checkpoints else None


def find_reusable_run(
    run: Run, data: Dict[str, Path], other_dirs: Sequence[Path]
) -> Optional[Path]:
    """The folder of a trained run with exactly the same arguments and data in another
    benchmark (e.g. X of a local-weight sweep is X of the main comparison), or None.

    Args:
        run (Run): a planned run.
        data (Dict[str, Path]): this benchmark's data splits.
        other_dirs (Sequence[Path]): other benchmark folders.

    Returns:
        Optional[Path]: the trained run's folder.
    """

    for other in other_dirs:
        try:
            other_runs, other_data = load_plan(other)
        except BenchConfigError:
            continue
        if {k: Path(v).resolve() for k, v in other_data.items()} != {
            k: Path(v).resolve() for k, v in data.items()
        }:
            continue
        for candidate in other_runs:
            folder = run_dir(Path(other), candidate)
            if candidate.args == run.args and is_trained(folder):
                return folder.resolve()
    return None


#: what the runner adds to a run's arguments when it launches it (:func:`launch_args`)
LAUNCH_KEYS = ("checkpoint.dir", "default_root_dir", "resume_from_checkpoint")


def launch_args(run: Run, directory: Path, resumed_from: Optional[Path] = None) -> List[str]:
    """The run's arguments as the runner launches them: its own folder for checkpoints and logs
    and, for a stopped run, the checkpoint it resumes from."""

    args = list(run.args) + [
        f"checkpoint.dir={directory / 'checkpoints'}",
        f"++default_root_dir={directory}",
    ]
    if resumed_from is not None:
        # quoted: solo-learn's checkpoint names contain '=' (ep=N), which Hydra would parse
        args.append(f"++resume_from_checkpoint='{resumed_from}'")
    return args


def comparable_args(args: Sequence[str]) -> List[str]:
    """A run's Hydra arguments without what differs between machines: paths (published with
    placeholders such as ``$STUDY``) and what the runner adds at launch (:data:`LAUNCH_KEYS`)."""

    comparable = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if key.lstrip("+") in LAUNCH_KEYS:
            continue
        comparable.append(f"{key}=<path>" if sep and ("/" in value or "$" in value) else arg)
    return comparable


def restore_published_runs(
    runs: Sequence[Run], out_dir: Path, images: Dict[str, int], published: Sequence[Path]
) -> List[str]:
    """Rebuilds the folders of planned runs from published ``results.json`` files, so that a
    benchmark whose run folders were lost (another machine, a wiped disk) adds seeds or finishes
    its other runs without training the published ones again.

    A run is restored only from a record with its name, method, seed, crop scale, Hydra arguments
    (paths aside) and image counts; its folder then holds that record (``restored.json``) and
    nothing else: it enters the tables as published, not the training curves nor the robustness
    analyses, which need the checkpoint.

    Args:
        runs (Sequence[Run]): the planned runs.
        out_dir (Path): this benchmark's folder.
        images (Dict[str, int]): this benchmark's image counts, ``train`` and ``val``.
        published (Sequence[Path]): ``results.json`` files of earlier runs of this benchmark.

    Returns:
        List[str]: one line per run restored or refused (with why).
    """

    import shlex

    candidates: Dict[str, List[Tuple[Path, Dict]]] = {}
    for path in published:
        if not Path(path).is_file():
            raise BenchConfigError(
                f"--restore-from {path}: no such file (a published results.json)"
            )
        for record in json.loads(Path(path).read_text()).get("runs", []):
            candidates.setdefault(record["run"], []).append((Path(path), record))

    def differences(run: Run, record: Dict) -> List[str]:
        differing = [
            key
            for key, value in (
                ("method", run.method),
                ("seed", run.seed),
                ("crop_min_scale", run.crop_min_scale),
                ("train_images", images["train"]),
                ("val_images", images["val"]),
            )
            if record.get(key) != value
        ]
        # the published command: python <solo-learn>/main_pretrain.py <the run's arguments>
        if comparable_args(shlex.split(record["command"])[2:]) != comparable_args(run.args):
            differing.append("Hydra arguments")
        return differing

    messages = []
    for run in runs:
        directory = run_dir(out_dir, run)
        if directory.exists() or directory.is_symlink() or run.name not in candidates:
            continue
        refused = []
        for path, record in candidates[run.name]:
            differing = differences(run, record)
            if not differing:
                directory.mkdir(parents=True)
                restored = {**record, "restored_from": str(path)}
                (directory / RESTORED_RECORD).write_text(json.dumps(restored, indent=2))
                messages.append(
                    f"{run.name}: restored from {path} (published record, no checkpoint)"
                )
                break
            refused.append(f"{path} ({', '.join(differing)} differ)")
        else:
            messages.append(f"{run.name}: not restored from {'; '.join(refused)}: it is trained")
    return messages


def differing_args(a: Run, b: Run) -> Dict[str, List[str]]:
    """The arguments of ``a`` not in ``b`` and of ``b`` not in ``a`` (for tests and reports)."""

    return {
        a.name: [x for x in a.args if x not in b.args],
        b.name: [x for x in b.args if x not in a.args],
    }
