"""solo-co-bench and solo-co-eval end to end: solo-learn's main_pretrain.py trains a tiny X vs CO-X
benchmark on real CIFAR-10 images, then the evaluation, resume, analyses and the main_knn.py
equivalent run on its checkpoints (CPU)."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from solo_coplugin.bench import runner
from solo_coplugin.bench.plan import load_plan
from solo_coplugin.eval import __main__ as evaluation
from solo_coplugin.eval.knn import knn_top1

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def bench_args(out_dir, data):
    return (
        f"--data {data} --train-per-class 8 --val-per-class 3 --pairs simclr,co_simclr --epochs 1 "
        f"--seeds 0 --batch-size 8 --out {out_dir} --num-workers 0 "
        "--override ++limit_train_batches=2"
    ).split()


def bench(out_dir, data):
    # the command line, as a user runs it
    command = [sys.executable, "-m", "solo_coplugin.bench", *bench_args(out_dir, data)]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def tiny_bench(cifar10_subset, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("bench")
    output = bench(out_dir, cifar10_subset)
    return out_dir, cifar10_subset, output


def steps(out_dir, run):
    with open(out_dir / "runs" / run / "steps.csv") as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]


def test_runs_share_everything_but_the_method(tiny_bench):
    out_dir, _, _ = tiny_bench
    runs, data = load_plan(out_dir)
    assert [r.name for r in runs] == ["simclr-s0", "co_simclr-s0"]
    assert len(list(data["train"].rglob("*.jpg"))) == 80
    records = json.loads((out_dir / "results.json").read_text())["runs"]
    # apart from each run's own folder (checkpoints, logs), only the method (and name) differ
    commands = [
        [a for a in r["command"].split() if str(out_dir / "runs") not in a] for r in records
    ]
    assert [a for a in commands[0] if a not in commands[1]] == ["name=simclr-s0", "method=simclr"]
    assert [a for a in commands[1] if a not in commands[0]] == [
        "name=co_simclr-s0",
        "method=co_simclr",
    ]
    # same seed, data order, augmentations and initial weights: the first step's SimCLR loss is
    # the same in both runs (the CO run logs it as its global loss)
    x, co = steps(out_dir, "simclr-s0"), steps(out_dir, "co_simclr-s0")
    assert len(x) == len(co) == 2
    assert x[0]["loss"] - x[0]["train_class_loss"] == pytest.approx(
        co[0]["train_global_loss"], abs=1e-5
    )
    assert "train_local_loss" in co[0] and "train_local_loss" not in x[0]


def test_results_are_evaluated_at_the_training_resolution(tiny_bench):
    out_dir, _, _ = tiny_bench
    markdown = (out_dir / "results.md").read_text()
    assert "Resize(32) + CenterCrop(32)" in markdown and "not a result" in markdown
    for run in ("simclr-s0", "co_simclr-s0"):
        record = json.loads((out_dir / "runs" / run / "eval.json").read_text())
        assert record["crop_size"] == 32 and record["val_images"] == 30
        assert 0 <= record["linear_top1"] <= 100 and 0 <= record["knn_top1"] <= 100
    for png in ("accuracy.png", "curves.png"):
        assert (out_dir / png).stat().st_size > 0


def test_a_second_call_resumes_without_redoing_finished_work(tiny_bench, capsys):
    out_dir, data, _ = tiny_bench
    run = out_dir / "runs" / "co_simclr-s0"
    eval_time = (out_dir / "runs" / "simclr-s0" / "eval.json").stat().st_mtime
    (run / "train.json").unlink()  # as if stopped after its checkpoint
    (run / "eval.json").unlink()
    with open(run / "steps.csv", "a") as f:  # and after logging a step past it
        f.write("3,0,9.0,1.0\n")
    runner.main(bench_args(out_dir, data))  # in-process from here on: the imports are paid
    assert "2 runs, 1 already trained" in capsys.readouterr().out
    assert "++resume_from_checkpoint=" in (run / "train.log").read_text()
    assert [row["step"] for row in steps(out_dir, "co_simclr-s0")] == [1, 2]
    assert (out_dir / "runs" / "simclr-s0" / "eval.json").stat().st_mtime == eval_time
    assert (run / "eval.json").exists()


def test_robustness_analyses_of_the_benchmark(tiny_bench, capsys):
    out_dir, _, _ = tiny_bench
    evaluation.main(
        f"robustness --bench {out_dir} --corruption-images 4 --attack-images 2 --pgd-steps 2 --device cpu".split()
    )
    # it says which local representations it read: the runs' stage (here the pooled map)
    printed = capsys.readouterr().out
    for run in ("simclr-s0", "co_simclr-s0"):
        assert f"{run}: internal corruption and redundancy on layer4 (" in printed
    markdown = (out_dir / "robustness.md").read_text()
    for title in ("noise corruption", "internal corruption", "adversarial", "redundancy"):
        assert title in markdown
        assert "| simclr |" in markdown and "| co_simclr |" in markdown
    record = json.loads((out_dir / "runs" / "simclr-s0" / "robustness.json").read_text())
    assert record["local_stage"] == "layer4" and record["local_probe"] == "pooled features"
    clean = json.loads((out_dir / "runs" / "simclr-s0" / "eval.json").read_text())["linear_top1"]
    assert record["clean"] == pytest.approx(clean)  # the runner's probe, refitted identically
    assert record["internal_corruption"]["0.0"] == pytest.approx(clean)
    # one per analysis, and the paired differences (one seed: X and CO-X both have seed 0)
    assert len(list(out_dir.glob("robustness-*.png"))) == 5
    assert "## Paired differences: CO-X minus X" in markdown


def test_main_knn_equivalent_on_a_co_checkpoint_on_cpu(tiny_bench, capsys):
    out_dir, _, _ = tiny_bench
    _, data = load_plan(out_dir)
    run = out_dir / "runs" / "co_simclr-s0"
    checkpoint_dir = next((run / "checkpoints").rglob("args.json")).parent
    evaluation.main(
        f"knn --pretrained_checkpoint_dir {checkpoint_dir} --dataset custom --train_data_path "
        f"{data['train']} --val_data_path {data['val']} --device cpu --num_workers 0 "
        "--feature_type backbone projector".split()
    )
    stdout = capsys.readouterr().out
    assert "evaluation transform: Resize(32) + CenterCrop(32)" in stdout
    results = json.loads(stdout[stdout.index("[\n") :])
    assert [r["feature_type"] for r in results] == ["backbone", "projector"]
    # solo-learn's WeightedKNNClassifier and the runner's k-NN agree on the same features
    features = torch.load(run / "features.pt")
    ours = knn_top1(*features["train"], *features["val"])
    assert results[0]["acc1"] == pytest.approx(ours, abs=1e-4)


def test_main_umap_equivalent_on_a_co_checkpoint_on_cpu(tiny_bench, tmp_path):
    pytest.importorskip("umap", reason="solo-learn's umap extra (umap-learn) is not installed")
    pytest.importorskip("seaborn", reason="solo-learn's umap extra (seaborn) is not installed")
    out_dir, _, _ = tiny_bench
    _, data = load_plan(out_dir)
    checkpoint_dir = next((out_dir / "runs" / "co_simclr-s0" / "checkpoints").rglob("args.json"))
    evaluation.main(
        f"umap --pretrained_checkpoint_dir {checkpoint_dir.parent} --dataset custom "
        f"--train_data_path {data['train']} --val_data_path {data['val']} --device cpu "
        f"--num_workers 0 --out_dir {tmp_path}".split()
    )
    plots = sorted(p.name for p in tmp_path.glob("*.pdf"))
    assert plots == ["co_simclr-s0_train_umap.pdf", "co_simclr-s0_val_umap.pdf"]
