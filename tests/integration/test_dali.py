"""solo-learn's DALI data module on CPU, through the opt-in workaround (needs DALI installed)."""

import pytest

from solo_coplugin.dali_cpu import enable_dali_cpu

from .test_scripts import SOLO_ROOT, cpu_overrides, logged_metrics, run

pytestmark = pytest.mark.skipif(
    not (SOLO_ROOT / "main_pretrain.py").exists(), reason="solo-learn scripts not found"
)
dali = pytest.importorskip("nvidia.dali", reason="DALI is not installed (pip install .[dali])")

DALI_ARGS = ["--config-name", "co_byol.yaml", "data.format=dali", "++dali.device=cpu"]


def test_enable_dali_cpu_is_idempotent_and_only_for_cpu_pipelines():
    from solo.data import dali_dataloader

    assert enable_dali_cpu() and enable_dali_cpu()
    pipeline = dali_dataloader.PretrainPipelineBuilder.pipeline
    assert pipeline._solo_co_dali_cpu and not hasattr(pipeline.__wrapped__, "_solo_co_dali_cpu")


def dali_overrides(data, out_dir):
    # DALI's CPU pipeline needs at least one thread (solo-learn passes num_workers as threads)
    overrides = [a for a in cpu_overrides(data, out_dir) if "data.num_workers" not in a]
    return [*DALI_ARGS, *overrides, "data.num_workers=2"]


def test_co_byol_trains_through_solo_learns_dali_module_on_cpu(cifar10_subset, tmp_path):
    result = run(
        "main_pretrain.py", dali_overrides(cifar10_subset, tmp_path), env={"SOLO_CO_DALI_CPU": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    local = [r for r in logged_metrics(tmp_path) if r.get("train_local_loss_step")]
    assert len(local) == 3


def test_without_the_workaround_dali_on_cpu_fails_as_reported_upstream(cifar10_subset, tmp_path):
    result = run("main_pretrain.py", dali_overrides(cifar10_subset, tmp_path))
    assert result.returncode != 0
    assert "CUDA is not available" in result.stderr
