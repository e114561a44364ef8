"""Pretraining throughput: scans/s and tokens/s per preset, vs an nn.TransformerEncoder of the same size.

    python benchmarks/train_throughput.py --preset tiny --batch-size 32 --steps 20            # CPU
    python benchmarks/train_throughput.py --preset base --batch-size 512 --steps 30 --device cuda

Three timings on the same synthetic batch (2 views x B scans, P parcels in N networks, T TRs):
our full training step (augmentation, student + teacher, all losses, backward, clipping, AdamW,
EMA update), our encoder alone (forward + backward of the student encoder on both views) and a
reference nn.TransformerEncoder (pre-LN, same D / depth / heads / MLP ratio, same number of
tokens incl. CLS, forward + backward). On CUDA (bf16 autocast) it also reports model FLOPs
utilisation: FLOPs of one full step counted with torch.utils.flop_counter / step time / peak.
`--head-hidden` overrides the preset's projection head width (tiny 256, others 2048).
`data_scans_per_s` is the in-memory batch source alone (crops of preprocessed scans), for comparison.
"""

import argparse
import dataclasses
import json
import platform
import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from semantoks.model.augment import Augmentations, augment_views
from semantoks.model.config import FIRST_RECIPE, resolve
from semantoks.model.data import InMemoryBatches, Preprocessing, PreparedScan
from semantoks.model.meta_arch import SelfDistillationModel
from semantoks.model.presets import resolve_encoder_config

# dense bf16 peak of the GPU, by a substring of its name (TFLOP/s)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L4": 121.0}


def synthetic_batch(batch_size, n_parcels, length, n_patches, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    views = torch.randn(2, batch_size, n_parcels, length, generator=generator)
    parcel_valid = torch.rand(2, batch_size, n_parcels, generator=generator) > 0.02
    patch_valid = torch.ones(2, batch_size, n_patches, dtype=torch.bool)
    patch_valid[:, : batch_size // 8, -1] = False
    return {"views": views.to(device), "parcel_valid": parcel_valid.to(device), "patch_valid": patch_valid.to(device)}


def timed(step, steps, warmup, device):
    """Median (wall seconds, process CPU seconds) per call of `step` after `warmup` calls.

    CPU time (all threads of this process) is the steadier number on a shared machine.
    """
    for _ in range(warmup):
        step()
    walls, cpus = [], []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return statistics.median(walls), statistics.median(cpus)


def data_scans_per_s(batch_size, n_parcels, steps, frames=300):
    """Batch assembly rate of the in-memory source (two crops per scan), one process, no workers."""
    rng = np.random.default_rng(0)
    scans = [PreparedScan(rng.standard_normal((frames, n_parcels)).astype(np.float32), np.ones(n_parcels, bool))
             for _ in range(2 * batch_size)]
    source = InMemoryBatches(scans, Preprocessing(), batch_size, seed=0)
    start = time.perf_counter()
    for _ in source.batches(0, steps):
        pass
    return batch_size * steps / (time.perf_counter() - start)


def reference_encoder(config):
    layer = nn.TransformerEncoderLayer(config["dim"], config["heads"], int(config["dim"] * config["mlp_ratio"]),
                                       dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, config["depth"], enable_nested_tensor=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--batch-size", type=int, default=32, help="scans per step (2 views each)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--parcels", type=int, default=100)
    parser.add_argument("--networks", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the student")
    parser.add_argument("--head-hidden", type=int, default=None, help="projection head width (default: the preset's)")
    parser.add_argument("--first-recipe", action="store_true",
                        help="the project's first recipe (depthwise long convs, shared norm, student-only expansion, "
                             "mixed masker) instead of the reference's defaults")
    parser.add_argument("--peak-tflops", type=float, default=None, help="GPU bf16 peak for MFU (default by name)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    config = resolve_encoder_config({"preset": args.preset, **(FIRST_RECIPE["model"] if args.first_recipe else {})})
    n_patches = config["window"] // config["patch_len"]
    parcel_network = np.sort(np.arange(args.parcels) % args.networks)
    loss_config = resolve({"preset": args.preset}).loss  # the preset's head, as the trainer builds it
    if args.head_hidden is not None:
        loss_config = dataclasses.replace(loss_config, head_hidden=args.head_hidden)
    if args.first_recipe:
        loss_config = dataclasses.replace(loss_config, **FIRST_RECIPE["loss"])
    model = SelfDistillationModel(config, loss_config, parcel_network, args.networks).to(device)
    if args.compile:
        model.student = torch.compile(model.student)
    optimizer = torch.optim.AdamW(model.param_groups(0.05), lr=1e-4, fused=device.type == "cuda")
    batch = synthetic_batch(args.batch_size, args.parcels, config["window"], n_patches, device)
    precision = torch.bfloat16 if device.type == "cuda" else torch.float32
    autocast = torch.autocast(device.type, dtype=precision, enabled=device.type == "cuda")
    augmentations, generator = Augmentations(), torch.Generator(device=device).manual_seed(0)
    counter = {"step": 0}

    def train_step():
        views = augment_views(batch["views"], batch["parcel_valid"], batch["patch_valid"], augmentations, generator)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            model.forward_backward({**batch, "views": views}, {"ttr": 0.5, "mtm": 1.0}, counter["step"] % 2 == 0,
                                   generator)
        torch.nn.utils.clip_grad_norm_(model.student_module.parameters(), 1.0)
        optimizer.step()
        model.update_teacher(0.996)
        counter["step"] += 1

    encoder = model.student_module.encoder
    flat = {key: value.flatten(0, 1) for key, value in batch.items()}

    def encoder_step():
        with autocast:
            out = encoder(flat["views"], flat["parcel_valid"], flat["patch_valid"])
            loss = out["cls"].float().square().mean() + out["tokens"].float().square().mean()
        loss.backward()

    reference = reference_encoder(config).to(device)
    tokens = torch.randn(2 * args.batch_size, args.networks * n_patches + 1, config["dim"], device=device)

    def reference_step():
        with autocast:
            loss = reference(tokens).float().square().mean()
        loss.backward()

    results = {"preset": args.preset, "batch_size": args.batch_size, "device": str(device),
               "head_hidden": model.loss_config.head_hidden, "recipe": "first" if args.first_recipe else "reference",
               "tokens_per_view": args.networks * n_patches, "threads": torch.get_num_threads()}
    timings = {"train_step": train_step, "encoder_fwd_bwd": encoder_step, "reference_fwd_bwd": reference_step}
    for name, step in timings.items():
        results[f"{name}_s"], results[f"{name}_cpu_s"] = timed(step, args.steps, args.warmup, device)
    tokens_per_step = 2 * args.batch_size * args.networks * n_patches
    results["scans_per_s"] = args.batch_size / results["train_step_s"]
    results["data_scans_per_s"] = data_scans_per_s(args.batch_size, args.parcels, args.steps)
    results["tokens_per_s"] = tokens_per_step / results["train_step_s"]
    results["train_step_over_reference"] = results["train_step_s"] / results["reference_fwd_bwd_s"]
    results["encoder_over_reference"] = results["encoder_fwd_bwd_s"] / results["reference_fwd_bwd_s"]
    if device.type == "cpu":
        results["train_step_over_reference_cpu"] = results["train_step_cpu_s"] / results["reference_fwd_bwd_cpu_s"]
        results["encoder_over_reference_cpu"] = results["encoder_fwd_bwd_cpu_s"] / results["reference_fwd_bwd_cpu_s"]
    if device.type == "cuda":
        with FlopCounterMode(display=False) as flops:
            train_step()
        name = torch.cuda.get_device_name(device)
        peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        results.update(gpu=name, flops_per_step=flops.get_total_flops(),
                       peak_bf16_tflops=peak, peak_memory_gib=torch.cuda.max_memory_allocated(device) / 2**30)
        if peak:
            results["mfu"] = flops.get_total_flops() / results["train_step_s"] / (peak * 1e12)
    else:
        results["cpu"] = f"{platform.machine()} x{torch.get_num_threads()} threads"
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
