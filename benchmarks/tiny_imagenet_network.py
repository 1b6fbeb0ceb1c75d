"""The Tiny-ImageNet study's network at 64 px: receptive field (theoretical, and measured by
gradients), grid of local representations, parameters, and the compute of a training step,
against the CIFAR study's network. Prints a markdown table and writes it to
benchmarks/results/tiny_imagenet_network.md.

    python benchmarks/tiny_imagenet_network.py [--width 16] [--batch-size 128] [--repeats 5]

A "step" here is the backbone's share of a two-view SSL step: forward and backward of two
batches of crops, with bf16 autocast as in the study, on one thread, interleaved across networks
(median of ``--repeats``); heads, losses and data loading are left out, so it compares stems and
kernels, not methods. Each network is timed with its weights and inputs in
``torch.channels_last`` (solo-learn's default, ``performance.disable_channel_last=False``) and
without.
"""

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from solo_coplugin.backbones import (
    effective_receptive_field,
    resnet18_cifar,
    rf_resnet18,
    theoretical_receptive_field,
)
from solo_coplugin.core import FeatureMapTap


def without_fc(model):
    """As solo-learn trains it: a ResNet's ``fc`` replaced by the identity (``BaseMethod``)."""

    if hasattr(model, "fc"):
        model.fc = torch.nn.Identity()
    return model


def feature_map(model, x):
    """The map the backbone pools (any ResNet-like backbone, as CO methods read it)."""

    tap = FeatureMapTap(model)
    model(x)
    return tap.pop()


def measured_receptive_field(model, side: int) -> int:
    """The side of the input square that a central position's output depends on (gradients)."""

    with torch.no_grad():
        grid = feature_map(model.eval(), torch.zeros(1, 3, side, side)).shape[-1]
    grad = effective_receptive_field(model, side, (grid // 2, grid // 2), feature_map)
    rows = grad.sum(dim=1).nonzero()
    return int(rows.max() - rows.min() + 1)


def step_seconds(models, inputs, repeats):
    """Median seconds of forward + backward of two views, each model timed in turn."""

    times = {name: [] for name in models}
    for _ in range(repeats + 1):  # the first round warms up
        for name, model in models.items():
            x = inputs[name]
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = sum(model(view).float().pow(2).mean() for view in x)
            loss.backward()
            times[name].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    return {name: statistics.median(t[1:]) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "tiny_imagenet_network.md")
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    builders = {
        "resnet18_cifar at 32 px (the CIFAR study)": (
            lambda: without_fc(resnet18_cifar(width=args.width)),
            32,
        ),
        "resnet18_cifar at 64 px (CIFAR stem)": (
            lambda: without_fc(resnet18_cifar(width=args.width)),
            64,
        ),
        "rf_resnet18 `tiny_rf31` at 64 px": (
            lambda: rf_resnet18(preset="tiny_rf31", width=args.width),
            64,
        ),
        "rf_resnet18 `tiny_full` at 64 px": (
            lambda: rf_resnet18(preset="tiny_full", width=args.width),
            64,
        ),
    }
    networks = {name: (build(), side) for name, (build, side) in builders.items()}
    models, inputs, rows = {}, {}, []
    for name, (build, side) in builders.items():
        for layout, fmt in (
            ("channels_last", torch.channels_last),
            ("contiguous", torch.contiguous_format),
        ):
            key = f"{name}, {layout}"
            models[key] = build().train().to(memory_format=fmt)  # one module per layout
            inputs[key] = [
                torch.randn(args.batch_size, 3, side, side).to(memory_format=fmt) for _ in range(2)
            ]
    seconds = step_seconds(models, inputs, args.repeats)
    reference = seconds["resnet18_cifar at 32 px (the CIFAR study), channels_last"]
    for name, (model, side) in networks.items():
        with torch.no_grad():
            grid = feature_map(model.eval(), torch.zeros(1, 3, side, side)).shape[-1]
        rf = theoretical_receptive_field(model).size
        measured = measured_receptive_field(model, side)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        last, plain = seconds[f"{name}, channels_last"], seconds[f"{name}, contiguous"]
        rows.append(
            f"| {name} | {rf} | {measured} of {side} ({measured / side:.0%}) | {grid}x{grid} | "
            f"{params:.2f}M | {last:.2f} ({last / reference:.2f}x) | {plain:.2f} | "
            f"{plain / last:.2f}x |"
        )
    header = [
        f"Width {args.width}, batch {args.batch_size} x 2 views, bf16 autocast, forward + backward "
        f"of the backbone only, median of {args.repeats} interleaved rounds, {args.threads} "
        f"thread(s) on {platform.processor() or platform.machine()}; torch {torch.__version__}.",
        "RF: theoretical; measured: the input pixels a central position depends on (gradients,"
        " clipped by the image).",
        "",
        "| network | RF (px) | measured RF (px) | grid | parameters | s a step, channels_last "
        "(vs the CIFAR study's) | s a step, contiguous | channels_last speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    table = "\n".join(header + rows) + "\n"
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        "# The Tiny-ImageNet study's network\n\nMade by `python benchmarks/tiny_imagenet_network.py "
        + " ".join(sys.argv[1:])
        + "`.\n\n"
        + table
    )


if __name__ == "__main__":
    main()
