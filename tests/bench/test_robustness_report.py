"""The robustness report's paired CO-X minus X summaries, on hand-made records."""

import json

import pytest

from solo_coplugin.bench.plan import Run, run_dir
from solo_coplugin.bench.robustness import RECORD, write_robustness_report

CORRUPTIONS = ("gaussian_noise", "contrast")


def record(method, seed, shift):
    """A robustness.json whose every accuracy is the base value plus ``shift``; CO-X's corrupted
    accuracies fall less (``shift`` grows with severity for it)."""

    co = method.startswith("co_")
    return {
        "run": f"{method}-s{seed}",
        "method": method,
        "base": "simclr",
        "seed": seed,
        "crop_min_scale": None,
        "clean": 60.0 + shift,
        "transform": "Resize(32)",
        "device": "cpu",
        "sizes": {
            "images": 100,
            "corruption_images": 50,
            "attack_images": 10,
            "feature_map": [16, 4, 4],
            "pgd_steps": 2,
        },
        "corruption": {
            name: {str(s): 60.0 + shift - s * (4.0 if co else 5.0) for s in range(6)}
            for name in CORRUPTIONS
        },
        "internal_corruption": {str(p / 10): 60.0 + shift - 10 * p for p in range(10)},
        "pgd": {str(e / 255): 60.0 + shift - 10 * e for e in (0.0, 0.5, 1.0, 2.0, 4.0)},
        "redundancy": {
            "accuracy_from_k": {"1": 20.0 + shift, "4": 40.0 + shift, "16": 60.0 + shift},
            "local_local_cosine": 0.5 + shift / 100,
            "local_global_cosine": 0.7,
        },
    }


def fake_bench(tmp_path, shifts):
    runs = []
    for (method, seed), shift in shifts.items():
        run = Run(f"{method}-s{seed}", method, "simclr", seed, None, ())
        runs.append(run)
        run_dir(tmp_path, run).mkdir(parents=True)
        (run_dir(tmp_path, run) / RECORD).write_text(json.dumps(record(method, seed, shift)))
    return runs


def test_paired_differences_lead_the_robustness_report(tmp_path):
    # CO-X is 1 and 3 points above X on seeds 0 and 1: every accuracy difference is +2 [t CI]
    shifts = {("simclr", 0): 0.0, ("co_simclr", 0): 1.0, ("simclr", 1): 2.0, ("co_simclr", 1): 5.0}
    write_robustness_report(fake_bench(tmp_path, shifts), tmp_path)
    paired = json.loads((tmp_path / "robustness.json").read_text())["paired"]
    (row,) = paired
    assert row["seeds"] == [0, 1]
    assert row["internal"]["deltas"] == {"0": pytest.approx(1.0), "1": pytest.approx(3.0)}
    assert row["internal"]["mean"] == pytest.approx(2.0)
    # t(0.975, 1) = 12.706: half-width 12.706 * stdev(1, 3) / sqrt(2) = 12.706
    assert row["internal"]["low"] == pytest.approx(2.0 - 12.706, abs=1e-3)
    assert row["internal_drop"]["mean"] == pytest.approx(0.0)  # same curve shape
    assert row["pgd"]["mean"] == pytest.approx(2.0)
    assert row["one_position"]["mean"] == pytest.approx(2.0)
    assert row["local_local_cosine"]["mean"] == pytest.approx(2.0)  # x 100
    # CO-X falls 1 point less per severity: its drop is lower by the mean severity, 3
    assert row["corruption_drop"]["mean"] == pytest.approx(-3.0)
    assert row["corrupted"]["mean"] == pytest.approx(5.0)

    markdown = (tmp_path / "robustness.md").read_text()
    assert markdown.index("## Paired differences") < markdown.index("## noise corruption")
    assert "| co_simclr - simclr |" in markdown
    assert (
        "| internal corruption: accuracy, mean over p = 0.1-0.9 positions dropped "
        "| +2.0 [-10.7, +14.7] (n=2) |"
    ) in markdown
    assert (tmp_path / "robustness-differences.png").stat().st_size > 0


def test_no_paired_section_without_a_complete_pair(tmp_path):
    write_robustness_report(
        fake_bench(tmp_path, {("simclr", 0): 0.0, ("co_simclr", 1): 1.0}), tmp_path
    )
    assert "Paired differences" not in (tmp_path / "robustness.md").read_text()
    assert json.loads((tmp_path / "robustness.json").read_text())["paired"] == []
    assert not (tmp_path / "robustness-differences.png").exists()


def test_restored_runs_are_named_as_not_analysed(tmp_path):
    from solo_coplugin.bench.plan import RESTORED_RECORD

    runs = fake_bench(tmp_path, {("simclr", 1): 0.0, ("co_simclr", 1): 1.0})
    restored = [Run(f"{m}-s0", m, "simclr", 0, None, ()) for m in ("simclr", "co_simclr")]
    for run in restored:  # published on another machine: a record, no checkpoint
        run_dir(tmp_path, run).mkdir(parents=True)
        (run_dir(tmp_path, run) / RESTORED_RECORD).write_text("{}")
    write_robustness_report(restored + runs, tmp_path)
    markdown = (tmp_path / "robustness.md").read_text()
    assert "Not analysed: simclr-s0, co_simclr-s0, restored from published records" in markdown
    assert json.loads((tmp_path / "robustness.json").read_text())["paired"][0]["seeds"] == [1]
