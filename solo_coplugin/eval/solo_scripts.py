"""solo-learn's ``main_knn.py`` and ``main_umap.py`` for any checkpoint, on CPU or GPU.

Both scripts build the model with ``METHODS[method]`` (CO methods are only there once
``solo_coplugin.register()`` ran, and these argparse scripts never load the Hydra plugin), move
data to CUDA unconditionally, and, for ``--dataset custom``, evaluate at 224 px. These
equivalents take the same arguments, run solo-learn's own ``WeightedKNNClassifier`` and
``OfflineUMAP``, and add ``--device`` (default: CUDA when available) and ``--crop_size``
(default: the checkpoint's training crop size, see :mod:`solo_coplugin.eval.data`).

    solo-co-eval knn --pretrained_checkpoint_dir trained_models/co_simclr/<id> \\
        --dataset custom --train_data_path <train> --val_data_path <val> --device cpu
    solo-co-eval umap --pretrained_checkpoint_dir ... --out_dir umap/
"""

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from torch.utils.data import DataLoader
from torchvision import transforms

from solo_coplugin.data_checks import check_image_folder, check_path_exists
from solo_coplugin.eval.checkpoint import load_method, training_crop_size
from solo_coplugin.eval.data import describe_transform, eval_transform, mean_std_for

#: the datasets of solo-learn's classification loaders; the last three are read from folders
DATASETS = ("cifar10", "cifar100", "stl10", "imagenet", "imagenet100", "custom")
FOLDER_DATASETS = ("imagenet", "imagenet100", "custom")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""

    return _number(text, int, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""

    return _number(text, int, 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""

    value = _number(text, float, None, "a number > 0")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _number(text: str, kind, minimum, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if minimum is not None and value < minimum:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def device_name(text: str) -> str:
    """argparse type: a torch device this machine has (``cpu``, ``cuda``, ``cuda:1``...)."""

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a torch device: use cpu, cuda, cuda:1, ..."
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: this machine has no CUDA device; use cpu")
    return text


def add_solo_script_args(parser: argparse.ArgumentParser, knn: bool) -> None:
    """The arguments of solo-learn's ``solo/args/knn.py`` / ``umap.py``, plus device and crop."""

    parser.add_argument("--pretrained_checkpoint_dir", required=True)
    parser.add_argument("--batch_size", type=positive_int, default=16)
    parser.add_argument("--num_workers", type=non_negative_int, default=10)
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--train_data_path", type=Path)
    parser.add_argument("--val_data_path", type=Path)
    parser.add_argument("--data_format", default="image_folder", choices=["image_folder", "h5"])
    if knn:
        parser.add_argument("--k", type=positive_int, nargs="+", default=[20])
        parser.add_argument("--temperature", type=positive_float, nargs="+", default=[0.07])
        parser.add_argument(
            "--distance_function", nargs="+", default=["cosine"], choices=["cosine", "euclidean"]
        )
        parser.add_argument(
            "--feature_type", nargs="+", default=["backbone"], choices=["backbone", "projector"]
        )
    else:
        parser.add_argument("--out_dir", type=Path, default=Path("."))
    parser.add_argument(
        "--device", type=device_name, help="cpu, cuda, cuda:1, ... (default: cuda if available)"
    )
    parser.add_argument("--crop_size", type=positive_int, help="default: the training crop size")


def check_data_args(args: argparse.Namespace) -> None:
    """Checks the data folders (or HDF5 files) before the checkpoint is loaded: a folder dataset
    needs both, with ImageFolder's layout (see :mod:`solo_coplugin.data_checks`); torchvision
    downloads CIFAR and STL-10 where they are missing."""

    if args.dataset not in FOLDER_DATASETS:
        return
    for key in ("train_data_path", "val_data_path"):
        path = getattr(args, key)
        if args.data_format == "h5":
            check_path_exists(path, f"--{key}")
        else:
            check_image_folder(path, f"--{key}")


def pick_device(name: Optional[str]) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def loaders(args: argparse.Namespace, cfg) -> Tuple[DataLoader, DataLoader, str]:
    from solo.data.classification_dataloader import prepare_datasets

    crop_size = args.crop_size or training_crop_size(cfg)
    transform = transforms.Compose(
        [eval_transform(crop_size), transforms.Normalize(*mean_std_for(cfg.data.dataset, cfg))]
    )
    train, val = prepare_datasets(
        args.dataset,
        T_train=transform,
        T_val=transform,
        train_data_path=args.train_data_path,
        val_data_path=args.val_data_path,
        data_format=args.data_format,
    )

    def make(dataset):
        return DataLoader(dataset, batch_size=args.batch_size, num_workers=args.num_workers)

    return make(train), make(val), describe_transform(crop_size)


@torch.no_grad()
def features(
    model, loader: DataLoader, device: torch.device
) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    backbone, projector, labels = [], [], []
    for images, targets in loader:
        out = model(images.to(device))
        backbone.append(out["feats"].float())
        projector.append(out["z"].float())
        labels.append(targets.to(device))
    return {"backbone": torch.cat(backbone), "projector": torch.cat(projector)}, torch.cat(labels)


def prepare(args: argparse.Namespace):
    """The loaded method on its device, its cfg, and the train/val loaders (both scripts)."""

    check_data_args(args)
    device = pick_device(args.device)
    model, cfg = load_method(args.pretrained_checkpoint_dir)
    train_loader, val_loader, transform = loaders(args, cfg)
    print(f"{cfg.method} on {device}; evaluation transform: {transform}")
    return model.to(device), cfg, device, train_loader, val_loader


def knn_main(args: argparse.Namespace) -> List[Dict]:
    """``main_knn.py``: k-NN accuracy for every combination of the given parameters."""

    from solo.utils.knn import WeightedKNNClassifier

    model, cfg, device, train_loader, val_loader = prepare(args)
    train_features, train_labels = features(model, train_loader, device)
    val_features, val_labels = features(model, val_loader, device)
    results = []
    for feature_type in args.feature_type:
        print(f"\n### {feature_type.upper()} ###")
        for k in args.k:
            for distance in args.distance_function:
                for temperature in args.temperature if distance == "cosine" else [None]:
                    knn = WeightedKNNClassifier(k=k, T=temperature, distance_fx=distance)
                    knn(
                        train_features=train_features[feature_type],
                        train_targets=train_labels,
                        test_features=val_features[feature_type],
                        test_targets=val_labels,
                    )
                    acc1, acc5 = knn.compute()
                    print(
                        f"k-NN distance_fx={distance}, k={k}, T={temperature}: "
                        f"acc@1={acc1:.2f}, acc@5={acc5:.2f}"
                    )
                    results.append(
                        {
                            "feature_type": feature_type,
                            "k": k,
                            "distance": distance,
                            "temperature": temperature,
                            "acc1": float(acc1),
                            "acc5": float(acc5),
                        }
                    )
    return results


def umap_main(args: argparse.Namespace) -> List[Path]:
    """``main_umap.py``: UMAP plots of the backbone features of the train and val splits."""

    try:
        from solo.utils.auto_umap import OfflineUMAP
    except ImportError as error:
        raise SystemExit(
            f"solo-co-eval umap needs solo-learn's umap extra ({error}). Fix: pip install "
            "umap-learn seaborn"
        ) from error

    model, cfg, device, train_loader, val_loader = prepare(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    umap = OfflineUMAP()
    paths = []
    for split, loader in (("train", train_loader), ("val", val_loader)):
        path = args.out_dir / f"{cfg.name}_{split}_umap.pdf"
        umap.plot(device, model.backbone, loader, str(path))
        paths.append(path)
    return paths
