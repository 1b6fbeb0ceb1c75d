"""``solo-co-bench``: X vs CO-X, trained by solo-learn's own ``main_pretrain.py`` with identical
settings, evaluated the same way at the training resolution, reported over seeds.

Example (the CPU benchmark of ``benchmarks/results/h2h-simclr-cifar10-5k``)::

    solo-co-bench --data /tmp/c10/cifar10 --train-per-class 500 --val-per-class 100 \\
        --pairs simclr,co_simclr --epochs 10 --batch-size 64 --seeds 0 1 \\
        --out benchmarks/results/h2h-simclr-cifar10-5k

A second call with the same arguments resumes: finished runs and evaluations are kept, a run
that stopped half-way restarts from its last checkpoint.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from solo_coplugin.bench.plan import (
    TRAIN_RECORD,
    BenchConfigError,
    Run,
    build_plan,
    cpu_or_gpu_overrides,
    find_reusable_run,
    is_trained,
    launch_args,
    latest_checkpoint,
    num_large_crop_pipelines,
    parse_pairs,
    ready_to_evaluate,
    resolve_config_dir,
    restore_published_runs,
    run_dir,
)
from solo_coplugin.bench.step_log import STEP_LOG_ENV

STEP_LOG = "steps.csv"
PLAN_RECORD = "plan.json"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="solo-co-bench",
        description="Head-to-head X vs CO-X through solo-learn's main_pretrain.py.",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        required=True,
        help="an ImageFolder root with train/ and val/ (or test/) class folders",
    )
    data.add_argument("--train-per-class", type=int, help="use the first N images of each class")
    data.add_argument("--val-per-class", type=int, help="evaluate on the first N of each class")
    runs = parser.add_argument_group("runs")
    runs.add_argument("--pairs", nargs="+", default=["simclr,co_simclr"], help="X,co_X pairs")
    runs.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    runs.add_argument("--epochs", type=int, default=10)
    runs.add_argument(
        "--warmup-epochs",
        type=int,
        help="linear warm-up of warmup_cosine (default: a tenth of --epochs, at least 1; "
        "solo-learn's 10 would span a whole short budget)",
    )
    runs.add_argument("--backbone", default="resnet18_cifar")
    runs.add_argument("--batch-size", type=int, default=64)
    runs.add_argument("--crop-size", type=int, default=32, help="large crop size (train and eval)")
    runs.add_argument(
        "--crop-min-scales",
        nargs="+",
        type=float,
        help="sweep the large crops' minimum scale (the paper's large-crop robustness)",
    )
    runs.add_argument("--config-path", default="pkg://solo_coplugin.configs.cifar")
    runs.add_argument("--config-name-template", default="co_{base}.yaml")
    runs.add_argument("--override", nargs="*", default=[], help="Hydra overrides for all runs")
    runs.add_argument("--co-override", nargs="*", default=[], help="overrides for CO runs only")
    runs.add_argument(
        "--base-override",
        nargs="*",
        default=[],
        help="overrides for the X runs only (e.g. multi-crop as a control at CO-X's step cost)",
    )
    runs.add_argument(
        "--reuse-from",
        nargs="*",
        default=[],
        help="other benchmark folders whose trained runs with exactly the same arguments and "
        "data are reused (linked) instead of trained again",
    )
    runs.add_argument(
        "--restore-from",
        nargs="*",
        default=[],
        metavar="RESULTS_JSON",
        help="published results.json files of this benchmark: a planned run whose folder is "
        "missing is rebuilt from its record there (same arguments, paths aside, and data) instead "
        "of trained again; it has no checkpoint, so no training curve nor robustness analysis",
    )
    runs.add_argument(
        "--co-only",
        action="store_true",
        help="train only the CO-X runs: their X runs are another benchmark's, published with the "
        "same settings, and a study pairs against those (the report then has no differences)",
    )
    runs.add_argument("--num-workers", type=int, default=2)
    runs.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs trained at once, each with cores/jobs torch threads (on a CPU machine, 2 "
        "one-thread runs train faster together than one after the other with 2 threads)",
    )
    device = parser.add_argument_group("device")
    device.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    device.add_argument("--devices", default="1")
    device.add_argument("--precision", default="32")
    parser.add_argument("--out", required=True, help="the benchmark's folder (resumable)")
    parser.add_argument(
        "--solo-learn", help="solo-learn's checkout (default: the one `import solo` finds)"
    )
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--dry-run", action="store_true", help="print the commands and stop")
    return parser.parse_args(argv)


def find_solo_root(explicit: Optional[str]) -> Path:
    """solo-learn's checkout, where ``main_pretrain.py`` is."""

    if explicit:
        root = Path(explicit)
    else:
        try:
            import solo
        except ImportError as error:
            raise BenchConfigError(
                "solo-learn is not importable. Fix: install its checkout (pip install -e "
                "<solo-learn>) or pass --solo-learn <checkout>."
            ) from error
        root = Path(solo.__file__).resolve().parents[1]
    if not (root / "main_pretrain.py").exists():
        raise BenchConfigError(
            f"No main_pretrain.py in {root}. Fix: --solo-learn <solo-learn checkout> (a pip "
            "install of solo-learn without its scripts cannot train)."
        )
    return root.resolve()


def split_folder(root: Path, names: Sequence[str]) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise BenchConfigError(f"--data: {root} has none of the folders {', '.join(names)}.")


def class_subset(source: Path, target: Path, per_class: Optional[int]) -> Path:
    """An ImageFolder of the first ``per_class`` images (sorted names) of each class, as links."""

    if per_class is None:
        return source
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        images = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if len(images) < per_class:
            raise BenchConfigError(
                f"--train-per-class/--val-per-class {per_class}: {class_dir} has only "
                f"{len(images)} images."
            )
        (target / class_dir.name).mkdir(parents=True, exist_ok=True)
        for image in images[:per_class]:
            link = target / class_dir.name / image.name
            if not link.exists():
                link.symlink_to(image.resolve())
    return target


def prepare_data(args: argparse.Namespace, out_dir: Path) -> Dict[str, Path]:
    root = Path(args.data).resolve()
    train = split_folder(root, ["train"])
    val = split_folder(root, ["val", "test"])
    return {
        "train": class_subset(train, out_dir / "data" / "train", args.train_per_class),
        "val": class_subset(val, out_dir / "data" / "val", args.val_per_class),
    }


def count_images(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


def common_overrides(args: argparse.Namespace, train_path: Path) -> List[str]:
    warmup = args.warmup_epochs if args.warmup_epochs is not None else max(1, args.epochs // 10)
    return [
        "data.dataset=custom",
        f"data.train_path={train_path}",
        # no online validation: solo-learn's custom-dataset validation resizes to 224 px;
        # the runner evaluates afterwards at the training resolution
        "++data.val_path=null",
        f"data.num_workers={args.num_workers}",
        f"backbone.name={args.backbone}",
        f"optimizer.batch_size={args.batch_size}",
        f"max_epochs={args.epochs}",
        f"++scheduler.warmup_epochs={warmup}",
        *cpu_or_gpu_overrides(args.accelerator, args.devices, args.precision),
        "wandb.enabled=False",
        "checkpoint.enabled=True",
        "checkpoint.frequency=1",
        "auto_resume.enabled=False",
        "++knn_eval.enabled=False",
        "++auto_umap.enabled=False",
        *args.override,
    ]


#: config keys that the runner sets from its own arguments -> the argument; an ``--override`` of
#: one of them would silently replace what the argument says (Hydra keeps the last value)
RUNNER_KEYS = {
    "backbone.name": "--backbone",
    "optimizer.batch_size": "--batch-size",
    "max_epochs": "--epochs",
    "scheduler.warmup_epochs": "--warmup-epochs",
    "precision": "--precision",
    "accelerator": "--accelerator",
    "devices": "--devices",
    "data.num_workers": "--num-workers",
    "data.dataset": "--data (always custom)",
    "data.train_path": "--data",
    "data.val_path": "--data (the runner evaluates on its val/ or test/ split itself)",
    "seed": "--seeds",
    "method": "--pairs",
    "name": "the run names",
    r"augmentations.<i>.crop_size": "--crop-size",
}


def overridden_runner_key(override: str, crop_min_scales) -> Optional[Tuple[str, str]]:
    """(key, argument) when an override sets a key that a runner argument sets, else None."""

    key = override.lstrip("+~").split("=", 1)[0].strip()
    generic = re.sub(r"^augmentations\.\d+\.", "augmentations.<i>.", key)
    if generic in RUNNER_KEYS:
        return key, RUNNER_KEYS[generic]
    if crop_min_scales and generic == "augmentations.<i>.rrc.crop_min_scale":
        return key, "--crop-min-scales"
    return None


def check_overrides(args: argparse.Namespace) -> None:
    """Refuses an override that would silently replace one of the runner's own arguments."""

    for flag in ("override", "co_override", "base_override"):
        for override in getattr(args, flag):
            clash = overridden_runner_key(override, args.crop_min_scales)
            if clash:
                key, argument = clash
                raise BenchConfigError(
                    f"--{flag.replace('_', '-')} {override}: {key} is set by {argument}, and the "
                    "override would silently replace it in every run. Fix: use the argument "
                    "instead of the override."
                )


def make_plan(args: argparse.Namespace, train_path: Path) -> List[Run]:
    check_overrides(args)
    scales = args.crop_min_scales or [None]
    plan_kwargs = dict(
        pairs=parse_pairs(args.pairs),
        seeds=args.seeds,
        config_path=args.config_path,
        crop_min_scales=scales,
        co_overrides=args.co_override,
        config_name_template=args.config_name_template,
        base_overrides=args.base_override,
    )
    overrides = common_overrides(args, train_path)
    config_dir = resolve_config_dir(args.config_path)
    pipelines = max(
        num_large_crop_pipelines(config_dir, config_dir / args.config_name_template.format(base=b))
        for b, _ in plan_kwargs["pairs"]
    )
    overrides += [f"augmentations.{i}.crop_size={args.crop_size}" for i in range(pipelines)]
    runs = build_plan(common_overrides=overrides, **plan_kwargs)
    return [run for run in runs if run.method != run.base] if args.co_only else runs


def total_steps(args: argparse.Namespace, num_train_images: int) -> int:
    return (num_train_images // args.batch_size) * args.epochs  # solo-learn drops the last batch


def logged_steps(step_log: Path) -> int:
    if not step_log.exists():
        return 0
    with open(step_log) as f:
        lines = f.read().splitlines()
    if len(lines) < 2:
        return 0
    try:
        return int(lines[-1].split(",")[0])
    except ValueError:
        return 0


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a Lightning checkpoint was saved at."""

    from solo_coplugin.eval.checkpoint import load_checkpoint

    return int(load_checkpoint(checkpoint)["global_step"])


def truncate_step_log(step_log: Path, last_step: int) -> None:
    """Drops the rows after ``last_step``: the steps an interrupted run logged past its last
    checkpoint are trained again on resume, and logged again."""

    if not step_log.exists():
        return
    with open(step_log) as f:
        lines = f.read().splitlines()
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",")[0]) <= last_step]
    step_log.write_text("".join(line + "\n" for line in kept))


class Training:
    """One run being trained (or resumed from its last checkpoint) by ``main_pretrain.py``, in a
    subprocess; several can run at once (``--jobs``)."""

    def __init__(self, run: Run, solo_root: Path, out_dir: Path, threads: Optional[int] = None):
        self.run = run
        self.directory = run_dir(out_dir, run)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.resumed_from = latest_checkpoint(self.directory / "checkpoints")
        #: steps trained before this process started
        self.resumed_steps = 0 if self.resumed_from is None else checkpoint_step(self.resumed_from)
        # an interrupted run trains (and logs) again the steps after its last checkpoint, or all
        # of them when it stopped before the first one
        truncate_step_log(self.directory / STEP_LOG, self.resumed_steps)
        args = launch_args(run, self.directory, self.resumed_from)
        self.command = [sys.executable, str(solo_root / "main_pretrain.py"), *args]
        env = {**os.environ, STEP_LOG_ENV: str(self.directory / STEP_LOG), "HYDRA_FULL_ERROR": "1"}
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
        self.start = time.time()
        with open(self.directory / "train.log", "a") as log:
            log.write(f"$ {shlex.join(self.command)}\n")
            log.flush()
            self.process = subprocess.Popen(
                self.command, cwd=self.directory, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def steps_done(self, steps_per_run: int) -> int:
        return min(logged_steps(self.directory / STEP_LOG), steps_per_run)

    def stop(self) -> None:
        """Stops the process; its checkpoints allow a resume."""

        self.process.terminate()
        self.process.wait()

    def finish(self) -> Dict:
        """Records how the run was trained, once its process has ended successfully."""

        if self.process.returncode != 0:
            raise RuntimeError(
                f"{self.run.name} failed (exit {self.process.returncode}); see "
                f"{self.directory / 'train.log'}"
            )
        record = {
            "run": self.run.name,
            "method": self.run.method,
            "base": self.run.base,
            "seed": self.run.seed,
            "crop_min_scale": self.run.crop_min_scale,
            "command": shlex.join(self.command),
            "cwd": str(self.directory),
            "resumed_from": str(self.resumed_from) if self.resumed_from else None,
            "wall_seconds": round(time.time() - self.start, 1),
            "checkpoint": str(latest_checkpoint(self.directory / "checkpoints")),
        }
        (self.directory / TRAIN_RECORD).write_text(json.dumps(record, indent=2))
        return record


def train_all(
    todo: Sequence[Run],
    solo_root: Path,
    out_dir: Path,
    bar,
    steps_per_run: int,
    jobs: int = 1,
    on_trained=None,
    poll_seconds: float = 5.0,
) -> List[Dict]:
    """Trains the runs, ``jobs`` at a time, keeping ``bar`` (a tqdm bar over all their steps)
    up to date; ``on_trained`` is called after each run.

    With several jobs each run gets ``cores / jobs`` torch threads (at least one) unless
    ``OMP_NUM_THREADS`` is set: torch runs against each other with all cores' threads thrash.
    """

    threads = None
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // jobs)
    pending, running, records, finished_steps = list(todo), [], [], 0
    try:
        while pending or running:
            while pending and len(running) < jobs:
                training = Training(pending.pop(0), solo_root, out_dir, threads)
                bar.initial += training.resumed_steps  # the rate and ETA count new steps only
                running.append(training)
            time.sleep(poll_seconds if running else 0)
            for training in [t for t in running if t.process.poll() is not None]:
                running.remove(training)
                records.append(training.finish())
                finished_steps += steps_per_run
                if on_trained is not None:
                    on_trained()
            bar.n = finished_steps + sum(t.steps_done(steps_per_run) for t in running)
            bar.set_postfix_str(", ".join(t.run.name for t in running))
            bar.refresh()
    except BaseException:  # interrupted: stop the runs too; their checkpoints allow a resume
        for training in running:
            training.stop()
        raise
    return records


def link_reusable_runs(
    runs: Sequence[Run], out_dir: Path, data: Dict[str, Path], other_dirs: Sequence[Path]
) -> None:
    """Links each untrained run to an identical trained run of another benchmark, if any."""

    for run in runs:
        directory = run_dir(out_dir, run)
        if directory.exists() or directory.is_symlink():
            continue
        reusable = find_reusable_run(run, data, other_dirs)
        if reusable is not None:
            directory.parent.mkdir(parents=True, exist_ok=True)
            directory.symlink_to(reusable, target_is_directory=True)
            print(f"{run.name}: reused from {reusable}")


@contextlib.contextmanager
def sigterm_as_ctrl_c():
    """Within it, SIGTERM (``kill PID``) interrupts like Ctrl-C, so that the code that stops the
    training runs on an interrupt runs too; Python's default would end this process at once and
    leave its runs training, unattended, on the machine."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_to_the_end(
    command: Sequence[str], env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None
) -> int:
    """Runs ``command`` (in ``cwd``) and returns its exit status. Interrupted (Ctrl-C, or SIGTERM
    within :func:`sigterm_as_ctrl_c`), it passes the interrupt on and waits for the command to stop
    its own processes; ``subprocess.run`` would kill it at once and leave them running."""

    process = subprocess.Popen(list(command), env=env, cwd=cwd)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        process.wait()
        raise


def main(argv: Optional[Sequence[str]] = None) -> None:
    with sigterm_as_ctrl_c():
        run_benchmark(argv)


def run_benchmark(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    from tqdm import tqdm

    try:
        out_dir = Path(args.out).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        data = prepare_data(args, out_dir)
        runs = make_plan(args, data["train"])
        solo_root = find_solo_root(args.solo_learn)
    except BenchConfigError as error:
        sys.exit(f"solo-co-bench: {error}")

    images = {split: count_images(data[split]) for split in ("train", "val")}
    num_train = images["train"]
    steps_per_run = total_steps(args, num_train)
    (out_dir / PLAN_RECORD).write_text(
        json.dumps(
            {
                "argv": sys.argv if argv is None else ["solo-co-bench", *argv],
                "train_images": num_train,
                "val_images": images["val"],
                "steps_per_run": steps_per_run,
                "data": {split: str(path) for split, path in data.items()},
                "runs": [dataclasses.asdict(r) for r in runs],
            },
            indent=2,
        )
    )
    if args.dry_run:
        for run in runs:
            print(shlex.join(["python", str(solo_root / "main_pretrain.py"), *run.args]))
        return

    from solo_coplugin.bench.evaluate import evaluate_runs
    from solo_coplugin.bench.report import write_report

    def report_finished_pairs() -> None:
        # a long benchmark shows its results so far: each X/CO-X pair as soon as both are trained
        ready = ready_to_evaluate(runs, out_dir)
        if ready:
            evaluate_runs(ready, out_dir, data, args)
            write_report(runs, out_dir)

    # a run trained on this machine (with its checkpoint) before a published record of it
    link_reusable_runs(runs, out_dir, data, [Path(d) for d in args.reuse_from])
    try:
        restored = restore_published_runs(runs, out_dir, images, args.restore_from)
    except BenchConfigError as error:
        sys.exit(f"solo-co-bench: {error}")
    for line in restored:
        print(line)
    todo = [r for r in runs if not is_trained(run_dir(out_dir, r))]
    print(f"{len(runs)} runs, {len(runs) - len(todo)} already trained; {steps_per_run} steps each")
    report_finished_pairs()
    with tqdm(total=steps_per_run * len(todo), unit="step", desc="pretraining") as bar:
        train_all(todo, solo_root, out_dir, bar, steps_per_run, args.jobs, report_finished_pairs)

    evaluate_runs(runs, out_dir, data, args)
    write_report(runs, out_dir)
    print((out_dir / "results.md").read_text().split("\n## Runs")[0].rstrip())
    print(f"\nResults, plots and commands: {out_dir}")


if __name__ == "__main__":
    main()
