"""Loader throughput against training throughput, per dataset pipeline.

For each dataset: samples/s of `nas.train.make_loader` over the training split
with a cold preprocessed-array cache (the first run: reads DICOM / NIfTI /
MetaImage / PNG and preprocesses) and a warm one (memory-mapped .npy only),
beside the samples/s of a training step of a small plain conv net on batches
of the same shape. ratio = warm loader / training: above 1 the loader keeps
up. Prints a markdown table and appends it to BENCHMARKS.md.

    python bench/loader.py                 # sample data, written to a temp dir
    python bench/loader.py --data-root brats=/data/BraTS2021 --datasets brats

`train_step_rate` is the hook for measuring against the real networks later.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data  # noqa: E402
from bench.common import BENCHMARKS, append_section, cpu_model  # noqa: E402
from data.sample.brats import write_brats  # noqa: E402
from nas.train.loader import default_workers, make_loader  # noqa: E402

DATASETS = ("dsb2018", "chaos", "promise12", "brats")


def small_net(in_channels: int, out_channels: int, spatial_dims: int) -> nn.Module:
    """Three plain conv layers: a stand-in for the real networks."""
    conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
    norm = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
    width = 16 if spatial_dims == 2 else 8
    return nn.Sequential(conv(in_channels, width, 3, padding=1), norm(width), nn.ReLU(),
                         conv(width, width, 3, padding=1), norm(width), nn.ReLU(), conv(width, out_channels, 1))


def train_step_rate(batch: dict, in_channels: int, out_channels: int, spatial_dims: int,
                    steps: int = 3, model: nn.Module | None = None) -> float:
    """Samples/s of forward + backward + optimiser step on `batch` (after one warm-up step)."""
    model = model or small_net(in_channels, out_channels, spatial_dims)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    image, label = batch["image"], batch["label"]
    target = label.float() if label.dtype.is_floating_point else (label > 0).float()
    if target.shape[1:] != image.shape[1:] and target.ndim == image.ndim - 1:
        target = target.unsqueeze(1)
    target = target[:, :out_channels].expand(-1, out_channels, *target.shape[2:])

    def step() -> None:
        loss = nn.functional.binary_cross_entropy_with_logits(model(image), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * image.shape[0] / (time.perf_counter() - start)


def loader_rate(dataset, batch_size: int, workers: int, min_seconds: float, prepare_seconds: float = 0.0,
                max_epochs: int = 50) -> tuple[float, dict]:
    """Samples/s over whole epochs (at least `min_seconds`), counting `prepare_seconds` too."""
    loader = make_loader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=False)
    samples, batch, epochs = 0, None, 0
    start = time.perf_counter()
    while epochs < max_epochs and (epochs == 0 or time.perf_counter() - start < min_seconds):
        for batch in loader:
            samples += batch["image"].shape[0]
        epochs += 1
    return samples / (time.perf_counter() - start + prepare_seconds), batch


def measure(name: str, root: Path, cache: Path, args: argparse.Namespace, label: str, **options) -> dict:
    batch_size = args.batch_size_3d if name == "brats" else args.batch_size_2d
    start = time.perf_counter()
    # val_fraction 0: every non-test case trains, for more items per epoch.
    dataset = data.get_dataset(name, root, "train", cache_dir=cache, val_fraction=0.0, **options)
    prepare = time.perf_counter() - start
    # Cold: the first epoch pays for reading and preprocessing every case.
    cold, _ = loader_rate(dataset, batch_size, args.workers, 0.0, prepare, max_epochs=1)
    start = time.perf_counter()
    dataset = data.get_dataset(name, root, "train", cache_dir=cache, val_fraction=0.0, **options)
    reopen = time.perf_counter() - start
    warm, batch = loader_rate(dataset, batch_size, args.workers, args.seconds)
    train = train_step_rate(batch, dataset.in_channels, dataset.num_classes, dataset.spatial_dims)
    return {
        "pipeline": label,
        "item": "x".join(map(str, batch["image"].shape[1:])),
        "batch": batch_size,
        "train items": len(dataset),
        "prepare cold (s)": round(prepare, 2),
        "reopen warm (s)": round(reopen, 3),
        "loader cold (samples/s)": round(cold, 1),
        "loader warm (samples/s)": round(warm, 1),
        "train step (samples/s)": round(train, 1),
        "warm / train": round(warm / train, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--data-root", action="append", default=[], metavar="NAME=DIR",
                        help="real data for a dataset (default: sample data)")
    parser.add_argument("--image-size", type=int, default=256, help="2D side (SPEC: 256)")
    parser.add_argument("--crop-size", type=int, default=96, help="3D crop side (papers: 128)")
    parser.add_argument("--brats-shape", type=int, nargs=3, default=(160, 160, 120),
                        help="volume shape of the synthetic BraTS cases written for the 3D rows")
    parser.add_argument("--batch-size-2d", type=int, default=4)
    parser.add_argument("--batch-size-3d", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: make_loader's)")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum warm measuring time per pipeline")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the training step")
    parser.add_argument("--out", default=str(BENCHMARKS))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    roots = dict(item.split("=", 1) for item in args.data_root)
    workers = default_workers() if args.workers is None else args.workers
    rows = []
    with tempfile.TemporaryDirectory(prefix="lwnas-bench-") as scratch:
        scratch = Path(scratch)
        for name in args.datasets:
            cache = scratch / f"cache-{name}"
            if name in roots:
                root = Path(roots[name])
                kind = "data"
            else:
                root = data.write_sample(name, scratch / name)
                kind = "sample"
            if name == "brats":
                if name not in roots:
                    # Sample volumes are 48x56x40; write larger ones so crops read like real ones.
                    root = write_brats(scratch / "brats-large", cases=5, shape=tuple(args.brats_shape))
                    kind = f"synthetic {'x'.join(map(str, args.brats_shape))}"
                options = {"crop_size": args.crop_size}
                label = f"brats 3D ({kind}), crop {args.crop_size}^3"
            else:
                options = {"image_size": args.image_size}
                label = f"{name} 2D ({kind}), {args.image_size}^2"
            rows.append(measure(name, root, cache, args, label, **options))
            print(f"done: {label}", file=sys.stderr)
    table = pd.DataFrame(rows)
    text = table.to_markdown(index=False)
    print(text)
    command = "python " + " ".join(shlex.quote(a) for a in ["bench/loader.py", *(argv or sys.argv[1:])])
    block = "\n".join([
        f"\n## Data loader vs training step ({datetime.date.today().isoformat()})\n",
        f"- device: {cpu_model()}, {torch.get_num_threads()} torch threads, {workers} loader workers, "
        f"torch {torch.__version__}",
        f"- command: `{command}`",
        "- cold = first run (read + preprocess + store the cache, then one epoch); warm = later runs "
        "(memory-mapped cache); train step = a 3-layer conv net on the same batches; "
        "warm / train > 1 means the loader keeps up.\n",
        text,
        "",
    ])
    append_section(block, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
