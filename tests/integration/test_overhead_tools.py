"""The measuring tools of benchmarks/overhead.py (the benchmark itself is a script, not a test)."""

import importlib.util
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_overhead():
    spec = importlib.util.spec_from_file_location(
        "overhead", REPO_ROOT / "benchmarks" / "overhead.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_live_tensor_bytes_counts_what_is_alive_at_once():
    overhead = load_overhead()
    existing = torch.zeros(2**20)  # 4 MiB alive before and after
    with overhead.PeakLiveTensorBytes([existing]) as tracker:
        temporary = torch.ones(2 * 2**20)  # +8 MiB
        view = temporary[:10]  # a view: no new storage
        del temporary, view  # freed: -8 MiB
        kept = torch.ones(2**19)  # +2 MiB
        assert tracker.current == 6 * 2**20
    assert tracker.peak == 12 * 2**20
    del kept
