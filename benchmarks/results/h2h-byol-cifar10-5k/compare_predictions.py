"""Are CO-BYOL's and BYOL's equal linear accuracies (38.1 on seed 0, 39.7 on seed 1) a coincidence?

Refits the runner's linear probe on the features each run saved (``runs/<run>/features.pt``,
written by ``solo-co-bench``) and compares the two methods' test predictions image by image.

    python compare_predictions.py $BENCH
"""

import sys
from pathlib import Path

import torch

from solo_coplugin.eval.linear import fit_linear_probe


def correct_images(run: Path) -> torch.Tensor:
    """Which test images the run's linear probe classifies correctly."""
    features = torch.load(run / "features.pt")
    (train_f, train_y), (val_f, val_y) = features["train"], features["val"]
    probe = fit_linear_probe(train_f, train_y)["probe"]
    return probe(val_f).argmax(1) == val_y


def main(bench: Path) -> None:
    for seed in (0, 1):
        byol = correct_images(bench / "runs" / f"byol-s{seed}")
        co_byol = correct_images(bench / "runs" / f"co_byol-s{seed}")
        print(
            f"seed {seed}: top-1 BYOL {100 * byol.float().mean():.1f}, "
            f"CO-BYOL {100 * co_byol.float().mean():.1f}; correct for both {int((byol & co_byol).sum())}, "
            f"BYOL only {int((byol & ~co_byol).sum())}, CO-BYOL only {int((~byol & co_byol).sum())}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
