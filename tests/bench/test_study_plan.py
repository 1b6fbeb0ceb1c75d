"""The evidence study's plan (benchmarks/study/run_study.py): the parts in the issue's order, the
runs they share, and portable published paths."""

import importlib.util
import json
import shlex
from pathlib import Path

import pytest

from solo_coplugin.bench.runner import parse_args

STUDY = Path(__file__).resolve().parents[2] / "benchmarks" / "study" / "run_study.py"
spec = importlib.util.spec_from_file_location("run_study", STUDY)
run_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_study)


def write_results(root, part, runs):
    """Writes a part's ``results.json``; a run is (method, seed, crop_min_scale, linear top-1) and
    optionally its k-NN top-1 (else linear minus 3) and its last epoch's base loss (else none)."""

    (root / part).mkdir()
    records = [
        {
            "method": method,
            "seed": seed,
            "crop_min_scale": scale,
            "linear_top1": linear,
            "knn_top1": rest[0] if rest else linear - 3,
            "last_epoch_base_loss": rest[1] if len(rest) > 1 else None,
        }
        for method, seed, scale, linear, *rest in runs
    ]
    (root / part / "results.json").write_text(json.dumps({"runs": records}))


def test_parts_are_valid_bench_commands_in_the_issues_order(tmp_path):
    parts = list(run_study.PARTS)
    assert parts[:2] == ["simclr", "byol"]  # the first pair's seeds land first
    for part in parts:
        command = run_study.bench_command(part, tmp_path / "data", tmp_path / "work")
        assert command[0] == "solo-co-bench"
        args = parse_args(command[1:])  # the runner accepts every part's arguments
        assert args.out == str(tmp_path / "work" / part) and args.epochs == 12
        assert args.precision == "bf16-mixed" and args.jobs == 2
        assert "++backbone.kwargs.width=16" in args.override
        for other in args.reuse_from:  # parts reuse runs of parts that ran before them
            assert parts.index(Path(other).name) < parts.index(part)
    control = parse_args(
        run_study.bench_command("simclr-multicrop-control", tmp_path, tmp_path)[1:]
    )
    assert control.base_override == ["augmentations=symmetric_multicrop.yaml"]
    assert not control.co_override  # CO-X is part simclr's, reused


def test_the_rf_part_changes_only_the_backbone(tmp_path):
    main = parse_args(run_study.bench_command("simclr", tmp_path, tmp_path)[1:])
    rf = parse_args(run_study.bench_command("simclr-rf17", tmp_path, tmp_path)[1:])
    assert (main.backbone, rf.backbone) == ("resnet18_cifar", "rf_resnet18")
    assert rf.override == main.override + run_study.RF17_OVERRIDES  # width 16 kept
    assert "++backbone.kwargs.kernel3_blocks=[2,1,0,0]" in rf.override
    for key in ("epochs", "batch_size", "precision", "pairs", "crop_min_scales"):
        assert getattr(rf, key) == getattr(main, key)


def test_co_byol_gets_quarter_width_local_heads_and_byol_is_unchanged(tmp_path):
    byol = parse_args(run_study.bench_command("byol", tmp_path, tmp_path)[1:])
    assert byol.co_override == ["method_kwargs.local_hidden_dim=1024"]
    assert not byol.base_override and byol.override == ["++backbone.kwargs.width=16"]


def test_tiny_imagenet_parts_are_valid_bench_commands_at_64_px(tmp_path):
    tiny = run_study.TINY
    parts = list(tiny.parts)
    assert parts[0] == "simclr-rf31"  # the calibration and item 1's SimCLR seeds land first
    for part in parts:
        args = parse_args(run_study.bench_command(part, tmp_path, tmp_path / "work", tiny)[1:])
        assert args.config_path == "pkg://solo_coplugin.configs.tiny-imagenet"
        assert (args.backbone, args.crop_size, args.batch_size) == ("rf_resnet18", 64, 128)
        assert args.out == str(tmp_path / "work" / part) and args.jobs == 2
        assert args.override[0] == "++backbone.kwargs.width=16"
        for other in args.reuse_from:
            assert parts.index(Path(other).name) < parts.index(part)


def test_the_premise_contrast_changes_only_the_kernels_and_the_loss_form_only_co_x(tmp_path):
    tiny = run_study.TINY
    rf31, unbounded, additive = (
        parse_args(run_study.bench_command(part, tmp_path, tmp_path, tiny)[1:])
        for part in ("simclr-rf31", "simclr-unbounded", "simclr-rf31-additive")
    )
    assert unbounded.override == rf31.override + ["++backbone.kwargs.preset=tiny_full"]
    assert additive.co_override == ["method_kwargs.local_loss_form=additive"]
    assert additive.reuse_from == [str(tmp_path / "simclr-rf31")]  # its SimCLR runs are reused
    for args in (unbounded, additive):
        for key in ("epochs", "batch_size", "precision", "pairs", "seeds", "base_override"):
            assert getattr(args, key) == getattr(rf31, key), key
    cifar_additive = parse_args(run_study.bench_command("simclr-additive", tmp_path, tmp_path)[1:])
    assert cifar_additive.co_override == additive.co_override
    assert cifar_additive.seeds == [0, 1, 2] and cifar_additive.epochs == 12
    # the CIFAR runs it pairs with are published, not on the machine: only CO-SimCLR trains, and a
    # run of part 'simclr' trained again checks the pairing
    assert cifar_additive.co_only and not additive.co_only and not cifar_additive.reuse_from
    reproduce = parse_args(run_study.bench_command("simclr-reproduce", tmp_path, tmp_path)[1:])
    assert reproduce.co_only and reproduce.seeds == [0] and not reproduce.co_override
    simclr = parse_args(run_study.bench_command("simclr", tmp_path, tmp_path)[1:])
    for key in ("override", "epochs", "batch_size", "precision", "pairs", "backbone"):
        assert getattr(reproduce, key) == getattr(simclr, key) == getattr(cifar_additive, key), key


def test_the_premise_is_the_gap_on_rf31_minus_the_gap_on_unbounded_rf(tmp_path):
    write_results(
        tmp_path,
        "simclr-rf31",
        [("simclr", 0, None, 20.0), ("co_simclr", 0, None, 21.0)]
        + [("simclr", 1, None, 22.0), ("co_simclr", 1, None, 22.5)],
    )
    write_results(
        tmp_path,
        "simclr-unbounded",
        [("simclr", 0, None, 24.0), ("co_simclr", 0, None, 23.0)]
        + [("simclr", 1, None, 25.0), ("co_simclr", 1, None, 25.0)],
    )
    rows = {r["label"]: r for r in run_study.write_summary(tmp_path, run_study.TINY)}
    premise = rows["(CO-SimCLR - SimCLR) on RF 31 - on unbounded RF"]
    assert premise["linear_top1"]["deltas"] == {0: 2.0, 1: 0.5}  # +1 - (-1), +0.5 - 0
    assert rows["CO-SimCLR - SimCLR"]["linear_top1"]["mean"] == 0.75
    markdown = (tmp_path / "summary.md").read_text()
    assert "2,500 Tiny-ImageNet validation images (the seed-0 subset of 50 classes)" in markdown
    assert "benchmarks/study/tiny-imagenet.md" in markdown


def test_published_text_has_no_machine_paths():
    text = "cd /work/study/simclr && /usr/bin/python3 main_pretrain.py data=/data/c10/train"
    replacements = {"/work/study": "$STUDY", "/data/c10": "$DATA", "/usr/bin/python3": "python"}
    assert run_study.portable(text, replacements) == (
        "cd $STUDY/simclr && python main_pretrain.py data=$DATA/train"
    )


def test_the_main_pairs_get_the_robustness_suite(tmp_path):
    from solo_coplugin.eval.__main__ import parse_args as eval_args

    with_suite = [part for part, spec in run_study.PARTS.items() if spec.get("robustness")]
    assert with_suite == ["simclr", "byol", "simclr-rf17"]  # item 1, and the RF pair (ours, last)
    command = run_study.robustness_command("byol", tmp_path)
    assert command[:2] == ["solo-co-eval", "robustness"]
    args = eval_args(command[1:])
    assert args.bench == tmp_path / "byol" and str(args.device) == "cpu"
    assert (args.corruption_images, args.attack_images, args.pgd_steps) == (2000, 500, 10)
    assert "robustness.md" in run_study.PUBLISHED


def test_every_comparison_reads_runs_that_its_parts_train(tmp_path):
    def single_arms(arm):  # a contrast is a pair of arms
        return (
            [one for pair in arm for one in single_arms(pair)]
            if isinstance(arm[0], tuple)
            else [arm]
        )

    for study in run_study.STUDIES.values():
        for question, label, *arms in study.comparisons:
            for part, method, scale in [one for arm in arms for one in single_arms(arm)]:
                args = parse_args(run_study.bench_command(part, tmp_path, tmp_path, study)[1:])
                assert method in ",".join(args.pairs).split(","), (label, part, method)
                scales = [float(s) for s in args.crop_min_scales or []] or [None]
                assert scale in scales, (label, part, scale)
        questions = [q for q, *_ in study.comparisons]
        assert questions == sorted(questions), study.name


def test_summary_pairs_seeds_across_parts(tmp_path):
    write_results(
        tmp_path,
        "simclr",
        [
            ("simclr", 0, None, 50.0, 40.0),
            ("co_simclr", 0, None, 51.0, 41.0),
            ("simclr", 1, None, 52.0, 42.0),
            ("co_simclr", 1, None, 55.0, 41.0),
            ("simclr", 2, None, 51.0, 40.0),  # its CO-X has not run: seed 2 is left out
        ],
    )
    write_results(
        tmp_path,
        "simclr-slim-heads",
        [("co_simclr", 0, None, 50.0, 40.0), ("co_simclr", 1, None, 56.0, 40.0)],
    )
    rows = {r["label"]: r for r in run_study.write_summary(tmp_path)}
    assert set(rows) == {"CO-SimCLR - SimCLR", "CO-SimCLR slim heads (512) - default heads"}
    main = rows["CO-SimCLR - SimCLR"]
    assert main["seeds"] == [0, 1] and main["linear_top1"]["mean"] == 2.0  # (1 + 3) / 2
    assert main["knn_top1"]["deltas"] == {0: 1.0, 1: -1.0}
    assert main["a:linear_top1"] == 51.0  # seeds 0 and 1 only
    slim = rows["CO-SimCLR slim heads (512) - default heads"]
    assert slim["linear_top1"]["deltas"] == {0: -1.0, 1: 1.0}  # against CO-SimCLR, seed by seed
    markdown = (tmp_path / "summary.md").read_text()
    assert "| 1 | CO-SimCLR - SimCLR | +2.0 [-10.7, +14.7] (n=2) |" in markdown
    assert (tmp_path / "summary.png").stat().st_size > 0


def test_summary_pairs_the_base_loss_where_both_arms_logged_it(tmp_path):
    write_results(
        tmp_path,
        "simclr",
        [("simclr", s, None, 57.0, 54.0, 3.4 + s / 10) for s in (0, 1)]
        + [("co_simclr", s, None, 56.0, 53.0, 3.5) for s in (0, 1)],
    )
    # seed 1's base loss was not recorded (a record restored from before it was logged)
    write_results(
        tmp_path,
        "simclr-additive",
        [("co_simclr", 0, None, 56.0, 52.0, 3.6), ("co_simclr", 1, None, 56.0, 52.0)],
    )
    rows = {r["label"]: r for r in run_study.write_summary(tmp_path)}
    main = rows["CO-SimCLR - SimCLR"]["last_epoch_base_loss"]
    assert main["deltas"] == pytest.approx({0: 0.1, 1: 0.0})
    assert "last_epoch_base_loss" not in rows["CO-SimCLR additive - convex (local_loss_form)"]
    markdown = (tmp_path / "summary.md").read_text()
    assert "| 1 | CO-SimCLR - SimCLR | +0.050 [-0.585, +0.685] (n=2) | +0.100, +0.000 |" in (
        markdown
    )
    assert "additive - convex (local_loss_form) | +" not in markdown.split("own loss")[1]


def test_summary_lists_the_ablations_as_settings_on_the_ablation_seeds(tmp_path):
    write_results(
        tmp_path,
        "simclr",
        [("simclr", s, None, 57.0 + s) for s in (0, 1, 2)]  # seed 2 is not an ablation seed
        + [("co_simclr", s, None, 56.0 + s) for s in (0, 1, 2)],
    )
    # seed 1 has not run
    write_results(tmp_path, "simclr-local-weight-0.1", [("co_simclr", 0, None, 56.5)])
    write_results(
        tmp_path, "simclr-crop-scale", [("co_simclr", 1, 0.5, 50.0), ("simclr", 1, 0.3, 52.0)]
    )
    run_study.write_summary(tmp_path)
    settings = json.loads((tmp_path / "summary.json").read_text())["settings"]
    table = {(r["knob"], r["value"], r["method"]): r["linear_top1"] for r in settings}
    assert table[("local_weight", 0.0, "SimCLR")] == {"0": 57.0, "1": 58.0}  # JSON keys
    assert table[("local_weight", 0.1, "CO-SimCLR")] == {"0": 56.5}
    assert table[("local_weight", 0.3, "CO-SimCLR")] == {"0": 56.0, "1": 57.0}
    assert table[("crop_min_scale", 0.5, "CO-SimCLR")] == {"1": 50.0}
    assert table[("crop_min_scale", 0.3, "SimCLR")] == {"1": 52.0}
    assert ("crop_min_scale", 0.3, "CO-SimCLR") not in table  # nothing ran there
    assert ("local_weight", 0.5, "CO-SimCLR") not in table
    markdown = (tmp_path / "summary.md").read_text()
    assert "| `local_weight` | 0.1 | CO-SimCLR | 56.5 (56.5) | 53.5 (53.5) | 0 |" in markdown
    assert "| `crop_min_scale` | 0.08 | SimCLR | 57.5 (57.0, 58.0) |" in markdown
    assert (tmp_path / "sweeps.png").stat().st_size > 0


def test_the_large_crop_claim_is_the_change_of_the_gap_seed_by_seed(tmp_path):
    # gaps at 0.08: -1 (seed 0), -2 (seed 1); at 0.5: +1 and -1, so the gap grows by 2 and 1
    write_results(
        tmp_path,
        "simclr",
        [("simclr", 0, None, 57.0), ("co_simclr", 0, None, 56.0)]
        + [("simclr", 1, None, 58.0), ("co_simclr", 1, None, 56.0)],
    )
    write_results(
        tmp_path,
        "simclr-crop-scale",
        [("simclr", 0, 0.5, 50.0), ("co_simclr", 0, 0.5, 51.0)]
        + [("simclr", 1, 0.5, 52.0), ("co_simclr", 1, 0.5, 51.0)]
        + [("simclr", 1, 0.3, 55.0)],  # no CO-SimCLR at 0.3: no gap there
    )
    rows = {r["label"]: r for r in run_study.write_summary(tmp_path)}
    change = rows["(CO-SimCLR - SimCLR) at crop_min_scale 0.5 - at 0.08"]
    assert change["linear_top1"]["deltas"] == {0: 2.0, 1: 1.0}
    assert change["a:linear_top1"] == -1.5 and change["b:linear_top1"] == 0.0
    assert "(CO-SimCLR - SimCLR) at crop_min_scale 0.3 - at 0.08" not in rows
    markdown = (tmp_path / "summary.md").read_text()
    assert (
        "- at 0.08 | +1.5 [-4.9, +7.9] (n=2) | +1.5 [-4.9, +7.9] (n=2) | -1.5 | +0.0 | 0, 1 |"
        in (markdown)
    )


def test_the_study_refuses_data_with_another_number_of_classes(tmp_path, capsys):
    for wnid in ("n01443537", "n01644900"):
        (tmp_path / "tin" / "train" / wnid).mkdir(parents=True)
    assert run_study.data_mismatch(tmp_path / "tin", run_study.CIFAR) is not None
    with pytest.raises(SystemExit) as stop:
        run_study.main(["--study", "tiny-imagenet", "--data", str(tmp_path / "tin"), "--work", "w"])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert (
        "train/ has 2 classes, the tiny-imagenet study's protocol 50. Fix: --data must be " in error
    )
    assert "--standard-200 --classes 50 --seed 0" in error
    for wnid in range(48):
        (tmp_path / "tin" / "train" / f"n{wnid:08d}").mkdir()
    assert run_study.data_mismatch(tmp_path / "tin", run_study.TINY) is None


def test_jobs_sets_how_many_runs_train_at_once(tmp_path, capsys):
    """--jobs 1 leaves a core to a second study; its runs are the same (one thread each)."""

    run_study.main(["--data", str(tmp_path), "--work", "w", "--parts", "simclr-additive",
                    "--jobs", "1", "--dry-run"])  # fmt: skip
    command = [line for line in capsys.readouterr().out.splitlines() if "solo-co-bench" in line]
    one = parse_args(shlex.split(command[0])[1:])
    two = parse_args(run_study.bench_command("simclr-additive", tmp_path, Path("w").resolve())[1:])
    assert (one.jobs, two.jobs) == (1, 2)
    assert {**vars(one), "jobs": 2} == vars(two)
    with pytest.raises(SystemExit) as stop:
        run_study.main(["--data", str(tmp_path), "--work", "w", "--jobs", "0", "--dry-run"])
    assert stop.value.code == 2 and "--jobs 0: at least 1" in capsys.readouterr().err


def test_publish_only_writes_a_parts_report_again_with_this_checkouts_code(tmp_path):
    """A study started before a report change publishes the new report (runs table included)."""

    import dataclasses

    from test_report import fake_benchmark  # tests/bench is on sys.path (prepend import mode)

    bench = tmp_path / "simclr-rf31"
    runs = fake_benchmark(bench)
    plan = {"runs": [dataclasses.asdict(run) for run in runs], "data": {}}
    (bench / "plan.json").write_text(json.dumps(plan))
    (bench / "results.md").write_text("a report written by an older runner\n")
    run_study.rewrite_report(bench)
    report = (bench / "results.md").read_text()
    assert "older runner" not in report and "| simclr-s0 | 30.0 | 40.0 | 0.01 | 2.0 |" in report
    run_study.rewrite_report(tmp_path / "not-started")  # no plan.json yet: nothing to write


def test_the_loss_form_on_rf31_runs_on_the_pair_item_1_finds_closest(tmp_path):
    tiny = run_study.TINY
    simclr = [("simclr", s, None, 30.0) for s in range(3)]
    partial = tmp_path / "partial"
    partial.mkdir()
    write_results(partial, "simclr-rf31", simclr + [("co_simclr", 0, None, 32.0)])
    part, why = run_study.favoured_pair(tiny, partial)
    assert part is None and "simclr-rf31 has seeds [0] of [0, 1, 2]" in why
    # CO-SimCLR +2 on average, CO-BYOL -1: BYOL's pair is closer, though CO-SimCLR is ahead
    write_results(
        tmp_path, "simclr-rf31", simclr + [("co_simclr", s, None, 32.0) for s in range(3)]
    )
    byol = [("byol", s, None, 40.0 + s) for s in range(3)]
    write_results(tmp_path, "byol-rf31", byol + [("co_byol", s, None, 39.0 + s) for s in range(3)])
    part, why = run_study.favoured_pair(tiny, tmp_path)
    assert part == "byol-rf31" and "simclr-rf31 +2.00, byol-rf31 -1.00" in why
    additive = {p: s for p, s in tiny.parts.items() if "if_favoured" in s}
    assert {s["if_favoured"] for s in additive.values()} == {"simclr-rf31", "byol-rf31"}
    byol_additive = parse_args(
        run_study.bench_command("byol-rf31-additive", tmp_path, tmp_path, tiny)[1:]
    )
    byol_convex = parse_args(run_study.bench_command("byol-rf31", tmp_path, tmp_path, tiny)[1:])
    assert byol_additive.co_override == byol_convex.co_override + [
        "method_kwargs.local_loss_form=additive"
    ]
    assert byol_additive.reuse_from == [str(tmp_path / "byol-rf31")]  # BYOL is reused
    for key in ("override", "base_override", "pairs", "seeds", "epochs"):
        assert getattr(byol_additive, key) == getattr(byol_convex, key), key


def test_a_part_restores_its_published_runs_instead_of_training_them_again(tmp_path):
    """Another machine (or a wiped disk) resumes a part from its published results.json."""

    import dataclasses

    tiny = dataclasses.replace(run_study.STUDIES["tiny-imagenet"], results=tmp_path / "results")
    (tmp_path / "results").mkdir()
    write_results(tmp_path / "results", "byol-rf31", [("byol", 0, None, 24.8)])
    with_results = parse_args(run_study.bench_command("byol-rf31", tmp_path, tmp_path, tiny)[1:])
    assert with_results.restore_from == [str(tmp_path / "results" / "byol-rf31" / "results.json")]
    unpublished = parse_args(run_study.bench_command("simclr-rf31", tmp_path, tmp_path, tiny)[1:])
    assert unpublished.restore_from == []
    # the loss form reuses the pair's X runs: restored from that part's published results
    additive = run_study.bench_command("byol-rf31-additive", tmp_path, tmp_path, tiny)
    assert parse_args(additive[1:]).restore_from == with_results.restore_from
    # the study's own published files are named from the repository's root, where it runs
    real = run_study.bench_command(
        "byol-rf31", tmp_path, tmp_path, run_study.STUDIES["tiny-imagenet"]
    )
    assert parse_args(real[1:]).restore_from == [
        "benchmarks/results/study-tiny-imagenet/byol-rf31/results.json"
    ]
    # published records name that file relative to the repository, not with this machine's path
    published = f"{run_study.REPO}/benchmarks/results/study/simclr/results.json"
    replacements = {f"{run_study.REPO}/": ""}
    assert (
        run_study.portable(published, replacements)
        == "benchmarks/results/study/simclr/results.json"
    )
