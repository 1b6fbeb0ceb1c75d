"""The runner's evaluation: k-NN and linear probe of every run, at the training resolution."""

import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from solo_coplugin.bench.plan import EVAL_RECORD, Run, run_dir
from solo_coplugin.eval.checkpoint import (
    find_checkpoint,
    frozen_from_checkpoint,
    training_crop_size,
)
from solo_coplugin.eval.data import describe_transform, load_image_folder
from solo_coplugin.eval.features import extract
from solo_coplugin.eval.knn import SOLO_KNN_K, SOLO_KNN_T, knn_top1
from solo_coplugin.eval.linear import fit_linear_probe, top1

FEATURES_FILE = "features.pt"


def evaluate_checkpoint(
    checkpoint: Path,
    data: Dict[str, Path],
    batch_size: int,
    cache: Dict,
    features_file: Optional[Path] = None,
) -> Dict:
    """k-NN top-1 and linear-probe top-1 of one checkpoint, with how they were measured.

    ``features_file`` (optional) keeps the extracted features for later analyses.
    """

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
        "checkpoint": str(checkpoint),
        "eval_seconds": round(time.time() - start, 1),
    }


def evaluate_runs(
    runs: List[Run], out_dir: Path, data: Dict[str, Path], args: argparse.Namespace
) -> None:
    """Evaluates every trained run that has no evaluation yet (resumable)."""

    from tqdm import tqdm

    cache: Dict = {}
    todo = [r for r in runs if not (run_dir(out_dir, r) / EVAL_RECORD).exists()]
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
