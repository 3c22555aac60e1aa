"""Training and inference images/s per model: our pipeline vs a naive ImageFolder + DataLoader one.

Both pipelines train the same ImageClassifier through the same Lightning Trainer, so the ratio isolates
the data path. "naive" is the seeds' style: a torchvision ImageFolder decoding every JPEG with PIL in
`__getitem__`, per-image transforms (flip + padded crop), a DataLoader with worker processes. "ours" is
the project's path: the decode-once uint8 cache, batches sliced from memory (on the GPU when training
there), the same augmentations run batched with kornia on the batch's device. Every measurement runs in
its own process (so peak memory is per measurement) and times steps after a warm-up.

    python -m benchmarks.throughput --root data/genset-v1                # CPU, this machine
    python -m benchmarks.throughput --root /data/cifake --device cuda    # GPU (adds bf16 rows)
    python -m benchmarks.throughput --root data/genset-v1 --compile      # eager vs torch.compile modes
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

MODELS = {
    "baseline": ("cifake_lightning.models.BirdLotfiCNN", {"topology": "conv32x2-dense64x1"}),
    "lightweight_hoc": ("cifake_lightning.models.LightweightCNN_HOC", {}),
    "resnet18": ("cifake_lightning.models.TimmBackbone", {"model_name": "resnet18"}),
    "dualstream": ("cifake_lightning.models.DualStreamDetector", {"spatial": "resnet18"}),
    "dualstream_small": ("cifake_lightning.models.DualStreamDetector", {"spatial": "small"}),
}


class _Timer:
    """Lightning callback timing `steps` batches after `warmup` batches (train or eval)."""

    def __init__(self, warmup: int, steps: int):
        import lightning as L

        class CB(L.Callback):
            def __init__(cb):
                cb.t_start = cb.t0 = cb.t1 = None
                cb.n = 0

            def on_fit_start(cb, trainer, pl_module):
                cb.t_start = time.perf_counter()

            def on_validation_start(cb, trainer, pl_module):
                cb.t_start = cb.t_start or time.perf_counter()

            def _start(cb, trainer, batch_idx):
                if batch_idx == warmup:
                    _sync(trainer)
                    cb.t0 = time.perf_counter()

            def _end(cb, trainer, batch, batch_idx):
                if warmup <= batch_idx < warmup + steps:  # short eval sets may end before warmup + steps
                    cb.n += int(batch["label"].shape[0])
                    _sync(trainer)
                    cb.t1 = time.perf_counter()

            def on_train_batch_start(cb, trainer, pl_module, batch, batch_idx):
                cb._start(trainer, batch_idx)

            def on_train_batch_end(cb, trainer, pl_module, outputs, batch, batch_idx):
                cb._end(trainer, batch, batch_idx)

            def on_validation_batch_start(cb, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
                cb._start(trainer, batch_idx)

            def on_validation_batch_end(cb, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
                cb._end(trainer, batch, batch_idx)

        self.cb = CB()

    def rate(self) -> float:
        return self.cb.n / (self.cb.t1 - self.cb.t0)

    def warmup_s(self) -> float:
        """Seconds from the start of fit/validate to the first timed step (compilation lands here)."""
        return self.cb.t0 - self.cb.t_start


def _sync(trainer):
    import torch

    if trainer.strategy.root_device.type == "cuda":
        torch.cuda.synchronize()


class _NaiveDataset:
    """torchvision ImageFolder with per-image PIL decode and transforms, returning our batch dicts."""

    def __init__(self, root: Path, train: bool):
        from torchvision import datasets, transforms

        t = (
            [transforms.RandomHorizontalFlip(), transforms.RandomCrop(32, padding=2, padding_mode="reflect")]
            if train
            else []
        )
        self.ds = datasets.ImageFolder(str(root), transform=transforms.Compose([*t, transforms.ToTensor()]))

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        return {"image": x, "label": y}


def worker(args) -> dict:
    import importlib

    import lightning as L
    import torch

    from cifake_lightning.data import AugmentConfig, CIFAKEDataModule
    from cifake_lightning.training import ImageClassifier

    torch.set_float32_matmul_precision("high")
    mod, cls = MODELS[args.model][0].rsplit(".", 1)
    backbone = getattr(importlib.import_module(mod), cls)(**MODELS[args.model][1])
    model = ImageClassifier(backbone, compile=_compile_value(args.compile_mode))
    timer = _Timer(args.warmup, args.steps)
    trainer = L.Trainer(
        accelerator=args.device,
        devices=1,
        precision=args.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer.cb],
        max_steps=args.warmup + args.steps,
        num_sanity_val_steps=0,
        limit_val_batches=args.warmup + args.steps,
        limit_train_batches=args.warmup + args.steps,
    )
    aug = AugmentConfig(hflip=0.5, pad_crop=2)
    root = Path(args.root)
    if args.pipeline == "ours":
        dm = CIFAKEDataModule(
            root=str(root),
            val_size=0,
            batch_size=args.batch_size,
            eval_batch_size=args.batch_size,
            augment=aug,
            cache_dir=args.cache_dir,
            progress=False,
        )
        if args.phase == "train":
            trainer.fit(model, dm)
        else:
            dm.setup("test")
            trainer.validate(model, dataloaders=dm.test_dataloader())
    else:
        from torch.utils.data import DataLoader

        ds = _NaiveDataset(root / ("train" if args.phase == "train" else "test"), args.phase == "train")
        dl = DataLoader(
            ds,
            batch_size=args.batch_size,
            shuffle=args.phase == "train",
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
            pin_memory=args.device == "cuda",
        )
        if args.phase == "train":
            trainer.fit(model, train_dataloaders=dl)
        else:
            trainer.validate(model, dataloaders=dl)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu_peak = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else None
    return {
        "images_per_s": timer.rate(),
        "warmup_s": timer.warmup_s(),
        "peak_rss_mb": peak,
        "peak_gpu_mb": gpu_peak,
    }


def _compile_value(text: str) -> bool | str:
    return {"eager": False, "default": True}.get(text, text)


def _measure(base: list[str], **kw) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.throughput", "--worker", *base]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def _cpu_auto() -> tuple[str, str]:
    """auto_precision as it resolves on this CPU (ignoring any GPU, for --device cpu)."""
    from cifake_lightning.hardware import cpu_native_bf16

    if cpu_native_bf16():
        return "bf16-mixed", "native bf16 on this CPU"
    return "32-true", "no native bf16 on this CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="dataset in the CIFAKE layout (JPEG files)")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: per model)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the naive pipeline")
    ap.add_argument(
        "--styles",
        action="store_true",
        help="only compare the seeds' style (batch 32, fp32, DataLoader) with ours (bf16-mixed; batch 128, "
        "best on CPUs, and 512, for GPUs) for the baseline and HOC models",
    )
    ap.add_argument(
        "--compile",
        action="store_true",
        help="only compare eager with torch.compile (default mode; reduce-overhead = CUDA graphs on a GPU) "
        "for our pipeline at batch 512, bf16-mixed",
    )
    ap.add_argument("--compile-mode", dest="compile_mode", default="eager", help=argparse.SUPPRESS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--pipeline", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="32-true", help=argparse.SUPPRESS)
    ap.add_argument("--warmup", type=int, default=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    from ._common import markdown_table, record

    base = ["--root", args.root, "--device", args.device, "--workers", str(args.workers)]
    if args.cache_dir:
        base += ["--cache-dir", args.cache_dir]
    if args.compile:
        _compare_compile_modes(args, base)
        return
    if args.styles:
        from cifake_lightning.hardware import auto_precision, cpu_flags

        default_prec, why = auto_precision() if args.device == "cuda" else _cpu_auto()
        rows = []
        for model in [m for m in args.models if m in ("baseline", "lightweight_hoc")]:
            naive = _measure(
                base,
                model=model,
                pipeline="naive",
                phase="train",
                batch_size=32,
                steps=40,
                precision="32-true",
            )["images_per_s"]
            row = {"model": model, "seeds' style img/s (batch 32, fp32, ImageFolder+DataLoader)": naive}
            for prec in ("32-true", "bf16-mixed"):
                for b in (128, 512):
                    ips = _measure(
                        base, model=model, pipeline="ours", phase="train", batch_size=b,
                        steps=20 if b >= 512 else 60, precision=prec,
                    )["images_per_s"]  # fmt: skip
                    tag = " (default)" if prec == default_prec and b == 512 else ""
                    row[f"ours {prec} b{b}{tag}"] = f"{ips:,.0f} ({ips / naive:.1f}x)"
            rows.append(row)
            print(rows[-1], flush=True)
        feats = "/".join(sorted({"avx2", "avx512f", "avx512_bf16", "amx_bf16"} & cpu_flags())) or "unknown"
        record(
            "throughput",
            f"seeds' style vs ours, fp32 and bf16-mixed, batch 128 and 512, {args.device}",
            markdown_table(rows),
            notes=(
                f"data: {args.root}; training with flip + 2px crop augmentation; naive DataLoader workers: "
                f"{args.workers}; CPU features: {feats}; default precision here: {default_prec} ({why}); "
                "ratios are to the seeds' style in the same run"
            ),
        )
        return
    heavy = {"resnet18", "dualstream"}
    rows = []
    precisions = ["32-true"] + (["bf16-mixed"] if args.device == "cuda" else [])
    for model in args.models:
        steps = args.steps or (8 if model in heavy and args.device == "cpu" else 40)
        for precision in precisions:
            for phase in ("train", "inference"):
                ph = "train" if phase == "train" else "eval"
                for batch in (32, 256) if not (model in heavy and args.device == "cpu") else (32, 64):
                    kw = {
                        "model": model,
                        "phase": ph,
                        "batch_size": batch,
                        "steps": steps,
                        "precision": precision,
                    }
                    naive = _measure(base, pipeline="naive", **kw)
                    ours = _measure(base, pipeline="ours", **kw)
                    rows.append(
                        {
                            "model": model,
                            "phase": phase,
                            "precision": precision,
                            "batch": batch,
                            "naive img/s": naive["images_per_s"],
                            "ours img/s": ours["images_per_s"],
                            "speed-up": ours["images_per_s"] / naive["images_per_s"],
                            "peak RSS MB (naive/ours)": f"{naive['peak_rss_mb']:.0f}/{ours['peak_rss_mb']:.0f}",
                            **(
                                {"peak GPU MB (ours)": f"{ours['peak_gpu_mb']:.0f}"}
                                if args.device == "cuda"
                                else {}
                            ),
                        }
                    )
                    print(rows[-1], flush=True)
    table = markdown_table(rows)
    record(
        "throughput",
        f"training and inference throughput, {args.device}",
        table,
        notes=f"data: {args.root}; naive DataLoader workers: {args.workers}; augmentation: flip + 2px reflect-pad crop; "
        "timed after 3 warm-up steps",
    )


def _compare_compile_modes(args, base: list[str]) -> None:
    from ._common import markdown_table, record

    modes = ["eager", "default"] + (["reduce-overhead"] if args.device == "cuda" else [])
    rows = []
    for model in args.models:
        eager = None
        for mode in modes:
            r = _measure(
                base,
                model=model,
                pipeline="ours",
                phase="train",
                batch_size=512,
                steps=args.steps or 20,
                warmup=5,
                precision="bf16-mixed",
                compile_mode=mode,
            )
            eager = eager or r["images_per_s"]
            rows.append(
                {
                    "model": model,
                    "compile": mode,
                    "train img/s": r["images_per_s"],
                    "vs eager": r["images_per_s"] / eager,
                    "warm-up s (5 steps incl. compilation)": r["warmup_s"],
                }
            )
            print(rows[-1], flush=True)
    record(
        "throughput",
        f"eager vs torch.compile, training, batch 512, bf16-mixed, {args.device}",
        markdown_table(rows),
        notes=f"data: {args.root}; our pipeline with flip + 2px crop augmentation; timed after 5 warm-up steps",
    )


if __name__ == "__main__":
    main()
