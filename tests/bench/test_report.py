import csv
import json

import pytest

from solo_coplugin.bench.plan import Run, run_dir
from solo_coplugin.bench.evaluate import reference_record_path
from solo_coplugin.bench.report import mean_spread, paired_interval, summarize, write_report

ACCURACY = {  # (method, seed) -> (knn, linear)
    ("simclr", 0): (30.0, 40.0),
    ("co_simclr", 0): (31.0, 43.0),
    ("simclr", 1): (32.0, 42.0),
    ("co_simclr", 1): (32.0, 44.0),
}


def fake_benchmark(out_dir, accuracy=ACCURACY, crop_min_scale=None):
    runs = []
    for (method, seed), (knn, linear) in accuracy.items():
        name = f"{method}-s{seed}" + (f"-cms{crop_min_scale}" if crop_min_scale else "")
        run = Run(name, method, "simclr", seed, crop_min_scale, ("--config-name", "x.yaml"))
        runs.append(run)
        directory = run_dir(out_dir, run)
        directory.mkdir(parents=True)
        (directory / "train.json").write_text(
            json.dumps(
                {
                    "run": run.name,
                    "method": method,
                    "base": "simclr",
                    "seed": seed,
                    "crop_min_scale": crop_min_scale,
                    "command": f"python main_pretrain.py method={method}",
                    "wall_seconds": 120.0,
                }
            )
        )
        (directory / "eval.json").write_text(
            json.dumps(
                {
                    "knn_top1": knn,
                    "linear_top1": linear,
                    "linear_weight_decay": 0.01,
                    "knn": {"k": 20, "temperature": 0.07},
                    "transform": "Resize(32)",
                    "train_images": 100,
                    "val_images": 50,
                    "crop_size": 32,
                }
            )
        )
        with open(directory / "steps.csv", "w") as f:
            f.write("step,epoch,loss,train_class_loss,train_global_loss,train_local_loss\n")
            for step in range(1, 6):
                f.write(f"{step},0,{6 - step / 2},{1.0},{5 - step / 2},{4 - step / 3}\n")
    return runs


def test_tables_give_mean_spread_and_paired_differences(tmp_path):
    runs = fake_benchmark(tmp_path)
    summary = write_report(runs, tmp_path, title="t")
    (row,) = summary
    assert row["simclr:linear_top1"]["mean"] == 41.0
    assert row["simclr:linear_top1"]["std"] == pytest.approx(2**0.5)
    assert row["delta:linear_top1"]["mean"] == 2.5  # (3 + 2) / 2, seed by seed
    assert row["delta:knn_top1"]["mean"] == 0.5 and row["seeds"] == [0, 1]

    markdown = (tmp_path / "results.md").read_text()
    # the paired differences lead, with their t interval: deltas 3 and 2, t(0.975, 1) = 12.71
    assert (
        "| simclr vs co_simclr | config | +2.5 [-3.9, +8.9] (n=2) | +0.5 [-5.9, +6.9] (n=2) | "
        "41.0 ± 1.4 (n=2) | 43.5 ± 0.7 (n=2) | 31.0 ± 1.4 (n=2) | 31.5 ± 0.7 (n=2) |"
    ) in markdown
    assert "python main_pretrain.py method=co_simclr" in markdown
    assert "Resize(32)" in markdown and "n=1" not in markdown
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == [r.name for r in runs]
    assert json.loads((tmp_path / "results.json").read_text())["summary"][0]["seeds"] == [0, 1]
    for png in ("accuracy.png", "curves.png", "differences.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_a_single_seed_is_flagged_not_presented_as_a_result(tmp_path):
    accuracy = {k: v for k, v in ACCURACY.items() if k[1] == 0}
    runs = fake_benchmark(tmp_path, accuracy)
    write_report(runs, tmp_path)
    assert "not a result" in (tmp_path / "results.md").read_text()


def test_a_report_of_part_of_the_runs_says_so(tmp_path):
    runs = fake_benchmark(tmp_path)
    write_report(runs, tmp_path)
    assert "Progress report" not in (tmp_path / "results.md").read_text()
    for run in runs[2:]:  # seed 1 not trained yet
        (run_dir(tmp_path, run) / "train.json").unlink()
    write_report(runs, tmp_path)
    assert "Progress report: 2 of the 4 planned runs" in (tmp_path / "results.md").read_text()


def test_a_crop_min_scale_sweep_gets_its_curve(tmp_path):
    runs = fake_benchmark(tmp_path)  # the config's scale only: no sweep, no curve
    write_report(runs, tmp_path)
    assert not (tmp_path / "crop_scale.png").exists()
    runs = [
        *fake_benchmark(tmp_path, crop_min_scale=0.08),
        *fake_benchmark(tmp_path, crop_min_scale=0.5),
    ]
    summary = write_report(runs, tmp_path)
    assert sorted(row["crop_min_scale"] for row in summary) == [0.08, 0.5]
    assert (tmp_path / "crop_scale.png").stat().st_size > 0
    markdown = (tmp_path / "results.md").read_text()
    assert (
        "| simclr vs co_simclr | 0.08 |" in markdown and "| simclr vs co_simclr | 0.5 |" in markdown
    )


def test_a_resumed_runs_wall_time_is_marked_as_its_last_part(tmp_path):
    runs = fake_benchmark(tmp_path)
    train_file = run_dir(tmp_path, runs[0]) / "train.json"
    record = json.loads(train_file.read_text())
    train_file.write_text(json.dumps({**record, "resumed_from": "ep=1.ckpt"}))
    write_report(runs, tmp_path)
    markdown = (tmp_path / "results.md").read_text()
    assert "| simclr-s0 | 30.0 | 40.0 | 0.01 | 2.0 (last part: resumed) |" in markdown
    assert markdown.count("(last part: resumed)") == 1


def test_a_resumed_runs_training_time_adds_up_its_parts(tmp_path):
    """The step log's clock restarts with each process; each part counts to its last kept step."""

    runs = fake_benchmark(tmp_path)
    directory = run_dir(tmp_path, runs[0])
    train_file = directory / "train.json"
    record = json.loads(train_file.read_text())
    train_file.write_text(json.dumps({**record, "resumed_from": "ep=1.ckpt"}))
    with open(directory / "steps.csv", "w") as f:  # 3 steps in 90 s, then 2 in 60 s, resumed
        f.write("step,epoch,seconds,loss\n")
        for step, seconds in ((1, 30.0), (2, 60.0), (3, 90.0), (4, 31.0), (5, 60.0)):
            f.write(f"{step},0,{seconds},1.0\n")
    write_report(runs, tmp_path)
    markdown = (tmp_path / "results.md").read_text()
    assert "| simclr-s0 | 30.0 | 40.0 | 0.01 | 2.5 (2 parts) |" in markdown
    assert "last part" not in markdown
    (first,) = [
        r
        for r in json.loads((tmp_path / "results.json").read_text())["runs"]
        if r["run"] == "simclr-s0"
    ]
    assert first["trained_seconds"] == 150.0 and first["training_parts"] == 2


def test_unfinished_runs_are_left_out(tmp_path):
    runs = fake_benchmark(tmp_path)
    (run_dir(tmp_path, runs[0]) / "eval.json").unlink()
    (row,) = summarize_records(runs, tmp_path)
    assert row["simclr:knn_top1"]["n"] == 1 and row["delta:knn_top1"]["n"] == 1


def summarize_records(runs, out_dir):
    from solo_coplugin.bench.report import collect

    return summarize(collect(runs, out_dir))


def test_mean_spread():
    assert mean_spread([1.0]) == {"mean": 1.0, "std": None, "n": 1}
    assert mean_spread([]) == {"mean": None, "std": None, "n": 0}


def test_paired_interval_is_students_t_on_the_per_seed_differences():
    interval = paired_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.303
    assert interval["mean"] == 2.0 and interval["n"] == 3
    assert interval["low"] == pytest.approx(2 - 4.3027 / 3**0.5, abs=1e-3)
    assert interval["high"] == pytest.approx(2 + 4.3027 / 3**0.5, abs=1e-3)
    single = paired_interval([1.5])
    assert single["mean"] == 1.5 and single["low"] is None and single["high"] is None


def test_the_random_init_floor_is_reported_with_the_distance_above_it(tmp_path):
    runs = fake_benchmark(tmp_path)
    write_report(runs, tmp_path)
    assert "random initialization" not in (tmp_path / "results.md").read_text()
    path = reference_record_path(tmp_path, "simclr")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"base": "simclr", "knn_top1": 25.0, "linear_top1": 30.0}))
    write_report(runs, tmp_path)
    markdown = (tmp_path / "results.md").read_text()
    # X linear 41.0 and CO-X 43.5 on average, 30.0 at random initialization
    assert "| simclr's network | 25.0 | 30.0 | +11.0 | +13.5 |" in markdown
    assert json.loads((tmp_path / "results.json").read_text())["random_init"]["simclr"]


def test_the_base_losses_of_the_last_epoch_are_paired(tmp_path):
    runs = fake_benchmark(tmp_path)
    for run in runs:
        co = run.method.startswith("co_")
        with open(run_dir(tmp_path, run) / "steps.csv", "w") as f:
            # X logs its loss with the online classifier's; CO-X logs its global loss apart
            f.write("step,epoch,loss,train_class_loss,train_global_loss,train_local_loss\n")
            f.write(f"1,0,9.0,1.0,{9.0 if co else ''},{9.0 if co else ''}\n")  # epoch 0: ignored
            for step in (2, 3):
                base = 3.0 + 0.1 * run.seed + (0.05 if co else 0.0) + (step - 2.5) / 10
                local = f"{base + 1:.4f}" if co else ""
                global_ = f"{base:.4f}" if co else ""
                total = base + 1.0 + (float(local) * 0.3 if co else 0.0)
                f.write(f"{step},1,{total:.4f},1.0,{global_},{local}\n")
    (row,) = write_report(runs, tmp_path)
    assert row["simclr:last_epoch_base_loss"]["mean"] == pytest.approx(3.05)
    assert row["co_simclr:last_epoch_base_loss"]["mean"] == pytest.approx(3.10)
    assert row["delta_ci:last_epoch_base_loss"]["mean"] == pytest.approx(0.05)
    assert row["co_simclr:last_epoch_local_loss"]["mean"] == pytest.approx(4.10)
    markdown = (tmp_path / "results.md").read_text()
    # both seeds differ by exactly 0.05: a zero-width interval
    assert (
        "| simclr vs co_simclr | config | 3.050 | 3.100 | +0.050 [+0.050, +0.050] (n=2) | 4.100 |"
        in markdown
    )
    assert "| simclr-s0 | 30.0 | 40.0 | 0.01 | 2.0 | 3.000 | - |" in markdown
    assert "| co_simclr-s1 | 32.0 | 44.0 | 0.01 | 2.0 | 3.150 | 4.150 |" in markdown
    with open(tmp_path / "results.csv") as f:
        assert float(next(csv.DictReader(f))["last_epoch_base_loss"]) == pytest.approx(3.0)


def test_a_benchmark_restored_from_its_published_results_reports_the_same(tmp_path):
    import shlex

    from solo_coplugin.bench.plan import restore_published_runs

    runs = fake_benchmark(tmp_path / "first")
    for run in runs:  # the command as the runner records it: the run's own arguments
        train_file = run_dir(tmp_path / "first", run) / "train.json"
        record = json.loads(train_file.read_text())
        record["command"] = shlex.join(["python", "main_pretrain.py", *run.args])
        train_file.write_text(json.dumps(record))
    first = write_report(runs, tmp_path / "first", title="t")
    published = tmp_path / "first" / "results.json"

    # the run folders are gone; another machine restores them from the published file
    lines = restore_published_runs(
        runs, tmp_path / "second", {"train": 100, "val": 50}, [published]
    )
    assert len(lines) == 4 and all(": restored from" in line for line in lines)
    assert write_report(runs, tmp_path / "second", title="t") == first  # losses included
    markdown = (tmp_path / "second" / "results.md").read_text()
    assert f"simclr-s0 ({published})" in markdown and "not in the training curves" in markdown
    restored = json.loads((tmp_path / "second" / "results.json").read_text())["runs"]
    assert {r["restored_from"] for r in restored} == {str(published)}


def test_the_random_init_floor_is_the_lowest_planned_seeds_when_its_runs_were_restored(
    tmp_path, monkeypatch
):
    """Seeds 0 and 1 restored (no checkpoints), seed 2 trained here: the floor is seed 0's
    network at initialization, built from seed 2's config, as it was published."""

    import argparse

    from solo_coplugin.bench import evaluate

    runs = [Run(f"simclr-s{seed}", "simclr", "simclr", seed, None, ()) for seed in (0, 1, 2)]
    (run_dir(tmp_path, runs[2]) / "checkpoints").mkdir(parents=True)
    calls = []

    def fake_evaluate(checkpoint, data, batch_size, cache, features, random_init, **kwargs):
        calls.append((checkpoint, random_init, kwargs["random_init_seed"]))
        return {"linear_top1": 13.0}

    monkeypatch.setattr(evaluate, "find_checkpoint", lambda folder: folder / "last.ckpt")
    monkeypatch.setattr(evaluate, "evaluate_checkpoint", fake_evaluate)
    args = argparse.Namespace(eval_batch_size=8)
    path = reference_record_path(tmp_path, "simclr")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"seed": 2}))  # recorded while only seed 2 was planned

    evaluate.evaluate_random_init(runs, tmp_path, {}, args)
    assert calls == [(run_dir(tmp_path, runs[2]) / "checkpoints" / "last.ckpt", True, 0)]
    assert json.loads(path.read_text())["seed"] == 0
    evaluate.evaluate_random_init(runs, tmp_path, {}, args)  # recorded: not evaluated again
    assert len(calls) == 1
