"""Training throughput of a CO method through solo-learn's DALI CPU path vs. its torchvision
(image_folder) path, end to end through main_pretrain.py on an ImageFolder of small images.

Runs main_pretrain.py from solo-learn's root twice per format, with a short and a long step
budget, and takes images/s = (extra steps * batch) / (extra wall time), which cancels start-up.
The DALI runs use the plugin's opt-in CPU workaround (SOLO_CO_DALI_CPU=1). Needs DALI installed.

    python benchmarks/dali_throughput.py --train-path /data/cifar10/train [--method co_byol]
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import solo

SOLO_ROOT = Path(solo.__file__).resolve().parents[1]


def wall_time(args, steps, fmt, workers, out_dir):
    command = [
        sys.executable,
        "main_pretrain.py",
        "--config-name",
        f"{args.method}.yaml",
        "data.dataset=custom",
        f"data.train_path={args.train_path}",
        f"data.format={fmt}",
        f"data.num_workers={workers}",
        "backbone.name=resnet18_cifar",
        f"optimizer.batch_size={args.batch_size}",
        "max_epochs=1",
        "accelerator=cpu",
        'devices="1"',
        "strategy=auto",
        "sync_batchnorm=False",
        "precision=32",
        "wandb.enabled=False",
        "checkpoint.enabled=False",
        "auto_resume.enabled=False",
        f"data.val_path={args.train_path}",
        "++limit_val_batches=0",
        "++num_sanity_val_steps=0",
        f"++limit_train_batches={steps}",
        f"++default_root_dir={out_dir}",
        "++enable_progress_bar=False",
    ]
    if fmt == "dali":
        command.append("++dali.device=cpu")
    env = {**os.environ, "SOLO_CO_DALI_CPU": "1", "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=SOLO_ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-path", required=True)
    parser.add_argument("--method", default="co_byol")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, nargs=2, default=[4, 14])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dali_cpu.md"))
    args = parser.parse_args()

    rows = []
    for fmt in ("image_folder", "dali"):
        short, long = (
            wall_time(args, s, fmt, args.workers, f"/tmp/dali_bench_{fmt}_{s}") for s in args.steps
        )
        rate = (args.steps[1] - args.steps[0]) * args.batch_size / (long - short)
        rows.append(f"| {fmt} | {rate:.1f} | {short:.1f} | {long:.1f} |")
        print(rows[-1], flush=True)
    table = (
        f"{args.method}, resnet18_cifar, batch {args.batch_size}, {args.workers} workers, 2-core "
        f"CPU; images/s = {args.steps[1] - args.steps[0]} extra steps x batch / extra wall time."
        "\n\n| data path | images/s | wall s "
        f"({args.steps[0]} steps) | wall s ({args.steps[1]} steps) |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    print(table)
    Path(args.out).write_text(
        "# DALI CPU path vs. torchvision path\n\nMade by `python benchmarks/dali_throughput.py "
        f"--train-path <CIFAR-10 train subset> --method {args.method}`.\n\n{table}"
    )


if __name__ == "__main__":
    main()
