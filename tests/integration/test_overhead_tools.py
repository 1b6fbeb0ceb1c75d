"""The measuring tools of benchmarks/overhead.py (the benchmark itself is a script, not a test)."""

import contextlib
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


def test_cpu_peak_of_a_step_includes_parameters_gradients_and_activations():
    overhead = load_overhead()
    torch.manual_seed(0)
    cfg, crop, batch = overhead.build_cfg("r18-cifar-32", "simclr", [], batch_size=4)
    model, optimizer = overhead.build_model(cfg, torch.device("cpu"), channels_last=True)
    data = overhead.make_batch(batch, crop, torch.device("cpu"), cfg.data.num_classes)
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    overhead.step(model, optimizer, data, contextlib.nullcontext)  # optimizer state exists
    peak = overhead.cpu_peak_bytes(model, optimizer, data, contextlib.nullcontext)
    # parameters, gradients and momentum buffers (SGD/LARS) at least, plus the activations
    assert peak > 3 * parameters
