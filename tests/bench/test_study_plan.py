"""The evidence study's plan (benchmarks/study/run_study.py): the parts in the issue's order, the
runs they share, and portable published paths."""

import importlib.util
from pathlib import Path

from solo_coplugin.bench.runner import parse_args

STUDY = Path(__file__).resolve().parents[2] / "benchmarks" / "study" / "run_study.py"
spec = importlib.util.spec_from_file_location("run_study", STUDY)
run_study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_study)


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


def test_published_text_has_no_machine_paths():
    text = "cd /work/study/simclr && /usr/bin/python3 main_pretrain.py data=/data/c10/train"
    replacements = {"/work/study": "$STUDY", "/data/c10": "$DATA", "/usr/bin/python3": "python"}
    assert run_study.portable(text, replacements) == (
        "cd $STUDY/simclr && python main_pretrain.py data=$DATA/train"
    )


def test_the_main_pairs_get_the_robustness_suite(tmp_path):
    from solo_coplugin.eval.__main__ import parse_args as eval_args

    with_suite = [part for part, spec in run_study.PARTS.items() if spec.get("robustness")]
    assert with_suite == ["simclr", "byol"]  # item 1 of the study
    command = run_study.robustness_command("byol", tmp_path)
    assert command[:2] == ["solo-co-eval", "robustness"]
    args = eval_args(command[1:])
    assert args.bench == tmp_path / "byol" and str(args.device) == "cpu"
    assert (args.corruption_images, args.attack_images, args.pgd_steps) == (2000, 500, 10)
    assert "robustness.md" in run_study.PUBLISHED
