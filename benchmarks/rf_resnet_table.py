"""RF-ResNet presets: receptive field, feature map, parameters and forward time vs. the plain
ResNet of the same depth, measured on this machine. Prints a markdown table and writes it to
benchmarks/results/rf_resnet.md.

    python benchmarks/rf_resnet_table.py [--batch-size 8] [--repeats 5] [--threads N]
"""

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torchvision

from solo_coplugin.backbones import (
    RF_PRESETS,
    RF_STEM_PRESETS,
    feature_map_side,
    rf_resnet18,
    rf_resnet50,
    theoretical_receptive_field,
)

BUILDERS = {"rf_resnet18": rf_resnet18, "rf_resnet50": rf_resnet50}


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@torch.no_grad()
def forward_seconds(models, x, repeats):
    """Median forward time of each model, measured interleaved after one warm-up pass each."""

    times = {name: [] for name in models}
    for model in models.values():
        model(x)
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model(x)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "rf_resnet.md"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.size, args.size)

    rows = []
    for name, build in BUILDERS.items():
        plain = getattr(torchvision.models, name[3:])()
        plain.fc = nn.Identity()
        models = {"plain": plain.eval()}
        # the 64 px presets bring their own stem: benchmarks/tiny_imagenet_network.py measures them
        presets = [p for p in RF_PRESETS[name] if p not in RF_STEM_PRESETS[name]]
        models.update({preset: build(preset=preset).eval() for preset in presets})
        seconds = forward_seconds(models, x, args.repeats)
        for preset, model in models.items():
            rf = theoretical_receptive_field(model).size
            side = feature_map_side(model, args.size)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            label = f"torchvision {name[3:]}" if preset == "plain" else f"{name} `{preset}`"
            rows.append(
                f"| {label} | {rf} | {side}x{side} | {params:.2f}M | "
                f"{seconds[preset] / seconds['plain']:.2f} ({seconds[preset] * 1e3:.0f} ms) |"
            )

    header = [
        f"Forward pass, batch {args.batch_size} at {args.size} px, eval mode, median of "
        f"{args.repeats} interleaved runs on {device_name()}; torch {torch.__version__}.",
        "",
        "| backbone / preset | RF (px) | feature map | parameters | forward time " "vs. plain |",
        "|---|---|---|---|---|",
    ]
    table = "\n".join(header + rows) + "\n"
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        "# RF-ResNet presets\n\nMade by `python benchmarks/rf_resnet_table.py "
        + " ".join(sys.argv[1:])
        + "`.\n\n"
        + table
    )


if __name__ == "__main__":
    main()
