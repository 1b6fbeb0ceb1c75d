import csv
import io
import subprocess
import sys
import textwrap
import time

import pytest
from tqdm import tqdm

from solo_coplugin.bench import runner
from solo_coplugin.bench.plan import Run, run_dir

# stands in for solo-learn's main_pretrain.py: logs two steps the way StepLog does
FAKE_MAIN_PRETRAIN = textwrap.dedent("""
    import os
    path = os.environ["SOLO_CO_STEP_LOG"]
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a") as f:
        if new:
            f.write("step,epoch,loss\\n")
        for step in (1, 2):
            f.write(f"{step},0,1.0\\n")
    """)


def test_a_run_stopped_before_its_first_checkpoint_restarts_with_a_clean_log(tmp_path):
    solo_root = tmp_path / "solo-learn"
    solo_root.mkdir()
    (solo_root / "main_pretrain.py").write_text(FAKE_MAIN_PRETRAIN)
    run = Run("simclr-s0", "simclr", "simclr", 0, None, ("--config-name", "co_simclr.yaml"))
    directory = run_dir(tmp_path / "bench", run)
    directory.mkdir(parents=True)
    # logged by an earlier attempt that was stopped at step 3, before any checkpoint
    (directory / "steps.csv").write_text("step,epoch,loss\n1,0,9.0\n2,0,8.0\n3,0,7.0\n")

    with tqdm(total=2, file=io.StringIO()) as bar:
        (record,) = runner.train_all([run], solo_root, tmp_path / "bench", bar, steps_per_run=2)
    with open(directory / "steps.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(row["step"], row["loss"]) for row in rows] == [("1", "1.0"), ("2", "1.0")]
    assert record["resumed_from"] is None and record["command"].startswith(sys.executable)
    assert "resume_from_checkpoint" not in record["command"]


# stands in for main_pretrain.py: records when it ran and with how many torch threads
FAKE_SLOW_MAIN_PRETRAIN = textwrap.dedent("""
    import os, sys, time
    start = time.time()
    time.sleep(1.5)
    with open(os.environ["SOLO_CO_STEP_LOG"], "w") as f:
        f.write("step,epoch,loss\\n1,0,1.0\\n")
    name = [a for a in sys.argv if a.startswith("name=")][0][5:]
    with open(os.path.join(os.path.dirname(__file__), name + ".txt"), "w") as f:
        f.write(f"{start} {time.time()} {os.environ.get('OMP_NUM_THREADS')}")
    """)


def test_jobs_train_runs_at_once_with_a_share_of_the_cores_each(tmp_path, monkeypatch):
    solo_root = tmp_path / "solo-learn"
    solo_root.mkdir()
    (solo_root / "main_pretrain.py").write_text(FAKE_SLOW_MAIN_PRETRAIN)
    runs = [
        Run(f"{m}-s0", m, "simclr", 0, None, ("--config-name", "x.yaml", f"name={m}-s0"))
        for m in ("simclr", "co_simclr", "simclr2")
    ]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 4)
    calls = []
    with tqdm(total=3, file=io.StringIO()) as bar:
        records = runner.train_all(
            runs,
            solo_root,
            tmp_path / "bench",
            bar,
            1,
            jobs=2,
            on_trained=lambda: calls.append(1),
            poll_seconds=0.2,
        )
        assert bar.n == 3
    assert sorted(r["run"] for r in records) == sorted(r.name for r in runs) and len(calls) == 3
    spans = {}
    for run in runs:
        start, end, threads = (solo_root / f"{run.name}.txt").read_text().split()
        spans[run.name] = (float(start), float(end))
        assert threads == "2"  # 4 cores, 2 jobs
        assert (run_dir(tmp_path / "bench", run) / "train.json").exists()
    # the first two ran at the same time, the third after one of them
    (a0, a1), (b0, b1) = spans["simclr-s0"], spans["co_simclr-s0"]
    assert a0 < b1 and b0 < a1
    assert spans["simclr2-s0"][0] >= min(a1, b1)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--override", "max_epochs=3"], r"--override max_epochs=3: max_epochs is set by --epochs"),
        (["--override", "++optimizer.batch_size=8"], r"is set by --batch-size"),
        (["--co-override", "backbone.name=resnet18"], r"--co-override .* by --backbone"),
        (["--base-override", "augmentations.1.crop_size=48"], r"by --crop-size"),
        (
            ["--crop-min-scales", "0.5", "--override", "augmentations.0.rrc.crop_min_scale=0.2"],
            r"is set by --crop-min-scales",
        ),
    ],
)
def test_an_override_that_would_silently_replace_an_argument_is_refused(argv, message):
    from solo_coplugin.bench.plan import BenchConfigError
    from solo_coplugin.bench.runner import check_overrides, parse_args

    args = parse_args(["--data", "d", "--out", "o", *argv])
    with pytest.raises(BenchConfigError, match=message):
        check_overrides(args)


def test_overrides_of_keys_the_runner_leaves_alone_are_kept():
    from solo_coplugin.bench.runner import check_overrides, parse_args

    args = parse_args(
        ["--data", "d", "--out", "o", "--override", "++backbone.kwargs.width=16"]
        + [
            "augmentations.0.rrc.crop_min_scale=0.3",
            "--co-override",
            "method_kwargs.local_weight=0",
        ]
    )
    check_overrides(args)  # no --crop-min-scales: the config's scale is the override's to set


# stands in for solo-co-bench under the study: stops its own runs on Ctrl-C (SIGINT), then exits
INTERRUPTIBLE = textwrap.dedent("""
    import pathlib, signal, sys, time
    marker = pathlib.Path(sys.argv[1])
    def stop(signum, frame):
        marker.write_text("stopped its runs")
        sys.exit(130)
    signal.signal(signal.SIGINT, stop)
    marker.write_text("training")
    time.sleep(60)
""")
# the study's process: runs the stand-in to the end, SIGTERM acting as Ctrl-C
STUDY = textwrap.dedent("""
    import sys
    from solo_coplugin.bench.runner import run_to_the_end, sigterm_as_ctrl_c
    with sigterm_as_ctrl_c():
        run_to_the_end([sys.executable, sys.argv[1], sys.argv[2]])
""")


def test_kill_stops_the_command_and_waits_for_it_to_stop_its_runs(tmp_path):
    (tmp_path / "bench.py").write_text(INTERRUPTIBLE)
    marker = tmp_path / "marker"
    study = subprocess.Popen(
        [sys.executable, "-c", STUDY, str(tmp_path / "bench.py"), str(marker)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        study.terminate()  # `kill PID`: the study's process only, not its process group
        study.wait(timeout=30)
        assert marker.read_text() == "stopped its runs"
        assert "KeyboardInterrupt" in study.stderr.read()
    finally:
        study.kill()
        subprocess.run(["pkill", "-f", str(tmp_path / "bench.py")])


def test_co_only_plans_the_co_runs_of_the_full_plan_and_nothing_else(tmp_path):
    from solo_coplugin.bench.runner import make_plan, parse_args

    argv = ["--data", "d", "--out", "o", "--pairs", "simclr,co_simclr", "byol,co_byol"]
    argv += ["--seeds", "0", "1", "--co-override", "method_kwargs.local_loss_form=additive"]
    full = make_plan(parse_args(argv), tmp_path / "train")
    co_only = make_plan(parse_args(argv + ["--co-only"]), tmp_path / "train")
    assert [r.name for r in co_only] == ["co_simclr-s0", "co_simclr-s1", "co_byol-s0", "co_byol-s1"]
    # the same commands as in the full plan: they pair with X runs trained with it
    assert co_only == [r for r in full if r.method.startswith("co_")]
