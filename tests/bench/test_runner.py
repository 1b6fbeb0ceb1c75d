import csv
import io
import sys
import textwrap

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
        record = runner.train(run, solo_root, tmp_path / "bench", bar, steps_per_run=2)
    with open(directory / "steps.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(row["step"], row["loss"]) for row in rows] == [("1", "1.0"), ("2", "1.0")]
    assert record["resumed_from"] is None and record["command"].startswith(sys.executable)
    assert "resume_from_checkpoint" not in record["command"]
