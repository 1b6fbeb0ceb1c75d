"""Multi-process training equals one process: Lightning's DDP strategy, 2 processes on CPU (gloo,
standing in for NCCL on GPUs), launched by Lightning itself, never by a home-made launcher.

1. One ``ddp_step.py`` launch trains every CO method (every entry of ``solo_coplugin.methods.
   METHODS``, plus CO-BYOL on a ViT and CO-SimCLR with gradients through its gathered targets)
   under ``Trainer(strategy="ddp", accelerator="cpu", devices=2)``, each process on its half of
   a global batch of 8. The loss (mean over processes), every parameter's gradient (after DDP's
   all-reduce) and the queues / DINO's center must equal those of one process trained on the
   whole global batch, to 1e-5 in float32.

   BatchNorm without SyncBatchNorm (which PyTorch runs on GPUs only) normalizes each process's
   batch with its own statistics. The reference keeps BatchNorm in training mode and makes that
   exact instead: every BatchNorm (and VIbCReg's IterNorm) layer of the single-process model
   normalizes each process's slice of its input on its own (:func:`normalize_each_rank_alone`).
   That keeps the heads' batch statistics under test, which freezing BatchNorm in eval mode
   would switch off. Barlow Twins' own loss (solo-learn's ``barlow_loss_func``) is not
   global-batch exact under DDP either: see :func:`barlow_loss_as_ddp_computes_it`.

2. solo-learn's ``main_pretrain.py`` with ``accelerator=cpu strategy=ddp devices="2"
   sync_batchnorm=False`` trains CO configs (``solo_coplugin/configs/cifar``) for one epoch on
   a 16-image set and writes their checkpoints: by default one of each kind (:data:`DEFAULT_CONFIGS`:
   a contrastive method, a momentum method, DINO's center, a queue of neighbours, an RF-ResNet),
   every config with ``SOLO_CO_FULL_DDP=1``. Each run is a fresh 2-process launch (about 14 s on 2
   idle cores). That a stopped DDP run resumes as the run trained straight, bit for bit, is
   ``test_ddp_resume.py``. ``SOLO_CO_FULL_DDP=1`` also runs torchrun launches (one node with 2
   processes; 2 nodes of 1 process, as two agents on this machine).
"""

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import solo
import solo.methods.barlow_twins
import torch
import torch.nn.functional as F
from hydra import compose, initialize
from hydra.core.global_hydra import GlobalHydra
from solo.utils.whitening import IterNorm
from torch.nn.modules.batchnorm import _BatchNorm

import solo_coplugin.configs
import solo_coplugin.methods.co_barlow_twins
from .ddp_step import CASES, WORLD_SIZE, build_model, global_batch, train_steps
from .test_scripts import main_pretrain_overrides

SOLO_ROOT = Path(solo.__file__).resolve().parents[1]
DDP_STEP = Path(__file__).with_name("ddp_step.py")
#: the config whose DDP checkpoint is also resumed under DDP
FULL_DDP = os.environ.get("SOLO_CO_FULL_DDP") == "1"
ALL_CONFIGS = sorted(
    p.stem for p in (Path(solo_coplugin.configs.__file__).parent / "cifar").glob("co_*.yaml")
)
#: the configs trained under DDP by default, one of each kind; SOLO_CO_FULL_DDP=1 trains them all
#: (each is about 14 s; every method's DDP step is checked in-process above in any case)
DEFAULT_CONFIGS = ("co_simclr", "co_byol", "co_dino", "co_nnclr", "co_byol_rf")
CONFIGS = ALL_CONFIGS if FULL_DDP else [c for c in ALL_CONFIGS if c in DEFAULT_CONFIGS]
#: a per-device batch of 4 on 2 processes: 16 images are 2 steps per epoch (4 on one process)
PER_DEVICE_BATCH, TRAIN_IMAGES = 4, 16
LAUNCHER_VARIABLES = {
    "MASTER_ADDR",
    "MASTER_PORT",
    "NODE_RANK",
    "GROUP_RANK",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
}


def run_in_own_sessions(commands, log_dir, cwd=None, timeout=300):
    """Runs ``commands`` side by side, each in its own session (each starts its own DDP
    processes), their output in ``log_dir/launch<i>.log``; fails with the log's tail unless all
    exit with 0. On timeout, kills their whole process groups, so that no rank is left waiting
    in a collective."""

    # a launcher's or a cluster's variables in the test's own environment (a test run under
    # torchrun or inside a SLURM job) would make Lightning join that job instead of starting one
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in LAUNCHER_VARIABLES and not k.startswith(("SLURM_", "TORCHELASTIC_"))
    }
    env.update(PYTHONWARNINGS="ignore", HYDRA_FULL_ERROR="1", OMP_NUM_THREADS="1")
    logs = [log_dir / f"launch{i}.log" for i in range(len(commands))]
    procs = []
    for command, log in zip(commands, logs):
        with open(log, "w") as out:
            procs.append(
                subprocess.Popen(
                    command,
                    cwd=cwd,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        pytest.fail(f"not finished in {timeout} s:\n{logs[0].read_text()[-3000:]}")
    for command, proc, log in zip(commands, procs, logs):
        assert proc.returncode == 0, f"{' '.join(command)}\n{log.read_text()[-3000:]}"


# ------------------------------------------------------------------------------------------
# 1. One DDP step of every method equals one process on the global batch
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ddp_records(tmp_path_factory):
    """Runs ddp_step.py once for every case; returns the folder of per-rank records."""

    out = tmp_path_factory.mktemp("ddp_step")
    run_in_own_sessions([[sys.executable, str(DDP_STEP), str(out)]], out)
    return out


_PER_RANK_CLASSES = {}


def _per_rank(cls):
    """``cls`` with a forward that normalizes each rank's slice of the batch on its own."""

    if cls not in _PER_RANK_CLASSES:

        def forward(self, x):
            return torch.cat([cls.forward(self, part) for part in x.chunk(WORLD_SIZE)])

        _PER_RANK_CLASSES[cls] = type(f"PerRank{cls.__name__}", (cls,), {"forward": forward})
    return _PER_RANK_CLASSES[cls]


def normalize_each_rank_alone(model):
    """Makes every BatchNorm and IterNorm layer of ``model`` normalize each DDP rank's slice of its
    input (contiguous, as ``ddp_step`` splits the global batch) with that slice's statistics, as
    ``WORLD_SIZE`` processes without SyncBatchNorm do.

    Every input of these layers is image-major: a crop's images (backbone, global heads) or the
    ``B * N`` rows of the local heads, image by image. The local heads then run through their
    modules instead of ``core.lean_heads``' fused blocks, which give the same values.
    """

    for module in model.modules():
        if isinstance(module, (_BatchNorm, IterNorm)):
            module.__class__ = _per_rank(type(module))
    return model


def barlow_loss_as_ddp_computes_it(z1, z2, lamb=5e-3, scale_loss=0.025):
    """solo-learn's ``barlow_loss_func`` as ``WORLD_SIZE`` DDP processes compute it, in one process.

    Each process normalizes its own slice (the loss's own ``BatchNorm1d``) and all-reduces its
    cross-correlation with ``dist.all_reduce``, which carries no gradient: every process gets the
    loss of the averaged cross-correlation, but its gradient flows only through its own slice's
    term, divided by the world size, and DDP averages those. So the loss is that of the
    averaged per-process cross-correlation and the gradient is ``1 / WORLD_SIZE`` of its gradient
    (docs/multi_gpu.md says what that does to the optimizer step). CO-Barlow Twins' local loss is the same function per position, so both parts of its
    loss have that same scale.
    """

    corr = torch.stack(
        [
            torch.einsum(
                "bi, bj -> ij",
                F.batch_norm(a, None, None, training=True),
                F.batch_norm(b, None, None, training=True),
            )
            / a.size(0)
            for a, b in zip(z1.chunk(WORLD_SIZE), z2.chunk(WORLD_SIZE))
        ]
    ).mean(0)
    diag = torch.eye(corr.size(0), device=corr.device)
    cdif = (corr - diag).pow(2)
    cdif[~diag.bool()] *= lamb
    loss = scale_loss * cdif.sum()
    return loss / WORLD_SIZE + loss.detach() * (1 - 1 / WORLD_SIZE)


def assert_same_step(got, reference, what):
    """Gradients to 1e-5 relative plus 1e-5 of the largest gradient in absolute terms (a bias
    followed by BatchNorm has a gradient that is 0 up to rounding: no relative tolerance fits
    it); queues and center to 1e-5 relative."""

    assert got["grads"].keys() == reference["grads"].keys()
    scale = max(g.abs().max().item() for g in reference["grads"].values() if g is not None)
    for name, expected in reference["grads"].items():
        grad = got["grads"][name]
        assert (grad is None) == (expected is None), f"{what}: {name}"
        if expected is not None:
            torch.testing.assert_close(
                grad, expected, rtol=1e-5, atol=1e-5 * scale, msg=lambda m: f"{what} {name}: {m}"
            )
    assert got["buffers"].keys() == reference["buffers"].keys()
    for name, expected in reference["buffers"].items():
        torch.testing.assert_close(
            got["buffers"][name],
            expected,
            rtol=1e-5,
            atol=1e-6,
            msg=lambda m: f"{what} {name}: {m}",
        )


@pytest.fixture
def one_thread():
    """One torch thread, as each DDP process (``ddp_step.main``). A gradient jumps where a
    pre-activation crosses ReLU's kink, and a value within rounding of 0 can land on the other
    side with other kernels: seen, -6.1e-7 with 1 thread and +6.1e-7 with 2 in CO-VICReg's
    layer2, which moves the gradients below it by 0.4 % of the largest one."""

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_ddp_step_equals_one_process_on_the_global_batch(
    case, ddp_records, one_thread, monkeypatch
):
    if CASES[case][0] == "co_barlow_twins":
        for module in (solo.methods.barlow_twins, solo_coplugin.methods.co_barlow_twins):
            monkeypatch.setattr(module, "barlow_loss_func", barlow_loss_as_ddp_computes_it)
    model = normalize_each_rank_alone(build_model(case))
    reference = train_steps(model, global_batch(case), devices=1)

    ranks = [
        torch.load(ddp_records / f"{case}-rank{rank}.pt", weights_only=True)
        for rank in range(WORLD_SIZE)
    ]
    # each process returns the mean loss of its images; the global batch's is their mean
    loss = torch.stack([r["loss"] for r in ranks]).mean()
    torch.testing.assert_close(loss, reference["loss"], rtol=1e-5, atol=1e-6)
    for rank, record in enumerate(ranks):
        assert_same_step(record, reference, f"{case}, rank {rank}")


# ------------------------------------------------------------------------------------------
# 2. main_pretrain.py trains every CO config under DDP, and resumes
# ------------------------------------------------------------------------------------------

#: small heads for CPU (the configs' 2048-4096 wide heads make per-position losses slow)
SMALL_HEAD_SETTINGS = {
    "proj_hidden_dim": 64,
    "proj_output_dim": 32,
    "pred_hidden_dim": 64,
    "num_prototypes": 64,
}


def small_overrides(config):
    """The config's method and base learning rate, and overrides that shrink its heads and
    backbone (only keys the config has)."""

    GlobalHydra.instance().clear()
    try:
        with initialize(version_base="1.2", config_path=None):  # main_pretrain's search path
            cfg = compose(config_name=f"{config}.yaml")
    finally:
        GlobalHydra.instance().clear()
    overrides = [
        f"method_kwargs.{key}={value}"
        for key, value in SMALL_HEAD_SETTINGS.items()
        if key in cfg.method_kwargs
    ]
    if cfg.backbone.name == "resnet18":  # solo-learn's ImageNet stem: the CIFAR one is cheaper
        overrides.append("backbone.name=resnet18_cifar")
    return cfg.method, cfg.optimizer.lr, overrides + ["++backbone.kwargs.width=8"]


@pytest.fixture(scope="module")
def tiny_train_set(cifar10_subset, tmp_path_factory):
    """16 real CIFAR-10 images, 8 of each of 2 classes, in ImageFolder layout."""

    root = tmp_path_factory.mktemp("ddp_images")
    classes = sorted(p for p in (cifar10_subset / "train").iterdir() if p.is_dir())[:2]
    for folder in classes:
        (root / folder.name).mkdir()
        for image in sorted(folder.iterdir())[: TRAIN_IMAGES // len(classes)]:
            (root / folder.name / image.name).write_bytes(image.read_bytes())
    return root


class Run(NamedTuple):
    """A finished main_pretrain.py run: its checkpoint (path and contents), ``args.json``, the
    local losses it logged, and the config's method and learning rate before scaling."""

    ckpt: Path
    state: dict
    saved_args: dict
    local_losses: list
    method: str
    base_lr: float


def pretrain(launchers, config, train_dir, out_dir, extra=(), devices="2"):
    """Runs a short CPU DDP main_pretrain.py run of ``config``, once per launcher prefix (side by
    side: one per node), from solo-learn's root."""

    method, base_lr, overrides = small_overrides(config)
    args = [
        "main_pretrain.py",
        "--config-name",
        f"{config}.yaml",
        *overrides,
        *main_pretrain_overrides(
            train_dir, out_dir, batch_size=PER_DEVICE_BATCH, strategy="ddp", devices=devices
        ),
        *extra,
    ]
    out_dir.mkdir(parents=True)
    run_in_own_sessions([[*launcher, *args] for launcher in launchers], out_dir, cwd=SOLO_ROOT)
    ckpts = list((out_dir / "ckpt").rglob("*.ckpt"))
    assert len(ckpts) == 1, ckpts
    saved_args = json.loads((ckpts[0].parent / "args.json").read_text())
    metrics = list(out_dir.glob("lightning_logs/version_*/metrics.csv"))
    with open(metrics[0]) as f:
        rows = list(csv.DictReader(f))
    local = [float(r["train_local_loss_step"]) for r in rows if r.get("train_local_loss_step")]
    state = torch.load(ckpts[0], weights_only=False)
    return Run(ckpts[0], state, saved_args, local, method, base_lr)


def check_trained_over_two_processes(run: Run, epoch=0):
    # 16 images, 4 per process and step: 2 steps an epoch means the data was split over 2
    assert (run.state["epoch"], run.state["global_step"]) == (epoch, 2 * (epoch + 1))
    assert run.saved_args["method"] == run.method
    assert len(run.local_losses) == 2 and all(math.isfinite(v) for v in run.local_losses)
    weights = run.state["state_dict"]
    assert any(k.startswith("local_heads.") for k in weights)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


needs_main_pretrain = pytest.mark.skipif(
    not (SOLO_ROOT / "main_pretrain.py").exists(),
    reason=f"solo-learn's main_pretrain.py is not next to its package ({SOLO_ROOT}): install "
    "solo-learn from a checkout (pip install -e) to run this",
)
full_ddp_only = pytest.mark.skipif(
    not FULL_DDP,
    reason="torchrun launches of main_pretrain.py (2 launches); SOLO_CO_FULL_DDP=1 runs them",
)
#: main_pretrain.py started as usual: Lightning's DDP launcher starts the second process
LIGHTNING_LAUNCHES = [[sys.executable]]


@needs_main_pretrain
@pytest.mark.parametrize("config", CONFIGS)
def test_main_pretrain_trains_each_co_config_with_ddp(config, tiny_train_set, tmp_path):
    run = pretrain(LIGHTNING_LAUNCHES, config, tiny_train_set, tmp_path / "run")
    check_trained_over_two_processes(run)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_main_pretrain
@full_ddp_only
@pytest.mark.parametrize("nodes", [1, 2])
def test_main_pretrain_launched_by_torchrun(nodes, tiny_train_set, tmp_path):
    """torchrun starts the processes (Lightning detects it and starts none): 2 processes on one
    node, or 1 process on each of 2 nodes (two torchrun agents on this machine, as on two hosts)
    with ``num_nodes=2``."""

    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    if nodes == 1:
        launchers = [[*torchrun, "--standalone", "--nproc_per_node=2"]]
        run = pretrain(launchers, "co_byol", tiny_train_set, tmp_path / "run")
    else:
        port = free_port()
        agents = [
            [
                *torchrun,
                "--nnodes=2",
                "--nproc_per_node=1",
                f"--node_rank={node}",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
            ]
            for node in range(nodes)
        ]
        run = pretrain(
            agents, "co_byol", tiny_train_set, tmp_path / "run", ["++num_nodes=2"], devices="1"
        )
    check_trained_over_two_processes(run)
    # solo-learn scales lr by batch_size * len(devices) * num_nodes / 256; devices is the string
    # "2" or "1" on CPU, so len(devices) is 1 either way (docs/multi_gpu.md): only nodes count
    assert run.saved_args["optimizer"]["lr"] == pytest.approx(
        run.base_lr * PER_DEVICE_BATCH * 1 * nodes / 256
    )
