"""The paper's robustness and redundancy analyses over a benchmark's checkpoints, X next to CO-X.

For every trained run of a ``solo-co-bench`` folder: the linear probe of the runner's evaluation
(same fit, deterministic) and :func:`solo_coplugin.eval.analyses.run_analyses`; then one table
and one PNG per analysis with X and CO-X side by side (mean and spread over seeds).
"""

import json
import statistics
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch

from solo_coplugin.bench.evaluate import FEATURES_FILE
from solo_coplugin.bench.plan import TRAIN_RECORD, Run, is_restored, run_dir
from solo_coplugin.bench.report import (
    draw_paired,
    format_interval,
    format_mean_spread,
    mean_spread,
    paired_interval,
)
from solo_coplugin.eval.analyses import run_analyses
from solo_coplugin.eval.checkpoint import (
    find_checkpoint,
    frozen_from_checkpoint,
    training_crop_size,
)
from solo_coplugin.eval.data import describe_transform, load_image_folder
from solo_coplugin.eval.features import extract
from solo_coplugin.eval.linear import fit_linear_probe

RECORD = "robustness.json"


def analyse_runs(
    runs: Sequence[Run],
    out_dir: Path,
    data: Dict[str, Path],
    corruption_images: Optional[int],
    attack_images: Optional[int],
    device: torch.device,
    batch_size: int = 256,
    pgd_steps: int = 10,
) -> None:
    """Runs the analyses for every trained run without a ``robustness.json`` (resumable)."""

    from tqdm import tqdm

    cache: Dict = {}
    todo = [
        r
        for r in runs
        if (run_dir(out_dir, r) / TRAIN_RECORD).exists()
        and not (run_dir(out_dir, r) / RECORD).exists()
    ]
    for run in tqdm(todo, desc="analyses", unit="run"):
        directory = run_dir(out_dir, run)
        model, cfg = frozen_from_checkpoint(find_checkpoint(directory / "checkpoints"))
        crop_size = training_crop_size(cfg)
        if crop_size not in cache:
            cache[crop_size] = [
                load_image_folder(data[s], crop_size, batch_size) for s in ("train", "val")
            ]
        (train_x, train_y, _), (val_x, val_y, _) = cache[crop_size]
        model = model.to(device)
        features_file = directory / FEATURES_FILE  # the runner's evaluation kept them
        if features_file.exists():
            train_f, train_y = torch.load(features_file)["train"]
        else:
            train_f, _ = extract(model, train_x, batch_size)
        probe = fit_linear_probe(train_f, train_y)["probe"]
        local_probe = None
        if not model.tap.is_last_stage:  # the stage the run's local representations came from
            local_probe = fit_linear_probe(pooled_stage_maps(model, train_x, batch_size), train_y)
            local_probe = local_probe["probe"]
        results = run_analyses(
            model,
            probe,
            val_x,
            val_y,
            corruption_images,
            attack_images,
            batch_size=batch_size,
            pgd_steps=pgd_steps,
            local_probe=local_probe,
        )
        results.update(
            {
                "run": run.name,
                "method": run.method,
                "base": run.base,
                "seed": run.seed,
                "crop_min_scale": run.crop_min_scale,
                "transform": describe_transform(crop_size),
                "device": str(device),
            }
        )
        (directory / RECORD).write_text(json.dumps(results, indent=2))


@torch.no_grad()
def pooled_stage_maps(model, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The average-pooled map of the tapped stage for each image (batch by batch: the maps of a
    whole training split would not fit in memory), on the CPU."""

    device = next(model.parameters()).device
    pooled = []
    for start in range(0, images.shape[0], batch_size):
        _, maps = model.forward_map(images[start : start + batch_size].to(device))
        pooled.append(maps.float().mean(dim=(2, 3)).cpu())
    return torch.cat(pooled)


def curves(record: Dict) -> Dict[str, Dict[float, float]]:
    """The four curves of one run: x -> accuracy (%)."""

    corruption = record["corruption"]
    severities = sorted({int(s) for c in corruption.values() for s in c})
    return {
        "corruption": {
            s: statistics.fmean(c[str(s)] if str(s) in c else c[s] for c in corruption.values())
            for s in severities
        },
        "internal_corruption": {float(p): a for p, a in record["internal_corruption"].items()},
        "pgd": {float(e) * 255: a for e, a in record["pgd"].items()},
        "redundancy": {float(k): a for k, a in record["redundancy"]["accuracy_from_k"].items()},
    }


ANALYSES = {
    "corruption": ("corruption severity (mean over corruptions)", "noise corruption"),
    "internal_corruption": ("fraction p of feature-map positions dropped", "internal corruption"),
    "pgd": ("L-inf PGD radius eps (x 1/255)", "adversarial (L-inf PGD, cumulative over radii)"),
    "redundancy": ("k random positions pooled (k = 1: one local representation)", "redundancy"),
}


#: one number per analysis and run, for the paired CO-X minus X differences: name -> (what it is,
#: record -> value). Means over the attacked conditions, so one number summarizes each curve.
SCALARS = {
    "corrupted": (
        "noise corruption: accuracy, mean over corruptions and severities 1-5",
        lambda c, r: statistics.fmean(a for s, a in c["corruption"].items() if s > 0),
    ),
    "corruption_drop": (
        "noise corruption: clean minus that mean (lower = more robust)",
        lambda c, r: c["corruption"][0]
        - statistics.fmean(a for s, a in c["corruption"].items() if s > 0),
    ),
    "internal": (
        "internal corruption: accuracy, mean over p = 0.1-0.9 positions dropped",
        lambda c, r: statistics.fmean(a for p, a in c["internal_corruption"].items() if p > 0),
    ),
    "internal_drop": (
        "internal corruption: p = 0 minus that mean (lower = more robust)",
        lambda c, r: c["internal_corruption"][0.0]
        - statistics.fmean(a for p, a in c["internal_corruption"].items() if p > 0),
    ),
    "pgd": (
        "PGD: robust accuracy, mean over the radii eps > 0",
        lambda c, r: statistics.fmean(a for e, a in c["pgd"].items() if e > 0),
    ),
    "one_position": (
        "redundancy: accuracy from one local representation (k = 1)",
        lambda c, r: c["redundancy"][1.0],
    ),
    "local_local_cosine": (
        "redundancy: mean cosine between an image's local representations (x 100)",
        lambda c, r: 100.0 * r["redundancy"]["local_local_cosine"],
    ),
}


def paired_differences(records: Sequence[Dict]) -> list:
    """Per (pair, crop scale): each scalar of :data:`SCALARS` as CO-X minus X on the same seed,
    with the mean and its 95% Student-t interval (n-1 degrees of freedom)."""

    runs: Dict = {}
    for record in records:
        key = (record["base"], record.get("crop_min_scale"))
        runs.setdefault(key, {}).setdefault(record["method"], {})[record["seed"]] = record
    rows = []
    for (base, scale), by_method in runs.items():
        base_runs, co_runs = by_method.get(base, {}), by_method.get(f"co_{base}", {})
        seeds = sorted(set(base_runs) & set(co_runs))
        if not seeds:
            continue
        row = {"base": base, "crop_min_scale": scale, "seeds": seeds}
        for name, (_, value) in SCALARS.items():
            deltas = [
                value(curves(co_runs[s]), co_runs[s]) - value(curves(base_runs[s]), base_runs[s])
                for s in seeds
            ]
            row[name] = {**paired_interval(deltas), "deltas": dict(zip(seeds, deltas))}
        rows.append(row)
    return rows


def paired_lines(rows: Sequence[Dict]) -> list:
    if not rows:
        return []
    names = [
        f"co_{r['base']} - {r['base']}"
        + ("" if r["crop_min_scale"] is None else f" @cms{r['crop_min_scale']:g}")
        for r in rows
    ]
    lines = [
        "## Paired differences: CO-X minus X",
        "",
        "Each seed's CO-X minus X on the same seed, in points; mean with a 95% confidence "
        "interval from Student's t on the per-seed differences (n-1 degrees of freedom). An "
        "interval that excludes 0 is a difference these seeds resolve.",
        "",
        "| summary | " + " | ".join(names) + " |",
        "|---" * (len(rows) + 1) + "|",
    ]
    for name, (label, _) in SCALARS.items():
        lines.append(f"| {label} | " + " | ".join(format_interval(r[name]) for r in rows) + " |")
    return lines + [""]


def plot_paired(rows: Sequence[Dict], out_dir: Path) -> None:
    """``robustness-differences.png``: per-seed CO-X minus X (dots), mean and 95% t-CI."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(6 * len(rows), 4.2), squeeze=False)
    for ax, row in zip(axes[0], rows):
        for i, name in enumerate(SCALARS):
            draw_paired(ax, i, row[name]["deltas"].values(), row[name])
        ax.axhline(0.0, color="grey", linewidth=1, linestyle="--")
        ax.set_xticks(range(len(SCALARS)), list(SCALARS), rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("CO-X minus X (points)")
        scale = "" if row["crop_min_scale"] is None else f", cms {row['crop_min_scale']:g}"
        ax.set_title(
            f"co_{row['base']} - {row['base']}{scale}: per seed, mean and 95% t-CI", fontsize=9
        )
    fig.tight_layout()
    fig.savefig(out_dir / "robustness-differences.png", dpi=120)
    plt.close(fig)


def write_robustness_report(runs: Sequence[Run], out_dir: Path) -> Dict:
    """robustness.{md,json} and one PNG per analysis, X and CO-X side by side."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [
        json.loads((run_dir(out_dir, r) / RECORD).read_text())
        for r in runs
        if (run_dir(out_dir, r) / RECORD).exists()
    ]
    groups: Dict = {}
    for record in records:
        key = (record["base"], record.get("crop_min_scale"), record["method"])
        groups.setdefault(key, []).append(record)

    summary: Dict = {}
    for (base, scale, method), group in groups.items():
        per_run = [curves(r) for r in group]
        summary[f"{method}" + ("" if scale is None else f"@cms{scale:g}")] = {
            "base": base,
            "crop_min_scale": scale,
            "method": method,
            "seeds": sorted(r["seed"] for r in group),
            **{
                analysis: {
                    x: mean_spread([c[analysis][x] for c in per_run]) for x in per_run[0][analysis]
                }
                for analysis in ANALYSES
            },
            "local_local_cosine": mean_spread(
                [r["redundancy"]["local_local_cosine"] for r in group]
            ),
            "local_global_cosine": mean_spread(
                [r["redundancy"]["local_global_cosine"] for r in group]
            ),
        }
    paired = paired_differences(records)
    (out_dir / "robustness.json").write_text(
        json.dumps({"summary": summary, "paired": paired, "runs": records}, indent=2, default=str)
    )

    lines = ["# Robustness and redundancy: X vs CO-X", ""]
    if records:
        sizes = records[0]["sizes"]
        lines += [
            f"Frozen backbone + the runner's linear probe, {records[0]['transform']}; "
            f"{sizes['images']} test images ({sizes['corruption_images']} for corruptions, "
            f"{sizes['attack_images']} for PGD with {sizes.get('pgd_steps', 10)} steps), feature map {sizes['feature_map']}, device "
            f"{records[0]['device']}. Mean ± standard deviation over seeds.",
            "",
        ]
        if any(len(s["seeds"]) < 2 for s in summary.values()):
            lines += ["Rows with n=1 are single runs: not a result, only a progress report.", ""]
    unanalysed = [r.name for r in runs if is_restored(run_dir(out_dir, r))]
    if unanalysed:
        lines += [
            f"Not analysed: {', '.join(unanalysed)}, restored from published records without "
            "their checkpoints (see results.md).",
            "",
        ]
    lines += paired_lines(paired)
    for analysis, (x_label, title) in ANALYSES.items():
        lines += [f"## {title}", "", f"x: {x_label}", ""]
        names = list(summary)
        xs = sorted({x for n in names for x in summary[n][analysis]})
        lines += ["| method | " + " | ".join(f"{x:g}" for x in xs) + " |"]
        lines += ["|---" * (len(xs) + 1) + "|"]
        for name in names:
            cells = [
                (
                    format_mean_spread(summary[name][analysis][x])
                    if x in summary[name][analysis]
                    else "-"
                )
                for x in xs
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Similarity of local representations",
        "",
        "| method | local-local cosine | local-global cosine |",
        "|---|---|---|",
    ]
    for name, s in summary.items():
        ll, lg = s["local_local_cosine"], s["local_global_cosine"]
        lines.append(
            f"| {name} | {ll['mean']:.3f}"
            + (f" ± {ll['std']:.3f}" if ll["std"] is not None else "")
            + f" | {lg['mean']:.3f}"
            + (f" ± {lg['std']:.3f}" if lg["std"] is not None else "")
            + " |"
        )
    (out_dir / "robustness.md").write_text("\n".join(lines) + "\n")

    for analysis, (x_label, title) in ANALYSES.items():
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for name, s in summary.items():
            points = sorted(s[analysis].items())
            xs = [x for x, _ in points]
            means = [v["mean"] for _, v in points]
            stds = [v["std"] or 0.0 for _, v in points]
            style = "-o" if s["method"].startswith("co_") else "--s"
            (line,) = ax.plot(xs, means, style, markersize=3, label=f"{name} (n={len(s['seeds'])})")
            ax.fill_between(
                xs,
                [m - d for m, d in zip(means, stds)],
                [m + d for m, d in zip(means, stds)],
                color=line.get_color(),
                alpha=0.15,
            )
        if analysis == "redundancy":
            ax.set_xscale("log", base=2)
        ax.set_xlabel(x_label, fontsize=9)
        ax.set_ylabel("linear-probe top-1 (%)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / f"robustness-{analysis}.png", dpi=120)
        plt.close(fig)
    if paired:
        plot_paired(paired, out_dir)
    return summary
