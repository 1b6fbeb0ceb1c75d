"""CO overhead: step time, memory and FLOPs of each CO method relative to its base method.

For each (base, CO) pair and setting, builds both methods with solo-learn's own classes from the
packaged configs, then measures in one process, interleaved, after warm-up: the training-step
time (median of N steps of the real ``training_step``: forward, backward, LARS/SGD step and
momentum update), the peak memory of the step (``torch.cuda.max_memory_allocated`` on GPU; on CPU,
the peak of live tensor bytes: parameters, buffers, gradients, optimizer state, activations and
temporaries, as on GPU) and the FLOPs of
one step (``torch.utils.flop_counter``). The steps of a pair are interleaved in alternating
order (ABBA), so that drift in the machine's speed hits both methods alike.

On CPU, glibc's malloc hands large blocks back to the OS when they are freed and page-faults
them in again at the next step; how often depends on the order of a step's allocations, so it
adds a per-model cost of up to ~10% that has nothing to do with the work (measured: CO-MoCoV3
with slim heads vs MoCoV3, 1.112 default, 1.022 tuned, FLOP floor 1.018). The script therefore
re-runs itself with malloc keeping freed memory (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``), as a GPU caching allocator does and as PyTorch's CPU performance
guide recommends (there: jemalloc or tcmalloc); ``--malloc-default`` measures without. Prints a markdown table of CO/base ratios
and writes it (markdown, CSV and JSON) under ``benchmarks/results/``.

    python benchmarks/overhead.py --settings r18-cifar-32 --pairs byol simclr --steps 8
    python benchmarks/overhead.py --device cuda --precision bf16-mixed --channels-last
"""

import argparse
import contextlib
import csv
import json
import os
import platform
import statistics
import sys
import time
import weakref
from functools import partial
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import solo_coplugin.methods  # noqa: F401  (registers the CO methods and backbones)
from solo.methods import METHODS

SETTINGS = {
    # name: (config package, dataset, backbone, backbone kwargs, crop size, batch size)
    "r18-cifar-32": ("cifar", "cifar10", "resnet18", {}, 32, 32),
    "r50-224": ("imagenet-100", "imagenet100", "resnet50", {}, 224, 8),
    "rf50-224": ("imagenet-100", "imagenet100", "rf_resnet50", {"preset": "rf99"}, 224, 8),
}
PAIRS = ["byol", "simclr", "mocov3", "dino", "vicreg", "barlow_twins", "mocov2plus"]
CIFAR_ONLY = {"simclr", "vicreg", "barlow_twins", "mocov2plus"}  # no ImageNet-100 CO config


def build_cfg(setting: str, method: str, overrides, batch_size=None):
    package, dataset, backbone, backbone_kwargs, crop, batch = SETTINGS[setting]
    batch = batch_size or batch
    if method.replace("co_", "") in CIFAR_ONLY:
        package = "cifar"
    GlobalHydra.instance().clear()
    with initialize_config_module(
        version_base="1.2", config_module=f"solo_coplugin.configs.{package}"
    ):
        cfg = compose(config_name=f"co_{method.replace('co_', '')}.yaml", overrides=overrides)
    OmegaConf.set_struct(cfg, False)
    cfg.method = method
    cfg.data.dataset = dataset
    cfg.data.num_classes = 10 if dataset == "cifar10" else 100
    cfg.data.num_large_crops, cfg.data.num_small_crops = 2, 0
    cfg.backbone.name, cfg.backbone.kwargs = backbone, backbone_kwargs
    cfg.optimizer.batch_size = batch
    cfg.max_epochs = max(int(cfg.max_epochs), 100)
    for aug in cfg.augmentations:
        aug.crop_size = crop
    if not method.startswith("co_"):
        cfg.method_kwargs = {
            k: v for k, v in cfg.method_kwargs.items() if not k.startswith("local_")
        }
    return cfg, crop, batch


def build_model(cfg, device, channels_last):
    model = METHODS[cfg.method](cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = model.learnable_params
    groups = [{"params": list(g["params"])} for g in params]
    kwargs = dict(cfg.optimizer.kwargs)
    if cfg.optimizer.name == "lars":
        from solo.utils.lars import LARS

        optimizer = LARS(
            groups,
            lr=cfg.optimizer.lr,
            weight_decay=cfg.optimizer.weight_decay,
            momentum=0.9,
            eta=kwargs.get("eta", 1e-3),
            clip_lr=kwargs.get("clip_lr", False),
            exclude_bias_n_norm=kwargs.get("exclude_bias_n_norm", False),
        )
    else:
        optimizer = torch.optim.SGD(
            groups, lr=cfg.optimizer.lr, momentum=0.9, weight_decay=cfg.optimizer.weight_decay
        )
    return model, optimizer


def make_batch(batch, crop, device, num_classes):
    views = [torch.randn(batch, 3, crop, crop, device=device) for _ in range(2)]
    return [
        torch.arange(batch, device=device),
        views,
        torch.randint(0, num_classes, (batch,), device=device),
    ]


def step(model, optimizer, batch, autocast):
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        loss = model.training_step(batch, 0)
    loss.backward()
    optimizer.step()
    if hasattr(model, "momentum_updater"):
        for online, momentum in model.momentum_pairs:
            model.momentum_updater.update(online, momentum)
    return loss


class PeakLiveTensorBytes(TorchDispatchMode):
    """Peak bytes of live tensor storages while active: the given tensors' storages plus every
    storage an operator creates, until it is freed (the CPU analogue of
    ``torch.cuda.max_memory_allocated``, without allocator caching or library workspaces)."""

    def __init__(self, existing):
        super().__init__()
        self.current = self.peak = 0
        self._alive = {}
        for tensor in existing:
            self._track(tensor)

    def _track(self, tensor):
        if not isinstance(tensor, torch.Tensor) or tensor.is_meta:
            return
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self._alive:
            return
        self.current += storage.nbytes()
        self._alive[key] = weakref.ref(storage, partial(self._freed, key, storage.nbytes()))
        self.peak = max(self.peak, self.current)

    def _freed(self, key, nbytes, _):
        if self._alive.pop(key, None) is not None:
            self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in torch.utils._pytree.tree_leaves(out):
            self._track(tensor)
        return out


def cpu_peak_bytes(model, optimizer, batch, autocast):
    """Peak live tensor bytes of one step on CPU."""

    existing = [*model.parameters(), *model.buffers(), *torch.utils._pytree.tree_leaves(batch)]
    existing += [p.grad for p in model.parameters() if p.grad is not None]
    existing += torch.utils._pytree.tree_leaves(optimizer.state_dict()["state"])
    with PeakLiveTensorBytes(existing) as tracker:
        step(model, optimizer, batch, autocast)
    return tracker.peak


def measure(models, batches, device, steps, autocast):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    results = {name: {"times": []} for name in models}
    for name, (model, optimizer) in models.items():  # warm-up, memory, FLOPs
        for _ in range(2):
            step(model, optimizer, batches[name], autocast)
        if device.type == "cuda":
            sync()
            torch.cuda.reset_peak_memory_stats()
            step(model, optimizer, batches[name], autocast)
            sync()
            results[name]["memory"] = torch.cuda.max_memory_allocated()
        else:
            results[name]["memory"] = cpu_peak_bytes(model, optimizer, batches[name], autocast)
        with FlopCounterMode(display=False) as counter:
            step(model, optimizer, batches[name], autocast)
        results[name]["flops"] = counter.get_total_flops()
    for round_ in range(steps):  # interleaved timing, alternating order (ABBA)
        order = list(models) if round_ % 2 == 0 else list(models)[::-1]
        for name in order:
            model, optimizer = models[name]
            sync()
            start = time.perf_counter()
            step(model, optimizer, batches[name], autocast)
            sync()
            results[name]["times"].append(time.perf_counter() - start)
    for r in results.values():
        r["time"] = statistics.median(r.pop("times"))
    return results


def parser_default_out() -> str:
    return str(Path(__file__).parent / "results" / "overhead")


MALLOC_TUNING = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**34)}


def rerun_with_malloc_tuning() -> None:
    """Replaces this process by itself with MALLOC_TUNING set (glibc reads it at start-up)."""

    if all(os.environ.get(k) == v for k, v in MALLOC_TUNING.items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **MALLOC_TUNING})


def malloc_setting() -> str:
    tuned = all(os.environ.get(k) == v for k, v in MALLOC_TUNING.items())
    return (
        "glibc malloc keeps freed memory ("
        + ", ".join(f"{k}={v}" for k, v in MALLOC_TUNING.items())
        + ")"
        if tuned
        else "default malloc"
    )


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=["r18-cifar-32"], choices=list(SETTINGS))
    parser.add_argument("--pairs", nargs="+", default=["byol", "simclr"], choices=PAIRS)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=None, help="instead of the setting's")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "16-mixed"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--local-hidden-dim",
        type=int,
        default=None,
        help="also measure CO with slim local heads of this hidden width",
    )
    parser.add_argument(
        "--local-recompute",
        action="store_true",
        help="also measure CO with method_kwargs.local_recompute=True",
    )
    parser.add_argument(
        "--malloc-default",
        action="store_true",
        help="on CPU, measure with the default malloc settings (see the module docstring)",
    )
    parser.add_argument("--out", default=parser_default_out())
    args = parser.parse_args()
    if args.device == "cpu" and not args.malloc_default and platform.system() == "Linux":
        rerun_with_malloc_tuning()

    device = torch.device(args.device)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    )
    rows = []
    for setting in args.settings:
        for base in args.pairs:
            variants = {base: [], f"co_{base}": []}
            if args.local_hidden_dim:
                variants[f"co_{base} (slim {args.local_hidden_dim})"] = [
                    f"++method_kwargs.local_hidden_dim={args.local_hidden_dim}"
                ]
            if args.local_recompute:
                variants[f"co_{base} (recompute)"] = ["++method_kwargs.local_recompute=True"]
            models, batches = {}, {}
            for label, overrides in variants.items():
                torch.manual_seed(0)
                cfg, crop, batch = build_cfg(
                    setting, label.split(" ")[0], overrides, args.batch_size
                )
                models[label] = build_model(cfg, device, args.channels_last)
                batches[label] = make_batch(batch, crop, device, cfg.data.num_classes)
            results = measure(models, batches, device, args.steps, autocast)
            for label in list(variants)[1:]:
                r, b = results[label], results[base]
                rows.append(
                    {
                        "setting": setting,
                        "pair": f"{base} / {label}",
                        "batch": batch,
                        "time_ratio": r["time"] / b["time"],
                        "flop_ratio": r["flops"] / b["flops"],
                        "memory_ratio": r["memory"] / b["memory"],
                        "base_step_s": b["time"],
                        "co_step_s": r["time"],
                        "base_gflops": b["flops"] / 1e9,
                        "co_gflops": r["flops"] / 1e9,
                        "base_images_per_s": batch / b["time"],
                        "co_images_per_s": batch / r["time"],
                        "base_memory_mb": b["memory"] / 2**20,
                        "co_memory_mb": r["memory"] / 2**20,
                    }
                )
                print(rows[-1], flush=True)

    write_results(rows, args, device)


def write_results(rows, args, device):
    """Prints the markdown table and writes it with the CSV and JSON under ``args.out``."""

    memory = "peak CUDA memory" if device.type == "cuda" else "peak live tensor bytes"
    header = (
        f"Device: {device_name(device)}; precision {args.precision}; channels_last "
        f"{args.channels_last}; torch {torch.__version__}; median of {args.steps} interleaved "
        f"steps after warm-up (ABBA order); memory = {memory}"
        + (f"; {malloc_setting()}" if device.type == "cpu" else "")
        + ".\n\n"
        "| setting | base / CO | batch | time CO/base | FLOPs CO/base (floor) | time - floor "
        "| memory CO/base | base step (s) | CO step (s) | images/s base, CO |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    table = header + "".join(
        f"| {r['setting']} | {r['pair']} | {r['batch']} | {r['time_ratio']:.3f} | "
        f"{r['flop_ratio']:.3f} | {r['time_ratio'] - r['flop_ratio']:+.3f} | "
        f"{r['memory_ratio']:.3f} | {r['base_step_s']:.3f} | {r['co_step_s']:.3f} | "
        f"{r['base_images_per_s']:.0f}, {r['co_images_per_s']:.0f} |\n"
        for r in rows
    )
    print(table)
    out = Path(args.out + f"-{device.type}")
    out.parent.mkdir(parents=True, exist_ok=True)

    def option(key, value):
        flag = "--" + key.replace("_", "-")
        if value is True:  # a store_true flag
            return flag
        return f"{flag} {' '.join(map(str, value)) if isinstance(value, list) else value}"

    command = "python benchmarks/overhead.py " + " ".join(
        option(k, v) for k, v in vars(args).items() if k != "out" and v not in (None, False)
    )
    if args.out != parser_default_out():
        command += f" --out {args.out}"
    out.with_suffix(".md").write_text(f"# CO overhead\n\nMade by `{command}`.\n\n{table}")
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
