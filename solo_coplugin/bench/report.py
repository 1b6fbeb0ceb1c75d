"""The runner's results: one table (markdown, CSV, JSON, with the exact commands) and plots."""

import csv
import json
import statistics
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from solo_coplugin.bench.plan import (
    EVAL_RECORD,
    RESTORED_RECORD,
    TRAIN_RECORD,
    Run,
    is_restored,
    run_dir,
)

METRICS = (("knn_top1", "k-NN top-1"), ("linear_top1", "linear top-1"))
#: the base method's own loss, mean over the last epoch (CO-X: its global loss)
BASE_LOSS = "last_epoch_base_loss"


def mean_spread(values: Sequence[float]) -> Dict:
    """Mean, sample standard deviation (None for one value) and count."""

    values = list(values)
    return {
        "mean": statistics.fmean(values) if values else None,
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def paired_interval(deltas: Sequence[float], confidence: float = 0.95) -> Dict:
    """Mean of paired differences with a t-based confidence interval (Student's t with n-1
    degrees of freedom on the per-seed differences; None below two pairs).

    Args:
        deltas (Sequence[float]): CO-X minus X, one per seed.
        confidence (float): the interval's coverage.

    Returns:
        Dict: ``mean``, ``low``, ``high``, ``n`` and ``confidence``.
    """

    from scipy import stats

    deltas = list(deltas)
    interval = {"mean": None, "low": None, "high": None, "n": len(deltas)}
    interval["confidence"] = confidence
    if deltas:
        interval["mean"] = statistics.fmean(deltas)
    if len(deltas) > 1:
        half = stats.t.ppf(0.5 + confidence / 2, len(deltas) - 1) * statistics.stdev(deltas)
        half /= len(deltas) ** 0.5
        interval["low"], interval["high"] = interval["mean"] - half, interval["mean"] + half
    return interval


def format_interval(interval: Dict, digits: int = 1) -> str:
    if interval["mean"] is None:
        return "-"
    if interval["low"] is None:
        return f"{interval['mean']:+.{digits}f} (n=1)"
    return (
        f"{interval['mean']:+.{digits}f} [{interval['low']:+.{digits}f}, "
        f"{interval['high']:+.{digits}f}] (n={interval['n']})"
    )


def format_mean_spread(stats: Dict) -> str:
    if stats["mean"] is None:
        return "-"
    if stats["std"] is None:
        return f"{stats['mean']:.1f} (n=1)"
    return f"{stats['mean']:.1f} ± {stats['std']:.1f} (n={stats['n']})"


def read_steps(path: Path) -> List[Dict[str, float]]:
    if not path.exists():
        return []
    with open(path) as f:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


def last_epoch_losses(rows: Sequence[Dict[str, float]], co: bool) -> Dict[str, Optional[float]]:
    """The base method's own loss and (CO runs) the local loss, averaged over the steps of the
    last logged epoch: whether CO-X's extra objective costs X's own objective shows here."""

    last = [r for r in rows if r.get("epoch") == max((r.get("epoch", -1) for r in rows), default=0)]
    losses = {}
    for key, loss in (("last_epoch_base_loss", global_loss), ("last_epoch_local_loss", local_loss)):
        values = [v for v in (loss(r, co) for r in last) if v is not None]
        losses[key] = statistics.fmean(values) if values else None
    return losses


def training_time(rows: Sequence[Dict[str, float]]) -> Dict[str, Optional[float]]:
    """How long the logged steps took to train, over every part of a resumed run.

    The step log's clock restarts with each process (so a part starts where ``seconds`` drops),
    and the steps an interrupted part trained past its last checkpoint were cut from the log and
    trained again: each part counts up to its last kept step, each step once. None without a
    clock (a log from before it had one)."""

    parts, total, last = 0, 0.0, None
    for row in rows:
        seconds = row.get("seconds")
        if seconds is None:
            return {"trained_seconds": None, "training_parts": None}
        if last is None or seconds < last:
            total += last or 0.0
            parts += 1
        last = seconds
    if last is None:
        return {"trained_seconds": None, "training_parts": None}
    return {"trained_seconds": round(total + last, 1), "training_parts": parts}


def train_minutes_cell(record: Dict) -> str:
    """The runs table's training time: the parts added up, or the last part's wall time."""

    if record.get("trained_seconds") is None:
        # without a step clock only the wall time of the last part is known (machines differ)
        resumed = " (last part: resumed)" if record.get("resumed_from") else ""
        return f"{record['wall_seconds'] / 60:.1f}{resumed}"
    parts = record["training_parts"]
    return f"{record['trained_seconds'] / 60:.1f}" + (f" ({parts} parts)" if parts > 1 else "")


def collect(runs: Sequence[Run], out_dir: Path) -> List[Dict]:
    """The finished runs' records (training, evaluation and last-epoch losses merged)."""

    records = []
    for run in runs:
        directory = run_dir(out_dir, run)
        if is_restored(directory):  # its published record, losses and times included
            records.append(json.loads((directory / RESTORED_RECORD).read_text()))
            continue
        train_file, eval_file = directory / TRAIN_RECORD, directory / EVAL_RECORD
        if not (train_file.exists() and eval_file.exists()):
            continue
        record = {**json.loads(train_file.read_text()), **json.loads(eval_file.read_text())}
        record["setting"] = run.setting
        rows = read_steps(directory / "steps.csv")
        record.update(last_epoch_losses(rows, run.method.startswith("co_")))
        record.update(training_time(rows))
        records.append(record)
    return records


def summarize(records: List[Dict]) -> List[Dict]:
    """Mean and spread per (pair, crop scale, method), and the paired CO-X minus X difference."""

    groups: Dict = {}
    for record in records:
        key = (record["base"], record.get("crop_min_scale"))
        groups.setdefault(key, []).append(record)
    summary = []
    for (base, scale), group in groups.items():
        by_method: Dict[str, Dict[int, Dict]] = {}
        for record in group:
            by_method.setdefault(record["method"], {})[record["seed"]] = record
        co = f"co_{base}"
        row = {"base": base, "crop_min_scale": scale}
        for method in (base, co):
            for metric, _ in METRICS:
                values = [r[metric] for r in by_method.get(method, {}).values()]
                row[f"{method}:{metric}"] = mean_spread(values)
        for method in (base, co):
            values = [r.get(BASE_LOSS) for r in by_method.get(method, {}).values()]
            row[f"{method}:{BASE_LOSS}"] = mean_spread(v for v in values if v is not None)
        local = [r.get("last_epoch_local_loss") for r in by_method.get(co, {}).values()]
        row[f"{co}:last_epoch_local_loss"] = mean_spread(v for v in local if v is not None)
        paired_seeds = sorted(set(by_method.get(base, {})) & set(by_method.get(co, {})))
        loss_seeds = [
            s
            for s in paired_seeds
            if None not in (by_method[co][s].get(BASE_LOSS), by_method[base][s].get(BASE_LOSS))
        ]
        row[f"delta_ci:{BASE_LOSS}"] = paired_interval(
            by_method[co][s][BASE_LOSS] - by_method[base][s][BASE_LOSS] for s in loss_seeds
        )
        for metric, _ in METRICS:
            deltas = [by_method[co][s][metric] - by_method[base][s][metric] for s in paired_seeds]
            row[f"delta:{metric}"] = mean_spread(deltas)
            row[f"delta_ci:{metric}"] = paired_interval(deltas)
            row[f"deltas:{metric}"] = dict(zip(paired_seeds, deltas))
        row["seeds"] = paired_seeds
        summary.append(row)
    return summary


def floor_table(summary: List[Dict], references: Dict[str, Dict]) -> List[str]:
    """The same network at random initialization, and how far above it each method ended:
    a method that has not learned cannot tell whether CO-SSL helps."""

    bases = [row["base"] for row in summary if row["base"] in references]
    if not bases:
        return []
    lines = [
        "",
        "Floor: the same network at random initialization (the lowest seed's), evaluated the "
        "same way; X and CO-X above it, in linear top-1 points:",
        "",
        "| network | random-init k-NN | random-init linear | X above floor | CO-X above floor |",
        "|---|---|---|---|---|",
    ]
    for row in summary:
        base = row["base"]
        if base not in references:
            continue
        floor = references[base]
        above = []
        for method in (base, f"co_{base}"):
            mean = row[f"{method}:linear_top1"]["mean"]
            above.append("-" if mean is None else f"{mean - floor['linear_top1']:+.1f}")
        scale = (
            "" if row["crop_min_scale"] is None else f", crop_min_scale {row['crop_min_scale']:g}"
        )
        lines.append(
            f"| {base}'s network{scale} | {floor['knn_top1']:.1f} | {floor['linear_top1']:.1f} | "
            + " | ".join(above)
            + " |"
        )
    return lines


def format_loss(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.3f}"


def loss_table(summary: List[Dict]) -> List[str]:
    """X's own loss against CO-X's (its global loss) at the end of training, paired."""

    rows = [row for row in summary if row[f"delta_ci:{BASE_LOSS}"]["n"]]
    if not rows:
        return []
    lines = [
        "",
        "Training losses, mean over the last epoch's steps: the base method's own loss for X and "
        "CO-X (CO-X's global loss, without the local term or the online classifier), their "
        "paired Δ (CO-X minus X, 95% t-CI; above 0: the local term costs X's own objective), "
        "and CO-X's local loss:",
        "",
        "| pair | crop_min_scale | X base loss | CO-X base loss | Δ base loss [95% CI] "
        "| CO-X local loss |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        co = f"co_{row['base']}"
        cells = [
            *(format_loss(row[f"{method}:{BASE_LOSS}"]["mean"]) for method in (row["base"], co)),
            format_interval(row[f"delta_ci:{BASE_LOSS}"], digits=3),
            format_loss(row[f"{co}:last_epoch_local_loss"]["mean"]),
        ]
        lines.append(pair_cells(row) + " | ".join(cells) + " |")
    return lines


def pair_cells(row: Dict) -> str:
    """A summary row's first two table cells: the pair and its crop scale."""

    scale = "config" if row["crop_min_scale"] is None else f"{row['crop_min_scale']:g}"
    return f"| {row['base']} vs co_{row['base']} | {scale} | "


def collect_references(out_dir: Path) -> Dict[str, Dict]:
    """The random-initialization evaluations of a benchmark, by base method."""

    from solo_coplugin.bench.evaluate import REFERENCE_DIR

    references = {}
    for path in sorted((out_dir / REFERENCE_DIR).glob(f"*/{EVAL_RECORD}")):
        record = json.loads(path.read_text())
        references[record["base"]] = record
    return references


def write_tables(
    records: List[Dict],
    summary: List[Dict],
    out_dir: Path,
    title: str,
    num_planned: int,
    references: Optional[Dict[str, Dict]] = None,
) -> None:
    fields = [
        "run",
        "method",
        "base",
        "seed",
        "crop_min_scale",
        "knn_top1",
        "linear_top1",
        "linear_weight_decay",
        "wall_seconds",
        "trained_seconds",
        "training_parts",
        "last_epoch_base_loss",
        "last_epoch_local_loss",
        "train_images",
        "val_images",
        "crop_size",
        "transform",
        "restored_from",
        "command",
    ]
    with open(out_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
    references = references or {}
    (out_dir / "results.json").write_text(
        json.dumps(
            {"summary": summary, "runs": records, "random_init": references},
            indent=2,
            default=str,
        )
    )

    lines = [f"# {title}", ""]
    if len(records) < num_planned:
        lines += [
            f"**Progress report: {len(records)} of the {num_planned} planned runs are trained and "
            "evaluated;** the same command resumes the rest.",
            "",
        ]
    if records:
        first = records[0]
        lines += [
            f"Evaluation: {first['train_images']} training images (k-NN bank and probe), "
            f"{first['val_images']} test images, at the training resolution: "
            f"{first['transform']}. k-NN: k={first['knn']['k']}, T={first['knn']['temperature']}, "
            "cosine (solo-learn's). Linear probe: L-BFGS logistic regression on standardized "
            "frozen features, weight decay chosen on a 20% hold-out.",
            "",
            "Mean ± standard deviation over seeds; Δ = CO-X minus X on the same seed (paired), "
            "its mean with a 95% confidence interval from Student's t on the per-seed "
            "differences (n-1 degrees of freedom).",
            "",
            "| pair | crop_min_scale | Δ linear [95% CI] | Δ k-NN [95% CI] | X linear "
            "| CO-X linear | X k-NN | CO-X k-NN |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for row in summary:
        base, co = row["base"], f"co_{row['base']}"
        cells = [
            format_interval(row["delta_ci:linear_top1"]),
            format_interval(row["delta_ci:knn_top1"]),
            format_mean_spread(row[f"{base}:linear_top1"]),
            format_mean_spread(row[f"{co}:linear_top1"]),
            format_mean_spread(row[f"{base}:knn_top1"]),
            format_mean_spread(row[f"{co}:knn_top1"]),
        ]
        lines.append(pair_cells(row) + " | ".join(cells) + " |")
    if any(row["delta:linear_top1"]["n"] < 2 for row in summary):
        lines += ["", "Rows with n=1 are single runs: not a result, only a progress report."]
    lines += floor_table(summary, references)
    lines += loss_table(summary)
    lines += ["", "## Runs", ""]
    lines += ["| run | k-NN top-1 | linear top-1 | probe wd | train min | base loss | local loss |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for r in records:
        losses = [format_loss(r.get(key)) for key in (BASE_LOSS, "last_epoch_local_loss")]
        lines.append(
            f"| {r['run']} | {r['knn_top1']:.1f} | {r['linear_top1']:.1f} | "
            f"{r['linear_weight_decay']:g} | {train_minutes_cell(r)} | " + " | ".join(losses) + " |"
        )
    restored = [r for r in records if r.get("restored_from")]
    if restored:
        lines += [
            "",
            "Restored from published records, not trained again (their folders, with the "
            "checkpoints and step logs, were lost): "
            + ", ".join(f"{r['run']} ({r['restored_from']})" for r in restored)
            + ". They are in the tables, not in the training curves.",
        ]
    lines += ["", "## Commands", "", "Each run, from its own folder (`cwd`):", ""]
    for r in records:
        lines += [f"- `{r['run']}`:", "", "  ```", f"  {r['command']}", "  ```", ""]
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")


def plot(records: List[Dict], out_dir: Path, runs: Sequence[Run], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = sorted({(r["base"], r.get("crop_min_scale") or 0.0) for r in records})
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 4), squeeze=False)
    for ax, (metric, label) in zip(axes[0], METRICS):
        ticks = []
        for i, (base, scale) in enumerate(settings):
            for j, method in enumerate((base, f"co_{base}")):
                x = 3 * i + j
                values = [
                    r[metric]
                    for r in records
                    if r["method"] == method and (r.get("crop_min_scale") or 0.0) == scale
                ]
                color = "tab:blue" if j == 0 else "tab:orange"
                if values:
                    ax.bar(x, statistics.fmean(values), color=color, alpha=0.35, width=0.8)
                    ax.scatter([x] * len(values), values, color=color, zorder=3, s=18)
                name = method + (f"\ncms {scale:g}" if scale else "")
                ticks.append((x, name))
        ax.set_xticks([t for t, _ in ticks], [n for _, n in ticks], fontsize=8)
        ax.set_ylabel(f"{label} (%)")
        ax.set_title(f"{label}: mean (bar) and seeds (dots)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        rows = read_steps(run_dir(out_dir, run) / "steps.csv")
        co = run.method.startswith("co_")
        style = "-" if co else "--"
        for ax, loss in zip(axes, (global_loss, local_loss)):
            points = [(r["step"], loss(r, co)) for r in rows if "step" in r]
            xs, ys = smooth([(x, y) for x, y in points if y is not None])
            if xs:
                ax.plot(xs, ys, style, label=run.name, linewidth=1)
    axes[0].set_title("the base method's loss (global)", fontsize=10)
    axes[1].set_title("CO runs: local loss", fontsize=10)
    for ax in axes:
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:  # restored runs have no step log to draw
            ax.legend(fontsize=7)
    fig.suptitle(f"{title}: training curves (moving average)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=120)
    plt.close(fig)


def draw_paired(
    ax, position: float, deltas, interval: Dict, horizontal: bool = False, offset: float = 0.18
) -> None:
    """One comparison on a matplotlib axis: each seed's difference (dots) at ``position``, and
    beside it the mean with its confidence interval (a square and a bar) when there is one.

    Args:
        ax: the axis.
        position (float): where the comparison sits on the categorical axis.
        deltas: the per-seed differences.
        interval (Dict): :func:`paired_interval`'s result.
        horizontal (bool): differences along x (comparisons stacked along y).
        offset (float): the interval's shift from the dots along the categorical axis.
    """

    deltas = list(deltas)
    places = [position] * len(deltas)
    points = (deltas, places) if horizontal else (places, deltas)
    ax.scatter(*points, color="tab:orange", s=18, zorder=3)
    if interval["low"] is None:
        return
    error = [[interval["mean"] - interval["low"]], [interval["high"] - interval["mean"]]]
    style = dict(fmt="s", color="black", capsize=3, markersize=3)
    if horizontal:
        ax.errorbar(interval["mean"], position - offset, xerr=error, **style)
    else:
        ax.errorbar(position + offset, interval["mean"], yerr=error, **style)


def plot_paired_differences(summary: List[Dict], out_dir: Path, title: str) -> Optional[Path]:
    """``differences.png``: each seed's CO-X minus X (dots), their mean and 95% t interval, and
    the zero line, per pair/setting and metric; None when no pair is complete."""

    rows = [row for row in summary if row["seeds"]]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 3.8), squeeze=False)
    for ax, (metric, label) in zip(axes[0], METRICS):
        names = []
        for i, row in enumerate(rows):
            draw_paired(ax, i, row[f"deltas:{metric}"].values(), row[f"delta_ci:{metric}"])
            scale = "" if row["crop_min_scale"] is None else f"\ncms {row['crop_min_scale']:g}"
            names.append(f"co_{row['base']} - {row['base']}{scale}")
        ax.axhline(0.0, color="grey", linewidth=1, linestyle="--")
        ax.set_xticks(range(len(rows)), names, fontsize=8)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel(f"Δ {label} (points)")
        ax.set_title(f"{label}: per-seed CO-X minus X (dots), mean and 95% t-CI", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = out_dir / "differences.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_crop_scales(records: List[Dict], out_dir: Path, title: str) -> Optional[Path]:
    """``crop_scale.png``: accuracy of X and CO-X vs ``crop_min_scale`` (the paper's "large
    training crops" analysis), when the benchmark swept at least two scales; else None."""

    bases = sorted(
        base
        for base in {r["base"] for r in records}
        if len({r["crop_min_scale"] for r in records if r["base"] == base} - {None}) >= 2
    )
    if not bases:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(bases), len(METRICS), figsize=(5 * len(METRICS), 3.6 * len(bases)), squeeze=False
    )
    for ax_row, base in zip(axes, bases):
        for ax, (metric, label) in zip(ax_row, METRICS):
            for method, color in ((base, "tab:blue"), (f"co_{base}", "tab:orange")):
                points = [
                    (r["crop_min_scale"], r[metric])
                    for r in records
                    if r["method"] == method and r["crop_min_scale"] is not None
                ]
                if not points:
                    continue
                scales = sorted({scale for scale, _ in points})
                means = [statistics.fmean(v for s, v in points if s == scale) for scale in scales]
                ax.plot(scales, means, "-o", color=color, label=f"{method} (mean)")
                ax.scatter(*zip(*points), color=color, alpha=0.4, s=14)
            ax.set_xlabel("crop_min_scale (larger: larger training crops)")
            ax.set_ylabel(f"{label} (%)")
            ax.set_title(f"{base}: {label} vs crop_min_scale", fontsize=9)
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = out_dir / "crop_scale.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def global_loss(row: Dict[str, float], co: bool) -> Optional[float]:
    """The base method's own loss at a step: a CO run logs it, for X it is the step's loss
    minus the online classifier's."""

    if co:
        return row.get("train_global_loss")
    if "loss" in row:
        return row["loss"] - row.get("train_class_loss", 0.0)
    return None


def local_loss(row: Dict[str, float], co: bool) -> Optional[float]:
    return row.get("train_local_loss") if co else None


def smooth(points, num_windows: int = 40):
    if not points:
        return [], []
    window = max(1, len(points) // num_windows)
    xs = [x for x, _ in points][window - 1 :]
    ys = [
        sum(y for _, y in points[i - window + 1 : i + 1]) / window
        for i in range(window - 1, len(points))
    ]
    return xs, ys


def write_report(runs: Sequence[Run], out_dir: Path, title: Optional[str] = None) -> List[Dict]:
    """Writes results.{md,csv,json}, accuracy.png, differences.png, curves.png and, for a
    ``crop_min_scale`` sweep, crop_scale.png into ``out_dir``."""

    title = title or f"Head-to-head: {out_dir.name}"
    records = collect(runs, out_dir)
    summary = summarize(records)
    references = collect_references(out_dir)
    write_tables(records, summary, out_dir, title, len(runs), references)
    plot(records, out_dir, runs, title)
    plot_paired_differences(summary, out_dir, title)
    plot_crop_scales(records, out_dir, title)
    return summary
