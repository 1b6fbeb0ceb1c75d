"""What installing solo-coplugin costs a Lightning program that has nothing to do with it: the time
of ``import lightning.pytorch`` and of building a ``Trainer``, with this package's Lightning entry
point (``lightning.pytorch.callbacks_factory``) active vs hidden.

Every Trainer loads the callbacks factories of all installed distributions. Each measurement is a
fresh interpreter that imports Lightning and builds a plain ``Trainer`` (no logger, no
checkpointing). The two modes run the same probe with the same ``importlib.metadata`` wrapper;
"hidden" only drops the solo-coplugin distribution from what it yields, so Lightning finds no
entry point of ours, as in an environment without the package. Runs alternate between the modes,
so that drift in the machine's speed hits both alike; the table has the median and the minimum.
``--package-root`` measures another checkout of this package (e.g. an older commit in a git
worktree): its ``solo_coplugin`` is put first on ``sys.path``, so the installed entry point loads
that code. Prints a markdown table and writes it to ``benchmarks/results/lightning_import.md``.

    python benchmarks/lightning_import.py [--runs 7] [--package-root OLD_CHECKOUT ...]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results" / "lightning_import.md"
MODES = ("active", "hidden")

# argv: mode (active | hidden), package root to put first on sys.path ("" for the installed one)
PROBE = """
import importlib.machinery, json, re, sys, time

mode, package_root = sys.argv[1], sys.argv[2]
if package_root:
    sys.path.insert(0, package_root)


class Distributions(importlib.machinery.PathFinder):
    @classmethod
    def find_distributions(cls, *args, **kwargs):
        for dist in super().find_distributions(*args, **kwargs):
            name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
            if mode == "active" or name != "solo-coplugin":
                yield dist


sys.meta_path[sys.meta_path.index(importlib.machinery.PathFinder)] = Distributions

start = time.perf_counter()
import lightning.pytorch as pl

imported = time.perf_counter()
pl.Trainer(
    accelerator="cpu",
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
built = time.perf_counter()
ours = [m for m in sys.modules if m.split(".")[0] == "solo_coplugin"]
print("PROBE " + json.dumps({
    "import_s": imported - start,
    "trainer_s": built - imported,
    "solo": "solo" in sys.modules,
    "timm": "timm" in sys.modules,
    "solo_coplugin_modules": len(ours),
    "solo_coplugin_file": getattr(sys.modules.get("solo_coplugin"), "__file__", None),
}))
"""


def probe(mode: str, package_root: Optional[Path], cwd: str) -> Dict[str, object]:
    """One fresh interpreter, started in the empty folder ``cwd``: the probe's measurements."""

    # the probe's own interpreter start-up is not measured; a step log would add our callbacks
    env = {k: v for k, v in os.environ.items() if k != "SOLO_CO_STEP_LOG"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode, str(package_root or "")],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("PROBE ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"the probe failed ({mode}):\n{result.stderr[-3000:]}")
    return json.loads(lines[0][len("PROBE ") :])


def summarize(label: str, runs: Dict[str, List[Dict[str, object]]]) -> List[str]:
    rows = []
    for mode in MODES:
        measured = runs[mode]
        total = [r["import_s"] + r["trainer_s"] for r in measured]
        first = measured[0]
        imported = ", ".join(name for name in ("solo", "timm") if first[name]) or "neither"
        rows.append(
            f"| {label} | {mode} | {statistics.median(r['import_s'] for r in measured):.2f} | "
            f"{statistics.median(r['trainer_s'] for r in measured):.3f} | "
            f"{statistics.median(total):.2f} | {min(total):.2f} | {imported} | "
            f"{first['solo_coplugin_modules']} |"
        )
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per mode")
    parser.add_argument(
        "--package-root",
        type=Path,
        nargs="*",
        default=[],
        help="other checkouts of this package to measure too (their solo_coplugin is imported)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    arguments = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(arguments)

    roots: List[Optional[Path]] = [None, *(p.resolve() for p in args.package_root)]
    table = [
        "| solo_coplugin | entry point | `import lightning.pytorch` s (median) | `Trainer()` s "
        "(median) | total s (median) | total s (min) | imported | solo_coplugin modules |",
        "|---|---|---|---|---|---|---|---|",
    ]
    # an empty working folder: only the installed package (or --package-root) is importable
    empty = tempfile.mkdtemp(prefix="lightning_import_")
    for root in roots:
        runs: Dict[str, List[Dict[str, object]]] = {mode: [] for mode in MODES}
        for i in range(args.runs):
            order = MODES if i % 2 == 0 else MODES[::-1]
            for mode in order:
                runs[mode].append(probe(mode, root, empty))
        source = runs["active"][0]["solo_coplugin_file"]
        # the folder's name only: the table is committed, this machine's paths are not
        label = f"`{root.name}`" if root is not None else "installed"
        print(f"{label}: solo_coplugin from {source}", file=sys.stderr)
        table += summarize(label, runs)

    cpu = platform.processor() or platform.machine()
    text = "\n".join(
        [
            "# Lightning start-up with and without solo-coplugin's entry point",
            "",
            "Made by `"
            + " ".join(
                ["python benchmarks/lightning_import.py"]
                + [Path(a).name if Path(a).is_absolute() else a for a in arguments]
            )
            + "`.",
            "",
            f"{args.runs} fresh interpreters per row, modes alternating; {os.cpu_count()} CPU "
            f"cores ({cpu}), Python {platform.python_version()}. `active`: the environment as "
            "installed; `hidden`: solo-coplugin's distribution filtered out of "
            "`importlib.metadata`, so Lightning loads no entry point of ours. Lightning loads the "
            "callbacks factories in `Trainer()`, not on import: the import column differs between "
            "modes by the machine's noise only. `imported`: whether solo-learn (`solo`) or timm "
            "were imported after `Trainer()`. A path in the first column: that checkout's "
            "`solo_coplugin` (`--package-root`).",
            "",
            *table,
            "",
        ]
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
