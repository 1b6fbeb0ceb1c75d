"""Calibration of the Tiny-ImageNet study's class count: how far above random initialization a
trained run's features classify a seeded subset of the classes.

The study's criterion (a) is a linear-probe gap of at least 15 points over the same network at
random initialization. A run trained on all 200 classes keeps its features (``features.pt`` of a
``solo-co-bench`` run); this script re-evaluates them, and the random-initialization floor, on the
classes that ``solo-co-data tiny-imagenet --classes N --seed S`` would keep, with the runner's own
k-NN and linear probe. It measures the probe side of a smaller dataset only: a run trained on the
subset sees fewer classes for more epochs at the same number of steps.

    python benchmarks/study/class_subset_calibration.py --bench WORK/simclr-rf31 --run simclr-s0 \\
        --data /data/tiny-imagenet --classes 100 --seed 0 --out calibration.json
"""

import argparse
import json
import random
from pathlib import Path

import torch

from solo_coplugin.bench.evaluate import random_init_model
from solo_coplugin.eval.checkpoint import find_checkpoint, training_crop_size
from solo_coplugin.eval.data import load_image_folder
from solo_coplugin.eval.features import extract
from solo_coplugin.eval.knn import knn_top1
from solo_coplugin.eval.linear import fit_linear_probe, top1


def subset_indices(labels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return torch.isin(labels, keep).nonzero().squeeze(1)


def scores(train_f, train_y, val_f, val_y, keep: torch.Tensor) -> dict:
    """k-NN and linear top-1 on the kept classes (labels renumbered 0..N-1)."""

    remap = torch.full((int(train_y.max()) + 1,), -1, dtype=torch.long)
    remap[keep] = torch.arange(len(keep))
    t, v = subset_indices(train_y, keep), subset_indices(val_y, keep)
    tf, ty, vf, vy = train_f[t], remap[train_y[t]], val_f[v], remap[val_y[v]]
    probe = fit_linear_probe(tf, ty, num_classes=len(keep))
    return {
        "knn_top1": knn_top1(tf, ty, vf, vy),
        "linear_top1": top1(probe["probe"], vf, vy),
        "train_images": len(t),
        "val_images": len(v),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, required=True, help="a solo-co-bench folder")
    parser.add_argument("--run", required=True, help="a trained run of it, e.g. simclr-s0")
    parser.add_argument("--data", type=Path, required=True, help="the ImageFolder it trained on")
    parser.add_argument("--classes", type=int, nargs="+", default=[100])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)

    run_dir = args.bench / "runs" / args.run
    saved = torch.load(run_dir / "features.pt", weights_only=True)
    (train_f, train_y), (val_f, val_y) = saved["train"], saved["val"]
    wnids = sorted(p.name for p in (args.data / "train").iterdir() if p.is_dir())
    checkpoint = find_checkpoint(run_dir / "checkpoints")
    model, cfg = random_init_model(checkpoint)
    size = training_crop_size(cfg)
    splits = {s: load_image_folder(args.data / s, size, args.batch_size) for s in ("train", "val")}
    floor = {s: extract(model, splits[s][0], args.batch_size)[0] for s in splits}
    assert torch.equal(splits["train"][1], train_y) and torch.equal(splits["val"][1], val_y)

    results = {"run": args.run, "seed": args.seed, "subsets": []}
    for count in args.classes:
        # the classes solo-co-data tiny-imagenet --classes count --seed seed keeps
        chosen = set(random.Random(args.seed).sample(wnids, count))
        keep = torch.tensor([i for i, w in enumerate(wnids) if w in chosen])
        trained = scores(train_f, train_y, val_f, val_y, keep)
        random_init = scores(floor["train"], train_y, floor["val"], val_y, keep)
        row = {
            "classes": count,
            "trained": trained,
            "random_init": random_init,
            "linear_gap": trained["linear_top1"] - random_init["linear_top1"],
            "knn_gap": trained["knn_top1"] - random_init["knn_top1"],
        }
        results["subsets"].append(row)
        print(
            f"{count} classes: linear {trained['linear_top1']:.1f} vs random init "
            f"{random_init['linear_top1']:.1f} (gap {row['linear_gap']:+.1f}); k-NN "
            f"{trained['knn_top1']:.1f} vs {random_init['knn_top1']:.1f} (gap {row['knn_gap']:+.1f})"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
