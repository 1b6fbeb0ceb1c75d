"""The evidence study: does CO-SSL help at a budget where the base methods have learned?

One command runs (or resumes) the whole study on CPU, part by part, through ``solo-co-bench``;
each part is a benchmark folder under ``--work`` and, once it has results, its tables and plots
are copied to ``benchmarks/results/study/<part>/`` with machine-specific paths replaced by
``$STUDY``, ``$DATA`` and ``$SOLO_LEARN``. The protocol (network, data, budget) and how it was
chosen are in ``benchmarks/study/README.md``.

    python benchmarks/study/run_study.py --data /data/cifar10 --work /data/study
    python benchmarks/study/run_study.py --data /data/cifar10 --work /data/study --parts simclr
    python benchmarks/study/run_study.py ... --dry-run   # the solo-co-bench commands
    python benchmarks/study/run_study.py --study tiny-imagenet --data /data/tin50 --work /data/tin-study

``--data`` is CIFAR-10 as an ImageFolder with ``train/`` and ``test/`` (all 50,000 and 10,000
images); with ``--study tiny-imagenet``, Tiny-ImageNet's seeded 50-class subset as
``solo-co-data tiny-imagenet SRC DST --standard-200 --classes 50 --seed 0`` writes it (protocol:
``benchmarks/study/tiny-imagenet.md``). Interrupt it at any time (Ctrl-C, or ``kill PID``: its
training runs stop with it): the same command resumes every part where it stopped, and a resumed
run continues the same run (the random generators are saved in each checkpoint).
"""

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from solo_coplugin.bench.runner import run_to_the_end, sigterm_as_ctrl_c

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results" / "study"

#: the protocol (benchmarks/study/README.md says how it was chosen)
PROTOCOL = [
    "--backbone",
    "resnet18_cifar",
    "--batch-size",
    "128",
    "--epochs",
    "12",
    "--precision",
    "bf16-mixed",
    "--num-workers",
    "2",
    "--override",
    "++backbone.kwargs.width=16",
]
#: the robustness suite of the main pairs (``solo-co-eval robustness``): corruptions on 2,000 and
#: PGD-10 on 500 fixed test images (the same for every run), internal corruption and redundancy
#: on all 10,000
ROBUSTNESS = ["--corruption-images", "2000", "--attack-images", "500", "--pgd-steps", "10"]
SEEDS_MAIN = ["0", "1", "2"]
#: co_byol_rf.yaml's RF-ResNet-18: CIFAR stem, 3x3 kernels in 2 blocks of layer1 and 1 of layer2,
#: 1x1 after, so each local representation sees 17 px of a 32 px image (resnet18_cifar: 109 px)
RF17_OVERRIDES = [
    "++backbone.kwargs.cifar_stem=True",
    "++backbone.kwargs.kernel3_blocks=[2,1,0,0]",
    "++backbone.kwargs.bag_mlp=False",
]
SEEDS_ABLATION = ["0", "1"]

#: part name -> (what it answers, solo-co-bench arguments beyond the protocol); in running order
PARTS: Dict[str, Dict] = {
    "simclr": {
        "question": "1. SimCLR vs CO-SimCLR, 3 seeds",
        "args": ["--pairs", "simclr,co_simclr", "--seeds", *SEEDS_MAIN],
        "robustness": True,
    },
    "byol": {
        "question": "1. BYOL vs CO-BYOL (local heads 1024 wide), 3 seeds",
        "args": ["--pairs", "byol,co_byol", "--seeds", *SEEDS_MAIN],
        # BYOL's 4096-wide projector and predictor, repeated at the 25 positions of both crops,
        # made a CO-BYOL step 3.3x a BYOL step at width 16 (a run: about 3 hours, against the
        # protocol's 45 minutes); a quarter of that width, as the backbone is a quarter of
        # ResNet-18's, costs 1.37x (measured, benchmarks/study/README.md). BYOL is unchanged.
        "co_override": ["method_kwargs.local_hidden_dim=1024"],
        "robustness": True,
    },
    "simclr-local-weight-0.1": {
        "question": "3. local_weight 0.1 (0.3 is part 'simclr')",
        "args": ["--pairs", "simclr,co_simclr", "--seeds", *SEEDS_ABLATION],
        "co_override": ["method_kwargs.local_weight=0.1"],
        "reuse": ["simclr"],
    },
    "simclr-local-weight-0.5": {
        "question": "3. local_weight 0.5",
        "args": ["--pairs", "simclr,co_simclr", "--seeds", *SEEDS_ABLATION],
        "co_override": ["method_kwargs.local_weight=0.5"],
        "reuse": ["simclr"],
    },
    "simclr-slim-heads": {
        "question": "4. slim local heads (local_hidden_dim 512) vs the default (2048)",
        "args": ["--pairs", "simclr,co_simclr", "--seeds", *SEEDS_ABLATION],
        "co_override": ["method_kwargs.local_hidden_dim=512"],
        "reuse": ["simclr"],
    },
    "simclr-crop-scale": {
        "question": "2. large crops: crop_min_scale 0.3 and 0.5 (0.08, the config's, is part "
        "'simclr')",
        "args": [
            "--pairs",
            "simclr,co_simclr",
            "--seeds",
            *SEEDS_ABLATION,
            "--crop-min-scales",
            "0.3",
            "0.5",
        ],
    },
    "simclr-multicrop-control": {
        "question": "5. SimCLR with multi-crop (2 x 32 px + 4 x 16 px crops, about CO-SimCLR's "
        "step cost) vs CO-SimCLR (part 'simclr')",
        "args": ["--pairs", "simclr,co_simclr", "--seeds", *SEEDS_ABLATION],
        "base_override": ["augmentations=symmetric_multicrop.yaml"],
        "reuse": ["simclr"],
    },
    "simclr-rf17": {
        "question": "6. (ours) the paper's setting on small images, local representations that "
        "see a part of the image: SimCLR vs CO-SimCLR on rf_resnet18, RF 17 px of 32 (co_byol_rf's "
        "backbone), 2 seeds",
        "args": ["--pairs", "simclr,co_simclr", "--seeds", *SEEDS_ABLATION],
        "backbone": "rf_resnet18",
        "override": RF17_OVERRIDES,
        "robustness": True,
    },
    "simclr-additive": {
        "question": "7. (issue 22, item 3) the loss form: CO-SimCLR with local_loss_form additive "
        "(L_global + w L_local) against convex ((1 - w) L_global + w L_local, part 'simclr')",
        # only CO-SimCLR trains: the issue pairs it with part 'simclr''s published runs (SimCLR
        # and CO-SimCLR convex, same seeds), and part 'simclr-reproduce' checks that this code
        # trains those runs again as published (they were trained on 2026-11-30)
        "args": ["--pairs", "simclr,co_simclr", "--seeds", *SEEDS_MAIN, "--co-only"],
        "co_override": ["method_kwargs.local_loss_form=additive"],
    },
    "simclr-reproduce": {
        "question": "7. (issue 22, item 3) the check that pairing with part 'simclr' across "
        "sessions is sound: its CO-SimCLR seed 0 trained again with today's code",
        "args": ["--pairs", "simclr,co_simclr", "--seeds", "0", "--co-only"],
    },
}
#: the study's answers, one paired difference each: (question, label, arm A, arm B); an arm is
#: (part, method, crop_min_scale), or a pair of arms (its second minus its first, seed by seed);
#: each answer is B minus A on the same seed. In the issue's order.
COMPARISONS = [
    ("1", "CO-SimCLR - SimCLR", ("simclr", "simclr", None), ("simclr", "co_simclr", None)),
    ("1", "CO-BYOL (local heads 1024) - BYOL", ("byol", "byol", None), ("byol", "co_byol", None)),
    *[
        (
            "2",
            f"CO-SimCLR - SimCLR, crop_min_scale {scale}",
            ("simclr-crop-scale", "simclr", scale),
            ("simclr-crop-scale", "co_simclr", scale),
        )
        for scale in (0.3, 0.5)
    ],
    *[
        (
            "2",
            f"{name}, crop_min_scale {scale} - 0.08",
            ("simclr", method, None),
            ("simclr-crop-scale", method, scale),
        )
        for scale in (0.3, 0.5)
        for method, name in (("simclr", "SimCLR"), ("co_simclr", "CO-SimCLR"))
    ],
    # the paper's claim itself: CO-X loses less than X to large crops, i.e. CO-X's lead over X
    # grows with crop_min_scale (an interaction: each seed's gap at the scale minus its gap at 0.08)
    *[
        (
            "2",
            f"(CO-SimCLR - SimCLR) at crop_min_scale {scale} - at 0.08",
            (("simclr", "simclr", None), ("simclr", "co_simclr", None)),
            (("simclr-crop-scale", "simclr", scale), ("simclr-crop-scale", "co_simclr", scale)),
        )
        for scale in (0.3, 0.5)
    ],
    *[
        (
            "3",
            f"CO-SimCLR local_weight {weight} - SimCLR",
            ("simclr", "simclr", None),
            (f"simclr-local-weight-{weight}", "co_simclr", None),
        )
        for weight in ("0.1", "0.5")
    ],
    *[
        (
            "3",
            f"CO-SimCLR local_weight {weight} - local_weight 0.3",
            ("simclr", "co_simclr", None),
            (f"simclr-local-weight-{weight}", "co_simclr", None),
        )
        for weight in ("0.1", "0.5")
    ],
    (
        "4",
        "CO-SimCLR slim heads (512) - default heads",
        ("simclr", "co_simclr", None),
        ("simclr-slim-heads", "co_simclr", None),
    ),
    (
        "5",
        "CO-SimCLR - SimCLR with multi-crop",
        ("simclr-multicrop-control", "simclr", None),
        ("simclr", "co_simclr", None),
    ),
    (
        "5",
        "SimCLR with multi-crop - SimCLR",
        ("simclr", "simclr", None),
        ("simclr-multicrop-control", "simclr", None),
    ),
    (
        "6",
        "CO-SimCLR - SimCLR, rf_resnet18 (RF 17 px)",
        ("simclr-rf17", "simclr", None),
        ("simclr-rf17", "co_simclr", None),
    ),
    (
        "7",
        "CO-SimCLR additive - convex (local_loss_form)",
        ("simclr", "co_simclr", None),
        ("simclr-additive", "co_simclr", None),
    ),
    (
        "7",
        "CO-SimCLR additive - SimCLR",
        ("simclr", "simclr", None),
        ("simclr-additive", "co_simclr", None),
    ),
    (
        "7",
        "CO-SimCLR trained again - as published (reproducibility)",
        ("simclr", "co_simclr", None),
        ("simclr-reproduce", "co_simclr", None),
    ),
    (
        "7",
        "CO-SimCLR additive - convex, both trained on the same day",
        ("simclr-reproduce", "co_simclr", None),
        ("simclr-additive", "co_simclr", None),
    ),
]
METRICS = (("linear_top1", "linear"), ("knn_top1", "k-NN"))
#: the base method's own loss over the last epoch (CO-X's global loss, without the local term):
#: paired like the metrics where both arms are runs that logged it
BASE_LOSS = "last_epoch_base_loss"
#: the ablations as settings of one knob, on the seeds they share (SEEDS_ABLATION): knob ->
#: [(value, method name, arm)]. local_weight 0 is SimCLR itself: CO-X with local_weight 0 trains
#: exactly X (tests/integration/test_methods.py checks it).
SWEEPS = {
    "local_weight": [
        (0.0, "SimCLR", ("simclr", "simclr", None)),
        (0.1, "CO-SimCLR", ("simclr-local-weight-0.1", "co_simclr", None)),
        (0.3, "CO-SimCLR", ("simclr", "co_simclr", None)),
        (0.5, "CO-SimCLR", ("simclr-local-weight-0.5", "co_simclr", None)),
    ],
    "crop_min_scale": [
        (scale, name, (part, method, None if scale == 0.08 else scale))
        for method, name in (("simclr", "SimCLR"), ("co_simclr", "CO-SimCLR"))
        for scale, part in (
            (0.08, "simclr"),
            (0.3, "simclr-crop-scale"),
            (0.5, "simclr-crop-scale"),
        )
    ],
    "local_hidden_dim": [
        (512, "CO-SimCLR", ("simclr-slim-heads", "co_simclr", None)),
        (2048, "CO-SimCLR", ("simclr", "co_simclr", None)),
    ],
}

PUBLISHED = (
    "results.md",
    "results.csv",
    "results.json",
    "plan.json",
    "robustness.md",
    "robustness.json",
    "*.png",
)


@dataclasses.dataclass(frozen=True)
class Study:
    """One evidence study: its protocol, parts (in running order), answers and where they go.

    Attributes:
        name (str): the ``--study`` name.
        data (str): what ``--data`` is, for the help and the summary.
        protocol (List[str]): ``solo-co-bench`` arguments of every part.
        parts (Dict[str, Dict]): part name -> ``question``, ``args`` and optionally ``backbone``,
            ``override``, ``co_override``, ``base_override``, ``reuse``, ``robustness``.
        comparisons (List): (question, label, arm A, arm B), as :data:`COMPARISONS`.
        sweeps (Dict): knob -> settings, as :data:`SWEEPS`.
        results (Path): where the parts' tables and the summary are published.
        evaluated_on (str): the evaluation images, for the summary.
        protocol_doc (str): the protocol's page, relative to ``results``.
        classes (int): the protocol's number of classes (class folders of ``--data``'s train/).
    """

    name: str
    data: str
    protocol: List[str]
    parts: Dict[str, Dict]
    comparisons: List
    sweeps: Dict
    results: Path
    evaluated_on: str
    protocol_doc: str
    classes: int


CIFAR = Study(
    name="cifar10",
    data="CIFAR-10 as an ImageFolder: train/ (50,000 images) and test/ (10,000)",
    protocol=PROTOCOL,
    parts=PARTS,
    comparisons=COMPARISONS,
    sweeps=SWEEPS,
    results=RESULTS,
    evaluated_on="10,000 CIFAR-10 test images",
    protocol_doc="../../study/README.md",
    classes=10,
)

#: Tiny-ImageNet at 64 px (benchmarks/study/tiny-imagenet.md says how it was chosen): the paper's
#: kind of network, whose local representations see a part of the image
TINY_PROTOCOL = [
    "--config-path",
    "pkg://solo_coplugin.configs.tiny-imagenet",
    "--backbone",
    "rf_resnet18",
    "--crop-size",
    "64",
    "--batch-size",
    "128",
    "--epochs",
    "24",
    "--precision",
    "bf16-mixed",
    "--num-workers",
    "2",
    "--override",
    "++backbone.kwargs.width=16",
]
#: the contrast of item 2: the same width, stem and 4x4 grid with 3x3 kernels everywhere
TINY_UNBOUNDED = ["++backbone.kwargs.preset=tiny_full"]
TINY_PARTS: Dict[str, Dict] = {
    "simclr-rf31": {
        "question": "1. SimCLR vs CO-SimCLR on tiny_rf31 (RF 31 px of 64, a 4x4 grid), 3 seeds",
        "args": ["--pairs", "simclr,co_simclr", "--seeds", *SEEDS_MAIN],
        "robustness": True,
    },
    "simclr-unbounded": {
        "question": "2. the premise as a contrast: SimCLR vs CO-SimCLR on tiny_full (the same "
        "network with unbounded RF), 3 seeds",
        "args": ["--pairs", "simclr,co_simclr", "--seeds", *SEEDS_MAIN],
        "override": TINY_UNBOUNDED,
    },
    "byol-rf31": {
        "question": "1. BYOL vs CO-BYOL (local heads 1024 wide, as on CIFAR) on tiny_rf31, 3 seeds",
        "args": ["--pairs", "byol,co_byol", "--seeds", *SEEDS_MAIN],
        "co_override": ["method_kwargs.local_hidden_dim=1024"],
        "robustness": True,
    },
    # item 3 on tiny_rf31 runs for one pair: the one item 1 finds closest (see favoured_pair)
    "simclr-rf31-additive": {
        "question": "3. the loss form on tiny_rf31: CO-SimCLR additive against convex, 3 seeds",
        "args": ["--pairs", "simclr,co_simclr", "--seeds", *SEEDS_MAIN],
        "co_override": ["method_kwargs.local_loss_form=additive"],
        "reuse": ["simclr-rf31"],
        "if_favoured": "simclr-rf31",
    },
    "byol-rf31-additive": {
        "question": "3. the loss form on tiny_rf31: CO-BYOL additive against convex, 3 seeds",
        "args": ["--pairs", "byol,co_byol", "--seeds", *SEEDS_MAIN],
        "co_override": [
            "method_kwargs.local_hidden_dim=1024",
            "method_kwargs.local_loss_form=additive",
        ],
        "reuse": ["byol-rf31"],
        "if_favoured": "byol-rf31",
    },
    "simclr-rf31-crop-scale": {
        "question": "5. large crops on tiny_rf31: crop_min_scale 0.5 against 0.08, 2 seeds",
        "args": [
            "--pairs",
            "simclr,co_simclr",
            "--seeds",
            *SEEDS_ABLATION,
            "--crop-min-scales",
            "0.5",
        ],
    },
}


def pair_arms(part: str, base: str, scale=None) -> tuple:
    """X's and CO-X's arms of one part: a comparison's A and B, or a contrast's gap."""

    return (part, base, scale), (part, f"co_{base}", scale)


TINY_COMPARISONS = [
    ("1", "CO-SimCLR - SimCLR", *pair_arms("simclr-rf31", "simclr")),
    ("1", "CO-BYOL (local heads 1024) - BYOL", *pair_arms("byol-rf31", "byol")),
    ("2", "CO-SimCLR - SimCLR, unbounded RF", *pair_arms("simclr-unbounded", "simclr")),
    # the paper's premise: CO-X fares better where local representations see parts, i.e. CO's gap
    # on RF 31 minus its gap on the unbounded network, seed by seed (above 0 as predicted)
    (
        "2",
        "(CO-SimCLR - SimCLR) on RF 31 - on unbounded RF",
        pair_arms("simclr-unbounded", "simclr"),
        pair_arms("simclr-rf31", "simclr"),
    ),
    (
        "3",
        "CO-SimCLR additive - convex (local_loss_form)",
        ("simclr-rf31", "co_simclr", None),
        ("simclr-rf31-additive", "co_simclr", None),
    ),
    (
        "3",
        "CO-SimCLR additive - SimCLR",
        ("simclr-rf31", "simclr", None),
        ("simclr-rf31-additive", "co_simclr", None),
    ),
    (
        "3",
        "CO-BYOL additive - convex (local_loss_form)",
        ("byol-rf31", "co_byol", None),
        ("byol-rf31-additive", "co_byol", None),
    ),
    (
        "3",
        "CO-BYOL additive - BYOL",
        ("byol-rf31", "byol", None),
        ("byol-rf31-additive", "co_byol", None),
    ),
    (
        "5",
        "(CO-SimCLR - SimCLR) at crop_min_scale 0.5 - at 0.08",
        pair_arms("simclr-rf31", "simclr"),
        pair_arms("simclr-rf31-crop-scale", "simclr", 0.5),
    ),
]
TINY = Study(
    name="tiny-imagenet",
    data="Tiny-ImageNet's seeded 50-class subset as an ImageFolder with train/ and val/, as "
    "`solo-co-data tiny-imagenet SRC DST --standard-200 --classes 50 --seed 0` writes it",
    protocol=TINY_PROTOCOL,
    parts=TINY_PARTS,
    comparisons=TINY_COMPARISONS,
    sweeps={},
    results=REPO / "benchmarks" / "results" / "study-tiny-imagenet",
    evaluated_on="2,500 Tiny-ImageNet validation images (the seed-0 subset of 50 classes)",
    protocol_doc="../../study/tiny-imagenet.md",
    classes=50,
)
STUDIES = {study.name: study for study in (CIFAR, TINY)}


def favoured_pair(study: Study, results: Path = None) -> Tuple[Optional[str], str]:
    """The item-1 part whose pair item 3 runs on, the issue's "whichever pair item 1 finds
    closest": the one whose CO-X minus X, mean linear top-1 over all of :data:`SEEDS_MAIN`, is
    closest to 0 (a tie goes to the first), read from the published results; None until every
    item-1 pair has all its seeds. This rule was written down before the BYOL pair ran.

    Returns:
        Tuple[Optional[str], str]: the part (or None) and why, in words.
    """

    results = study.results if results is None else results
    seeds = set(map(int, SEEDS_MAIN))
    gaps = {}
    for part in dict.fromkeys(s["if_favoured"] for s in study.parts.values() if "if_favoured" in s):
        base = study.parts[part]["args"][1].split(",")[0]
        runs = arm_runs(results, pair_arms(part, base))
        if not seeds <= set(runs):
            return None, f"{part} has seeds {sorted(runs)} of {sorted(seeds)}"
        gaps[part] = statistics.fmean(runs[seed]["linear_top1"] for seed in seeds)
    closest = min(gaps, key=lambda part: abs(gaps[part]))  # min keeps the first of equals
    said = ", ".join(f"{part} {gap:+.2f}" for part, gap in gaps.items())
    return closest, f"CO-X - X, mean linear over seeds {', '.join(SEEDS_MAIN)}: {said}"


def data_mismatch(data: Path, study: Study) -> Optional[str]:
    """Why ``data`` is not the study's data (its train/ has another number of classes), or None:
    runs on other data would be published as the study's."""

    train = data / "train"
    if not train.is_dir():
        return None  # solo-co-bench names the missing folder
    classes = sum(1 for folder in train.iterdir() if folder.is_dir())
    if classes == study.classes:
        return None
    return (
        f"--data {data}: its train/ has {classes} classes, the {study.name} study's protocol "
        f"{study.classes}. Fix: --data must be {study.data}"
    )


def bench_command(
    part: str, data: Path, work: Path, study: Study = CIFAR, jobs: int = 2
) -> List[str]:
    spec = study.parts[part]
    # two one-thread runs side by side on a 2-core machine (0.40 s a SimCLR step each, measured);
    # one job leaves the other core to a second study
    protocol = list(study.protocol)
    if spec.get("backbone"):
        protocol[protocol.index("--backbone") + 1] = spec["backbone"]
    if spec.get("override"):  # one --override list: the protocol's, then the part's
        at = protocol.index("--override") + 2
        protocol[at:at] = spec["override"]
    command = ["solo-co-bench", "--data", str(data), *protocol, "--jobs", str(jobs), *spec["args"]]
    if spec.get("co_override"):
        command += ["--co-override", *spec["co_override"]]
    if spec.get("base_override"):
        command += ["--base-override", *spec["base_override"]]
    if spec.get("reuse"):
        command += ["--reuse-from", *[str(work / other) for other in spec["reuse"]]]
    # runs published from an earlier machine, the part's own or those it reuses (identical
    # arguments), are not trained again; named from the repository's root, where the study runs
    # its commands, so that the restored records say which published file they came from portably
    published = [study.results / p / "results.json" for p in [part, *spec.get("reuse", [])]]
    published = [
        path.relative_to(REPO) if path.is_relative_to(REPO) else path for path in published
    ]
    if any((REPO / path).exists() for path in published):
        command += ["--restore-from", *[str(p) for p in published if (REPO / p).exists()]]
    return command + ["--out", str(work / part)]


def robustness_command(part: str, work: Path) -> List[str]:
    """The robustness suite on a part's runs (resumes: analysed runs are skipped)."""

    return [
        "solo-co-eval",
        "robustness",
        "--bench",
        str(work / part),
        *ROBUSTNESS,
        "--device",
        "cpu",
    ]


def portable(text: str, replacements: Dict[str, str]) -> str:
    """The text with this machine's paths replaced by variables."""

    for path, variable in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, variable)
    return text


def publish(part: str, work: Path, replacements: Dict[str, str], study: Study = CIFAR) -> None:
    """Copies a part's tables and plots into the repository, with portable paths."""

    source, target = work / part, study.results / part
    if not (source / "results.md").exists():
        return
    target.mkdir(parents=True, exist_ok=True)
    for pattern in PUBLISHED:
        for path in source.glob(pattern):
            if path.suffix == ".png":
                shutil.copy(path, target / path.name)
            else:
                (target / path.name).write_text(portable(path.read_text(), replacements))


def rewrite_report(bench: Path) -> None:
    """A part's report written again from its runs' records with this checkout's report code
    (a study that runs on writes it with the code it started with)."""

    if not (bench / "plan.json").exists():
        return
    from solo_coplugin.bench.plan import load_plan
    from solo_coplugin.bench.report import write_report

    write_report(load_plan(bench)[0], bench)


def arm_runs(results: Path, arm) -> Dict[int, Dict]:
    """seed -> run record of one arm, from the published ``results.json`` of its part.

    A pair of arms gives, for each seed both have, its second arm's metrics minus its first's.
    """

    if isinstance(arm[0], tuple):
        first, second = (arm_runs(results, one) for one in arm)
        return {
            seed: {metric: second[seed][metric] - first[seed][metric] for metric, _ in METRICS}
            for seed in sorted(set(first) & set(second))
        }
    part, method, scale = arm
    path = results / part / "results.json"
    if not path.exists():
        return {}
    return {
        r["seed"]: r
        for r in json.loads(path.read_text())["runs"]
        if r["method"] == method
        and r.get("crop_min_scale") == scale
        and r.get("linear_top1") is not None
    }


def comparison_rows(results: Path = RESULTS, study: Study = CIFAR) -> List[Dict]:
    """Every comparison of the study's (:data:`COMPARISONS`) with at least one paired seed."""

    from solo_coplugin.bench.report import paired_interval

    rows = []
    for question, label, a, b in study.comparisons:
        runs_a, runs_b = arm_runs(results, a), arm_runs(results, b)
        seeds = sorted(set(runs_a) & set(runs_b))
        if not seeds:
            continue
        row = {
            "question": question,
            "label": label,
            "seeds": seeds,
            "contrast": isinstance(a[0], tuple),
        }
        metrics = [metric for metric, _ in METRICS]
        if not row["contrast"] and all(
            runs[s].get(BASE_LOSS) is not None for runs in (runs_a, runs_b) for s in seeds
        ):
            metrics.append(BASE_LOSS)
        for metric in metrics:
            deltas = [runs_b[s][metric] - runs_a[s][metric] for s in seeds]
            row[metric] = {**paired_interval(deltas), "deltas": dict(zip(seeds, deltas))}
            row[f"a:{metric}"] = statistics.fmean(runs_a[s][metric] for s in seeds)
            row[f"b:{metric}"] = statistics.fmean(runs_b[s][metric] for s in seeds)
        rows.append(row)
    return rows


def write_summary(results: Path = None, study: Study = CIFAR) -> List[Dict]:
    """``summary.md``/``.json``/``.png`` and ``sweeps.png``: the study's answers so far."""

    from solo_coplugin.bench.report import format_interval

    results = study.results if results is None else results
    rows = comparison_rows(results, study)
    if not rows:
        return rows
    lines = [
        "# The evidence study so far: paired differences",
        "",
        'Each row: B minus A on the same seed (the label reads "B - A"), top-1 points on the '
        f"{study.evaluated_on}; mean with a 95% confidence interval from Student's t on "
        "the per-seed differences (n-1 degrees of freedom); n=1 is a single pair, no result. "
        "A and B are the arms' means over the same seeds; in a row whose label has parentheses, "
        "A and B are themselves gaps (CO-X minus X on each seed) and the row asks whether the gap "
        "changes. Generated by "
        "`benchmarks/study/run_study.py` from the parts' `results.json`; protocol in "
        f"[{study.protocol_doc.replace('../../', 'benchmarks/')}]({study.protocol_doc}).",
        "",
        "| issue item | B - A | Δ linear [95% CI] | Δ k-NN [95% CI] | A linear | B linear | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        means = "+.1f" if row["contrast"] else ".1f"  # a contrast's arms are gaps, signed
        lines.append(
            f"| {row['question']} | {row['label']} | {format_interval(row['linear_top1'])} | "
            f"{format_interval(row['knn_top1'])} | {row['a:linear_top1']:{means}} | "
            f"{row['b:linear_top1']:{means}} | {', '.join(map(str, row['seeds']))} |"
        )
    losses = [row for row in rows if BASE_LOSS in row]
    if losses:
        lines += [
            "",
            "## The base method's own loss, paired",
            "",
            "The rows above whose arms both logged it: the base method's own loss (NT-Xent for "
            "SimCLR, BYOL's loss, ...) averaged over the last epoch's steps, without the local "
            "term or the online classifier; B minus A on the same seed, as above. Above 0: B "
            "ends with the higher base loss (a like-for-like objective only where A and B train "
            "on the same crops).",
            "",
            "| issue item | B - A | Δ base loss [95% CI] | per seed | A | B | seeds |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in losses:
            loss = row[BASE_LOSS]
            lines.append(
                f"| {row['question']} | {row['label']} | {format_interval(loss, digits=3)} | "
                f"{', '.join(f'{d:+.3f}' for d in loss['deltas'].values())} | "
                f"{row['a:' + BASE_LOSS]:.3f} | {row['b:' + BASE_LOSS]:.3f} | "
                f"{', '.join(map(str, row['seeds']))} |"
            )
    settings = sweep_rows(results, study)
    if settings:
        seeds = ", ".join(SEEDS_ABLATION)
        lines += [
            "",
            f"## The ablations as settings (seeds {seeds})",
            "",
            "Top-1 of each setting, mean over the seeds that have run (each seed in parentheses); "
            "`local_weight` 0 is SimCLR itself (CO-X with `local_weight` 0 trains exactly X). "
            "Plot: `sweeps.png`.",
            "",
            "| knob | value | method | linear | k-NN | seeds |",
            "|---|---|---|---|---|---|",
        ]
        for row in settings:
            cells = [
                f"{statistics.fmean(row[m].values()):.1f} "
                f"({', '.join(f'{v:.1f}' for v in row[m].values())})"
                for m, _ in METRICS
            ]
            lines.append(
                f"| `{row['knob']}` | {row['value']:g} | {row['method']} | {cells[0]} | {cells[1]}"
                f" | {', '.join(map(str, row[METRICS[0][0]]))} |"
            )
        plot_sweeps(settings, results / "sweeps.png")
    (results / "summary.md").write_text("\n".join(lines) + "\n")
    (results / "summary.json").write_text(
        json.dumps({"comparisons": rows, "settings": settings}, indent=2)
    )
    plot_summary(rows, results / "summary.png")
    return rows


def sweep_rows(results: Path = RESULTS, study: Study = CIFAR) -> List[Dict]:
    """Each setting of :data:`SWEEPS` that has run on an ablation seed: its top-1 per seed."""

    rows = []
    for knob, settings in study.sweeps.items():
        for value, method, arm in settings:
            runs = arm_runs(results, arm)
            seeds = [s for s in map(int, SEEDS_ABLATION) if s in runs]
            if seeds:
                row = {"knob": knob, "value": value, "method": method}
                row.update({m: {s: runs[s][m] for s in seeds} for m, _ in METRICS})
                rows.append(row)
    return rows


def plot_sweeps(rows: Sequence[Dict], path: Path) -> None:
    """One panel per knob: linear top-1 against the knob's value, a line per method through the
    seeds' mean, each seed a dot."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    knobs = list(dict.fromkeys(row["knob"] for row in rows))
    fig, axes = plt.subplots(1, len(knobs), figsize=(4 * len(knobs), 3.4), squeeze=False)
    for ax, knob in zip(axes[0], knobs):
        for color, method in zip(("tab:blue", "tab:orange"), ("SimCLR", "CO-SimCLR")):
            points = [r for r in rows if r["knob"] == knob and r["method"] == method]
            if not points:
                continue
            line = points
            if knob == "local_weight" and method == "CO-SimCLR":
                line = [r for r in rows if r["knob"] == knob]  # it starts at 0, SimCLR
            xs = [r["value"] for r in line]
            means = [statistics.fmean(r["linear_top1"].values()) for r in line]
            ax.plot(xs, means, "-s", color=color, markersize=4, label=f"{method} (mean)")
            for r in points:
                seeds = list(r["linear_top1"].values())
                ax.scatter([r["value"]] * len(seeds), seeds, color=color, s=12, alpha=0.6)
        ax.set_xlabel(f"{knob}" + (" (0: SimCLR)" if knob == "local_weight" else ""))
        ax.set_ylabel("linear top-1 (%)")
        ax.set_xticks(sorted({r["value"] for r in rows if r["knob"] == knob}))
        ax.legend(fontsize=7)
    fig.suptitle(
        "The ablations on seeds " + ", ".join(SEEDS_ABLATION) + " (dots: seeds)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_summary(rows: Sequence[Dict], path: Path) -> None:
    """One row per comparison: the per-seed differences (dots), mean and 95% t-CI, zero line."""

    import matplotlib

    from solo_coplugin.bench.report import draw_paired

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = 1.5 + 0.5 * len(rows)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(11, height), sharey=True, squeeze=False)
    ys = list(range(len(rows)))[::-1]
    for ax, (metric, name) in zip(axes[0], METRICS):
        # two seeds give t intervals of +-12.7 standard errors: the axis follows the seeds' dots,
        # so that the 3-seed rows stay readable; every interval is also written out on its row
        dots = [d for row in rows for d in row[metric]["deltas"].values()] + [0.0]
        low, high = min(dots) - 2.5, max(dots) + 2.5
        for y, row in zip(ys, rows):
            interval = row[metric]
            draw_paired(ax, y, interval["deltas"].values(), interval, horizontal=True)
            if interval["low"] is not None:
                clipped = interval["low"] < low or interval["high"] > high
                ax.annotate(
                    f"{interval['mean']:+.1f} [{interval['low']:+.1f}, {interval['high']:+.1f}]"
                    + (" (bar clipped)" if clipped else ""),
                    (high, y + 0.22),
                    ha="right",
                    fontsize=7,
                )
        ax.axvline(0.0, color="grey", linewidth=1, linestyle="--")
        ax.set_xlim(low, high)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlabel(f"Δ {name} top-1 (points)")
    axes[0][0].set_yticks(ys, [f"{r['question']}. {r['label']}" for r in rows], fontsize=8)
    fig.suptitle(
        "B - A on the same seed: each seed (dots), mean and 95% t interval (square and bar)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def path_variables(work: Path, data: Path) -> Dict[str, str]:
    """This machine's paths in the published files, and the variables that replace them."""

    import solo

    replacements = {
        str(work): "$STUDY",
        str(data): "$DATA",
        str(Path(solo.__file__).resolve().parents[1]): "$SOLO_LEARN",
        sys.executable: "python",
        f"{REPO}/": "",  # files of this repository: relative to its root
    }
    bench_executable = shutil.which("solo-co-bench")
    if bench_executable:
        replacements[bench_executable] = "solo-co-bench"
    return replacements


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--study",
        choices=list(STUDIES),
        default=CIFAR.name,
        help="cifar10 (the default; benchmarks/study/README.md) or tiny-imagenet "
        "(benchmarks/study/tiny-imagenet.md)",
    )
    parser.add_argument(
        "--data",
        required=True,
        help="; ".join(f"{study.name}: {study.data}" for study in STUDIES.values()),
    )
    parser.add_argument("--work", required=True, help="where the runs and checkpoints go")
    parser.add_argument(
        "--parts",
        nargs="+",
        help="some parts of the study, in its order (default: all). "
        + "; ".join(f"{study.name}: {' '.join(study.parts)}" for study in STUDIES.values()),
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="training runs at once, one torch thread each (default 2, a 2-core machine's worth; "
        "1 leaves a core to the other study, e.g. the CIFAR-10 parts beside the Tiny-ImageNet "
        "ones). The runs' results do not depend on it",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands and stop")
    parser.add_argument(
        "--publish-only",
        action="store_true",
        help="only write the parts' reports again from their current results (progress reports "
        "too) and copy them into the repository",
    )
    args = parser.parse_args(argv)
    study = STUDIES[args.study]
    parts = args.parts or list(study.parts)
    unknown = [part for part in parts if part not in study.parts]
    if unknown:
        parser.error(
            f"--parts {' '.join(unknown)}: not parts of the {study.name} study; its parts are "
            f"{' '.join(study.parts)} (another study: --study)"
        )
    data, work = Path(args.data).resolve(), Path(args.work).resolve()
    mismatch = None if args.publish_only else data_mismatch(data, study)
    if mismatch:
        parser.error(mismatch)
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: at least 1 training run at a time. Fix: --jobs 1 or 2")

    replacements = {} if args.dry_run else path_variables(work, data)
    for part in parts:
        if args.publish_only:
            rewrite_report(work / part)
            publish(part, work, replacements, study)
            write_summary(study=study)
            continue
        if "if_favoured" in study.parts[part] and not args.dry_run:
            favoured, why = favoured_pair(study)
            rule = "item 3 runs on the pair that item 1 finds closest"
            if favoured is None:
                print(f"# {part} waits: {rule}, and {why}; run the study again then", flush=True)
                continue
            if favoured != study.parts[part]["if_favoured"]:
                print(f"# {part} skipped: {rule}, {favoured} ({why})", flush=True)
                continue
            print(f"# {part}: {rule}, this one ({why})", flush=True)
        commands = [bench_command(part, data, work, study, args.jobs)]
        if study.parts[part].get("robustness"):
            commands.append(robustness_command(part, work))
        print(f"# {study.parts[part]['question']}", flush=True)
        for command in commands:
            print(shlex.join(command), flush=True)
            if args.dry_run:
                continue
            # one thread per training run (two side by side): reproducible, and a run keeps its
            # speed when something else runs (two threads against another process thrash: 20 s
            # instead of 0.4 s a step); the robustness suite runs alone, on both cores
            threads = "2" if command[0] == "solo-co-eval" else "1"
            environment = {**os.environ, "OMP_NUM_THREADS": threads}
            returncode = run_to_the_end(command, env=environment, cwd=REPO)
            publish(part, work, replacements, study)
            write_summary(study=study)
            if returncode != 0:
                sys.exit(f"part {part} failed (exit {returncode}); rerun to resume")


if __name__ == "__main__":
    with sigterm_as_ctrl_c():  # `kill PID` stops the study's training runs too
        main()
