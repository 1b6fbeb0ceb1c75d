"""The runner's evaluation: k-NN and linear probe of every run, at the training resolution, and
of the same network at random initialization (the floor that tells whether a run learned)."""

import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from omegaconf import DictConfig, OmegaConf

from solo_coplugin.bench.plan import EVAL_RECORD, Run, is_evaluated, run_dir
from solo_coplugin.eval.checkpoint import (
    find_checkpoint,
    frozen_from_checkpoint,
    training_crop_size,
)
from solo_coplugin.eval.data import Normalize, describe_transform, load_image_folder, mean_std_for
from solo_coplugin.eval.features import FrozenBackbone, extract
from solo_coplugin.eval.knn import SOLO_KNN_K, SOLO_KNN_T, knn_top1
from solo_coplugin.eval.linear import fit_linear_probe, top1

FEATURES_FILE = "features.pt"
#: folder (inside a benchmark's folder) of the random-initialization references
REFERENCE_DIR = "reference"


def random_init_model(
    checkpoint: Path, seed: Optional[int] = None
) -> Tuple[FrozenBackbone, DictConfig]:
    """The backbone of a run as it was before its first step: the run's method built from its
    ``args.json`` after seeding with the run's seed (or ``seed``), as ``main_pretrain.py`` does.

    X and CO-X of one seed start from this same backbone (the CO parts draw from a fork of the
    RNG), so it is the floor for both.
    """

    from solo_coplugin.registration import register

    register()  # the CO methods and backbones, by name
    from solo.methods import METHODS

    cfg = OmegaConf.create(json.loads((checkpoint.parent / "args.json").read_text()))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed if seed is None else seed)
        backbone = METHODS[cfg.method](cfg).backbone
    normalize = Normalize(*mean_std_for(cfg.data.dataset, cfg))
    return FrozenBackbone(backbone, cfg.backbone.name, normalize), cfg


def evaluate_checkpoint(
    checkpoint: Path,
    data: Dict[str, Path],
    batch_size: int,
    cache: Dict,
    features_file: Optional[Path] = None,
    random_init: bool = False,
    random_init_seed: Optional[int] = None,
) -> Dict:
    """k-NN top-1 and linear-probe top-1 of one checkpoint, with how they were measured.

    ``features_file`` (optional) keeps the extracted features for later analyses;
    ``random_init`` evaluates the run's network before training instead of the checkpoint
    (initialized with ``random_init_seed``, by default the run's).
    """

    if random_init:
        model, cfg = random_init_model(checkpoint, random_init_seed)
    else:
        model, cfg = frozen_from_checkpoint(checkpoint)
    crop_size = training_crop_size(cfg)
    if crop_size not in cache:  # the splits are loaded once per resolution
        cache[crop_size] = {
            split: load_image_folder(data[split], crop_size, batch_size)
            for split in ("train", "val")
        }
    (train_x, train_y, _), (val_x, val_y, _) = (
        cache[crop_size]["train"],
        cache[crop_size]["val"],
    )
    start = time.time()
    train_f, _ = extract(model, train_x, batch_size)
    val_f, _ = extract(model, val_x, batch_size)
    if features_file is not None:
        torch.save({"train": (train_f, train_y), "val": (val_f, val_y)}, features_file)
    probe = fit_linear_probe(train_f, train_y)
    return {
        "knn_top1": knn_top1(train_f, train_y, val_f, val_y),
        "linear_top1": top1(probe["probe"], val_f, val_y),
        "linear_weight_decay": probe["weight_decay"],
        "linear_holdout_top1": {str(k): v for k, v in probe["holdout_top1"].items()},
        "knn": {"k": SOLO_KNN_K, "temperature": SOLO_KNN_T, "distance": "cosine"},
        "transform": describe_transform(crop_size),
        "crop_size": crop_size,
        "train_images": int(train_x.shape[0]),
        "val_images": int(val_x.shape[0]),
        "feature_dim": int(train_f.shape[1]),
        "checkpoint": "random initialization" if random_init else str(checkpoint),
        "eval_seconds": round(time.time() - start, 1),
    }


def evaluate_runs(
    runs: List[Run], out_dir: Path, data: Dict[str, Path], args: argparse.Namespace
) -> None:
    """Evaluates every trained run that has no evaluation yet (resumable)."""

    from tqdm import tqdm

    cache: Dict = {}
    todo = [r for r in runs if not is_evaluated(run_dir(out_dir, r))]
    for run in tqdm(todo, desc="evaluating", unit="run"):
        directory = run_dir(out_dir, run)
        record = evaluate_checkpoint(
            find_checkpoint(directory / "checkpoints"),
            data,
            args.eval_batch_size,
            cache,
            directory / FEATURES_FILE,
        )
        record.update({"run": run.name, "method": run.method, "base": run.base, "seed": run.seed})
        record["crop_min_scale"] = run.crop_min_scale
        (directory / EVAL_RECORD).write_text(json.dumps(record, indent=2))
    evaluate_random_init(runs, out_dir, data, args)


def reference_record_path(out_dir: Path, base: str) -> Path:
    """Where the random-initialization evaluation of a pair's network is recorded."""

    return out_dir / REFERENCE_DIR / f"{base}-random-init" / EVAL_RECORD


def evaluate_random_init(
    runs: List[Run], out_dir: Path, data: Dict[str, Path], args: argparse.Namespace
) -> None:
    """Evaluates, once per pair, the base method's network at random initialization, seeded
    with the lowest planned seed, built from the config of the pair's first run that has a
    checkpoint (restored runs have none: the floor stays that of the lowest seed); resumable, and
    evaluated again where a recorded floor has another seed (the plan gained a lower one)."""

    cache: Dict = {}
    for base in sorted({r.base for r in runs}):
        record_path = reference_record_path(out_dir, base)
        planned = sorted(
            (r for r in runs if r.base == base and r.method == base), key=lambda r: r.seed
        )
        trained = [r for r in planned if (run_dir(out_dir, r) / "checkpoints").is_dir()]
        if not trained:
            continue
        seed = planned[0].seed
        if record_path.exists() and json.loads(record_path.read_text()).get("seed") == seed:
            continue
        try:
            checkpoint = find_checkpoint(run_dir(out_dir, trained[0]) / "checkpoints")
        except FileNotFoundError:
            continue
        record = evaluate_checkpoint(
            checkpoint, data, args.eval_batch_size, cache, None, True, random_init_seed=seed
        )
        record.update({"run": f"{base}-random-init", "method": base, "base": base})
        record["seed"] = seed
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=2))
