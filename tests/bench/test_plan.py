import pytest

from solo_coplugin.bench.plan import (
    RESTORED_RECORD,
    TRAIN_RECORD,
    BenchConfigError,
    build_plan,
    comparable_args,
    differing_args,
    find_reusable_run,
    is_evaluated,
    is_trained,
    launch_args,
    latest_checkpoint,
    parse_pairs,
    ready_to_evaluate,
    restore_published_runs,
    run_dir,
)

CIFAR = "pkg://solo_coplugin.configs.cifar"
COMMON = ["data.dataset=custom", "optimizer.batch_size=64", "max_epochs=4"]


def test_x_and_co_x_differ_only_in_the_method():
    runs = build_plan(parse_pairs(["simclr,co_simclr", "byol,co_byol"]), [0, 1], CIFAR, COMMON)
    assert [r.name for r in runs] == [
        "simclr-s0",
        "co_simclr-s0",
        "simclr-s1",
        "co_simclr-s1",
        "byol-s0",
        "co_byol-s0",
        "byol-s1",
        "co_byol-s1",
    ]
    for x, co in zip(runs[::2], runs[1::2]):
        assert (x.base, x.seed) == (co.base, co.seed) and co.method == f"co_{x.method}"
        assert differing_args(x, co) == {
            x.name: [f"name={x.name}", f"method={x.method}"],
            co.name: [f"name={co.name}", f"method={co.method}"],
        }
        assert f"++seed={x.seed}" in x.args and "--config-name" in x.args
        assert x.args[x.args.index("--config-name") + 1] == f"co_{x.base}.yaml"


def test_co_overrides_and_crop_scale_sweep():
    runs = build_plan(
        [("byol", "co_byol")],
        [0],
        CIFAR,
        COMMON,
        crop_min_scales=[0.08, 0.5],
        co_overrides=["method_kwargs.local_weight=0.5"],
    )
    assert [r.name for r in runs] == [
        "byol-cms0.08-s0",
        "co_byol-cms0.08-s0",
        "byol-cms0.5-s0",
        "co_byol-cms0.5-s0",
    ]
    x, co = runs[2], runs[3]
    # BYOL's asymmetric augmentations have two pipelines: both get the scale
    for run in (x, co):
        assert "augmentations.0.rrc.crop_min_scale=0.5" in run.args
        assert "augmentations.1.rrc.crop_min_scale=0.5" in run.args
    assert differing_args(x, co)[co.name] == [
        f"name={co.name}",
        "method=co_byol",
        "method_kwargs.local_weight=0.5",
    ]
    assert x.setting == co.setting == "cms0.5-s0"


@pytest.mark.parametrize(
    "pair", ["simclr", "simclr,byol", "co_simclr,simclr", "simclr,co_simclr,x"]
)
def test_bad_pairs_name_the_option(pair):
    with pytest.raises(BenchConfigError, match="--pairs"):
        parse_pairs([pair])


def test_a_pair_without_a_config_says_where_configs_are(tmp_path):
    with pytest.raises(BenchConfigError, match="No config co_swav.yaml"):
        build_plan([("swav", "co_swav")], [0], CIFAR, COMMON)
    with pytest.raises(BenchConfigError, match="--config-path"):
        build_plan([("simclr", "co_simclr")], [0], str(tmp_path / "missing"), COMMON)


def test_latest_checkpoint_is_the_newest(tmp_path):
    import os

    assert latest_checkpoint(tmp_path) is None
    old, new = tmp_path / "a" / "ep=0.ckpt", tmp_path / "a" / "ep=1.ckpt"
    old.parent.mkdir()
    old.write_text("0")
    new.write_text("1")
    os.utime(old, (1, 1))
    assert latest_checkpoint(tmp_path) == new


def test_a_pair_is_evaluated_as_soon_as_both_runs_are_trained(tmp_path):
    runs = build_plan(parse_pairs(["byol,co_byol"]), [0, 1], CIFAR, COMMON)
    byol0, co_byol0, byol1, _ = runs

    def record(run, name):
        run_dir(tmp_path, run).mkdir(parents=True, exist_ok=True)
        (run_dir(tmp_path, run) / name).write_text("{}")

    assert ready_to_evaluate(runs, tmp_path) == []
    record(byol0, "train.json")
    assert ready_to_evaluate(runs, tmp_path) == []  # CO-BYOL of seed 0 still training
    record(co_byol0, "train.json")
    record(byol1, "train.json")  # seed 1 half done: not yet
    assert ready_to_evaluate(runs, tmp_path) == [byol0, co_byol0]
    record(byol0, "eval.json")
    assert ready_to_evaluate(runs, tmp_path) == [co_byol0]


def test_base_overrides_change_the_x_runs_only():
    runs = build_plan([("simclr", "co_simclr")], [0], CIFAR, COMMON, base_overrides=["++x_only=1"])
    x, co = runs
    assert differing_args(x, co)[x.name] == [f"name={x.name}", "method=simclr", "++x_only=1"]


def write_plan(out_dir, runs, data):
    import dataclasses
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    plan = {"runs": [dataclasses.asdict(r) for r in runs], "data": data}
    (out_dir / "plan.json").write_text(json.dumps(plan))


def test_an_identical_trained_run_of_another_benchmark_is_reused(tmp_path):
    data = {"train": str(tmp_path / "train"), "val": str(tmp_path / "val")}
    main = build_plan([("simclr", "co_simclr")], [0], CIFAR, COMMON)
    write_plan(tmp_path / "main", main, data)
    (run_dir(tmp_path / "main", main[0]) / "checkpoints").mkdir(parents=True)
    sweep = build_plan(
        [("simclr", "co_simclr")], [0], CIFAR, COMMON, co_overrides=["local_weight=0.1"]
    )
    paths = {k: tmp_path / v for k, v in (("train", "train"), ("val", "val"))}
    others = [tmp_path / "main", tmp_path / "missing"]
    assert find_reusable_run(sweep[0], paths, others) is None  # not trained yet
    (run_dir(tmp_path / "main", main[0]) / TRAIN_RECORD).write_text("{}")
    assert find_reusable_run(sweep[0], paths, others) == run_dir(tmp_path / "main", main[0])
    assert find_reusable_run(sweep[1], paths, others) is None  # CO-X differs: local_weight
    other_data = {**paths, "val": tmp_path / "other-val"}
    assert find_reusable_run(sweep[0], other_data, others) is None  # evaluated elsewhere


def published_results(path, runs, images=(100, 20), changes=None):
    """A results.json as a study publishes it: paths as variables, a resumed run's checkpoint."""

    import json
    import shlex

    records = []
    for run in runs:
        args = [
            a.replace("/machine/data", "$DATA").replace("/machine/study", "$STUDY")
            for a in run.args
        ]
        args += [
            f"checkpoint.dir=$STUDY/{run.name}/checkpoints",
            f"++default_root_dir=$STUDY/{run.name}",
        ]
        args += [f"++resume_from_checkpoint='$STUDY/{run.name}/ep=3.ckpt'"] if run.seed else []
        record = {
            "run": run.name,
            "method": run.method,
            "base": run.base,
            "seed": run.seed,
            "crop_min_scale": run.crop_min_scale,
            "setting": run.setting,
            "command": shlex.join(["python", "$SOLO_LEARN/main_pretrain.py", *args]),
            "train_images": images[0],
            "val_images": images[1],
            "linear_top1": 40.0 + run.seed,
        }
        records.append({**record, **(changes or {}).get(run.name, {})})
    path.write_text(json.dumps({"summary": [], "runs": records}))
    return path


RESTORABLE = COMMON + ["data.train_path=/machine/data/train", "checkpoint.dir=/machine/study/ck"]


def test_published_runs_are_restored_instead_of_trained_again(tmp_path):
    planned = build_plan([("byol", "co_byol")], [0, 1, 2], CIFAR, RESTORABLE)
    # published elsewhere: seeds 0 and 1, with that machine's paths as variables
    published = published_results(tmp_path / "results.json", planned[:4])
    images = {"train": 100, "val": 20}
    messages = restore_published_runs(planned, tmp_path / "bench", images, [published])

    assert [m.split(":")[0] for m in messages] == ["byol-s0", "co_byol-s0", "byol-s1", "co_byol-s1"]
    for run in planned[:4]:
        directory = run_dir(tmp_path / "bench", run)
        assert is_trained(directory) and is_evaluated(directory)
        assert [p.name for p in directory.iterdir()] == [RESTORED_RECORD]
    assert not run_dir(tmp_path / "bench", planned[4]).exists()  # seed 2 trains
    assert ready_to_evaluate(planned, tmp_path / "bench") == []
    # a second call restores nothing more and leaves the folders alone
    assert restore_published_runs(planned, tmp_path / "bench", images, [published]) == []


def test_a_published_run_with_other_settings_or_data_is_not_restored(tmp_path):
    planned = build_plan([("byol", "co_byol")], [0], CIFAR, RESTORABLE)
    other = build_plan([("byol", "co_byol")], [0], CIFAR, RESTORABLE + ["max_epochs=8"])
    mixed = [other[0], planned[1]]  # X published with more epochs, CO-X on other images
    published = published_results(
        tmp_path / "results.json", mixed, changes={"co_byol-s0": {"train_images": 50}}
    )
    messages = restore_published_runs(
        planned, tmp_path / "bench", {"train": 100, "val": 20}, [published]
    )
    assert "byol-s0: not restored" in messages[0] and "Hydra arguments differ" in messages[0]
    assert "co_byol-s0: not restored" in messages[1] and "train_images differ" in messages[1]
    assert not (tmp_path / "bench").exists()


def test_a_run_is_restored_from_whichever_published_file_matches(tmp_path):
    """A loss-form part: its X runs are another part's, published; its CO-X runs are new."""

    convex = build_plan([("simclr", "co_simclr")], [0], CIFAR, RESTORABLE)
    additive = build_plan(
        [("simclr", "co_simclr")], [0], CIFAR, RESTORABLE, co_overrides=["local_loss_form=additive"]
    )
    own = published_results(tmp_path / "own.json", [])  # nothing published by this part yet
    other = published_results(tmp_path / "convex.json", convex)
    images = {"train": 100, "val": 20}
    messages = restore_published_runs(additive, tmp_path / "bench", images, [own, other])
    assert messages[0] == f"simclr-s0: restored from {other} (published record, no checkpoint)"
    assert messages[1].startswith(f"co_simclr-s0: not restored from {other} (Hydra arguments")
    assert is_trained(run_dir(tmp_path / "bench", additive[0]))
    assert not run_dir(tmp_path / "bench", additive[1]).exists()


def test_restoring_from_a_missing_file_names_it(tmp_path):
    planned = build_plan([("byol", "co_byol")], [0], CIFAR, RESTORABLE)
    with pytest.raises(BenchConfigError, match="--restore-from .*nowhere.json"):
        restore_published_runs(
            planned, tmp_path, {"train": 1, "val": 1}, [tmp_path / "nowhere.json"]
        )


def test_what_the_runner_adds_at_launch_does_not_count_as_a_different_run(tmp_path):
    (run,) = build_plan([("byol", "co_byol")], [0], CIFAR, RESTORABLE)[:1]
    launched = launch_args(run, tmp_path / "runs" / run.name, tmp_path / "ep=3.ckpt")
    assert len(launched) == len(run.args) + 3
    assert comparable_args(launched) == comparable_args(run.args)
    assert comparable_args(run.args) != comparable_args([*run.args, "max_epochs=8"])
