"""``solo-co-eval``: evaluation of solo-learn checkpoints (CO or not) on CPU or GPU.

solo-co-eval robustness --bench <solo-co-bench folder>   # the paper's analyses, X vs CO-X
solo-co-eval knn  --pretrained_checkpoint_dir <dir> ...   # main_knn.py's equivalent
solo-co-eval umap --pretrained_checkpoint_dir <dir> ...   # main_umap.py's equivalent
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from solo_coplugin.data_checks import DataCheckError
from solo_coplugin.eval.checkpoint import CHECKPOINT_ERRORS
from solo_coplugin.eval.solo_scripts import (
    add_solo_script_args,
    device_name,
    pick_device,
    positive_int,
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="solo-co-eval", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    robustness = commands.add_parser(
        "robustness", help="corruptions, internal corruption, PGD and redundancy of a benchmark"
    )
    robustness.add_argument("--bench", required=True, type=Path, help="a solo-co-bench folder")
    robustness.add_argument(
        "--corruption-images",
        type=positive_int,
        help="N random test images (the same for every run) for corruptions (default: all)",
    )
    robustness.add_argument(
        "--attack-images",
        type=positive_int,
        default=256,
        help="N random test images (the same for every run) for PGD",
    )
    robustness.add_argument(
        "--pgd-steps", type=positive_int, default=10, help="PGD steps per radius"
    )
    robustness.add_argument(
        "--device", type=device_name, help="cpu, cuda, ... (default: cuda if available)"
    )
    robustness.add_argument("--batch-size", type=positive_int, default=256)
    add_solo_script_args(commands.add_parser("knn", help="main_knn.py on any checkpoint"), knn=True)
    add_solo_script_args(
        commands.add_parser("umap", help="main_umap.py on any checkpoint"), knn=False
    )
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    try:
        run(args)
    except (DataCheckError, *CHECKPOINT_ERRORS) as error:
        sys.exit(f"solo-co-eval {args.command}: {error}")


def run(args: argparse.Namespace) -> None:
    if args.command == "robustness":
        from solo_coplugin.bench.plan import BenchConfigError, load_plan, run_dir
        from solo_coplugin.bench.robustness import RECORD, analyse_runs, write_robustness_report
        from solo_coplugin.eval.analyses import describe_local_representations

        try:
            runs, data = load_plan(args.bench)
        except BenchConfigError as error:
            sys.exit(f"solo-co-eval: {error}")
        analyse_runs(
            runs,
            args.bench,
            data,
            args.corruption_images,
            args.attack_images,
            pick_device(args.device),
            args.batch_size,
            args.pgd_steps,
        )
        summary = write_robustness_report(runs, args.bench)
        for run in runs:
            record = run_dir(args.bench, run) / RECORD
            if record.exists():
                print(
                    f"{run.name}: " + describe_local_representations(json.loads(record.read_text()))
                )
        print(f"{len(summary)} methods; tables and plots in {args.bench}/robustness.*")
    elif args.command == "knn":
        from solo_coplugin.eval.solo_scripts import knn_main

        print(json.dumps(knn_main(args), indent=2))
    else:
        from solo_coplugin.eval.solo_scripts import umap_main

        for path in umap_main(args):
            print(path)


if __name__ == "__main__":
    main()
